"""Chunk-by-digest API and snapshot export/import: what the hub moves between archives."""

from __future__ import annotations

import numpy as np
import pytest

from storage import Archive, ConflictError, CorruptionError, MemoryStore, NotFoundError
from storage.records import TensorRecord, loads, seal


def _series(ar: Archive, n: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((128, 96)) * 0.1).astype(np.float32)
    snaps = []
    for i in range(n):
        w = w + (rng.standard_normal(w.shape) * 1e-3).astype(np.float32)
        snap = {"w": w.copy(), "b": np.arange(5, dtype=np.int64) + i, "frozen": np.ones(7)}
        ar.write_snapshot(f"s{i}", snap, bases=[f"s{i - 1}"] if i else [])
        snaps.append(snap)
    return snaps


def _transfer(src: Archive, dst: Archive, sid: str) -> int:
    """What a hub does: send the chunks the other side lacks, then the records."""
    missing = dst.missing_chunks(src.snapshot_chunks(sid))
    for digest in missing:
        assert dst.put_chunk(digest, src.get_chunk(digest))
    dst.import_snapshot(src.export_snapshot(sid))
    return len(missing)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a
    )


def test_snapshot_moves_between_archives_bit_exact() -> None:
    src, dst = Archive(MemoryStore()), Archive(MemoryStore())
    snaps = _series(src)
    sent = [_transfer(src, dst, f"s{i}") for i in range(len(snaps))]
    assert sent[0] > 0
    for i, snap in enumerate(snaps):
        assert _same(dst.read_snapshot(f"s{i}"), snap)
    assert dst.verify().ok
    assert dst.missing_chunks(src.snapshot_chunks("s3")) == []
    assert _transfer(src, dst, "s3") == 0  # idempotent


def test_snapshot_chunks_cover_delta_chains() -> None:
    ar = Archive(MemoryStore())
    _series(ar)
    needed = set(ar.snapshot_chunks("s0"))
    for i in range(4):
        manifest = ar.manifest(f"s{i}")
        assert set(ar.snapshot_chunks(f"s{i}")) >= {
            d for d in needed if d in ar.snapshot_chunks(f"s{i}")
        }
        assert manifest["tensors"]
    every = {d for i in range(4) for d in ar.snapshot_chunks(f"s{i}")}
    assert ar.missing_chunks(every) == []
    assert ar.missing_chunks(["0" * 40, *every]) == ["0" * 40]


def test_put_chunk_verifies_digest() -> None:
    src, dst = Archive(MemoryStore()), Archive(MemoryStore())
    _series(src, n=1)
    digest = src.snapshot_chunks("s0")[0]
    data = bytearray(src.get_chunk(digest))
    data[-1] ^= 0x01
    with pytest.raises(CorruptionError, match=digest[:12]):
        dst.put_chunk(digest, bytes(data))
    other = src.snapshot_chunks("s0")[1]
    with pytest.raises(CorruptionError, match="does not match its digest"):
        dst.put_chunk(digest, src.get_chunk(other))
    assert dst.missing_chunks([digest]) == [digest]
    with pytest.raises(NotFoundError):
        dst.get_chunk(digest)


def test_put_chunks_stores_a_batch_or_nothing() -> None:
    src, dst = Archive(MemoryStore()), Archive(MemoryStore())
    _series(src, n=1)
    digests = src.snapshot_chunks("s0")
    good = [(d, src.get_chunk(d)) for d in digests]
    bad = [*good[:-1], (digests[-1], good[0][1])]  # the last one lies about its digest
    with pytest.raises(CorruptionError, match="does not match its digest"):
        dst.put_chunks(bad)
    assert dst.missing_chunks(digests) == digests  # none of the batch was stored
    assert dst.put_chunks(good) == [True] * len(good)
    assert dst.put_chunks(good[:2]) == [False, False]
    dst.import_snapshot(src.export_snapshot("s0"))
    assert _same(dst.read_snapshot("s0"), src.read_snapshot("s0"))


def test_import_needs_chunks_and_verifies() -> None:
    src, dst = Archive(MemoryStore()), Archive(MemoryStore())
    snaps = _series(src, n=2)
    bundle = src.export_snapshot("s1")
    with pytest.raises(NotFoundError, match="chunks are missing"):
        dst.import_snapshot(bundle)
    assert not dst.has_snapshot("s1")
    assert dst.store.list_prefix("t/") == []
    _transfer(src, dst, "s1")
    assert _same(dst.read_snapshot("s1"), snaps[1])
    other = Archive(MemoryStore())
    other.write_snapshot("s1", {"w": np.zeros(3)})
    for digest in src.snapshot_chunks("s1"):
        other.put_chunk(digest, src.get_chunk(digest))
    with pytest.raises(ConflictError):
        other.import_snapshot(bundle)


def _lying_bundle(src: Archive, sid: str, how: str) -> bytes:
    data = loads(src.export_snapshot(sid), "bundle")
    digest = data["manifest"]["tensors"]["w"]
    record = data["records"][digest]
    if how == "crc":
        record["crc"] ^= 1
    else:  # the same content under another digest: every CRC holds, the digest does not
        fake = "f" * 64
        data["records"][fake] = {**record, "digest": fake}
        data["manifest"]["tensors"]["w"] = fake
    return seal(data)


@pytest.mark.parametrize("how", ["crc", "digest"])
def test_import_rejects_a_record_that_lies(how: str) -> None:
    src, dst = Archive(MemoryStore()), Archive(MemoryStore())
    _series(src, n=1)
    for digest in src.snapshot_chunks("s0"):
        dst.put_chunk(digest, src.get_chunk(digest))
    with pytest.raises(CorruptionError, match="does not match its digest"):
        dst.import_snapshot(_lying_bundle(src, "s0", how))
    assert not dst.has_snapshot("s0")
    assert dst.store.list_prefix("t/") == []
    damaged = bytearray(src.export_snapshot("s0"))
    damaged[len(damaged) // 2] ^= 0x01
    with pytest.raises(CorruptionError, match="checksum"):
        dst.import_snapshot(bytes(damaged))


def test_typed_record_roundtrip() -> None:
    ar = Archive(MemoryStore())
    _series(ar, n=2)
    digest = ar.manifest("s1")["tensors"]["w"]
    raw = ar.store.get("t/" + digest)
    assert raw is not None
    from storage.records import load_tensor

    record = load_tensor(digest, raw)
    assert isinstance(record, TensorRecord)
    assert load_tensor(digest, record.dump()) == record
    assert record.shape == (128, 96)
