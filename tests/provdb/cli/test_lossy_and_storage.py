"""Issue 16 items 5 and 8: lossy float schemes reach users (``dlv commit --float``, the SDK's
``float_scheme=``), and ``dlv stats``/``desc``/``gc --compact`` tell the truth about storage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from provdb import lossy
from provdb.errors import InvalidInput
from provdb.graph.base import Statement
from provdb.models import zoo
from provdb.models.builder import build_module, module_tensors
from provdb.repository import Repository
from provdb.tracking import start_run

SCHEMES = ["fp16", "bf16", "fixed16", "q8"]


def within_bound(scheme: str, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``y`` approximates ``x`` within the scheme's documented worst case."""
    x64, err = x.astype(np.float64), np.abs(y.astype(np.float64) - x.astype(np.float64))
    peak = float(np.abs(x64).max()) if x.size else 0.0
    bound = {
        "fp16": np.abs(x64) * 2.0**-11 + 2.0**-25,
        "bf16": np.abs(x64) * 2.0**-8 + 2.0**-133,
        "fixed16": np.full_like(x64, peak * 2.0**-14),
        "q8": np.full_like(x64, (x64.max() - x64.min()) / 510 * (1 + 1e-9) if x.size else 0.0),
    }[scheme]
    return bool((err <= bound).all())


@pytest.fixture
def model_dir(dlv, tmp_path: Path) -> Path:
    """A repository with a LeNet network file and its weights, nothing committed yet."""
    dlv("init", str(tmp_path))
    net = zoo.digits_cnn()
    (tmp_path / "net.json").write_text(net.to_json())
    save_file(module_tensors(build_module(net)), str(tmp_path / "w.safetensors"))
    return tmp_path


def js(dlv, root: Path, *args: str) -> Any:
    return json.loads(dlv("--repo", str(root), *args, "--json").output)


def commit(dlv, root: Path, name: str, *extra: str, weights: str = "w.safetensors") -> str:
    return js(dlv, root, "commit", str(root / weights), "--name", name,
              "--network", str(root / "net.json"), *extra)["id"]  # fmt: skip


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_float_scheme_commits_checks_out_within_its_bound_and_shows(
    dlv, model_dir: Path, scheme: str
) -> None:
    original = load_file(str(model_dir / "w.safetensors"))
    vid = commit(dlv, model_dir, "lenet", "--float", scheme)
    out = model_dir / "back.safetensors"
    result = dlv("--repo", str(model_dir), "checkout", vid, "-o", str(out))
    note = [line for line in result.stderr.splitlines() if line]
    assert len(note) == 1
    assert "approximate" in note[0]
    assert scheme in note[0]
    back = load_file(str(out))
    assert back.keys() == original.keys()
    changed = 0
    for name, x in original.items():
        assert back[name].dtype == x.dtype
        assert back[name].shape == x.shape
        assert within_bound(scheme, x, back[name]), name
        changed += not np.array_equal(back[name], x)
    assert changed, "a lossy scheme that changes nothing was not applied"

    desc = js(dlv, model_dir, "desc", vid)
    assert [s["float_scheme"] for s in desc["snapshots"]] == [scheme]
    stats = js(dlv, model_dir, "stats")
    assert [v["float_scheme"] for v in stats["versions"]] == [scheme]
    shown = dlv("--repo", str(model_dir), "desc", vid).output
    assert scheme in shown


def test_lossless_is_the_default_and_bit_exact(dlv, model_dir: Path) -> None:
    original = load_file(str(model_dir / "w.safetensors"))
    vid = commit(dlv, model_dir, "lenet")
    out = model_dir / "back.safetensors"
    result = dlv("--repo", str(model_dir), "checkout", vid, "-o", str(out))
    assert result.stderr == ""
    back = load_file(str(out))
    for name, x in original.items():
        assert back[name].tobytes() == x.tobytes()
    assert js(dlv, model_dir, "desc", vid)["snapshots"][0]["float_scheme"] == "lossless"
    assert js(dlv, model_dir, "stats")["versions"][0]["float_scheme"] == "lossless"


def test_unknown_scheme_is_a_one_line_error_listing_the_valid_ones(dlv, model_dir: Path) -> None:
    result = dlv("--repo", str(model_dir), "commit", str(model_dir / "w.safetensors"),
                 "--name", "x", "--network", str(model_dir / "net.json"), "--float", "fp8",
                 ok=False)  # fmt: skip
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "'fp8'" in lines[0]
    assert all(name in lines[0] for name in lossy.FLOAT_SCHEMES)
    assert js(dlv, model_dir, "list") == []


def test_schemes_apply_to_wide_floats_only_and_fp16_refuses_out_of_range() -> None:
    tensors = {
        "f32": np.ones(4, np.float32),
        "f16": np.ones(4, np.float16),
        "i64": np.arange(4),
    }
    chosen = lossy.schemes_for(tensors, "q8")
    assert chosen is not None
    assert chosen["f32"] is not None
    assert chosen["f16"] is None
    assert chosen["i64"] is None
    assert lossy.schemes_for(tensors, None) is None
    with pytest.raises(InvalidInput, match="fp16"):
        lossy.schemes_for({"big": np.array([1e6], np.float32)}, "fp16")


