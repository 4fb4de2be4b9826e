"""Typed archive records: what a tensor record, a manifest and an edge list hold.

Records are frozen dataclasses, parsed once from their stored bytes (:func:`load_tensor`,
:func:`load_manifest`) and written with :meth:`TensorRecord.dump` / :meth:`Manifest.dump`.
Anything malformed raises :class:`~storage.errors.CorruptionError`, never a ``KeyError`` or a
``JSONDecodeError``.

Stored form (archive format 2): every record is *sealed*: one tag byte ``0xA2``, the CRC-32 of
the body (4 bytes, little endian), the body (canonical JSON). The body names its own key (a
manifest its snapshot id, a tensor record its digest), so a value found under the wrong key is
caught too. Format-1 records (plain JSON, no checksum) are still read.

Archive format 3 adds *packs*: a snapshot's small lossless tensors of one stored dtype are
concatenated into one pack (a tensor record with ``"pack": true``, stored, delta-encoded and
re-encoded like any tensor) and each small tensor's record names its ``slot`` in it
(``[pack digest, offset in bit-pattern items]``) instead of chunks of its own. Records of
formats 1 and 2 are read unchanged.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Self

import numpy as np

from storage import layout
from storage.codecs import bits_view, dtype_from_name, n_planes
from storage.errors import CorruptionError, StorageError

#: Version written into new tensor records. 1: SHA-256 tensor digests, shared (unowned) chunks
#: keyed by SHA-256; 2: BLAKE3 tensor digests, owned chunks keyed by BLAKE3 (format 3's packs and
#: slots are version-2 records with the ``pack``/``slot`` fields).
RECORD_VERSION = 2


_SEALED = 0xA2
_LEGACY = ord("{")


def dumps(obj: Any) -> bytes:
    """Canonical compact JSON."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def seal(obj: Any) -> bytes:
    """``obj`` as canonical JSON behind a tag byte and its CRC-32."""
    body = dumps(obj)
    return bytes([_SEALED]) + zlib.crc32(body).to_bytes(4, "little") + body


def loads(value: bytes | memoryview, what: str) -> Any:
    """Parse a sealed (checksum-verified) or format-1 (plain JSON) value; ``what`` names it in
    the error."""
    data = bytes(value)
    if data[:1] == bytes([_SEALED]):
        body = data[5:]
        if zlib.crc32(body) != int.from_bytes(data[1:5], "little"):
            raise CorruptionError(f"{what} is corrupt (checksum mismatch)")
    elif data[:1] == bytes([_LEGACY]):
        body = data
    else:
        raise CorruptionError(f"{what} is corrupt (unknown encoding)")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptionError(f"{what} is corrupt (not valid JSON)") from exc


def _check_owner(data: Any, field_name: str, expect: str, what: str) -> None:
    """A sealed body names its key; a value under another key is corrupt."""
    if isinstance(data, dict) and field_name in data and data[field_name] != expect:
        raise CorruptionError(f"{what} is corrupt (stored under the wrong key)")


@dataclass(frozen=True)
class Delta:
    """How a tensor's stored chunks relate to its base: ``op`` (``xor``/``sub``) applied to
    ``base`` (a tensor digest). ``reverse``: the base is a *newer* tensor of a linear series
    (this tensor was re-encoded when its successor arrived)."""

    op: str
    base: str
    reverse: bool = False


@dataclass(frozen=True)
class Slot:
    """Where a packed small tensor lives: items ``[offset, offset + count)`` of the bit
    patterns of the pack ``pack`` (a tensor digest)."""

    pack: str
    offset: int


