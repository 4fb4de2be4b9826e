"""Codec round trips (bit-exact) and serialisation."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.codecs import (
    BFloat16Scheme,
    BytePlanes,
    DeltaCodec,
    FixedPointScheme,
    Float16Scheme,
    QuantizeScheme,
    Zstd,
    bits_view,
    codec_from_dict,
    frame_chunk,
    n_planes,
    plane_interval,
    unframe_chunk,
)
from storage.errors import CorruptionError, InvalidInputError

UINTS = st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64])


@settings(max_examples=60, deadline=None)
@given(dtype=UINTS, data=st.data(), op=st.sampled_from(["xor", "sub"]))
def test_delta_roundtrip(dtype: type, data: st.DataObject, op: str) -> None:
    n = data.draw(st.integers(0, 50))
    info = np.iinfo(dtype)
    ints = st.integers(int(info.min), int(info.max))
    target = np.array(data.draw(st.lists(ints, min_size=n, max_size=n)), dtype=dtype)
    base = np.array(data.draw(st.lists(ints, min_size=n, max_size=n)), dtype=dtype)
    codec = DeltaCodec(op)
    assert np.array_equal(codec.decode(codec.encode(target, base), base), target)


def test_sub_delta_is_small_for_close_values() -> None:
    base = np.array([100, 5, 7], np.uint32)
    delta = DeltaCodec("sub").encode(np.array([99, 5, 9], np.uint32), base)
    assert delta.tolist() == [1, 0, 4]  # zig-zag: -1 → 1, +2 → 4


@pytest.mark.parametrize("planes", [1, 2, 4, 8])
def test_byteplanes_roundtrip(planes: int) -> None:
    uint = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[planes]
    bits = np.random.default_rng(0).integers(0, 2**63, 1000, dtype=np.uint64).astype(uint)
    split = BytePlanes.split(bits, planes)
    assert len(split) == planes
    assert np.array_equal(BytePlanes.merge(split, planes, bits.size, np.dtype(uint)), bits)


def test_plane_zero_is_most_significant_byte() -> None:
    bits = np.array([0x11223344], np.uint32)
    assert [int(p[0]) for p in BytePlanes.split(bits, 4)] == [0x11, 0x22, 0x33, 0x44]


def test_xor_is_plane_separable() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 2**32, (2, 500), dtype=np.uint32)
    d = DeltaCodec("xor").encode(a, b)
    pa, pb, pd = (BytePlanes.split(x, 4) for x in (a, b, d))
    assert all(np.array_equal(pa[k], pb[k] ^ pd[k]) for k in range(4))


@pytest.mark.parametrize(
    ("dtype", "planes"),
    [
        (np.float32, 4),
        (np.float16, 2),
        (ml_dtypes.bfloat16, 2),
        (np.float64, 8),
        (np.int32, 1),
        (np.bool_, 1),
    ],
)
def test_n_planes(dtype: type, planes: int) -> None:
    assert n_planes(np.dtype(dtype)) == planes


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=5000), st.integers(-3, 5))
def test_zstd_chunk_roundtrip(payload: bytes, level: int) -> None:
    kind, packed = Zstd(level=level).encode(payload)
    got_kind, got = unframe_chunk(frame_chunk(kind, packed), "c/x")
    assert bytes(Zstd.decode(got_kind, got, len(payload))) == payload


def test_corrupt_chunk_detected() -> None:
    value = bytearray(frame_chunk(*Zstd().encode(b"abc" * 100)))
    value[-1] ^= 0xFF
    with pytest.raises(CorruptionError, match="c/abc.*CRC mismatch"):
        unframe_chunk(bytes(value), "c/abc")


@pytest.mark.parametrize(
    "codec",
    [
        DeltaCodec("sub"),
        Zstd(level=3),
        Float16Scheme(),
        BFloat16Scheme(),
        FixedPointScheme(bits=12, exponent=-2),
        QuantizeScheme(bits=4, table=("0x1.0p+0",)),
    ],
)
def test_codec_dict_roundtrip(codec: object) -> None:
    data = codec.to_dict()  # type: ignore[attr-defined]
    assert codec_from_dict(data) == codec


def test_unknown_codec() -> None:
    with pytest.raises(InvalidInputError, match="unknown codec"):
        codec_from_dict({"name": "nope"})


def test_bad_delta_op() -> None:
    with pytest.raises(InvalidInputError, match="unknown delta op"):
        DeltaCodec("add")


def test_fixed_point_error_bound() -> None:
    x = np.random.default_rng(2).standard_normal(1000).astype(np.float32)
    scheme = FixedPointScheme(bits=16).fit(x)
    back = scheme.decode(scheme.encode(x), np.dtype(np.float32))
    step = 2.0 ** (scheme.exponent - scheme.bits + 1)
    assert np.abs(back - x).max() <= step / 2 + 1e-7


def test_quantize_uses_table_values() -> None:
    x = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    scheme = QuantizeScheme(bits=3, method="quantile").fit(x)
    back = scheme.decode(scheme.encode(x), np.dtype(np.float32))
    assert len(np.unique(back)) <= 8


def test_lossy_scheme_rejects_nan() -> None:
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        FixedPointScheme().fit(np.array([1.0, np.nan], np.float32))


FLOATS = st.sampled_from([np.float32, np.float16, np.float64, ml_dtypes.bfloat16])


@settings(max_examples=60, deadline=None)
@given(dtype=FLOATS, data=st.data())
def test_plane_interval_contains_value(dtype: type, data: st.DataObject) -> None:
    dt = np.dtype(dtype)
    size = dt.itemsize
    raw = data.draw(st.lists(st.integers(0, 2 ** (8 * size) - 1), min_size=1, max_size=40))
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[size]
    bits = np.array(raw, dtype=uint)
    values = bits.view(dt)
    k = data.draw(st.integers(1, size - 1))
    known = BytePlanes.merge(BytePlanes.split(bits, size)[:k], size, bits.size, np.dtype(uint))
    lo, hi = plane_interval(known, dt, k)
    v, lo64, hi64 = (x.astype(np.float64) for x in (values, lo, hi))
    ok = ~np.isnan(v) & ~np.isnan(lo64)
    assert (lo64[ok] <= v[ok]).all()
    assert (v[ok] <= hi64[ok]).all()
    proven = np.isnan(known.view(dt).astype(np.float64))
    assert np.isnan(v[proven]).all()


def test_interval_negative_zero_and_sign() -> None:
    x = np.array([-0.0, -1.5, 2.5, np.inf, -np.inf], np.float32)
    bits = bits_view(x)
    known = BytePlanes.merge(BytePlanes.split(bits, 4)[:1], 4, bits.size, bits.dtype)
    lo, hi = plane_interval(known, np.dtype(np.float32), 1)
    assert (lo <= x).all()
    assert (x <= hi).all()
    assert lo[1] < -1.5 < hi[1] <= 0 or hi[1] == -1.5


def test_crc32_matches_zlib() -> None:
    import zlib

    from storage.codecs import crc32

    data = np.random.default_rng(3).integers(0, 256, 100_003, dtype=np.uint8)
    assert crc32(data) == zlib.crc32(data.tobytes())
    assert crc32(b"") == zlib.crc32(b"")


def test_plane_levels_and_raw_plane() -> None:
    codec = Zstd(level=3, plane_levels=(1, 0))
    assert codec.level_for(0) == 1
    assert codec.level_for(1) is None
    assert codec.level_for(2) == 3
    assert codec.level_for(None) == 3
    compressible = bytes(200_000)
    assert Zstd(plane_levels=(1, 0)).encode(compressible, 1)[0] == 0  # raw, not tried
    kind, packed = codec.encode(compressible, 0)
    assert kind == 1
    assert len(packed) < 1000
    assert bytes(Zstd.decode(kind, packed, len(compressible))) == compressible
    assert codec_from_dict(codec.to_dict()) == codec


def test_plane_hash_logs_round_trip_and_shrink_exponent_bytes() -> None:
    """A small match-finder table for plane 0: exponent-like bytes (few values, no long
    repeats) decode exactly and store no larger than with level 1's own table."""
    rng = np.random.default_rng(0)
    exponents = (120 + np.clip(rng.normal(0, 2, 1 << 20), -10, 10)).astype(np.uint8)
    small, own = Zstd(plane_hash_logs=(6,)), Zstd()
    kind, packed = small.encode(exponents, 0)
    assert kind == 1
    assert bytes(Zstd.decode(kind, packed, exponents.size)) == exponents.tobytes()
    assert len(packed) <= len(own.encode(exponents, 0)[1])
    assert small.encode(exponents, 1)[1] == own.encode(exponents, 1)[1]  # other planes as before
    assert codec_from_dict(small.to_dict()) == small
    old = {"name": "zstd", "configuration": {"level": 1, "raw_above": 0.98, "plane_levels": [1]}}
    assert codec_from_dict(old) == Zstd(plane_levels=(1,))  # records written before the field


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_split_single_plane_reads(dtype: type) -> None:
    bits = np.random.default_rng(5).integers(0, 2**63, 1001, dtype=np.uint64).astype(dtype)
    size = bits.dtype.itemsize
    top = BytePlanes.merge(BytePlanes.split(bits, size)[:1], size, bits.size, bits.dtype)
    shift = bits.dtype.type(8 * (size - 1))
    assert np.array_equal(top, (bits >> shift) << shift)