def test_sdk_float_scheme_per_run_and_per_checkpoint(tmp_path: Path) -> None:
    net = zoo.digits_cnn()
    weights = module_tensors(build_module(net))
    with pytest.raises(InvalidInput, match="choose one of"):
        start_run(Repository.init(tmp_path), "bad", network=net, float_scheme="int4")
    with start_run(tmp_path, "sdk", network=net, float_scheme="bf16") as run:
        run.log_checkpoint(weights, step=0)
        run.log_checkpoint({k: v + 1 for k, v in weights.items()}, step=1, float_scheme="q8")
        run.commit()
    with Repository.open(tmp_path) as repo:
        snaps = {s.iteration: s.extra["float_scheme"] for s in repo.describe("sdk").snapshots}
        assert snaps == {0: "bf16", 1: "q8"}
        assert set(repo.float_schemes("sdk").values()) == {"q8"}
        got = repo.weights("sdk")
    for name, x in weights.items():
        assert within_bound("q8", x + 1, got[name])


def disk(path: Path) -> int:
    return os.stat(path).st_blocks * 512 if path.exists() else 0


def test_stats_bytes_are_consistent_and_desc_counts_only_own_chunks(dlv, model_dir: Path) -> None:
    base = commit(dlv, model_dir, "lenet")
    tuned = load_file(str(model_dir / "w.safetensors"))
    first = sorted(tuned)[0]
    tuned[first] = tuned[first] + np.float32(0.5)  # one tensor changes, the rest is shared
    save_file(tuned, str(model_dir / "ft.safetensors"))
    ft = commit(dlv, model_dir, "lenet-ft", "--parent", base, weights="ft.safetensors")

    stats = js(dlv, model_dir, "stats")
    unique = {v["id"]: v["unique_bytes"] for v in stats["versions"]}
    assert sum(unique.values()) == stats["chunk_bytes"] > 0
    assert 0 < unique[ft] < unique[base] / 2
    dlv_dir = model_dir / ".dlv"
    assert stats["archive_disk_bytes"] == disk(dlv_dir / "archive" / "data.mdb") > 0
    graph = disk(dlv_dir / "graph.lbdb") + disk(dlv_dir / "graph.lbdb.wal")
    assert stats["graph_disk_bytes"] == graph > 0
    text = dlv("--repo", str(model_dir), "stats").output
    assert "on disk: archive" in text
    assert "graph" in text

    rows = {d: js(dlv, model_dir, "desc", d)["snapshots"][0] for d in (base, ft)}
    assert rows[ft]["stored"] == unique[ft]
    assert rows[ft]["referenced"] > rows[ft]["stored"]
    assert rows[base]["stored"] == unique[base]
    assert rows[base]["referenced"] == 0
    assert rows[ft]["stored"] + rows[ft]["referenced"] == rows[ft]["read_bytes"]


def test_gc_compact_shrinks_the_archive_file_and_keeps_everything_exact(
    dlv, model_dir: Path
) -> None:
    rng = np.random.default_rng(0)
    weights = {f"w{i}": load_file(str(model_dir / "w.safetensors")) for i in range(4)}
    ids = []
    for i, tensors in weights.items():
        tensors = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in tensors.items()}
        weights[i] = tensors
        save_file(tensors, str(model_dir / f"{i}.safetensors"))
        ids.append(commit(dlv, model_dir, i, weights=f"{i}.safetensors"))
    with Repository.open(model_dir) as repo:  # a version is deleted (no dlv command yet)
        repo.graph.run_write([Statement(
            "MATCH (s:Snapshot)-[:SNAPSHOT_OF]->(v:ModelVersion {id: $id}) DETACH DELETE s, v",
            {"id": ids[0]},
        )])  # fmt: skip
    data = model_dir / ".dlv" / "archive" / "data.mdb"
    plain = js(dlv, model_dir, "gc")
    assert plain["snapshots"] == 1
    assert plain["archive_bytes_before"] is None
    before = disk(data)
    graph = model_dir / ".dlv" / "graph.lbdb"
    graph_before = disk(graph)
    listed = js(dlv, model_dir, "list")
    described = {v: js(dlv, model_dir, "desc", v) for v in ids[1:]}
    out = js(dlv, model_dir, "gc", "--compact")
    assert out["archive_bytes_before"] == before
    assert out["archive_bytes_after"] == disk(data) < before
    assert out["graph_bytes_before"] == graph_before
    assert out["graph_bytes_after"] == disk(graph) < graph_before
    assert js(dlv, model_dir, "list") == listed
    assert {v: js(dlv, model_dir, "desc", v) for v in ids[1:]} == described
    text = dlv("--repo", str(model_dir), "gc", "--compact").output
    assert "archive file:" in text
    assert "graph:" in text
    assert not (data.parent / "compact.tmp").exists()
    for vid, name in zip(ids[1:], list(weights)[1:], strict=True):
        out_file = model_dir / f"{name}.back.safetensors"
        dlv("--repo", str(model_dir), "checkout", vid, "-o", str(out_file))
        back = load_file(str(out_file))
        assert all(back[k].tobytes() == v.tobytes() for k, v in weights[name].items())
    with Repository.open(model_dir) as repo:
        assert repo.archive.verify().ok
        commit(dlv, model_dir, "after", weights="w1.safetensors")  # still writable


def test_graph_compaction_that_copies_too_little_keeps_the_original(
    dlv, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provdb.graph import compact

    vid = commit(dlv, model_dir, "lenet")
    graph = model_dir / ".dlv" / "graph.lbdb"
    before = js(dlv, model_dir, "desc", vid)
    monkeypatch.setattr(compact, "copy_graph", lambda src, dst: None)
    result = dlv("--repo", str(model_dir), "gc", "--compact", ok=False)
    assert result.exit_code == 1
    assert "kept the original" in result.stderr
    assert not graph.with_name("graph.lbdb.compact").exists()
    assert js(dlv, model_dir, "desc", vid) == before  # the original graph, still complete
