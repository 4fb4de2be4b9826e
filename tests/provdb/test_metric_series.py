"""Metric series are append-only (issue 16, item 7): a series logged in many flushes reads
back whole and in order, for the run and its committed version; each point is written once;
the summary DQL filters on stays current; memory waiting for the writer is bounded."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import provdb
from provdb import metrics as metric_blocks
from provdb import tracking
from provdb.errors import CorruptData
from provdb.models.network import Layer, NetworkDef
from provdb.repository import Repository

NET = NetworkDef(
    (Layer("data", "Input", "", {"shape": [4]}), Layer("fc", "FC", "", {})), (("data", "fc"),)
)
STATE = {"fc.weight": np.ones((4, 4), np.float32), "fc.bias": np.zeros(4, np.float32)}


def run_id(repo: Repository, name: str) -> str:
    (row,) = repo.graph.run_read("MATCH (r:Run {name: $n}) RETURN r.id AS id", {"n": name})
    return str(row["id"])


def log_series(repo: Repository, name: str, n: int, queue: int) -> provdb.ActiveRun:
    """``n`` points of ``loss`` (steps 0, 2, 4, …; a NaN at 7) and ``acc`` (default steps),
    flushed every 64 points and explicitly twice, with one checkpoint so a version commits."""
    with provdb.start_run(
        repo, name=name, network=NET, flush_every=64, checkpoint_queue=queue
    ) as run:
        run.log_checkpoint(STATE, step=0)
        for i in range(n):
            run.log_metric("loss", math.nan if i == 7 else 1.0 / (i + 1), step=2 * i)
            run.log_metric("acc", i / n)
            if i in (100, 1001):
                run.flush()
    return run


@pytest.mark.parametrize("queue", [2, 0], ids=["background", "synchronous"])
def test_a_series_logged_in_many_flushes_reads_back_whole_and_in_order(
    repo: Repository, queue: int
) -> None:
    n = 3000
    run = log_series(repo, "many", n, queue)
    assert run.version is not None
    want_loss = [math.nan if i == 7 else 1.0 / (i + 1) for i in range(n)]
    for owner, label in ((run_id(repo, "many"), "Run"), (run.version.id, "ModelVersion")):
        got = repo.metrics_of(owner, label)
        assert sorted(got) == ["acc", "loss"]
        loss, acc = got["loss"], got["acc"]
        assert loss.steps == [2 * i for i in range(n)]
        np.testing.assert_array_equal(loss.values, want_loss)  # NaN where it was logged
        assert acc.steps == list(range(n))  # default steps keep counting across flushes
        assert acc.values == [i / n for i in range(n)]
        assert (loss.last, loss.min, loss.max) == (1.0 / n, 1.0 / n, 1.0)  # NaN skipped
        assert (acc.last, acc.min, acc.max) == ((n - 1) / n, 0.0, (n - 1) / n)
    # the summary columns DQL filters on are on the graph nodes themselves
    node = repo.graph.metrics_of(run.version.id)["loss"]
    assert (node.last, node.min, node.max) == (1.0 / n, 1.0 / n, 1.0)


def test_every_point_is_written_once(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[int] = []
    put = repo.archive.put_series

    def counting(blocks: Any) -> None:
        written.extend(metric_blocks.points_in(data) for _, _, data in blocks)
        put(blocks)

    monkeypatch.setattr(repo.archive, "put_series", counting)
    run = log_series(repo, "once", 2000, queue=2)
    assert run.version is not None
    # the run's series once (2 × 2000 points in blocks of at most 64 + the flushes' remainders)
    assert sum(written) == 2 * 2000
    assert max(written) <= 64
    assert len(repo.metrics_of(run.version.id)["loss"].values) == 2000


def test_dql_filters_on_the_latest_value(repo: Repository) -> None:
    run = log_series(repo, "dql", 500, queue=2)
    assert run.version is not None
    hit = repo.query('select m where m["loss"] < 0.01')
    assert [r["id"] for r in hit.rows] == [run.version.id]
    assert repo.query('select m where m["loss"].max >= 1').rows
    assert not repo.query('select m where m["acc"] > 0.999').rows
    assert repo.query("select m where m.metrics.acc > 0.99").rows


def test_describe_shows_the_whole_series(repo: Repository) -> None:
    run = log_series(repo, "desc", 700, queue=2)
    assert run.version is not None
    d = repo.describe(run.version.id)
    assert d.metrics["acc"].points == 700
    assert d.metrics["acc"].values == [i / 700 for i in range(700)]


@pytest.mark.parametrize("backend", ["ladybug"])  # the wait is the SDK's, not the graph's
def test_points_waiting_for_the_writer_are_bounded(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "UNWRITTEN_POINTS", 200)
    monkeypatch.setattr(tracking, "METRIC_WRITE_INTERVAL", 3600.0)  # only the bound writes
    most = 0
    with provdb.start_run(repo, name="bounded", flush_every=50) as run:
        for i in range(3000):
            run.log_metric("loss", float(i))
            most = max(most, run._outbox_points)
    assert 0 < most <= 200 + 50
    assert len(repo.metrics_of(run_id(repo, "bounded"), "Run")["loss"].values) == 3000


def test_blocks_round_trip_and_corruption_is_reported() -> None:
    steps, values = [0, 5, 6, 100, -3], [0.5, math.inf, -0.0, 1e300, 2.0]
    block = metric_blocks.pack(steps, values)
    assert metric_blocks.unpack(block) == (steps, values)
    assert metric_blocks.points_in(block) == 5
    with pytest.raises(CorruptData):
        metric_blocks.unpack(block[:-3])
    with pytest.raises(CorruptData):
        metric_blocks.unpack(b"XX9" + block[3:])
