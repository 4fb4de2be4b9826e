"""Codecs: composable, serialisable encoding steps (zarr-python v3 style).

Each codec is a frozen dataclass with a registered ``name`` and ``to_dict()``/``from_dict()``
giving ``{"name": ..., "configuration": {...}}``, so every tensor record names the exact chain
that decodes it. Three kinds, by what they map:

* **schemes** (array → array, lossy, opt-in): :class:`Float16Scheme`, :class:`BFloat16Scheme`,
  :class:`FixedPointScheme` (one exponent per matrix), :class:`QuantizeScheme` (k-bit codes and a
  code table). ``fit(array)`` returns the codec with its data-dependent parameters filled in.
* **delta** (array, base → array, lossless): :class:`DeltaCodec` with ``op="xor"`` (plane
  separable) or ``op="sub"`` (integer subtraction of bit patterns, zig-zag coded).
* **byte planes** (array → planes): :class:`BytePlanes` splits a float of *n* bytes into *n*
  planes, plane 0 being the most significant byte (sign + high exponent bits). Other dtypes are
  one plain plane.
* **compressor** (bytes → bytes): :class:`Zstd`.
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
import zlib
from abc import ABC
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Self

import blake3
import ml_dtypes
import numpy as np
import zstandard

from storage.errors import CorruptionError, InvalidInputError

try:  # ISA-L's CRC-32 gives the same values as zlib's, ~6x faster (pclmulqdq)
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - optional speed-up
    _crc32 = zlib.crc32


_LOCAL = threading.local()


def crc32(data: bytes | memoryview | np.ndarray) -> int:
    """CRC-32 (zlib polynomial) of a buffer; ISA-L's SIMD implementation when installed."""
    return _crc32(data)


# ---------------------------------------------------------------------------------------------
# dtypes

_NAMED_DTYPES: dict[str, np.dtype[Any]] = {
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
}
_ML_FLOATS = {dt: name for name, dt in _NAMED_DTYPES.items()}
_UINT: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8),
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}


def dtype_name(dtype: np.dtype[Any]) -> str:
    """Portable name of a supported dtype (``'<f4'``, ``'|b1'``, ``'bfloat16'`` ...)."""
    dtype = np.dtype(dtype)
    if dtype in _ML_FLOATS:
        return _ML_FLOATS[dtype]
    if dtype.kind not in "biufc" or dtype.hasobject:
        raise InvalidInputError(f"unsupported dtype {dtype!s}: only bool, int, float, complex")
    return dtype.newbyteorder("<").str if dtype.itemsize > 1 else dtype.str


def dtype_from_name(name: str) -> np.dtype[Any]:
    """Inverse of :func:`dtype_name`."""
    if name in _NAMED_DTYPES:
        return _NAMED_DTYPES[name]
    try:
        return np.dtype(name)
    except TypeError as exc:
        raise InvalidInputError(f"unknown dtype name {name!r}") from exc


