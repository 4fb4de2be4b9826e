"""The SDK's background checkpoint writer: order and bit-exactness, back-pressure, the error
path (re-raised, run FAILED, earlier checkpoints kept) and a real kill while it writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import numpy as np
import pytest
import torch

import provdb
from provdb.errors import Conflict
from provdb.models import zoo
from provdb.models.builder import build_module, module_tensors
from provdb.models.network import NetworkDef
from provdb.repository import Repository


@pytest.fixture(scope="module")
def model() -> tuple[NetworkDef, dict[str, np.ndarray]]:
    net = zoo.digits_cnn()
    return net, module_tensors(build_module(net))


def series(w: dict[str, np.ndarray], n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``n`` checkpoints, each a small dense update of the last."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = {k: v + rng.normal(0, 1e-3, v.shape).astype(v.dtype) for k, v in w.items()}
        out.append(w)
    return out


def run_row(repo: Repository, name: str) -> dict[str, Any]:
    rows = repo.graph.run_read(
        "MATCH (r:Run {name: $n}) RETURN r.status AS status, r.ended_at AS ended", {"n": name}
    )
    assert len(rows) == 1
    return rows[0]


def assert_snapshots(repo: Repository, name: str, expected: dict[int, dict[str, np.ndarray]]):
    """The version ``name`` has exactly these checkpoints, bit-exact, latest on the last."""
    (version,) = repo.graph.versions(name)
    snaps = repo.graph.snapshots(version.id)
    assert [s.iteration for s in snaps] == sorted(expected)
    assert [s.is_latest for s in snaps] == [s is snaps[-1] for s in snaps]
    for snap in snaps:
        got = repo.archive.read_snapshot(snap.id)
        want = expected[snap.iteration]
        assert got.keys() == want.keys()
        for k in want:
            assert got[k].dtype == want[k].dtype
            assert np.array_equal(got[k].view(np.uint8), want[k].view(np.uint8)), (snap.id, k)


def run_metric(repo: Repository, run_name: str, metric: str = "loss") -> list[float]:
    """The values of a run's metric series, as the library reads them back."""
    (row,) = repo.graph.run_read("MATCH (r:Run {name: $n}) RETURN r.id AS id", {"n": run_name})
    return repo.metrics_of(row["id"], "Run")[metric].values


def test_background_checkpoints_are_all_there_bit_exact_in_order(repo: Repository, model):
    net, w0 = model
    ckpts = series(w0, 5)
    live = {k: v.copy() for k, v in w0.items()}  # one dict updated in place, like an optimizer
    with provdb.start_run(repo, name="bg", network=net, checkpoint_queue=2) as run:
        for step, target in enumerate(ckpts, 1):
            for k, v in live.items():
                v[...] = target[k]
            sid = run.log_checkpoint(live, step)
            assert sid == f"{run.version.id}/{step}"
            run.log_metric("loss", 1.0 / step, step)
            for v in live.values():  # the next "optimizer step" must not reach the write
                v += 1.0
    assert_snapshots(repo, "bg", dict(enumerate(ckpts, 1)))
    assert run_row(repo, "bg")["status"] == "FINISHED"
    assert run_metric(repo, "bg") == [1.0 / s for s in range(1, 6)]


