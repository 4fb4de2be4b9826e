"""Packs (archive format 3): a snapshot's small lossless tensors share one record and one chunk
per byte plane, delta-encoded like any tensor; reads stay bit-exact, plane reads and intervals
equal those of per-tensor storage, damage is caught, and packs travel through the hub API."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from storage import Archive, CorruptionError, Float16Scheme, MemoryStore
from storage.records import TensorRecord, load_tensor, loads, seal


def _snap(i: int) -> dict[str, np.ndarray]:
    """Checkpoint ``i``: one big tensor and small ones of several dtypes and shapes."""
    rng = np.random.default_rng(0)
    big = (rng.standard_normal(70_000) * 0.1).astype(np.float32)  # 280 kB: not packed
    w = (rng.standard_normal((30, 20)) * 0.1).astype(np.float32)
    for step in range(i):
        r = np.random.default_rng(step + 1)
        big = big + (r.standard_normal(big.shape) * 1e-3).astype(np.float32)
        w = w + (r.standard_normal(w.shape) * 1e-3).astype(np.float32)
    return {
        "big": big,
        "w": w,
        "b": w[0].copy(),
        "half": w.astype(ml_dtypes.bfloat16),
        "f64": w[:3].astype(np.float64),
        "step": np.array(i, dtype=np.int64),  # 0-d
        "mask": w > 0,
        "empty": np.zeros((0, 4), np.float32),
        "z": (w[:2] + 1j * w[2:4]).astype(np.complex64),
        "frozen": np.arange(12, dtype=np.float32),  # equal in every snapshot
    }


def _series(ar: Archive, n: int) -> list[dict[str, np.ndarray]]:
    snaps = [_snap(i) for i in range(n)]
    for i, snap in enumerate(snaps):
        ar.write_snapshot(f"s{i}", snap, bases=[f"s{i - 1}"] if i else [])
    return snaps


def _exact(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> bool:
    return sorted(got) == sorted(want) and all(
        got[k].dtype == want[k].dtype
        and got[k].shape == want[k].shape
        and got[k].tobytes() == want[k].tobytes()
        for k in want
    )


def _records(ar: Archive) -> dict[str, TensorRecord]:
    return {k[2:]: load_tensor(k[2:], ar.store.get(k) or b"") for k in ar.store.list_prefix("t/")}


def test_small_tensors_share_one_pack_per_dtype_and_read_bit_exact() -> None:
    ar = Archive(MemoryStore(), max_chain=3)
    snaps = _series(ar, 6)
    records = _records(ar)
    man = ar.manifest("s5")
    assert records[man["tensors"]["big"]].slot is None
    for name in set(snaps[0]) - {"big"}:
        slot = records[man["tensors"][name]].slot
        assert slot is not None
        assert records[slot.pack].pack
    # one pack per stored dtype (frozen/empty/step... grouped), and only the new tensors
    assert len(man["packs"]) == len({a.dtype for n, a in snaps[5].items() if n != "big"})
    frozen = man["tensors"]["frozen"]
    assert frozen == ar.manifest("s0")["tensors"]["frozen"]  # stored once, in s0's pack
    assert all(r.delta is None for r in records.values() if r.slot is not None)
    packs = [r for r in records.values() if r.pack]
    assert any(r.delta is not None and r.delta.reverse for r in packs)  # packs delta too
    ar._cache.clear()
    for i, snap in enumerate(snaps):
        assert _exact(ar.read_snapshot(f"s{i}"), snap), i
        for name, value in snap.items():
            got = ar.read_tensor(f"s{i}", name)
            assert got.dtype == value.dtype
            assert got.tobytes() == value.tobytes()
    assert ar.verify().ok
    assert ar.gc().chunks == 0


@pytest.mark.parametrize("planes", [1, 2, 3])
def test_plane_reads_and_intervals_equal_per_tensor_storage(planes: int) -> None:
    packed, plain = Archive(MemoryStore()), Archive(MemoryStore(), pack_below=0)
    _series(packed, 4)
    _series(plain, 4)
    assert not any(r.slot for r in _records(plain).values())
    for ar in (packed, plain):
        ar._cache.clear()
    for i in range(4):
        a = packed.read_snapshot(f"s{i}", planes=planes)
        b = plain.read_snapshot(f"s{i}", planes=planes)
        assert _exact(a, b)
        for name in ("w", "half", "b"):
            lo, hi = packed.read_interval(f"s{i}", name, planes=planes)
            lo2, hi2 = plain.read_interval(f"s{i}", name, planes=planes)
            assert lo.tobytes() == lo2.tobytes()
            assert hi.tobytes() == hi2.tobytes()


def test_snapshot_info_shares_the_pack_bytes_out() -> None:
    ar = Archive(MemoryStore())
    first = ar.write_snapshot("s0", _snap(0))
    second = ar.write_snapshot("s1", _snap(1), bases=["s0"])
    assert first.tensors["w"].new_bytes > 0
    assert second.tensors["frozen"].new_bytes == 0  # deduplicated: the same tensor digest
    total = ar.stats().chunk_bytes
    added = first.new_bytes + second.new_bytes
    # the re-encoded predecessor's chunks replace its old ones: what was added covers the rest
    assert 0 < total <= added


def test_lossy_and_large_tensors_are_not_packed() -> None:
    ar = Archive(MemoryStore())
    snap = _snap(0)
    ar.write_snapshot("s", snap, scheme={"w": Float16Scheme()})
    records = _records(ar)
    man = ar.manifest("s")["tensors"]
    assert records[man["w"]].slot is None
    assert records[man["w"]].scheme is not None
    assert records[man["big"]].slot is None
    assert records[man["b"]].slot is not None
    got = ar.read_snapshot("s")
    assert np.array_equal(got["w"], snap["w"].astype(np.float16).astype(np.float32))
    assert got["b"].tobytes() == snap["b"].tobytes()


def _pack_of(ar: Archive, sid: str, name: str) -> TensorRecord:
    digest = ar.manifest(sid)["tensors"][name]
    slot = load_tensor(digest, ar.store.get("t/" + digest) or b"").slot
    assert slot is not None
    return load_tensor(slot.pack, ar.store.get("t/" + slot.pack) or b"")


def test_a_damaged_pack_chunk_is_detected() -> None:
    ar = Archive(MemoryStore())
    ar.write_snapshot("s", _snap(0))
    key = "c/" + _pack_of(ar, "s", "w").planes[1][0]
    value = bytearray(ar.store.get(key) or b"")
    value[-3] ^= 0x10
    ar.store.set(key, bytes(value))
    ar._cache.clear()
    with pytest.raises(CorruptionError, match=key):
        ar.read_tensor("s", "w")
    assert ar.read_tensor("s", "big").shape == (70_000,)  # the other tensors still read
    report = ar.verify()
    assert any(key in e for e in report.errors)


@pytest.mark.parametrize("lie", ["offset", "pack", "crc"])
def test_a_slot_that_lies_is_detected(lie: str) -> None:
    """A record sealed correctly but naming the wrong slot, pack or CRC: the packed tensor's
    own CRC (cheap: small tensors) catches it on every read."""
    ar = Archive(MemoryStore())
    ar.write_snapshot("s", _snap(0))
    digest = ar.manifest("s")["tensors"]["b"]
    data = loads(ar.store.get("t/" + digest) or b"", "record")
    if lie == "offset":
        data["slot"][1] += 1
    elif lie == "pack":
        data["slot"][0] = ar.manifest("s")["tensors"]["big"]  # not a pack
    else:
        data["crc"] ^= 1
    ar.store.set("t/" + digest, seal(data))
    ar._cache.clear()
    with pytest.raises(CorruptionError, match="'b' of snapshot 's'"):
        ar.read_tensor("s", "b")
    assert not ar.verify().ok


def test_packs_travel_through_the_hub_chunk_protocol() -> None:
    src, dst = Archive(MemoryStore()), Archive(MemoryStore())
    snaps = _series(src, 3)
    for sid in ("s0", "s2"):
        chunks = src.snapshot_chunks(sid)
        pack = _pack_of(src, sid, "w")
        assert set(pack.chunks()) <= set(chunks)
        for digest in dst.missing_chunks(chunks):
            assert dst.put_chunk(digest, src.get_chunk(digest))
        dst.import_snapshot(src.export_snapshot(sid))
    assert _exact(dst.read_snapshot("s0"), snaps[0])
    assert _exact(dst.read_snapshot("s2"), snaps[2])
    assert dst.verify().ok
    # a bundle whose packed tensor claims another digest is refused on import
    other = Archive(MemoryStore())
    for digest in src.snapshot_chunks("s1"):
        other.put_chunk(digest, src.get_chunk(digest))
    data = loads(src.export_snapshot("s1"), "bundle")
    real = data["manifest"]["tensors"]["b"]
    fake = "f" * 64
    data["records"][fake] = {**data["records"][real], "digest": fake}
    data["manifest"]["tensors"]["b"] = fake
    with pytest.raises(CorruptionError, match="does not match its digest"):
        other.import_snapshot(seal(data))
    assert not other.has_snapshot("s1")


def test_gc_drops_a_deleted_snapshots_pack_and_keeps_shared_ones() -> None:
    ar = Archive(MemoryStore())
    snaps = _series(ar, 3)
    ar.delete_snapshot("s0")  # its pack holds "frozen", which s1 and s2 still name
    ar.gc()
    ar._cache.clear()
    assert _exact(ar.read_snapshot("s1"), snaps[1])
    assert _exact(ar.read_snapshot("s2"), snaps[2])
    assert ar.verify().ok
    ar.gc(live_snapshot_ids=["s2"])
    assert _exact(ar.read_snapshot("s2"), snaps[2])
    assert ar.verify().ok


def test_packs_are_planned_like_tensors() -> None:
    ar = Archive(MemoryStore())
    snaps = _series(ar, 5)
    graph, current = ar.storage_graph()
    records = _records(ar)
    assert not any(records[d].slot for d in graph.vertices)
    assert all(records[d].pack or records[d].slot is None for d in current)
    ar.replan("pas-mt", alpha=1.5)
    ar._cache.clear()
    for i, snap in enumerate(snaps):
        assert _exact(ar.read_snapshot(f"s{i}"), snap)
    assert ar.verify().ok


def test_a_family_shares_its_base_pack() -> None:
    """A fine-tune that changes every small tensor: its pack is a forward delta of the base's
    (a pack deltas against a pack of the same layout; unchanged tensors are not repacked)."""
    ar = Archive(MemoryStore())
    base = {k: v for k, v in _snap(0).items() if k in ("big", "w", "b", "half")}
    ar.write_snapshot("base", base)
    before = set(ar.snapshot_chunks("base"))
    tune = {k: (v.astype(np.float32) + np.float32(1e-3)).astype(v.dtype) for k, v in base.items()}
    ar.write_snapshot("ft", tune, bases=["base"], series=False)
    assert set(ar.snapshot_chunks("base")) == before
    assert _pack_of(ar, "ft", "w").delta is not None  # a forward delta of the base's pack
    assert _exact(ar.read_snapshot("ft"), tune)
    assert _exact(ar.read_snapshot("base"), base)
