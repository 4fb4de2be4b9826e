"""dlv commit / checkout / copy / lineage / desc / diff / stats / gc and the SDK, on both
graph backends, with real models, real training and a real kill mid-commit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import provdb
from provdb.errors import InvalidInput, NotFound
from provdb.models import learner, zoo
from provdb.models.builder import build_module, module_tensors
from provdb.models.importers import from_onnx, load_safetensors, save_safetensors, to_onnx
from provdb.models.network import Layer, NetworkDef
from provdb.repository import Repository


@pytest.fixture(scope="module")
def model() -> tuple[NetworkDef, dict[str, np.ndarray]]:
    net = zoo.digits_cnn()
    return net, module_tensors(build_module(net))


def state(repo: Repository) -> tuple[int, int, list[str]]:
    """What a failed command must leave unchanged."""
    return (
        repo.graph.count("ModelVersion"),
        repo.graph.count("Snapshot"),
        sorted(repo.archive.list_snapshots()),
    )


def test_commit_and_checkout_are_bit_exact(dlv, repo: Repository, model, tmp_path: Path) -> None:
    net, w = model
    w = dict(w)
    w["fc1.bias"] = w["fc1.bias"].copy()
    w["fc1.bias"][:4] = [np.nan, np.inf, -np.inf, -0.0]
    w["fc1.bias"].view(np.uint32)[4] = 0x7FC0_1234  # a NaN with a payload
    src = tmp_path / "w.safetensors"
    save_safetensors(w, src)
    net_file = tmp_path / "net.json"
    net_file.write_text(net.to_json())
    vid = dlv(
        "--repo", str(repo.root), "commit", str(src), "--name", "digits", "--network", str(net_file)
    ).output.strip()
    out = tmp_path / "out.safetensors"
    dlv("--repo", str(repo.root), "checkout", vid[:8], "-o", str(out))
    back = load_safetensors(out)
    assert back.keys() == w.keys()
    for name in w:
        assert back[name].tobytes() == w[name].tobytes(), name
    onnx_out = tmp_path / "out.onnx"
    dlv("--repo", str(repo.root), "checkout", vid, "-o", str(onnx_out))
    net2, w2 = from_onnx(onnx_out)
    assert [layer.type for layer in net2.layers] == [layer.type for layer in net.layers]
    for name in w:
        assert w2[name].tobytes() == w[name].tobytes(), name


def test_onnx_commit_records_network_files_and_params(
    dlv, repo: Repository, model, tmp_path: Path
) -> None:
    net, w = model
    to_onnx(net, w, tmp_path / "m.onnx")
    (tmp_path / "train.py").write_text("print('train')\n")
    dlv("--repo", str(repo.root), "add", str(tmp_path / "train.py"))
    vid = dlv(
        "--repo",
        str(repo.root),
        "commit",
        str(tmp_path / "m.onnx"),
        "--name",
        "lenet",
        "--param",
        "lr=0.1",
        "--param",
        "opt=sgd",
        "-m",
        "from onnx",
    ).output.strip()
    d = json.loads(dlv("--repo", str(repo.root), "desc", vid, "--json").output)
    assert d["params"] == {"lr": 0.1, "opt": "sgd"}
    assert [layer["type"] for layer in d["layers"]][:4] == ["Input", "Conv", "ReLU", "Pool"]
    assert [Path(f["path"]).name for f in d["files"]] == ["train.py"]
    assert d["framework"] == "onnx"
    assert repo.staged() == []


def test_copy_and_finetune_lineage_and_dedup(dlv, repo: Repository, model) -> None:
    net, w = model
    base = repo.commit("lenet", net, w)
    copy = repo.copy(base.version.id, "lenet-copy")
    assert copy.new_bytes == 0
    w2 = {**w, "fc1.weight": w["fc1.weight"] * np.float32(0.5)}
    ft = repo.commit("lenet-ft", net, w2, parent=copy.version.id, op="finetune")
    lineage = json.loads(dlv("--repo", str(repo.root), "lineage", ft.version.id, "--json").output)
    assert lineage["depth"] == {ft.version.id: 0, copy.version.id: 1, base.version.id: 2}
    assert {(e["derived"], e["op"]) for e in lineage["edges"]} == {
        (ft.version.id, "finetune"),
        (copy.version.id, "copy"),
    }
    down = json.loads(
        dlv("--repo", str(repo.root), "lineage", base.version.id, "--down", "--json").output
    )
    assert set(down["versions"]) == {base.version.id, copy.version.id, ft.version.id}
    # the fine-tune's unchanged layers cost nothing: only fc1.weight is new
    changed = repo.archive.manifest(ft.snapshot)["tensors"]
    same = repo.archive.manifest(base.snapshot)["tensors"]
    assert {k for k in changed if changed[k] != same[k]} == {"fc1.weight"}
    assert "lenet-ft" in dlv("--repo", str(repo.root), "lineage", ft.version.id).output


def test_diff_finds_an_inserted_layer_and_a_changed_param(dlv, repo: Repository, model) -> None:
    net, w = model
    a = repo.commit("lenet", net, w, params={"lr": 0.1, "bs": 64})
    layers = list(net.layers)
    at = [x.name for x in layers].index("fc1")
    layers.insert(at, Layer("drop", "Dropout", "", {"p": 0.5}))
    edges = [e for e in net.edges if e != ("flatten", "fc1")] + [
        ("flatten", "drop"),
        ("drop", "fc1"),
    ]
    net_b = NetworkDef(tuple(layers), tuple(edges))
    b = repo.commit("lenet-drop", net_b, w, params={"lr": 0.01, "bs": 64}, parent=a.version.id)
    d = json.loads(
        dlv(
            "--repo",
            str(repo.root),
            "diff",
            a.version.id,
            b.version.id,
            "--only-differences",
            "--json",
        ).output
    )
    assert [(r["name"], r["status"]) for r in d["layers"]] == [("drop", "added")]
    assert [(r["name"], r["values"]) for r in d["params"]] == [("lr", [0.1, 0.01])]
    assert ["flatten", "drop"] in d["edges"]["added"]
    assert ["flatten", "fc1"] in d["edges"]["removed"]
    assert d["weights"] == []  # same weights everywhere
    table = dlv("--repo", str(repo.root), "diff", a.version.id, b.version.id).output
    assert "added" in table


def test_sdk_records_training_and_a_failed_run(dlv, repo: Repository) -> None:
    net = zoo.digits_cnn()
    cfg = learner.TrainConfig(iterations=60, checkpoint_every=20, eval_every=30, log_every=10)
    with provdb.start_run(repo, name="digits", network=net) as run:
        run.log_params({"base_lr": cfg.base_lr, "iterations": cfg.iterations})
        run.log_dataset("builtin:digits")
        learner.train(
            net,
            None,
            cfg,
            on_metric=run.log_metric,
            on_checkpoint=lambda step, t: run.log_checkpoint(t, step),
        )
    version = repo.resolve("digits")
    d = json.loads(dlv("--repo", str(repo.root), "desc", version.id, "--json").output)
    assert [s["iteration"] for s in d["snapshots"]] == [20, 40, 60]
    assert [s["latest"] for s in d["snapshots"]] == [False, False, True]
    assert d["metrics"]["train_loss"]["points"] == 6
    assert d["params"]["iterations"] == 60

    def failing_script() -> None:
        with provdb.start_run(repo, name="digits-ft", parent=version.id) as failing:
            failing.log_metric("loss", 0.5, step=1)
            failing.log_checkpoint(repo.weights(version.id), step=1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_script()
    runs = repo.graph.run_read(
        "MATCH (r:Run) RETURN r.name AS name, r.status AS status, r.ended_at AS ended ORDER BY name"
    )
    assert [(r["name"], r["status"]) for r in runs] == [
        ("digits", "FINISHED"),
        ("digits-ft", "FAILED"),
    ]
    assert all(r["ended"] for r in runs)
    (ft,) = repo.graph.run_read("MATCH (r:Run {name: 'digits-ft'}) RETURN r.id AS id")
    assert repo.metrics_of(ft["id"], "Run")["loss"].values == [0.5]
    used = repo.graph.run_read("MATCH (r:Run)-[:USED]->(v:ModelVersion) RETURN v.id AS id")
    assert used == [{"id": version.id}]


def test_eval_and_stats(dlv, repo: Repository, model) -> None:
    net, w = model
    vid = repo.commit("lenet", net, w).version.id
    out = json.loads(
        dlv("--repo", str(repo.root), "eval", vid, "--data", "builtin:digits", "--json").output
    )
    assert 0.0 <= out["accuracy"] <= 1.0
    assert out["n"] == 450
    s = json.loads(dlv("--repo", str(repo.root), "stats", "--json").output)
    assert s["versions"][0]["raw_bytes"] == sum(a.nbytes for a in w.values())
    assert len(s["per_plane"]) == 4


BAD_NAMES = ['x"}) DETACH DELETE n //', "it's", "a` {id: 'b'}) //", "$rows"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_with_quotes_or_cypher_are_stored_verbatim(
    repo: Repository, model, name: str
) -> None:
    net, w = model
    repo.commit("keep", net, w)
    vid = repo.commit(name, net, w).version.id
    assert repo.resolve(name).id == vid
    assert repo.graph.count("ModelVersion") == 2


def test_bad_inputs_are_one_line_errors_that_change_nothing(
    dlv, repo: Repository, model, tmp_path: Path
) -> None:
    net, w = model
    repo.commit("keep", net, w)
    before = state(repo)
    good = tmp_path / "m.onnx"
    to_onnx(net, w, good)
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.safetensors"
    text.write_text("not a model")
    cases = [
        (["commit", str(truncated), "--name", "x"], "t.onnx"),
        (["commit", str(text), "--name", "x", "--parent", "keep"], "notes.safetensors"),
        (["commit", str(tmp_path / "nope.onnx"), "--name", "x"], "no such file"),
        (["checkout", "deadbeefdeadbeef", "-o", str(tmp_path / "o.safetensors")], "no version"),
        (["diff", "keep", "missing-version"], "no version 'missing-version'"),
        (["commit", str(good), "--name", "bad\nname"], "invalid version name"),
    ]
    for args, message in cases:
        out = dlv("--repo", str(repo.root), *args, ok=False)
        assert out.exit_code == 1, (args, out.output)
        assert out.output.startswith("error: ")
        assert message in out.output, (args, out.output)
        assert out.output.count("\n") == 1, out.output
    assert state(repo) == before
    with pytest.raises(InvalidInput, match="belongs to no layer"):
        repo.commit("x", net, {**w, "stray.weight": np.zeros(3, np.float32)})
    with pytest.raises(NotFound, match="no version"):
        repo.resolve("zzzz")
    assert state(repo) == before


KILLER = textwrap.dedent(
    """
    import sys, numpy as np
    from provdb.repository import Repository
    from provdb.models import zoo
    from provdb.models.builder import build_module, module_tensors
    net = zoo.digits_cnn(channels=(64, 128))
    w = module_tensors(build_module(net))
    rng = np.random.default_rng(0)
    with Repository.open(sys.argv[1]) as repo:
        i = 0
        while True:
            w = {k: v + rng.normal(0, 1e-3, v.shape).astype(v.dtype) for k, v in w.items()}
            repo.commit(f"v{i}", net, w)
            print(i, flush=True)
            i += 1
    """
)


def test_a_killed_commit_leaves_a_consistent_repository(repo: Repository, tmp_path) -> None:
    repo.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(repo.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    committed = 0
    deadline = time.monotonic() + 120
    while committed < 3 and time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        committed += bool(line.strip())
    time.sleep(0.05 * (committed % 5))  # land somewhere inside the next commit
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert committed >= 3, proc.stderr.read()
    with Repository.open(repo.root) as r:
        versions = r.graph.versions()
        assert len(versions) >= committed
        for v in versions:  # every version the graph shows has all its bytes
            assert r.weights(v.id).keys() == {
                "conv1.weight",
                "conv1.bias",
                "conv2.weight",
                "conv2.bias",
                "fc1.weight",
                "fc1.bias",
            }
        assert r.archive.verify().ok
        r.gc()
        assert sorted(r.archive.list_snapshots()) == sorted(r.graph.live_snapshot_ids())


def test_archive_replan_and_gc_keep_every_version_bit_exact(dlv, repo: Repository, model) -> None:
    net, w = model
    rng = np.random.default_rng(1)
    ids, series = [], []
    for i in range(5):  # a checkpoint-like series: each a small dense update of the last
        w = {k: v + rng.normal(0, 1e-3, v.shape).astype(v.dtype) for k, v in w.items()}
        parent = ids[-1] if ids else None
        ids.append(repo.commit(f"ckpt{i}", net, w, parent=parent, op="finetune").version.id)
        series.append(w)
    copy_id = dlv("--repo", str(repo.root), "copy", ids[-1], "--name", "ckpt-copy").output.strip()
    for alpha, algorithm in [("1", "spt"), ("1.5", "pas-mt"), ("4", "pas-pt"), ("2", "mst")]:
        out = json.loads(
            dlv(
                "--repo",
                str(repo.root),
                "archive",
                "--budget",
                alpha,
                "--algorithm",
                algorithm,
                "--json",
            ).output
        )
        assert out["algorithm"] == algorithm
        assert isinstance(out["budget_violations"], list)
        for vid, expected in [*zip(ids, series), (copy_id, series[-1])]:
            got = repo.weights(vid)
            assert all(got[k].tobytes() == expected[k].tobytes() for k in expected), algorithm
    assert "snapshots" in dlv("--repo", str(repo.root), "gc").output
    assert repo.archive.verify().ok
    out = dlv("--repo", str(repo.root), "archive", "--budget", "0.5", ok=False)
    assert out.exit_code == 2
    assert "0.5" in out.output