@pytest.mark.parametrize("backend", ["ladybug"])  # a torch-side copy: the graph adds nothing
def test_a_torch_module_is_copied_before_the_next_optimizer_step(repo: Repository):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    expected = {}
    with provdb.start_run(repo, name="mod") as run:
        for step in (1, 2, 3):
            expected[step] = module_tensors(module)
            run.log_checkpoint(module, step)
            with torch.no_grad():
                for p in module.parameters():
                    p.add_(1.0)
    (version,) = repo.graph.versions("mod")
    for snap in repo.graph.snapshots(version.id):
        got = repo.archive.read_snapshot(snap.id)
        want = expected[snap.iteration]
        assert sorted(got) == sorted(want)
        assert all(np.array_equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize("backend", ["ladybug"])  # the queue is the SDK's, not the graph's
def test_log_checkpoint_blocks_while_the_queue_is_full(repo: Repository, model, monkeypatch):
    net, w0 = model
    ckpts = series(w0, 3)
    entered, release = threading.Event(), threading.Event()
    write = repo.write_snapshot

    def slow_write(*args: Any, **kwargs: Any):
        entered.set()
        assert release.wait(60), "never released"
        return write(*args, **kwargs)

    monkeypatch.setattr(repo, "write_snapshot", slow_write)
    with provdb.start_run(repo, name="bp", network=net, checkpoint_queue=1) as run:

        def log(step: int) -> threading.Thread:
            t = threading.Thread(target=run.log_checkpoint, args=(ckpts[step - 1], step))
            t.start()
            return t

        log(1).join(10)
        assert entered.wait(10)  # the worker holds checkpoint 1, blocked on the disk
        second = log(2)
        second.join(10)
        assert not second.is_alive()  # checkpoint 2 waits in the queue (size 1)
        third = log(3)
        third.join(0.5)
        assert third.is_alive()  # queue full: the training loop is held back
        release.set()
        third.join(30)
        assert not third.is_alive()
    assert_snapshots(repo, "bp", dict(enumerate(ckpts, 1)))
    assert run_row(repo, "bp")["status"] == "FINISHED"


@pytest.mark.parametrize("where", ["log_checkpoint", "commit", "flush", "exit"])
def test_a_worker_failure_is_reraised_and_the_run_fails(
    repo: Repository, model, monkeypatch, where: str
):
    net, w0 = model
    ckpts = series(w0, 3)
    write = repo.write_snapshot
    calls = []

    def failing_write(*args: Any, **kwargs: Any):
        calls.append(args[0])
        if len(calls) == 2:
            raise Conflict("the disk said no")
        return write(*args, **kwargs)

    monkeypatch.setattr(repo, "write_snapshot", failing_write)

    def script() -> provdb.ActiveRun:
        with provdb.start_run(repo, name="err", network=net, checkpoint_queue=2) as run:
            run.log_param("lr", 0.1)
            run.log_checkpoint(ckpts[0], 1)
            run.log_metric("loss", 1.0, 1)
            run.log_checkpoint(ckpts[1], 2)  # fails in the worker
            run.log_metric("loss", 0.5, 2)
            run._drain()  # let it fail before the next call, so that call is the one to raise
            if where == "log_checkpoint":
                with pytest.raises(Conflict):
                    run.log_checkpoint(ckpts[2], 3)
            elif where == "commit":
                run.commit()
            elif where == "flush":
                run.flush()
        return run

    with pytest.raises(Conflict, match="the disk said no"):
        script()
    assert len(calls) == 2  # nothing written after the failure
    assert run_row(repo, "err")["status"] == "FAILED"
    assert run_row(repo, "err")["ended"]
    assert_snapshots(repo, "err", {1: ckpts[0]})
    assert run_metric(repo, "err") == [1.0, 0.5]  # what was logged is kept
    (run_id,) = [
        r["id"] for r in repo.graph.run_read("MATCH (r:Run {name: 'err'}) RETURN r.id AS id")
    ]
    assert repo.graph.params_of(run_id, "Run") == {"lr": 0.1}
    assert repo.archive.verify().ok


KILLER = textwrap.dedent(
    """
    import sys, itertools, numpy as np, provdb
    from provdb.models import zoo
    from provdb.models.builder import build_module, module_tensors
    net = zoo.digits_cnn(channels=(64, 128))
    rng = np.random.default_rng(0)
    w = {k: rng.standard_normal(v.shape).astype(v.dtype)
         for k, v in sorted(module_tensors(build_module(net)).items())}
    with provdb.start_run(sys.argv[1], name="killed", network=net, checkpoint_queue=2) as run:
        for step in itertools.count(1):
            for k in sorted(w):  # in place, as an optimizer would
                w[k] += rng.normal(0, 1e-3, w[k].shape).astype(w[k].dtype)
            run.log_checkpoint(w, step)
            run.log_metric("loss", 1.0 / step, step)
            print(step, flush=True)
    """
)


def killer_series(n: int) -> dict[int, dict[str, np.ndarray]]:
    """What KILLER logs at steps 1..n."""
    net = zoo.digits_cnn(channels=(64, 128))
    rng = np.random.default_rng(0)
    w = {
        k: rng.standard_normal(v.shape).astype(v.dtype)
        for k, v in sorted(module_tensors(build_module(net)).items())
    }
    out = {}
    for step in range(1, n + 1):
        for k in sorted(w):
            w[k] += rng.normal(0, 1e-3, w[k].shape).astype(w[k].dtype)
        out[step] = {k: v.copy() for k, v in w.items()}
    return out


def test_a_run_killed_while_the_worker_writes_leaves_a_consistent_repository(repo: Repository):
    repo.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(repo.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    logged = 0
    deadline = time.monotonic() + 120
    # 6 returned log_checkpoint calls with a queue of 2: checkpoint 3 was taken, 1 and 2 written
    while logged < 6 and time.monotonic() < deadline and proc.poll() is None:
        logged += bool(proc.stdout.readline().strip())
    time.sleep(0.03 * (logged % 4))  # land somewhere inside a background write
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert logged >= 6, proc.stderr.read()
    with Repository.open(repo.root) as r:
        (version,) = r.graph.versions("killed")
        snaps = r.graph.snapshots(version.id)
        assert len(snaps) >= 2
        assert [s.iteration for s in snaps] == list(range(1, len(snaps) + 1))
        expected = killer_series(len(snaps))
        assert_snapshots(r, "killed", expected)
        assert r.archive.verify().ok
        r.gc()
        assert sorted(r.archive.list_snapshots()) == sorted(r.graph.live_snapshot_ids())
        assert_snapshots(r, "killed", expected)