@pytest.mark.parametrize("blosc", [True, False])
@pytest.mark.parametrize("size", [2, 4, 8])
def test_plane_merger_pieces(monkeypatch: pytest.MonkeyPatch, blosc: bool, size: int) -> None:
    from storage import codecs

    if blosc:
        pytest.importorskip("blosc2")
        monkeypatch.setattr(codecs, "_BLOSC_AFTER", -1)
        assert codecs._blosc_header(size) is not None  # the self-test passed
    else:
        monkeypatch.setitem(codecs._BLOSC_HEADERS, size, None)
    uint = np.dtype({2: np.uint16, 4: np.uint32, 8: np.uint64}[size])
    count = codecs.PlaneMerger.BLOCK_ITEMS * 3 + 777
    bits = np.random.default_rng(size).integers(0, 256, count * size, np.uint8).view(uint)
    planes = BytePlanes.split(bits, size)
    cuts = [0, 5, codecs.PlaneMerger.BLOCK_ITEMS + 3, 2 * codecs.PlaneMerger.BLOCK_ITEMS, count]
    for k in (2, size):
        merger = codecs.PlaneMerger(size, count, uint)
        for p in reversed(range(k)):  # any order, uneven pieces across block boundaries
            for lo, hi in zip(cuts, cuts[1:]):
                merger.put(p, lo, planes[p][lo:hi])
        keep = sum(0xFF << (8 * (size - 1 - p)) for p in range(k))
        assert np.array_equal(merger.result(), bits & uint.type(keep))
        assert np.array_equal(BytePlanes.merge(planes[:k], size, count, uint), merger.result())