@dataclass(frozen=True)
class TensorRecord:
    """How to rebuild one tensor (stored under ``t/<digest>``).

    ``planes[p]`` lists the digests of plane ``p``'s chunks (``chunk_bytes`` of the plane
    each); ``plane_stored[p]`` their stored bytes. ``crc`` is the CRC-32 of the reconstructed
    stored representation. ``run`` is this tensor's position in the current run of its
    reverse-delta series (the chain behind it is at most that long); ``fork`` marks a tensor
    that siblings delta against (never re-encoded against a successor). ``pack`` marks a
    pack (small tensors of one snapshot, concatenated); ``slot`` a tensor stored inside one (no
    chunks of its own: ``planes`` are empty, ``plane_stored`` zero).
    """

    digest: str
    dtype: str
    shape: tuple[int, ...]
    scheme: dict[str, Any] | None
    sdtype: str
    count: int
    crc: int
    raw: int
    delta: Delta | None = None
    compressor: dict[str, Any] = field(default_factory=dict)
    chunk_bytes: int = 0
    planes: tuple[tuple[str, ...], ...] = ()
    plane_stored: tuple[int, ...] = ()
    run: int = 0
    fork: bool = False
    pack: bool = False
    slot: Slot | None = None
    version: int = RECORD_VERSION

    @property
    def stored(self) -> int:
        """Bytes of this record's own chunks."""
        return sum(self.plane_stored)

    @property
    def base(self) -> str | None:
        """The delta base's digest, or ``None`` when materialised (or packed)."""
        return None if self.delta is None else self.delta.base

    @property
    def link(self) -> str | None:
        """The record a read needs next: the delta base, or the pack of a packed tensor."""
        return self.slot.pack if self.slot is not None else self.base

    def __post_init__(self) -> None:
        # derived once (functools.cached_property takes a lock per access in Python 3.11)
        dtype = dtype_from_name(self.sdtype)
        object.__setattr__(self, "_dtype", dtype)
        object.__setattr__(self, "_nplanes", n_planes(dtype))
        object.__setattr__(self, "_uint", bits_view(np.empty(0, dtype)).dtype)

    @property
    def stored_dtype(self) -> np.dtype[Any]:
        """The numpy dtype of the stored representation."""
        return self._dtype  # type: ignore[attr-defined, no-any-return]

    @property
    def nplanes(self) -> int:
        """Byte planes of the stored representation."""
        return self._nplanes  # type: ignore[attr-defined, no-any-return]

    @property
    def uint(self) -> np.dtype[Any]:
        """The unsigned dtype of the stored bit patterns."""
        return self._uint  # type: ignore[attr-defined, no-any-return]

    @property
    def plane_size(self) -> int:
        """Bytes of one plane (the whole tensor when it is one plain plane)."""
        return self.count * self.uint.itemsize // self.nplanes

    def chunks(self) -> list[str]:
        """Digests of all this record's own chunks, plane by plane."""
        return [d for plane in self.planes for d in plane]

    def placed(
        self,
        delta: Delta | None,
        compressor: dict[str, Any],
        chunk_bytes: int,
        planes: list[list[tuple[str, int]]],
        **changes: Any,
    ) -> Self:
        """This record stored as ``planes`` (``(digest, stored size)`` per chunk)."""
        return replace(
            self,
            delta=delta,
            compressor=compressor,
            chunk_bytes=chunk_bytes,
            planes=tuple(tuple(d for d, _ in p) for p in planes),
            plane_stored=tuple(sum(n for _, n in p) for p in planes),
            **changes,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (format 1 spelling: chunk keys, ``stored`` total)."""
        delta = self.delta
        return {
            "v": self.version,
            "digest": self.digest,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "scheme": self.scheme,
            "sdtype": self.sdtype,
            "count": self.count,
            "crc": self.crc,
            "raw": self.raw,
            "delta": None
            if delta is None
            else {"op": delta.op, "base": delta.base, **({"rev": True} if delta.reverse else {})},
            "compressor": self.compressor,
            "chunk_bytes": self.chunk_bytes,
            "planes": [
                [layout.chunk_key(d) if self.version < 2 else d for d in p] for p in self.planes
            ],
            "plane_stored": list(self.plane_stored),
            "stored": self.stored,
            **({"run": self.run} if self.run else {}),
            **({"fork": True} if self.fork else {}),
            **({"pack": True} if self.pack else {}),
            **({"slot": [self.slot.pack, self.slot.offset]} if self.slot else {}),
        }

    @classmethod
    def from_dict(cls, digest: str, data: Any) -> Self:
        """Parse :meth:`to_dict` output (any format); malformed data is a CorruptionError."""
        what = f"tensor record {digest[:16]}…"
        try:
            delta, slot = data["delta"], data.get("slot")
            planes = tuple(_strs(p) for p in data["planes"])
            if any(d.startswith(layout.CHUNKS) for p in planes for d in p):  # format 1: keys
                planes = tuple(tuple(layout.chunk_digest_of_key(d) for d in p) for p in planes)
            record = cls(
                digest=digest,
                dtype=_str(data["dtype"]),
                shape=_ints(data["shape"]),
                scheme=data["scheme"],
                sdtype=_str(data["sdtype"]),
                count=_int(data["count"]),
                crc=_int(data["crc"]),
                raw=_int(data["raw"]),
                delta=None
                if delta is None
                else Delta(_str(delta["op"]), _str(delta["base"]), bool(delta.get("rev"))),
                compressor=data["compressor"],
                chunk_bytes=_int(data["chunk_bytes"]),
                planes=planes,
                plane_stored=_ints(data["plane_stored"]),
                run=_int(data.get("run", 0)),
                fork=bool(data.get("fork", False)),
                pack=bool(data.get("pack", False)),
                slot=None if slot is None else Slot(_str(slot[0]), _int(slot[1])),
                version=_int(data.get("v", 1)),
            )
        except (KeyError, TypeError, AttributeError, ValueError, StorageError) as exc:
            raise CorruptionError(f"{what} is corrupt ({type(exc).__name__}: {exc})") from exc
        _check_shape(record, what)
        return record

    def dump(self) -> bytes:
        """The stored (sealed) bytes."""
        return seal(self.to_dict())


def _str(x: Any) -> str:
    if not isinstance(x, str):
        raise TypeError(f"expected str, got {type(x).__name__}")
    return x


def _strs(xs: Any) -> tuple[str, ...]:
    out = tuple(xs)
    if not all(type(x) is str for x in out):
        raise TypeError("expected a list of str")
    return out


def _ints(xs: Any) -> tuple[int, ...]:
    out = tuple(xs)
    if not all(type(x) is int and x >= 0 for x in out):
        raise TypeError("expected a list of non-negative ints")
    return out


def _int(x: Any) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x < 0:
        raise TypeError(f"expected a non-negative int, got {x!r}")
    return x


def _check_shape(record: TensorRecord, what: str) -> None:
    n = math.prod(record.shape)
    planes, step = record.nplanes, record.chunk_bytes or 1
    size = n * record.stored_dtype.itemsize
    chunks = 0 if record.slot is not None else -(-record.plane_size // step)
    ok = (
        len(record.planes) == planes == len(record.plane_stored)
        and (record.scheme is not None or size == record.count * record.uint.itemsize)
        and all(len(p) == chunks for p in record.planes)
        and (record.slot is None or (record.delta is None and record.scheme is None))
    )
    if not ok:
        raise CorruptionError(f"{what} is corrupt (inconsistent shape, count or chunk list)")


def load_tensor(digest: str, value: bytes | memoryview) -> TensorRecord:
    """Parse a stored tensor record."""
    what = f"tensor record {digest[:16]}…"
    data = loads(value, what)
    _check_owner(data, "digest", digest, what)
    return TensorRecord.from_dict(digest, data)


@dataclass(frozen=True)
class Manifest:
    """A snapshot: ``tensors`` maps names to tensor digests (stored under ``s/<id>``);
    ``packs`` lists the packs this snapshot's write created (the delta bases of its
    successor's packs)."""

    snapshot_id: str
    tensors: dict[str, str]
    bases: tuple[str, ...] = ()
    created: float = 0.0
    packs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what :meth:`storage.Archive.manifest` returns)."""
        out: dict[str, Any] = {
            "id": self.snapshot_id,
            "tensors": dict(self.tensors),
            "bases": list(self.bases),
            "created": self.created,
        }
        if self.packs:
            out["packs"] = list(self.packs)
        return out

    @classmethod
    def from_dict(cls, snapshot_id: str, data: Any) -> Self:
        """Parse :meth:`to_dict` output; malformed data is a CorruptionError."""
        try:
            tensors = data["tensors"]
            if not isinstance(tensors, dict):
                raise TypeError("tensors is not a mapping")
            return cls(
                snapshot_id=snapshot_id,
                tensors={_str(n): _str(d) for n, d in tensors.items()},
                bases=tuple(_str(b) for b in data.get("bases", ())),
                created=float(data.get("created", 0.0)),
                packs=_strs(data.get("packs", ())),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CorruptionError(
                f"snapshot {snapshot_id!r}: manifest is corrupt ({type(exc).__name__})"
            ) from exc

    def dump(self) -> bytes:
        """The stored (sealed) bytes."""
        return seal(self.to_dict())


def load_manifest(snapshot_id: str, value: bytes | memoryview) -> Manifest:
    """Parse a stored manifest."""
    what = f"snapshot {snapshot_id!r}: manifest"
    data = loads(value, what)
    _check_owner(data, "id", snapshot_id, what)
    return Manifest.from_dict(snapshot_id, data)


def load_edges(digest: str, value: bytes | memoryview | None) -> list[dict[str, Any]]:
    """Parse a stored planner edge list (``[]`` when absent)."""
    if value is None:
        return []
    edges = loads(value, f"edges of {digest[:16]}…")
    if not isinstance(edges, list) or not all(isinstance(e, dict) and "base" in e for e in edges):
        raise CorruptionError(f"edges of {digest[:16]}… are corrupt")
    return edges


def dump_edges(edges: list[dict[str, Any]]) -> bytes:
    """The stored (sealed) bytes of a planner edge list."""
    return seal(edges)