def is_float(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is a real floating type (numpy or ml_dtypes)."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype in _ML_FLOATS


def n_planes(dtype: np.dtype[Any]) -> int:
    """Byte planes a dtype is stored in: its item size for floats, 1 (plain) otherwise."""
    return np.dtype(dtype).itemsize if is_float(dtype) else 1


def bits_view(arr: np.ndarray) -> np.ndarray:
    """Flat unsigned-integer view of the bit patterns of ``arr`` (uint8 bytes for odd sizes)."""
    flat = (arr if arr.flags.c_contiguous else arr.copy(order="C")).reshape(-1)
    uint = _UINT.get(flat.dtype.itemsize)
    return flat.view(uint) if uint is not None else flat.view(np.uint8)


# ---------------------------------------------------------------------------------------------
# codec base and registry

CODECS: dict[str, type[Codec]] = {}


@dataclass(frozen=True)
class Codec(ABC):
    """Base of every codec: a frozen, JSON-serialisable configuration."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            CODECS[cls.name] = cls

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "configuration": {...}}``."""
        return {"name": self.name, "configuration": asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a codec from :meth:`to_dict` output."""
        conf = dict(data.get("configuration", {}))
        for key, value in conf.items():
            if isinstance(value, list):
                conf[key] = tuple(value)
        return cls(**conf)


def codec_from_dict(data: dict[str, Any]) -> Codec:
    """Instantiate a registered codec from its dict form."""
    try:
        cls = CODECS[data["name"]]
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f"unknown codec {data!r}") from exc
    return cls.from_dict(data)


# ---------------------------------------------------------------------------------------------
# lossy float schemes (array -> array)


@dataclass(frozen=True)
class Scheme(Codec):
    """A lossy representation: ``encode`` maps floats to a stored array, ``decode`` back."""

    def fit(self, arr: np.ndarray) -> Self:
        """Return this scheme with data-dependent parameters filled in for ``arr``."""
        return self

    def encode(self, arr: np.ndarray) -> np.ndarray:
        """Map ``arr`` to its stored representation."""
        raise NotImplementedError

    def decode(self, stored: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
        """Map a stored representation back to ``dtype``."""
        return stored.astype(dtype)


def _require_float(arr: np.ndarray, scheme: str) -> None:
    if not is_float(arr.dtype):
        raise InvalidInputError(f"scheme {scheme!r} needs a float tensor, got {arr.dtype}")


def _require_finite(arr: np.ndarray, scheme: str) -> None:
    if arr.size and not np.isfinite(arr.astype(np.float64)).all():
        raise InvalidInputError(f"scheme {scheme!r} cannot store NaN or inf values")


@dataclass(frozen=True)
class Float16Scheme(Scheme):
    """IEEE half precision (round to nearest even)."""

    name: ClassVar[str] = "float16"

    def encode(self, arr: np.ndarray) -> np.ndarray:
        _require_float(arr, self.name)
        return arr.astype(np.float16)


@dataclass(frozen=True)
class BFloat16Scheme(Scheme):
    """Truncated 16-bit float (bfloat16, round to nearest even)."""

    name: ClassVar[str] = "bfloat16"

    def encode(self, arr: np.ndarray) -> np.ndarray:
        _require_float(arr, self.name)
        return arr.astype(ml_dtypes.bfloat16)


@dataclass(frozen=True)
class FixedPointScheme(Scheme):
    """Fixed point with one exponent per matrix: value = code · 2**(exponent - bits + 1)."""

    name: ClassVar[str] = "fixed"
    bits: int = 16
    exponent: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 32:
            raise InvalidInputError(f"fixed point needs 2..32 bits, got {self.bits}")

    def fit(self, arr: np.ndarray) -> Self:
        _require_float(arr, self.name)
        _require_finite(arr, self.name)
        peak = float(np.abs(arr.astype(np.float64)).max()) if arr.size else 0.0
        exponent = math.frexp(peak)[1] if peak > 0 else 0
        return type(self)(bits=self.bits, exponent=exponent)

    def _code_dtype(self) -> np.dtype[Any]:
        return np.dtype(np.int8 if self.bits <= 8 else np.int16 if self.bits <= 16 else np.int32)

    def encode(self, arr: np.ndarray) -> np.ndarray:
        _require_float(arr, self.name)
        _require_finite(arr, self.name)
        limit = 2 ** (self.bits - 1) - 1
        scaled = np.ldexp(arr.astype(np.float64), self.bits - 1 - self.exponent)
        return np.clip(np.rint(scaled), -limit, limit).astype(self._code_dtype())

    def decode(self, stored: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
        values = np.ldexp(stored.astype(np.float64), self.exponent - self.bits + 1)
        return values.astype(dtype)


@dataclass(frozen=True)
class QuantizeScheme(Scheme):
    """k-bit quantisation (k ≤ 8) to a code table; ``method`` is ``uniform`` or ``quantile``.

    The table is kept as exact float hex strings so the record round-trips through JSON.
    """

    name: ClassVar[str] = "quantize"
    bits: int = 8
    method: str = "uniform"
    table: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 8:
            raise InvalidInputError(f"quantisation needs 1..8 bits, got {self.bits}")
        if self.method not in ("uniform", "quantile"):
            raise InvalidInputError(f"unknown quantisation method {self.method!r}")

    def fit(self, arr: np.ndarray) -> Self:
        _require_float(arr, self.name)
        _require_finite(arr, self.name)
        values = arr.astype(np.float64).reshape(-1)
        levels = 2**self.bits
        if values.size == 0:
            centres = np.zeros(1)
        elif self.method == "uniform":
            centres = np.linspace(values.min(), values.max(), levels)
        else:
            centres = np.quantile(values, (np.arange(levels) + 0.5) / levels)
        table = tuple(float(c).hex() for c in np.unique(centres))
        return type(self)(bits=self.bits, method=self.method, table=table)

    def _centres(self) -> np.ndarray:
        return np.array([float.fromhex(c) for c in self.table], dtype=np.float64)

    def encode(self, arr: np.ndarray) -> np.ndarray:
        _require_float(arr, self.name)
        _require_finite(arr, self.name)
        centres = self._centres()
        values = arr.astype(np.float64)
        idx = np.clip(np.searchsorted(centres, values), 1, max(len(centres) - 1, 1))
        left = centres[idx - 1]
        right = centres[np.minimum(idx, len(centres) - 1)]
        codes = np.where(np.abs(values - left) <= np.abs(right - values), idx - 1, idx)
        return np.minimum(codes, len(centres) - 1).astype(np.uint8)

    def decode(self, stored: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
        return self._centres()[stored].astype(dtype)


# ---------------------------------------------------------------------------------------------
# lossless delta on bit patterns


@dataclass(frozen=True)
class DeltaCodec(Codec):
    """Lossless delta of two same-shape tensors on their bit patterns.

    ``xor``: d = t ^ b; plane k of t is plane k of b XOR plane k of d (plane separable).
    ``sub``: d = zigzag(t - b) in wrapping unsigned arithmetic; carries cross bytes, so a
    high-plane read must decode the full chain.
    """

    name: ClassVar[str] = "delta"
    op: str = "xor"

    def __post_init__(self) -> None:
        if self.op not in ("xor", "sub"):
            raise InvalidInputError(f"unknown delta op {self.op!r}; use 'xor' or 'sub'")

    @property
    def plane_separable(self) -> bool:
        """Whether high planes can be decoded without the low ones."""
        return self.op == "xor"

    def encode(
        self, target: np.ndarray, base: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Delta of two bit-pattern views (see :func:`bits_view`), into ``out`` if given."""
        if self.op == "xor":
            return np.bitwise_xor(target, base, out=out)
        diff = target - base  # wraps modulo 2**bits
        bits = diff.dtype.itemsize * 8
        signed = diff.view(diff.dtype.str.replace("u", "i"))
        return ((diff << 1) ^ (signed >> (bits - 1)).view(diff.dtype)).astype(diff.dtype)

    def decode(self, delta: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode`."""
        if self.op == "xor":
            return np.bitwise_xor(delta, base)
        one = delta.dtype.type(1)
        diff = (delta >> one) ^ (np.zeros_like(delta) - (delta & one))
        return base + diff


# ---------------------------------------------------------------------------------------------
# byte planes


@dataclass(frozen=True)
class BytePlanes(Codec):
    """Split a tensor into byte planes, most significant first; non-floats are one plane."""

    name: ClassVar[str] = "byteplanes"

    @staticmethod
    def split(bits: np.ndarray, planes: int, scratch: bool = False) -> list[np.ndarray]:
        """Planes of a flat bit-pattern array (plane 0 = most significant byte), each a
        contiguous uint8 array (rows of one ``(planes, count)`` buffer). ``scratch``: the
        buffer is this thread's reusable work buffer (fresh pages cost a page fault each),
        valid until the next ``split(..., scratch=True)`` on this thread."""
        if planes == 1:
            return [bits.view(np.uint8)]
        if scratch:
            out = _split_scratch(planes * bits.size).reshape(planes, bits.size)
        else:
            out = np.empty((planes, bits.size), np.uint8)
        if bits.dtype.itemsize == planes:  # vectorised shift + truncating cast per plane
            for k in range(planes):
                np.right_shift(bits, 8 * (planes - 1 - k), out=out[k], casting="unsafe")
        else:
            u8 = bits.view(np.uint8).reshape(-1, planes)
            for k in range(planes):
                out[k] = u8[:, planes - 1 - k]
        return list(out)

    @staticmethod
    def merge(
        planes: list[np.ndarray], nplanes: int, count: int, uint: np.dtype[Any]
    ) -> np.ndarray:
        """Inverse of :meth:`split` for the first ``len(planes)`` planes; missing low planes are
        zero. Returns a flat array of dtype ``uint`` with ``count`` items."""
        if nplanes == 1:
            return planes[0].view(uint)
        if len(planes) == 1:  # top plane only: one vectorised widening shift, no zero fill
            out = np.empty(count, uint)
            np.left_shift(planes[0], 8 * (nplanes - 1), out=out, dtype=uint)
            return out
        merger = PlaneMerger(nplanes, count, uint)
        for k, plane in enumerate(planes):
            merger.put(k, 0, plane)
        return merger.result()


class PlaneMerger:
    """Interleaves byte planes (plane 0 = most significant byte) into a flat ``uint`` array.

    Feed plane pieces in any order with :meth:`put`; planes never fed are zero. With blosc2
    installed the pieces are laid out as the uncompressed streams of a byte-shuffled blosc2
    chunk and blosc2's SIMD unshuffle does the interleave (~2x numpy's strided column copies
    incl. page faults); the self-test at first use falls back to numpy if that ever disagrees.
    Importing blosc2 costs ~0.35 s, so it is only imported once this process has merged
    ``_BLOSC_AFTER`` bytes (or something else imported it). Items past the last whole block go
    straight to the output's columns.
    """

    BLOCK_ITEMS = 1 << 15

    def __init__(self, nplanes: int, count: int, uint: np.dtype[Any]) -> None:
        self.nplanes, self.count = nplanes, count
        self.out = np.empty(count, uint)
        ne = self.BLOCK_ITEMS
        global _MERGED
        _MERGED += count * nplanes
        use = ne <= count and count * nplanes <= _BLOSC_MAX  # blosc2 sizes are int32
        use = use and ("blosc2" in sys.modules or _MERGED > _BLOSC_AFTER)
        header = _blosc_header(nplanes) if use else None
        self.nb = count // ne if header is not None else 0
        self.written: set[int] = set()
        head = self.nb * ne * nplanes
        self.cols = self.out.view(np.uint8)[head:].reshape(-1, nplanes)
        if header is not None:
            stride = nplanes * (4 + ne)
            off = 32 + 4 * self.nb
            self.buf = _scratch(off + self.nb * stride)
            self.buf[:32] = header
            self.buf[4:8] = np.frombuffer(np.int32(head).tobytes(), np.uint8)
            self.buf[12:16] = np.frombuffer(np.int32(self.buf.size).tobytes(), np.uint8)
            self.buf[32:off] = (np.arange(self.nb, dtype="<i4") * stride + off).view(np.uint8)
            self.body = self.buf[off:].reshape(self.nb, nplanes, 4 + ne)
            self.body[:, :, :4] = np.frombuffer(np.int32(ne).tobytes(), np.uint8)

    def put(self, plane: int, start: int, data: np.ndarray) -> None:
        """Items ``[start, start + len(data))`` of byte plane ``plane``."""
        self.written.add(plane)
        ne, split = self.BLOCK_ITEMS, self.nb * self.BLOCK_ITEMS
        n, pos = len(data), 0
        j = self.nplanes - 1 - plane  # little endian: stream j holds byte j of every item
        while pos < n and start + pos < split:
            b, o = divmod(start + pos, ne)
            if o == 0 and n - pos >= ne:
                m = min((n - pos) // ne, self.nb - b)
                self.body[b : b + m, j, 4:] = data[pos : pos + m * ne].reshape(m, ne)
                pos += m * ne
            else:
                take = min(ne - o, n - pos)
                self.body[b, j, 4 + o : 4 + o + take] = data[pos : pos + take]
                pos += take
        if pos < n:
            lo = start + pos - split
            self.cols[lo : lo + n - pos, j] = data[pos:]

    def result(self) -> np.ndarray:
        """The merged array (missing planes zero)."""
        for p in set(range(self.nplanes)) - self.written:  # zeroed only when never fed
            self.cols[:, self.nplanes - 1 - p] = 0
        if self.nb:
            import blosc2  # type: ignore[import-untyped]

            for p in set(range(self.nplanes)) - self.written:
                self.body[:, self.nplanes - 1 - p, 4:] = 0
            head = self.out.view(np.uint8)[: self.nb * self.BLOCK_ITEMS * self.nplanes]
            blosc2.decompress2(self.buf, dst=head, nthreads=1)
            _release(self.buf)
            self.nb = 0
        return self.out


def work_buffer(name: str, size: int) -> np.ndarray:
    """This thread's reusable uint8 buffer ``name`` of at least ``size`` bytes (grown as
    needed, kept for reuse: fresh pages cost a page fault each, as much as the work itself).
    Valid until the next call with the same name on this thread."""
    buffers: dict[str, np.ndarray] = _LOCAL.__dict__.setdefault("work", {})
    buf = buffers.get(name)
    if buf is None or buf.size < size:
        buf = buffers[name] = np.empty(max(size, 1), np.uint8)
    return buf[:size]


def _split_scratch(size: int) -> np.ndarray:
    return work_buffer("split", size)


def _scratch(size: int) -> np.ndarray:
    """A reusable uint8 work buffer of ``size`` bytes (fresh pages cost page faults)."""
    free: list[np.ndarray] = _LOCAL.__dict__.setdefault("scratch", [])
    for i, buf in enumerate(free):
        if buf.size >= size:
            return free.pop(i)[:size]
    return np.empty(size, np.uint8)


def _release(buf: np.ndarray) -> None:
    base = buf.base if isinstance(buf.base, np.ndarray) else buf
    free: list[np.ndarray] = _LOCAL.__dict__.setdefault("scratch", [])
    if base.nbytes <= 32 << 20 and len(free) < 2:
        free.append(base)


_BLOSC_HEADERS: dict[int, np.ndarray | None] = {}
_BLOSC_AFTER = 256 << 20
_BLOSC_MAX = 1 << 30
_MERGED = 0


def _blosc_header(typesize: int) -> np.ndarray | None:
    """A blosc2 chunk header (byte shuffle, split streams, ``BLOCK_ITEMS`` per block) made by
    the installed blosc2 itself, or ``None`` when blosc2 is missing or fails the self-test."""
    if typesize in _BLOSC_HEADERS:
        return _BLOSC_HEADERS[typesize]
    _BLOSC_HEADERS[typesize] = None
    try:
        import blosc2  # type: ignore[import-untyped]

        ne = PlaneMerger.BLOCK_ITEMS
        sample = (np.arange(ne * typesize * 2) % 7).astype(np.uint8)
        chunk = blosc2.compress2(
            sample,
            typesize=typesize,
            clevel=1,
            codec=blosc2.Codec.LZ4,
            filters=[blosc2.Filter.SHUFFLE],
            splitmode=blosc2.SplitMode.ALWAYS_SPLIT,
            blocksize=ne * typesize,
        )
        header = np.frombuffer(chunk[:32], np.uint8).copy()
        if header[2] & 0x2:  # memcpyed: not a template
            return None
        _BLOSC_HEADERS[typesize] = header
        rng = np.random.default_rng(0)
        count = ne * 2 + 123
        truth = rng.integers(0, 256, count * typesize, dtype=np.uint8)
        uint = _UINT[typesize]
        planes = BytePlanes.split(truth.view(uint), typesize)
        merger = PlaneMerger(typesize, count, uint)
        for k, plane in enumerate(planes):
            merger.put(k, 0, plane[:1000])
            merger.put(k, 1000, plane[1000:])
        if not np.array_equal(merger.result(), truth.view(uint)):
            _BLOSC_HEADERS[typesize] = None
    except Exception:  # noqa: BLE001 - any failure means: use numpy
        _BLOSC_HEADERS[typesize] = None
    return _BLOSC_HEADERS[typesize]


def plane_interval(
    known: np.ndarray, dtype: np.dtype[Any], planes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``[lo, hi]`` on the true values given only the top ``planes`` bytes.

    ``known`` is the bit-pattern view (unsigned ints) with the unknown low bytes zero. Unknown
    bits are padded with all 0s and all 1s; for negative values the roles swap. Where padding
    with 1s reaches the all-ones exponent the bound becomes ±inf. Where the known bits already
    prove a NaN, both bounds are NaN. A true NaN lies in no interval.
    """
    total = np.dtype(dtype).itemsize
    unknown_bits = 8 * (total - planes)
    low = known.dtype.type((1 << unknown_bits) - 1) if unknown_bits else known.dtype.type(0)
    zeros, ones = known, known | low
    negative = (known >> known.dtype.type(8 * total - 1)).astype(bool)
    lo_bits = np.where(negative, ones, zeros)
    hi_bits = np.where(negative, zeros, ones)
    lo, hi = lo_bits.view(dtype).copy(), hi_bits.view(dtype).copy()
    nan_lo = np.isnan(lo.astype(np.float32))
    nan_hi = np.isnan(hi.astype(np.float32))
    proven_nan = np.isnan(zeros.view(dtype).astype(np.float32))
    lo[nan_lo & ~proven_nan] = -np.inf
    hi[nan_hi & ~proven_nan] = np.inf
    return lo, hi


# ---------------------------------------------------------------------------------------------
# compression and chunk framing

_RAW, _ZSTD = 0, 1
_PROBE = 1 << 16


def _compressor(level: int, hash_log: int = 0) -> zstandard.ZstdCompressor:
    """A per-thread, reused compression context (contexts are not thread-safe); ``hash_log``
    overrides the level's match-finder hash table size (0: the level's own)."""
    cache = _LOCAL.__dict__.setdefault("c", {})
    ctx = cache.get((level, hash_log))
    if ctx is None:
        if hash_log:
            params = zstandard.ZstdCompressionParameters.from_level(level, hash_log=hash_log)
            ctx = zstandard.ZstdCompressor(compression_params=params)
        else:
            ctx = zstandard.ZstdCompressor(level=level)
        cache[(level, hash_log)] = ctx
    return ctx


def _decompressor() -> zstandard.ZstdDecompressor:
    ctx = getattr(_LOCAL, "d", None)
    if ctx is None:
        ctx = _LOCAL.d = zstandard.ZstdDecompressor()
    return ctx


@dataclass(frozen=True)
class Zstd(Codec):
    """zstd at ``level``; a chunk that compresses to ≥ ``raw_above`` of its size (checked on a
    64 KiB probe first) is stored raw: low mantissa planes barely compress, and raw chunks read
    at memcpy speed. ``plane_levels`` overrides the level per byte plane (plane 0 first; ``0``
    stores that plane raw without trying); ``plane_hash_logs`` the match finder's hash table
    size (log2; 0: the level's own) per plane. :data:`DEFAULT_COMPRESSOR` holds the per-plane
    settings chosen by the sweeps in ``bench/results/storage.md``. Decoding needs none of them:
    a zstd frame is self-describing."""

    name: ClassVar[str] = "zstd"
    level: int = 1
    raw_above: float = 0.98
    plane_levels: tuple[int, ...] = ()
    plane_hash_logs: tuple[int, ...] = ()

    def level_for(self, plane: int | None) -> int | None:
        """The zstd level used for byte plane ``plane`` (``None``: not a plane); ``None`` when
        that plane is stored raw."""
        if plane is not None and plane < len(self.plane_levels):
            return self.plane_levels[plane] or None
        return self.level

    def encode(
        self, data: bytes | memoryview | np.ndarray, plane: int | None = None
    ) -> tuple[int, bytes | memoryview]:
        """Return ``(kind, payload)``; ``kind`` is raw or zstd. A raw payload may be a view of
        ``data``."""
        view = (data.data if isinstance(data, np.ndarray) else memoryview(data)).cast("B")
        level = self.level_for(plane)
        if len(view) == 0 or level is None:
            return _RAW, view
        logs = self.plane_hash_logs
        compressor = _compressor(
            level, logs[plane] if plane is not None and plane < len(logs) else 0
        )
        if len(view) > 2 * _PROBE:
            probe = view[:_PROBE]
            if len(compressor.compress(probe)) >= self.raw_above * len(probe):
                return _RAW, view
        packed = compressor.compress(view)
        if len(packed) >= self.raw_above * len(view):
            return _RAW, view
        return _ZSTD, packed

    @staticmethod
    def decode(
        kind: int, payload: bytes | memoryview, size: int, where: str = "chunk"
    ) -> bytes | memoryview:
        """Inverse of :meth:`encode`; ``size`` is the decoded length. Undecodable input is a
        :class:`CorruptionError` naming ``where``."""
        if kind == _RAW:
            return payload
        try:
            return _decompressor().decompress(payload, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise CorruptionError(f"corrupt chunk {where}: zstd: {exc}") from exc


# Level sweep on workload (a) (bench/results/storage.md): level 1 for the sign/exponent plane
# and the next one (levels 3 and 6 gain < 1% there at 1.5-5x the encode time); the fast level
# -1 for the two low mantissa planes (within ~0.5% of level 1's ratio at ~1.6x its encode speed
# and ~1.5x its decode speed). The sign/exponent plane of a materialised tensor (~40 distinct
# byte values, few long repeats) is entropy coding, not matching: a 64-entry hash table (log 6)
# stores it ~7% smaller and encodes ~2x, decodes ~1.9x faster than level 1's own (hash log
# sweep, ibid.); XOR-delta planes are unaffected.
DEFAULT_COMPRESSOR = Zstd(level=1, plane_levels=(1, 1, -1, -1), plane_hash_logs=(6,))


_SALT = 16
_OWNED = 2  # kinds 2/3: raw/zstd chunks that carry their owner's salt (format 2)
#: Bytes an owned chunk's frame adds to its payload (kind, CRC-32, salt).
CHUNK_FRAME_BYTES = 1 + 4 + _SALT


def chunk_salt(owner: str, base: str | None, plane: int, index: int) -> bytes:
    """What makes a chunk unique to the record that owns it (tensor digest, delta base, plane,
    chunk index): such a chunk is never shared, so rewriting its record may delete it."""
    return blake3.blake3(f"{owner}|{base}|{plane}|{index}".encode()).digest()[:_SALT]


def frame_chunk(kind: int, payload: bytes | memoryview, salt: bytes | None = None) -> bytes:
    """Stored chunk value: kind (1 byte), CRC-32 of payload (4 bytes LE), the owner's salt
    (16 bytes, owned kinds only), payload."""
    head = bytes([kind + (_OWNED if salt else 0)]) + crc32(payload).to_bytes(4, "little")
    return b"".join((head, salt or b"", payload))


def chunk_digest(value: bytes | memoryview) -> str:
    """The digest a stored chunk value is addressed by: BLAKE3 of the value for owned chunks,
    SHA-256 for format-1 chunks (40 hex digits either way)."""
    if len(value) and value[0] >= _OWNED:
        return blake3.blake3(value).hexdigest()[:40]
    return hashlib.sha256(value).hexdigest()[:40]


def unframe_chunk(
    value: bytes | memoryview, where: str, check: bool = True
) -> tuple[int, memoryview]:
    """Return a stored chunk's ``(kind, payload)``, checking its CRC unless ``check`` is off
    (full reads check the reconstructed tensor's CRC instead); ``where`` names the chunk for
    the error message."""
    view = memoryview(value)
    kind = view[0] if len(view) else -1
    start = 5 + _SALT if kind in (_RAW + _OWNED, _ZSTD + _OWNED) else 5
    if kind not in (_RAW, _ZSTD, _RAW + _OWNED, _ZSTD + _OWNED) or len(view) < start:
        raise CorruptionError(f"corrupt chunk {where}: bad header")
    payload = view[start:]
    if check and crc32(payload) != int.from_bytes(view[1:5], "little"):
        raise CorruptionError(f"corrupt chunk {where}: CRC mismatch")
    return kind % _OWNED, payload
