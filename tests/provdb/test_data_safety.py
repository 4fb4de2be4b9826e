"""Data safety and hostile input: no lost weights, no markup, no traceback, no shadowed names.

Each test reproduces a defect a new-user audit found and asserts the fixed behaviour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from provdb.entities import ModelVersion
from provdb.models import zoo
from provdb.models.builder import build_module, module_tensors
from provdb.repository import Repository


@pytest.fixture(scope="module")
def lenet() -> tuple:
    net = zoo.digits_cnn()
    return net, module_tensors(build_module(net))


def test_gc_waits_for_a_commit_blocked_on_the_graph_lock(lenet, tmp_path: Path) -> None:
    """A commit that wrote its weights and waits for the graph's write lock while ``dlv gc``
    runs: gc must not delete those weights, and the commit must succeed with them."""
    net, w = lenet
    root = tmp_path / "repo"
    Repository.init(root).close()
    save_file(w, str(tmp_path / "w.safetensors"))
    (tmp_path / "net.json").write_text(net.to_json())
    dlv = [sys.executable, "-m", "provdb.cli"]
    env = {**os.environ, "DLV_REPO": str(root), "PROVDB_LOCK_TIMEOUT": "60"}
    with Repository.open(root) as repo, repo.graph.session(write=True):  # hold the graph
        commit = subprocess.Popen(
            [*dlv, "commit", str(tmp_path / "w.safetensors"), "--name", "lenet",
             "--network", str(tmp_path / "net.json")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not repo.archive.list_snapshots() and time.monotonic() < deadline:
            time.sleep(0.05)  # the commit has written its weights and now waits for the graph
        assert repo.archive.list_snapshots(), commit.communicate()
        gc = subprocess.Popen([*dlv, "gc"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(1.0)
        assert gc.poll() is None  # gc waits for the in-flight commit
    out, err = commit.communicate(timeout=60)
    assert commit.returncode == 0, err
    gc_out, gc_err = gc.communicate(timeout=60)
    assert gc.returncode == 0, gc_err
    vid = out.strip()
    with Repository.open(root) as repo:
        back = repo.weights(vid)
    assert all(back[k].tobytes() == w[k].tobytes() for k in w)


MARKUP = ["[/]", "[bold]boom", "a[red]b[/red]", "[null]"]


def test_user_text_is_never_markup(dlv, repo: Repository, lenet) -> None:
    net, w = lenet
    base = repo.commit("lenet", net, w, params={"shape": "[null]"}).version.id
    r = str(repo.root)
    for name in MARKUP:
        dlv("--repo", r, "copy", base, "--name", name, "-m", name)
    listing = dlv("--repo", r, "list").output
    for name in MARKUP:
        assert name in listing
    dlv("--repo", r, "stats")
    assert "[/]" in dlv("--repo", r, "lineage", base, "--down").output
    assert "a[red]b[/red]" in dlv("--repo", r, "desc", "a[red]b[/red]").output
    assert "[null]" in dlv("--repo", r, "desc", base).output
    assert "[bold]boom" in dlv("--repo", r, "diff", base, "[bold]boom").output
    assert "[/]" in dlv("--repo", r, "query", 'select m where m.name like "[%"').output


def test_an_exact_name_wins_over_an_id_prefix(repo: Repository, lenet) -> None:
    net, w = lenet
    first = repo.commit("lenet", net, w).version
    prefix = first.id[:4]
    named = repo.commit(prefix, net, w).version  # a version whose *name* is the prefix
    assert repo.resolve(prefix).id == named.id  # the name, now and as more ids appear
    assert repo.resolve(first.id[:8]).id == first.id


def test_an_ambiguous_prefix_lists_the_candidates(repo: Repository, dlv) -> None:
    from provdb.graph import WriteBatch

    repo.graph.write(
        WriteBatch().add(
            ModelVersion(id="abcd" + "0" * 28, name="x"),
            ModelVersion(id="abcd" + "1" * 28, name="y"),
        )  # fmt: skip
    )
    out = dlv("--repo", str(repo.root), "desc", "abcd", ok=False)
    assert out.exit_code == 1
    assert "ambiguous" in out.output
    assert "(x)" in out.output
    assert "(y)" in out.output
    long = dlv("--repo", str(repo.root), "desc", "z" * 5000, ok=False)
    assert len(long.output) < 200
    assert long.output.count("\n") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: {**w, "conv1.weight": np.zeros((3, 1, 3, 3), np.float32)}, "conv1.weight"),
        (lambda w: {**w, "fc1.weight": w["fc1.weight"].reshape(-1)}, "fc1.weight"),
        (lambda w: {k: v for k, v in w.items() if k != "fc1.bias"}, "fc1.bias"),
        (lambda w: {**w, "fc9.weight": np.zeros(3, np.float32)}, "fc9.weight"),
        (lambda w: {**w, "fc1.bias": w["fc1.bias"].astype(np.float64)}, "fc1.bias"),
        (lambda w: {}, "no tensors"),
    ],
)
def test_parent_commits_are_checked_against_the_network(
    dlv, repo: Repository, lenet, tmp_path: Path, change, message: str
) -> None:
    net, w = lenet
    repo.commit("lenet", net, w)
    bad = change(dict(w))
    path = tmp_path / "bad.safetensors"
    save_file(bad, str(path)) if bad else path.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    before = repo.graph.count("ModelVersion")
    out = dlv("--repo", str(repo.root), "commit", str(path), "--name", "ft", "--parent",
              "lenet", ok=False)  # fmt: skip
    assert out.exit_code == 1, out.output
    assert message in out.output
    assert out.output.count("\n") == 1
    assert repo.graph.count("ModelVersion") == before


def test_checkout_refuses_to_overwrite_or_write_nowhere(dlv, repo: Repository, lenet,
                                                         tmp_path: Path) -> None:  # fmt: skip
    net, w = lenet
    vid = repo.commit("lenet", net, w).version.id
    target = tmp_path / "x.safetensors"
    target.write_bytes(b"keep me")
    r = str(repo.root)
    out = dlv("--repo", r, "checkout", vid, "-o", str(target), ok=False)
    assert out.exit_code == 1
    assert "--force" in out.output
    assert target.read_bytes() == b"keep me"
    dlv("--repo", r, "checkout", vid, "-o", str(target), "--force")
    assert target.read_bytes() != b"keep me"
    for where in ("nodir/x.safetensors", "../../no/such/dir/x.safetensors"):
        out = dlv("--repo", r, "checkout", vid, "-o", str(tmp_path / where), ok=False)
        assert out.exit_code == 1, out.output
        assert out.output.count("\n") == 1


def test_binary_network_file_and_bad_eval_data_are_one_line_errors(
    dlv, repo: Repository, lenet, tmp_path: Path
) -> None:
    net, w = lenet
    save_file(w, str(tmp_path / "w.safetensors"))
    (tmp_path / "net.bin").write_bytes(bytes(range(256)))
    r = str(repo.root)
    out = dlv("--repo", r, "commit", str(tmp_path / "w.safetensors"), "--name", "x",
              "--network", str(tmp_path / "net.bin"), ok=False)  # fmt: skip
    assert out.exit_code == 1
    assert "UTF-8" in out.output
    assert out.output.count("\n") == 1
    vid = repo.commit("lenet", net, w).version.id
    x = np.zeros((5, 1, 8, 8), np.float32)
    np.savez(tmp_path / "labels.npz", x_test=x, y_test=np.array([0, 1, 2, 3, 99]))
    np.savez(tmp_path / "empty.npz", x_test=x[:0], y_test=np.zeros(0, np.int64))
    for name, text in (("labels", "labels go up to 99"), ("empty", "test split is empty")):
        out = dlv("--repo", r, "eval", vid, "--data", str(tmp_path / f"{name}.npz"), ok=False)
        assert out.exit_code == 1, out.output
        assert text in out.output
    ok = dlv("--repo", r, "eval", vid, "--data", str(tmp_path / "labels.npz"), "--json", ok=False)
    assert ok.exit_code == 1
    np.savez(tmp_path / "test_only.npz", x_test=x, y_test=np.array([0, 1, 2, 3, 4]))
    out = json.loads(dlv("--repo", r, "eval", vid, "--data", str(tmp_path / "test_only.npz"),
                         "--json").output)  # fmt: skip
    assert out["n"] == 5


def test_desc_json_has_no_nan(dlv, repo: Repository, lenet) -> None:
    net, w = lenet
    vid = repo.commit("lenet", net, w, metrics={"loss": ([0, 1], [float("nan"), float("inf")])})
    text = dlv("--repo", str(repo.root), "desc", vid.version.id, "--json").output
    assert "NaN" not in text
    assert "Infinity" not in text
    assert json.loads(text)["metrics"]["loss"]["values"] == [None, None]


def test_progressive_eval_from_the_cli(dlv, repo: Repository, lenet, tmp_path: Path) -> None:
    net, w = lenet
    vid = repo.commit("lenet", net, w).version.id
    out = json.loads(dlv("--repo", str(repo.root), "eval", vid, "--data", "builtin:digits",
                         "--progressive", "--predictions", str(tmp_path / "p.npy"),
                         "--json").output)  # fmt: skip
    assert [s["planes"] for s in out["steps"]] == [1, 2, 3, 4]
    assert out["steps"][-1]["fraction"] == 1.0
    assert np.load(tmp_path / "p.npy").shape == (450,)


@pytest.mark.neo4j
def test_a_neo4j_database_holds_one_repository(dlv, neo4j_graph_uri: str, lenet,
                                               tmp_path: Path) -> None:  # fmt: skip
    net, w = lenet
    with Repository.init(tmp_path / "a", graph=neo4j_graph_uri) as first:
        vid = first.commit("lenet", net, w).version.id
    out = dlv("init", str(tmp_path / "b"), "--graph", neo4j_graph_uri, ok=False)
    assert out.exit_code == 1
    assert "belongs to another dlv repository" in out.output
    assert not (tmp_path / "b" / ".dlv" / "config.json").exists()
    listed = dlv("--repo", str(tmp_path / "a"), "list", "--json").output
    assert [r["id"] for r in json.loads(listed)] == [vid]
    # a repository whose config names the database but that never claimed it (e.g. copied)
    config = json.loads((tmp_path / "a" / ".dlv" / "config.json").read_text())
    (tmp_path / "c" / ".dlv").mkdir(parents=True)
    (tmp_path / "c" / ".dlv" / "config.json").write_text(json.dumps({**config, "id": "c" * 32}))
    out = dlv("--repo", str(tmp_path / "c"), "list", ok=False)
    assert out.exit_code == 1
    assert "belongs to another dlv repository" in out.output


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 12 MiB file system (tmpfs), so a commit can run out of room for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_is_one_line_and_the_repository_stays_usable(
    dlv, small_disk: Path, tmp_path: Path
) -> None:
    root = small_disk / "repo"
    dlv("init", str(root))
    rng = np.random.default_rng(0)
    outcomes = []
    for i in range(6):
        path = tmp_path / f"w{i}.safetensors"
        w = {"fc1.weight": rng.standard_normal((256, 1024)).astype(np.float32)}
        save_file(w, str(path))
        outcomes.append(dlv("--repo", str(root), "commit", str(path), "--name", f"m{i}", ok=False))
    failed = [o for o in outcomes if o.exit_code != 0]
    assert failed, "the disk never filled up"
    for out in failed:
        assert out.exit_code == 1
        assert out.output.count("\n") == 1
        assert "disk full" in out.output
    committed = [o.output.strip() for o in outcomes if o.exit_code == 0]
    listed = json.loads(dlv("--repo", str(root), "list", "--json").output)
    assert sorted(r["id"] for r in listed) == sorted(committed)
    target = tmp_path / "back.safetensors"
    dlv("--repo", str(root), "checkout", committed[0], "-o", str(target))
    assert target.stat().st_size > 1_000_000


@pytest.mark.neo4j
def test_neo4j_reads_print_no_driver_notifications(neo4j_graph_uri: str, tmp_path: Path) -> None:
    """Driver notifications (GqlStatusObject warnings about labels a fresh database lacks) are
    silenced: a read command's stderr stays empty."""
    Repository.init(tmp_path / "r", graph=neo4j_graph_uri).close()
    env = {**os.environ, "DLV_REPO": str(tmp_path / "r")}
    for args in (["list"], ["stats"], ["query", 'select m where m["x"].next has POOL("MAX")']):
        done = subprocess.run([sys.executable, "-m", "provdb.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
