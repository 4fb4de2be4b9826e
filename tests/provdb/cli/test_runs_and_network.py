"""Runs are visible in ``dlv list``/``desc`` (issue 16, item 6), and ``dlv network infer``
writes the network a plain weights file commits with (item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.numpy import save_file

import provdb
from provdb.models import zoo
from provdb.models.builder import build_module, module_tensors
from provdb.models.network import NetworkDef
from provdb.repository import Repository
from provdb.results import RunInfo


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    path = tmp_path / "w.safetensors"
    save_file(module_tensors(build_module(zoo.digits_cnn())), str(path))
    return path


def test_network_infer_prints_or_writes_the_inferred_network(
    dlv, weights_file: Path, tmp_path: Path
) -> None:
    printed = dlv("network", "infer", str(weights_file)).output
    net = NetworkDef.from_json(printed)
    assert net.meta["inferred"]["from"] == "tensor names and shapes"
    assert printed.startswith('{\n  "')  # indent 2, for editing
    out = tmp_path / "net.json"
    assert "wrote" in dlv("network", "infer", str(weights_file), "-o", str(out)).output
    assert NetworkDef.from_json(out.read_text()) == net
    again = dlv("network", "infer", str(weights_file), "-o", str(out), ok=False)
    assert again.exit_code == 1
    assert "--force" in again.output
    dlv("network", "infer", str(weights_file), "-o", str(out), "--force")


def test_desc_says_the_network_was_inferred(dlv, weights_file: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dlv("init", str(repo))
    net = tmp_path / "net.json"
    net.write_text(zoo.digits_cnn().to_json())
    dlv("--repo", str(repo), "commit", str(weights_file), "--name", "plain")
    dlv("--repo", str(repo), "commit", str(weights_file), "--name", "given", "--network", str(net))
    plain = dlv("--repo", str(repo), "desc", "plain").output
    assert "network inferred from tensor names and shapes" in plain
    assert "network inferred" not in dlv("--repo", str(repo), "desc", "given").output

    def desc_json(ref: str) -> dict:
        return json.loads(dlv("--repo", str(repo), "desc", ref, "--json").output)

    assert desc_json("plain")["network_inferred"] is True
    assert desc_json("given")["network_inferred"] is False
    assert desc_json("given")["run"] is None


def test_a_failed_run_shows_failed_in_list_desc_and_json(dlv, repo: Repository) -> None:
    net = zoo.digits_cnn()
    weights = module_tensors(build_module(net))
    with provdb.start_run(repo, name="ok", network=net) as run:
        run.log_checkpoint(weights, step=1)
    ok = repo.resolve("ok")

    def failing_script() -> None:
        with provdb.start_run(repo, name="broken", parent=ok.id) as failing:
            failing.log_metric("loss", 0.5, step=1)
            failing.log_checkpoint(repo.weights(ok.id), step=1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_script()
    repo.copy("ok", "plain")
    at = ["--repo", str(repo.root)]

    rows = {r["name"]: r for r in json.loads(dlv(*at, "list", "--json").output)}
    assert rows["plain"]["run"] is None
    assert rows["ok"]["run"]["status"] == "FINISHED"
    broken = rows["broken"]["run"]
    assert sorted(broken) == ["agent", "command", "ended_at", "id", "started_at", "status"]
    assert broken["status"] == "FAILED"
    assert all(broken[k] for k in ("agent", "command", "ended_at"))
    assert broken["id"] != rows["ok"]["run"]["id"]

    table = dlv(*at, "list").output
    assert "FAILED" in table
    assert "FINISHED" in table

    d = json.loads(dlv(*at, "desc", "broken", "--json").output)
    assert d["run"] == broken
    assert RunInfo(**broken).duration() is not None
    text = dlv(*at, "desc", "broken").output
    assert f"run {broken['id'][:12]} FAILED" in text
    assert "duration" in text
    assert broken["agent"] in text
