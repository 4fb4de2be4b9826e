"""Reverse deltas: the newest snapshot of a series is materialised, chains stay bounded, the
re-encoding is crash safe under a real SIGKILL, and fine-tune siblings delta against the base."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from storage import Archive, MemoryStore

_N = 8


def _snap(i: int, n: int = 300_000) -> dict[str, np.ndarray]:
    """Snapshot ``i`` of a deterministic series (a big tensor, a small one, an int one)."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal(n) * 0.1).astype(np.float32)
    for step in range(i):
        w = w + (np.random.default_rng(step + 1).standard_normal(n) * 1e-3).astype(np.float32)
    return {"w": w, "b": w[:50].copy(), "step": np.array([i])}


def _write_series(ar: Archive, n: int, size: int = 20_000) -> list[dict[str, np.ndarray]]:
    snaps = [_snap(i, size) for i in range(n)]
    for i, snap in enumerate(snaps):
        ar.write_snapshot(f"s{i}", snap, bases=[f"s{i - 1}"] if i else [])
    return snaps


def _exact(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> bool:
    return sorted(got) == sorted(want) and all(
        got[k].dtype == want[k].dtype and got[k].tobytes() == want[k].tobytes() for k in want
    )


def test_newest_is_materialised_and_chains_are_bounded() -> None:
    ar = Archive(MemoryStore(), max_chain=3, cache_bytes=0)
    snaps = _write_series(ar, 9)
    depths = [ar.snapshot_stats(f"s{i}")["chain_depth"] for i in range(9)]
    assert depths[-1] == 0
    assert max(depths) == 3
    assert depths == [3, 2, 1, 0, 3, 2, 1, 0, 0]
    for i, snap in enumerate(snaps):
        assert _exact(ar.read_snapshot(f"s{i}"), snap)
    stats = ar.snapshot_stats("s0")
    assert stats["read_bytes"] > stats["stored"]
    assert ar.verify().ok
    assert ar.gc().chunks == 0  # re-encoded heads dropped their old chunks at once


def test_family_siblings_delta_against_the_base() -> None:
    ar = Archive(MemoryStore(), cache_bytes=0, pack_below=0)  # per-tensor records
    base = _snap(0, 20_000)
    ar.write_snapshot("base", base)
    tunes = []
    for m in range(3):
        tune = {k: v.copy() for k, v in base.items()}
        tune["w"] = tune["w"] + np.float32(1e-3 * (m + 1))
        tunes.append(tune)
        ar.write_snapshot(f"ft{m}", tune, bases=["base"])
    stats = ar.stats().per_tensor
    base_w = ar.manifest("base")["tensors"]["w"]
    assert stats[base_w]["base"] is None
    for m, tune in enumerate(tunes):
        digest = ar.manifest(f"ft{m}")["tensors"]["w"]
        assert stats[digest]["base"] == base_w
        assert ar.snapshot_stats(f"ft{m}")["chain_depth"] == 1
        assert _exact(ar.read_snapshot(f"ft{m}"), tune)
    assert _exact(ar.read_snapshot("base"), base)
    assert ar.gc().chunks == 0


def test_replan_after_reverse_deltas_stays_exact() -> None:
    ar = Archive(MemoryStore())
    snaps = _write_series(ar, 5)
    ar.replan("pas-mt", alpha=1.5)
    ar._cache.clear()
    for i, snap in enumerate(snaps):
        assert _exact(ar.read_snapshot(f"s{i}"), snap)
    assert ar.verify().ok


_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[3])
from test_reverse import _snap
from storage import Archive
path, start = sys.argv[1], int(sys.argv[2])
with Archive.open(path, max_chain=3) as ar:
    print("ready", flush=True)
    for i in range(start, int(sys.argv[4])):
        ar.write_snapshot(f"s{i}", _snap(i), bases=[f"s{i - 1}"] if i else [])
        print("committed", i, flush=True)
"""


def test_reverse_reencoding_survives_sigkill(tmp_path: Path) -> None:
    """A child writes a series (each write re-encodes its predecessor); it is SIGKILLed at
    random points during writes. After every kill each committed snapshot reads bit-exact,
    the archive verifies, and the next child carries on from there."""
    path = tmp_path / "a"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    here = str(Path(__file__).parent)
    rng = random.Random(0)
    expected = {i: _snap(i) for i in range(_N)}
    kills = 0
    for round_ in range(30):
        with Archive.open(path) as ar:
            done = len(ar.list_snapshots())
            for i in range(done):
                assert _exact(ar.read_snapshot(f"s{i}"), expected[i]), i
            assert ar.verify().ok
        if done == _N:
            break
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(done), here, str(_N)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": then kill somewhere during the writes
        time.sleep(rng.uniform(0.0, 0.06))
        if round_ < 29:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += proc.returncode == -signal.SIGKILL
    assert kills >= 3
    print(f"{kills} kills")
    with Archive.open(path) as ar:
        assert ar.list_snapshots() == sorted(f"s{i}" for i in range(_N))
        for i in range(_N):
            assert _exact(ar.read_snapshot(f"s{i}"), expected[i])
        assert max(ar.snapshot_stats(f"s{i}")["chain_depth"] for i in range(_N)) <= 3
        assert ar.gc().chunks == 0


def test_a_derived_model_is_a_forward_delta_and_leaves_its_base_untouched() -> None:
    """``series=False`` (a fine-tune of a published base): the base's chunks do not change, so
    a hub that already holds the base needs only the fine-tune's own chunks."""
    ar = Archive(MemoryStore())
    base, tuned = _snap(0, 20_000), _snap(1, 20_000)
    ar.write_snapshot("base", base)
    before = set(ar.snapshot_chunks("base"))
    ar.write_snapshot("ft", tuned, bases=["base"], series=False)
    assert set(ar.snapshot_chunks("base")) == before
    assert ar.snapshot_stats("ft")["chain_depth"] == 1  # a delta against the base
    assert ar.snapshot_stats("base")["chain_depth"] == 0
    assert _exact(ar.read_snapshot("base"), base)
    assert _exact(ar.read_snapshot("ft"), tuned)
