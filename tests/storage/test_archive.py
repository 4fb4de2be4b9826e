"""Archive on a real LMDB environment: round trips, deltas, partial reads, corruption, gc."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from storage import (
    Archive,
    BFloat16Scheme,
    ConflictError,
    CorruptionError,
    FixedPointScheme,
    Float16Scheme,
    InvalidInputError,
    MemoryStore,
    NotFoundError,
    QuantizeScheme,
    StorageError,
)
from storage.records import load_tensor

DTYPES = [
    np.float32,
    np.float16,
    np.float64,
    ml_dtypes.bfloat16,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.bool_,
]


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive.open(tmp_path / "archive", map_size=1 << 22) as ar:
        yield ar


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _arrays(dtype: type) -> st.SearchStrategy[np.ndarray]:
    dt = np.dtype(dtype)
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
    size = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[dt.itemsize]
    if dt == np.bool_:
        return hnp.arrays(np.bool_, shapes)
    # arbitrary bit patterns: NaN payloads, ±inf, -0.0, denormals all appear
    return hnp.arrays(size, shapes).map(lambda a: a.view(dt))


SPECIAL = np.array(
    [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45, 3.4e38, 1.0], np.float32
)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_roundtrip_every_dtype_with_base(dtype: type) -> None:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, 4096 * np.dtype(dtype).itemsize, dtype=np.uint8)
    a = raw.view(dtype) if dtype is not np.bool_ else raw.astype(bool)
    b = a.copy()
    b.view(np.uint8)[::7] ^= 1 if dtype is not np.bool_ else 0
    for op in ("xor", "sub"):
        ar = Archive(MemoryStore(), delta_op=op, cache_bytes=0)
        ar.write_snapshot("a", {"t": a})
        info = ar.write_snapshot("b", {"t": b}, bases=["a"])
        assert _bits_equal(ar.read_tensor("a", "t"), a)
        assert _bits_equal(ar.read_tensor("b", "t"), b)
        assert info.tensors["t"].raw_bytes == a.nbytes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dtype=st.sampled_from(DTYPES), op=st.sampled_from(["xor", "sub"]))
def test_property_bit_exact_roundtrip(data: st.DataObject, dtype: type, op: str) -> None:
    first = data.draw(_arrays(dtype))
    second = (
        data.draw(hnp.arrays(first.dtype, first.shape))
        if dtype is np.bool_
        else data.draw(_arrays(dtype).filter(lambda x: x.shape == first.shape) | st.just(first))
    )
    ar = Archive(MemoryStore(), delta_op=op, cache_bytes=0)
    ar.write_snapshot("s0", {"x": first, "special": SPECIAL})
    ar.write_snapshot("s1", {"x": second, "special": SPECIAL[::-1].copy()}, bases=["s0"])
    out0, out1 = ar.read_snapshot("s0"), ar.read_snapshot("s1")
    assert _bits_equal(out0["x"], first)
    assert _bits_equal(out1["x"], second)
    assert _bits_equal(out1["special"], SPECIAL[::-1])
    assert ar.verify().ok


def test_lmdb_roundtrip_and_reopen(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((300, 200)).astype(np.float32)
    with Archive.open(tmp_path / "a") as ar:
        ar.write_snapshot("s", {"w": x, "scalar": np.float64(-0.0), "empty": np.zeros((0, 4))})
    with Archive.open(tmp_path / "a", readonly=True) as ar:
        out = ar.read_snapshot("s")
        assert _bits_equal(out["w"], x)
        assert out["scalar"].shape == ()
        assert np.signbit(out["scalar"])
        assert out["empty"].shape == (0, 4)
        assert ar.list_snapshots() == ["s"]


def test_unchanged_tensors_cost_nothing(archive: Archive) -> None:
    frozen = np.random.default_rng(2).standard_normal(50_000).astype(np.float32)
    first = archive.write_snapshot("a", {"frozen": frozen, "head": np.ones(10, np.float32)})
    second = archive.write_snapshot(
        "b", {"frozen": frozen.copy(), "head": np.zeros(10, np.float32)}
    )
    assert first.tensors["frozen"].new_bytes > 0
    assert second.tensors["frozen"].new_bytes == 0
    assert second.tensors["frozen"].digest == first.tensors["frozen"].digest


def test_delta_chain_is_smaller_and_exact(archive: Archive) -> None:
    rng = np.random.default_rng(3)
    w = [(rng.standard_normal(200_000) * 0.05).astype(np.float32)]
    for _ in range(4):
        w.append(w[-1] + (rng.standard_normal(200_000) * 1e-5).astype(np.float32))
    infos = [archive.write_snapshot("c0", {"w": w[0]})]
    for i in range(1, 5):
        infos.append(archive.write_snapshot(f"c{i}", {"w": w[i]}, bases=[f"c{i - 1}"]))
    # reverse deltas: the newest is materialised, each predecessor a delta against it
    digests = [i.tensors["w"].digest for i in infos]
    assert infos[4].tensors["w"].base is None
    per_tensor = archive.stats().per_tensor
    for i in range(4):
        assert per_tensor[digests[i]]["base"] == digests[i + 1]
        assert per_tensor[digests[i]]["stored"] < per_tensor[digests[4]]["stored"]
    assert archive.snapshot_stats("c0")["chain_depth"] == 4
    assert archive.snapshot_stats("c4")["chain_depth"] == 0
    archive._cache.clear()
    for i in range(5):
        assert _bits_equal(archive.read_tensor(f"c{i}", "w"), w[i])


def _series(archive: Archive, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    w = [(rng.standard_normal((64, 64)) * 0.1).astype(np.float32)]
    for _ in range(n - 1):
        w.append(w[-1] + (rng.standard_normal((64, 64)) * 1e-3).astype(np.float32))
    for i, x in enumerate(w):
        archive.write_snapshot(f"s{i}", {"w": x, "n": -x}, bases=[f"s{i - 1}"] if i else [])
    return w


@pytest.mark.parametrize("k", [1, 2, 3])
def test_high_plane_read_through_xor_chain(archive: Archive, k: int) -> None:
    w = _series(archive)
    archive._cache.clear()
    approx = archive.read_tensor("s3", "w", planes=k)
    mask = np.uint32((0xFFFFFFFF << (8 * (4 - k))) & 0xFFFFFFFF)
    assert np.array_equal(approx.view(np.uint32), w[3].view(np.uint32) & mask)


@pytest.mark.parametrize("op", ["xor", "sub"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_interval_contains_true_values(k: int, op: str) -> None:
    ar = Archive(MemoryStore(), delta_op=op)
    w = _series(ar)
    for name, truth in (("w", w[3]), ("n", -w[3])):
        lo, hi = ar.read_interval("s3", name, planes=k)
        assert (lo <= truth).all()
        assert (truth <= hi).all()
        if k == 4:
            assert _bits_equal(lo, truth)


def test_interval_special_values(archive: Archive) -> None:
    archive.write_snapshot("s", {"x": SPECIAL})
    lo, hi = archive.read_interval("s", "x", planes=1)
    finite = ~np.isnan(SPECIAL)
    assert (lo[finite] <= SPECIAL[finite]).all()
    assert (SPECIAL[finite] <= hi[finite]).all()
    assert not np.isnan(lo[~finite]).any()  # one byte cannot prove NaN (0x7F.. may be finite)
    lo2, hi2 = archive.read_interval("s", "x", planes=2)
    assert np.isnan(lo2[~finite]).all()  # exponent all ones and a mantissa bit known: NaN
    assert np.isnan(hi2[~finite]).all()


def test_interval_of_ints_is_exact(archive: Archive) -> None:
    x = np.arange(-5, 5, dtype=np.int16)
    archive.write_snapshot("s", {"x": x})
    lo, hi = archive.read_interval("s", "x", planes=1)
    assert np.array_equal(lo, x)
    assert np.array_equal(hi, x)


def _corrupt_one_chunk(archive: Archive, plane: int) -> str:
    store = archive.store
    digest = archive.manifest("s")["tensors"]["w"]
    record = load_tensor(digest, store.get("t/" + digest) or b"")
    if record.slot is not None:  # a small tensor: its chunks are its pack's
        record = load_tensor(record.slot.pack, store.get("t/" + record.slot.pack) or b"")
    key = "c/" + record.planes[plane][0]
    value = bytearray(store.get(key) or b"")
    value[len(value) // 2] ^= 0x40
    store.set(key, bytes(value))
    return key


def test_corrupt_chunk_is_detected(archive: Archive) -> None:
    x = np.random.default_rng(5).standard_normal(10_000).astype(np.float32)
    archive.write_snapshot("s", {"w": x})
    key = _corrupt_one_chunk(archive, plane=0)
    archive._cache.clear()
    with pytest.raises(
        CorruptionError,
        match=rf"{key}.*tensor 'w' of snapshot 's', plane 0.*(CRC mismatch|corrupt)",
    ):
        archive.read_tensor("s", "w")
    report = archive.verify()
    assert not report.ok
    assert any(key in e for e in report.errors)


def test_corrupt_record_digest_detected(archive: Archive) -> None:
    x = np.arange(1000, dtype=np.float32)
    archive.write_snapshot("s", {"w": x})
    digest = archive.manifest("s")["tensors"]["w"]
    record = load_tensor(digest, archive.store.get("t/" + digest) or b"")
    archive.store.set("t/" + digest, replace(record, crc=record.crc ^ 1).dump())
    archive._cache.clear()
    with pytest.raises(
        CorruptionError, match="tensor 'w' of snapshot 's' does not match its digest"
    ):
        archive.read_tensor("s", "w")


def test_lossy_schemes_recorded(archive: Archive) -> None:
    x = np.random.default_rng(6).standard_normal(5000).astype(np.float32)
    schemes = {
        "f16": Float16Scheme(),
        "bf16": BFloat16Scheme(),
        "fix": FixedPointScheme(bits=16),
        "q": QuantizeScheme(bits=4),
    }
    info = archive.write_snapshot("s", dict.fromkeys(schemes, x), scheme=schemes)
    out = archive.read_snapshot("s")
    assert _bits_equal(out["f16"], x.astype(np.float16).astype(np.float32))
    assert _bits_equal(out["bf16"], x.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert np.abs(out["fix"] - x).max() < 1e-3
    assert len(np.unique(out["q"])) <= 16
    assert info.tensors["q"].scheme is not None
    assert info.tensors["q"].scheme["name"] == "quantize"
    assert info.tensors["fix"].stored_bytes < x.nbytes


def test_stats(archive: Archive) -> None:
    _series(archive)
    stats = archive.stats()
    assert stats.n_snapshots == 4
    assert stats.raw_bytes == 4 * 2 * 64 * 64 * 4
    assert 0 < stats.stored_bytes < stats.raw_bytes
    assert len(stats.per_plane) == 4
    assert sum(stats.per_plane) == stats.chunk_bytes
    assert stats.per_plane[0] < stats.per_plane[3]
    assert set(stats.per_snapshot) == {"s0", "s1", "s2", "s3"}
    for sid, sizes in stats.per_snapshot.items():
        assert archive.snapshot_stats(sid) == sizes
    with pytest.raises(NotFoundError, match="no snapshot 'nope'"):
        archive.snapshot_stats("nope")


def test_unique_bytes_count_each_chunk_once(archive: Archive) -> None:
    w = _series(archive)
    archive.write_snapshot("copy", {"w": w[-1], "n": -w[-1]})  # shares every record
    archive.write_snapshot("ft", {"w": w[-1], "n": -w[-1] + 1}, bases=["copy"])
    unique = archive.unique_bytes()
    assert sum(unique.values()) == archive.stats().chunk_bytes
    assert unique["copy"] == 0
    assert 0 < unique["ft"] < archive.snapshot_stats("ft")["read_bytes"]
    archive.delete_snapshot("s3")  # its records stay: copy and ft name or need them
    archive.gc()
    unique = archive.unique_bytes()
    assert sum(unique.values()) == archive.stats().chunk_bytes
    assert unique["copy"] > 0


def test_compact_shrinks_the_file_and_keeps_every_snapshot(archive: Archive) -> None:
    w = _series(archive)
    rng = np.random.default_rng(9)
    archive.write_snapshot("big", {"x": rng.standard_normal(1 << 18).astype(np.float32)})
    archive.delete_snapshot("big")
    archive.gc()
    before, after = archive.compact()
    assert 0 < after < before
    assert not (archive.store.path / "compact.tmp").exists()  # type: ignore[attr-defined]
    assert archive.verify().ok
    for i, x in enumerate(w):
        assert _bits_equal(archive.read_tensor(f"s{i}", "w"), x)
    archive.write_snapshot("after", {"w": w[0]})  # still writable
    assert _bits_equal(archive.read_tensor("after", "w"), w[0])


def test_compact_interrupted_before_the_swap_keeps_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage._lmdb as lmdb_store

    path = tmp_path / "archive"
    with Archive.open(path, map_size=1 << 22) as ar:
        w = _series(ar)

        def crash(*args: object) -> None:
            raise OSError("killed before the rename")

        monkeypatch.setattr(lmdb_store.os, "replace", crash)
        with pytest.raises(OSError, match="killed"):
            ar.compact()
    monkeypatch.undo()
    assert (path / "compact.tmp" / "data.mdb").exists()  # the complete copy, never swapped in
    with Archive.open(path, map_size=1 << 22) as ar:
        assert _bits_equal(ar.read_tensor("s3", "w"), w[3])
        ar.compact()  # the leftover copy is discarded and the compaction redone
        assert not (path / "compact.tmp").exists()
        assert ar.verify().ok


def test_gc_and_delete(archive: Archive) -> None:
    _series(archive)
    before = archive.stats().chunk_bytes
    assert archive.gc().chunks == 0
    archive.delete_snapshot("s0")  # the oldest: a delta against s1 that nothing needs
    result = archive.gc()
    assert result.tensors == 3  # its two (small, packed) tensors and their pack
    assert result.chunks > 0
    assert archive.stats().chunk_bytes < before
    removed = archive.gc(live_snapshot_ids=["s2"])
    assert removed.snapshots == 2
    assert archive.list_snapshots() == ["s2"]
    assert archive.read_snapshot("s2")["w"].shape == (64, 64)  # its base (s3's) was kept
    assert archive.verify().ok


@pytest.mark.parametrize("algorithm", ["mst", "spt", "last", "pas-mt", "pas-pt"])
def test_replan_rewrites_and_stays_exact(archive: Archive, algorithm: str) -> None:
    w = _series(archive, n=5)
    result = archive.replan(algorithm, alpha=1.5)
    if algorithm in ("pas-mt", "pas-pt", "spt"):
        assert result.result.feasible
    archive._cache.clear()
    for i, x in enumerate(w):
        assert _bits_equal(archive.read_tensor(f"s{i}", "w"), x)
    assert archive.verify().ok
    assert archive.replan(algorithm, alpha=1.5).rewritten == 0  # stable


def test_errors(archive: Archive) -> None:
    with pytest.raises(NotFoundError, match="no snapshot 'nope'"):
        archive.read_snapshot("nope")
    archive.write_snapshot("s", {"w": np.zeros(3)})
    with pytest.raises(NotFoundError, match="has no tensor 'v'"):
        archive.read_tensor("s", "v")
    with pytest.raises(NotFoundError, match="no snapshot 'missing'"):
        archive.write_snapshot("t", {"w": np.ones(3)}, bases=["missing"])
    with pytest.raises(ConflictError, match="exists with other tensors"):
        archive.write_snapshot("s", {"w": np.ones(3)})
    archive.write_snapshot("s", {"w": np.zeros(3)})  # idempotent
    with pytest.raises(InvalidInputError, match="numpy array"):
        archive.write_snapshot("u", {"w": [1, 2, 3]})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="unsupported dtype"):
        archive.write_snapshot("u", {"w": np.array(["a"])})
    with pytest.raises(InvalidInputError, match="snapshot id"):
        archive.write_snapshot("", {"w": np.zeros(1)})
    with pytest.raises(InvalidInputError, match="planes must be a positive int"):
        archive.read_tensor("s", "w", planes=0)
    with pytest.raises(StorageError) as info:
        archive.delete_snapshot("nope")
    assert info.value.code == "not_found"
    assert not archive.has_snapshot("u")


def test_failed_write_leaves_nothing(archive: Archive) -> None:
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        archive.write_snapshot(
            "bad",
            {"ok": np.ones(10, np.float32), "nan": np.array([np.nan], np.float32)},
            scheme=FixedPointScheme(),
        )
    assert archive.list_snapshots() == []
    assert archive.store.list_prefix("c/") == []


def _chain_series(n: int = 5) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    w = rng.standard_normal((300, 700)).astype(np.float32)  # above the exact-encode threshold
    out = []
    for _ in range(n):
        w = w + rng.standard_normal(w.shape).astype(np.float32) * 1e-3
        out.append({"w": w.copy(), "b": w[0, :17].astype(ml_dtypes.bfloat16), "i": np.arange(9)})
    return out


@pytest.mark.parametrize(("threads", "blosc"), [(1, False), (1, True), (2, True)])
def test_threads_chain_reads_bit_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int, blosc: bool
) -> None:
    from storage import codecs

    if blosc:  # the blosc2 unshuffle merge (normally used once blosc2 is imported)
        pytest.importorskip("blosc2")
        monkeypatch.setattr(codecs, "_BLOSC_AFTER", -1)
    else:
        monkeypatch.setattr(codecs, "_BLOSC_HEADERS", dict.fromkeys((2, 4, 8)))
    series = _chain_series()
    with Archive.open(tmp_path / "a", threads=threads) as ar:
        for i, snap in enumerate(series):
            ar.write_snapshot(f"s{i}", snap, bases=[f"s{i - 1}"] if i else [])
        assert ar.manifest("s4")
        assert ar.stats().per_tensor
        ar._cache.clear()
        for i, snap in enumerate(series):
            out = ar.read_snapshot(f"s{i}")
            for name, value in snap.items():
                assert _bits_equal(out[name], value)
            for k in (1, 2, 3):
                part = ar.read_tensor(f"s{i}", "w", planes=k)
                keep = np.uint32((0xFFFFFFFF << (8 * (4 - k))) & 0xFFFFFFFF)
                assert np.array_equal(part.view(np.uint32), snap["w"].view(np.uint32) & keep)
            lo, hi = ar.read_interval(f"s{i}", "w", planes=2)
            assert (lo <= snap["w"]).all()
            assert (snap["w"] <= hi).all()
        assert ar.verify().ok


def test_cache_does_not_alias_caller_arrays(archive: Archive) -> None:
    w = np.random.default_rng(2).standard_normal(5000).astype(np.float32)
    first = w.copy()
    archive.write_snapshot("a", {"w": w})
    w += 1.0  # the caller reuses its buffer (e.g. a live parameter view)
    archive.write_snapshot("b", {"w": w}, bases=["a"])
    assert _bits_equal(archive.read_tensor("a", "w"), first)
    assert _bits_equal(archive.read_tensor("b", "w"), w)
    got = archive.read_tensor("b", "w")  # served from the cache: must be a private copy
    got[:] = 0
    assert _bits_equal(archive.read_tensor("b", "w"), w)
    archive._cache.clear()
    assert _bits_equal(archive.read_tensor("b", "w"), w)


def test_bad_threads_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="threads"):
        Archive(MemoryStore(), threads=0)


def test_one_plane_xor_chain_leaves_the_cached_base_alone() -> None:
    """A one-plane (non-float) tensor decoded through an XOR chain whose base is cached is
    XOR-ed into a copy, never into the cache (regression: replan re-encoded a bool tensor from
    the damaged cache and stored wrong bytes)."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((30, 20)) * 0.1).astype(np.float32)
    snaps = []
    for _ in range(5):
        w = w + (rng.standard_normal(w.shape) * 1e-3).astype(np.float32)
        snaps.append({"w": w.copy(), "mask": w > 0})
    ar = Archive(MemoryStore(), pack_below=0)
    for i, snap in enumerate(snaps):
        ar.write_snapshot(f"s{i}", snap, bases=[f"s{i - 1}"] if i else [])
    ar.replan("pas-mt", alpha=1.5)
    for i, snap in enumerate(snaps):
        assert ar.read_tensor(f"s{i}", "mask").tobytes() == snap["mask"].tobytes()
