"""Append-only series blocks (``p/<series>/<seq>``): read back in seq order, copied whole,
kept apart from series whose id extends theirs, and never collected by ``gc``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from storage import Archive, MemoryStore


@pytest.fixture(params=["memory", "lmdb"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Archive:
    if request.param == "memory":
        return Archive(MemoryStore())
    return Archive.open(tmp_path / "archive")


def test_blocks_come_back_in_seq_order(archive: Archive) -> None:
    # written out of order and over several transactions; 12 blocks cross 9 → 10 and 11 → 12
    archive.put_series([("run/loss", seq, b"%d" % seq) for seq in (3, 11, 0, 10)])
    archive.put_series([("run/loss", seq, b"%d" % seq) for seq in (1, 2, 4, 5, 6, 7, 8, 9)])
    archive.put_series([("run/loss/x", 0, b"other"), ("run/los", 0, b"short")])
    got = archive.series(["run/loss", "run/loss/x", "missing"])
    assert got["run/loss"] == [b"%d" % seq for seq in range(12)]
    assert got["run/loss/x"] == [b"other"]
    assert got["missing"] == []


def test_copy_and_rewrite(archive: Archive) -> None:
    archive.put_series([("run/acc", seq, bytes([seq])) for seq in range(3)])
    assert archive.copy_series("run/acc", "version/acc") == 3
    archive.put_series([("run/acc", 1, b"again")])  # a block written again is replaced
    assert archive.series(["version/acc"])["version/acc"] == [b"\x00", b"\x01", b"\x02"]
    assert archive.series(["run/acc"])["run/acc"] == [b"\x00", b"again", b"\x02"]


def test_gc_keeps_series(archive: Archive) -> None:
    archive.write_snapshot("v/1", {"w": np.ones(8, np.float32)})
    archive.put_series([("run/loss", 0, b"points")])
    archive.gc([])  # no live snapshot: everything of the weights goes
    assert archive.list_snapshots() == []
    assert archive.series(["run/loss"])["run/loss"] == [b"points"]
