"""The parameter archive: snapshots of named tensors on a :class:`~storage.abc.Store`.

Key layout (all values JSON unless stated):

* ``c/<sha256 of value>`` — a chunk (binary: kind byte, CRC-32, payload); content-addressed.
* ``t/<tensor digest>`` — how to rebuild one tensor: dtype, shape, scheme, delta base, chunk keys.
* ``e/<tensor digest>`` — measured candidate edges (storage cost per base) for the planner.
* ``s/<snapshot id>`` — manifest ``{name: tensor digest}``, written last in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from storage import planner
from storage._lmdb import DEFAULT_MAP_SIZE, LMDBStore
from storage.abc import Store, Txn
from storage.codecs import (
    DEFAULT_COMPRESSOR,
    BytePlanes,
    DeltaCodec,
    PlaneMerger,
    Scheme,
    Zstd,
    bits_view,
    codec_from_dict,
    crc32,
    dtype_from_name,
    dtype_name,
    frame_chunk,
    is_float,
    n_planes,
    plane_interval,
    unframe_chunk,
)
from storage.errors import (
    ConflictError,
    CorruptionError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)

FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 20
_SAMPLE_WINDOWS = 8
_SAMPLE_ELEMS = 1 << 13  # elements per sample window (8 windows: 64 Ki elements at most)
_EXACT_BELOW = 1 << 16  # elements: below this every candidate is encoded fully
_PARALLEL_ABOVE = 1 << 19  # bytes: smaller tensors are coded on the calling thread


@dataclass(frozen=True)
class TensorInfo:
    """What one tensor of a snapshot costs."""

    name: str
    digest: str
    shape: tuple[int, ...]
    dtype: str
    raw_bytes: int
    stored_bytes: int
    new_bytes: int
    base: str | None
    op: str | None
    scheme: dict[str, Any] | None


@dataclass(frozen=True)
class SnapshotInfo:
    """Result of :meth:`Archive.write_snapshot`."""

    snapshot_id: str
    tensors: dict[str, TensorInfo]

    @property
    def raw_bytes(self) -> int:
        """Raw bytes of all tensors in the snapshot."""
        return sum(t.raw_bytes for t in self.tensors.values())

    @property
    def new_bytes(self) -> int:
        """Bytes of chunks this write added to the archive."""
        return sum(t.new_bytes for t in self.tensors.values())


@dataclass
class ArchiveStats:
    """Storage accounting. ``raw_bytes`` counts every snapshot's tensors (logical size);
    ``stored_bytes`` is what the archive holds (unique chunks plus metadata)."""

    raw_bytes: int = 0
    unique_raw_bytes: int = 0
    chunk_bytes: int = 0
    metadata_bytes: int = 0
    n_snapshots: int = 0
    n_tensors: int = 0
    n_chunks: int = 0
    per_plane: list[int] = field(default_factory=list)
    per_tensor: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_snapshot: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def stored_bytes(self) -> int:
        """Chunk plus metadata bytes."""
        return self.chunk_bytes + self.metadata_bytes

    @property
    def ratio(self) -> float:
        """stored / raw (lower is better)."""
        return self.stored_bytes / self.raw_bytes if self.raw_bytes else 0.0


@dataclass
class VerifyReport:
    """Result of :meth:`Archive.verify`; ``errors`` is empty when everything checks out."""

    chunks: int = 0
    tensors: int = 0
    snapshots: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no error was found."""
        return not self.errors


@dataclass
class GCResult:
    """What :meth:`Archive.gc` removed."""

    snapshots: int = 0
    tensors: int = 0
    chunks: int = 0
    bytes: int = 0


@dataclass
class ReplanResult:
    """What :meth:`Archive.replan` decided and rewrote."""

    result: planner.PlanResult
    storage_before: float
    rewritten: int
    gc: GCResult


def _snapshot_sizes(manifest: dict[str, Any], records: dict[str, Any]) -> dict[str, int]:
    """Raw and stored bytes of the tensors a manifest names (as recorded at write time)."""
    digests = [d for d in manifest["tensors"].values() if d in records]
    return {
        "raw": sum(records[d]["raw"] for d in digests),
        "stored": sum(records[d]["stored"] for d in digests),
    }


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value.encode()) > 400:
        raise InvalidInputError(f"{kind} must be a non-empty str of ≤ 400 bytes, got {value!r}")
    if "\x00" in value:
        raise InvalidInputError(f"{kind} must not contain NUL: {value!r}")
    return value


def _as_array(name: str, value: object) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        raise InvalidInputError(f"tensor {name!r}: pass numpy arrays (tensor.numpy()), not torch")
    if not isinstance(value, np.ndarray | np.generic):
        raise InvalidInputError(
            f"tensor {name!r} must be a numpy array, got {type(value).__name__}"
        )
    arr = np.asarray(value)
    dtype_name(arr.dtype)  # validates
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


class _BitsCache:
    """LRU of reconstructed stored-representation bit arrays, bounded in bytes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, value: np.ndarray) -> None:
        if value.nbytes > self.limit or key in self._items:
            return
        self._items[key] = value
        self.used += value.nbytes
        while self.used > self.limit:
            _, old = self._items.popitem(last=False)
            self.used -= old.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.used = 0


class Archive:
    """A parameter archive. Open with :meth:`open` (LMDB) or pass any :class:`Store`.

    Parameters
    ----------
    store:
        The key/value store.
    compressor:
        Per-chunk compressor (default :data:`storage.codecs.DEFAULT_COMPRESSOR`: zstd level 1 on
        the two high byte planes, -1 on the low ones; measured, see the benchmark's level sweep).
    delta_op:
        ``"xor"`` (default; high-plane reads work through delta chains) or ``"sub"``.
    max_chain:
        Longest delta chain greedy placement at write time may create.
    cache_bytes:
        Memory for recently written/read tensors used as delta bases.
    threads:
        Threads that decode (read) and encode (write) the chunks of different byte planes
        concurrently (default 1; zstd, CRC-32, SHA-256 and numpy copies release the GIL).
    """

    def __init__(
        self,
        store: Store,
        *,
        compressor: Zstd | None = None,
        delta_op: str = "xor",
        max_chain: int = 8,
        cache_bytes: int = 256 << 20,
        threads: int = 1,
    ) -> None:
        self.store = store
        self.compressor = compressor or DEFAULT_COMPRESSOR
        self.delta = DeltaCodec(delta_op)
        if max_chain < 0:
            raise InvalidInputError(f"max_chain must be ≥ 0, got {max_chain}")
        self.max_chain = max_chain
        self._cache = _BitsCache(cache_bytes)
        if not isinstance(threads, int) or threads < 1:
            raise InvalidInputError(f"threads must be a positive int, got {threads!r}")
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._check_format()

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], nbytes: int) -> list[Any]:
        """``[fn(x) for x in items]``, on the decode/encode thread pool when ``threads > 1`` and
        the work (``nbytes``) is worth a hand-off (zstd, CRC, SHA-256 and numpy copies release
        the GIL). Store transactions are only touched by the calling thread."""
        if self.threads == 1 or len(items) < 2 or nbytes < _PARALLEL_ABOVE:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="pas")
        return list(self._pool.map(fn, items))

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
        sync: bool = True,
        **kwargs: Any,
    ) -> Self:
        """Open (creating unless ``readonly``) the LMDB archive in directory ``path``."""
        return cls(LMDBStore(path, read_only=readonly, map_size=map_size, sync=sync), **kwargs)

    def close(self) -> None:
        """Close the underlying store."""
        self._cache.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_format(self) -> None:
        raw = self.store.get("m/format")
        if raw is None:
            if not self.store.read_only:
                self.store.set("m/format", _dumps({"version": FORMAT_VERSION}))
            return
        version = json.loads(raw)["version"]
        if version != FORMAT_VERSION:
            raise StorageError(f"archive format {version} is not supported", code="format")

    # ------------------------------------------------------------------ snapshots

    def has_snapshot(self, snapshot_id: str) -> bool:
        """Whether a snapshot with this id is committed."""
        return self.store.exists("s/" + _check_id("snapshot id", snapshot_id))

    def list_snapshots(self) -> list[str]:
        """Ids of all committed snapshots, sorted."""
        return sorted(k[2:] for k in self.store.list_prefix("s/"))

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        """The stored manifest of a snapshot (``{"tensors": {name: digest}, ...}``)."""
        with self.store.begin() as txn:
            return self._manifest(txn, snapshot_id)

    def _manifest(self, txn: Txn, snapshot_id: str) -> dict[str, Any]:
        raw = txn.get("s/" + _check_id("snapshot id", snapshot_id))
        if raw is None:
            raise NotFoundError(f"no snapshot {snapshot_id!r}")
        return json.loads(bytes(raw))

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot's manifest; its chunks go at the next :meth:`gc`."""
        with self.store.begin(write=True) as txn:
            if not txn.delete("s/" + _check_id("snapshot id", snapshot_id)):
                raise NotFoundError(f"no snapshot {snapshot_id!r}")

    def write_snapshot(
        self,
        snapshot_id: str,
        tensors: Mapping[str, np.ndarray],
        *,
        bases: Sequence[str] = (),
        scheme: Scheme | Mapping[str, Scheme | None] | None = None,
    ) -> SnapshotInfo:
        """Store a snapshot in one write transaction (chunks first, manifest last).

        Parameters
        ----------
        snapshot_id:
            New id; rewriting an existing id with identical tensors is a no-op, with different
            ones a :class:`ConflictError`.
        tensors:
            ``name → numpy array`` (any bool/int/float dtype incl. ml_dtypes bfloat16; 0-d and
            empty arrays allowed).
        bases:
            Earlier snapshot ids whose same-named tensors (same shape, dtype, scheme) are
            candidate delta bases.
        scheme:
            Optional lossy scheme for all tensors, or a per-name mapping.
        """
        _check_id("snapshot id", snapshot_id)
        if not isinstance(tensors, Mapping):
            raise InvalidInputError(f"tensors must be a mapping, got {type(tensors).__name__}")
        arrays = {_check_id("tensor name", n): _as_array(n, a) for n, a in tensors.items()}
        reserve = sum(a.nbytes for a in arrays.values()) * 3 // 2 + (1 << 20)
        with self.store.begin(write=True, reserve=reserve) as txn:
            base_maps = [self._manifest(txn, b)["tensors"] for b in bases]
            infos: dict[str, TensorInfo] = {}
            for name, arr in arrays.items():
                sch = scheme.get(name) if isinstance(scheme, Mapping) else scheme
                candidates = list(dict.fromkeys(m[name] for m in base_maps if name in m))
                infos[name] = self._put_tensor(txn, name, arr, sch, candidates)
            manifest = {
                "tensors": {n: i.digest for n, i in infos.items()},
                "bases": list(bases),
                "created": time.time(),
            }
            old = txn.get("s/" + snapshot_id)
            if old is not None:
                if json.loads(bytes(old))["tensors"] != manifest["tensors"]:
                    raise ConflictError(f"snapshot {snapshot_id!r} exists with other tensors")
                return SnapshotInfo(snapshot_id, infos)
            txn.put("s/" + snapshot_id, _dumps(manifest))
        return SnapshotInfo(snapshot_id, infos)

    # ------------------------------------------------------------------ writing tensors

    @staticmethod
    def _digest(arr: np.ndarray, scheme: Scheme | None) -> str:
        h = hashlib.sha256()
        header = {"dtype": dtype_name(arr.dtype), "shape": list(arr.shape)}
        header["scheme"] = scheme.to_dict() if scheme is not None else None
        h.update(_dumps(header))
        h.update(bits_view(arr).view(np.uint8))
        return h.hexdigest()

    def _put_tensor(
        self, txn: Txn, name: str, arr: np.ndarray, scheme: Scheme | None, candidates: list[str]
    ) -> TensorInfo:
        if scheme is not None and not isinstance(scheme, Scheme):
            raise InvalidInputError(f"scheme must be a Scheme, got {type(scheme).__name__}")
        digest = self._digest(arr, scheme)
        raw = txn.get("t/" + digest)
        if raw is not None:
            return self._info(name, digest, json.loads(bytes(raw)), new_bytes=0)
        fitted = scheme.fit(arr) if scheme is not None else None
        stored = fitted.encode(arr) if fitted is not None else arr
        bits = bits_view(stored)
        record = {
            "v": FORMAT_VERSION,
            "dtype": dtype_name(arr.dtype),
            "shape": list(arr.shape),
            "scheme": fitted.to_dict() if fitted is not None else None,
            "sdtype": dtype_name(stored.dtype),
            "count": int(bits.size),
            "crc": crc32(memoryview(bits).cast("B")),
            "raw": int(arr.nbytes),
        }
        bases = [b for b in candidates if self._compatible(txn, b, record)]
        bases = [b for b in bases if self._depth(txn, b) < self.max_chain]
        (base, encoded, data), edges = self._choose(txn, bits, record, bases)
        if encoded is None:
            encoded = self._encode_planes(data, n_planes(stored.dtype))
        new = self._commit_tensor(txn, digest, record, base, encoded, bits)
        for edge in edges:
            if edge["base"] == base:
                edge.update(cs=record["stored"], est=False)
        txn.put("e/" + digest, _dumps(edges))
        # the cache must not alias the caller's array (it may be mutated after the write)
        self._cache.put(digest, bits.copy() if stored is arr else bits)
        return self._info(name, digest, record, new_bytes=new)

    def _compatible(self, txn: Txn, base: str, record: dict[str, Any]) -> bool:
        other = self._record(txn, base)
        same_scheme = (other["scheme"] or {}).get("name") == (record["scheme"] or {}).get("name")
        return (
            other["sdtype"] == record["sdtype"]
            and other["count"] == record["count"]
            and other["shape"] == record["shape"]
            and same_scheme
        )

    def _depth(self, txn: Txn, digest: str) -> int:
        depth = 0
        record = self._record(txn, digest)
        while record["delta"] is not None:
            depth += 1
            record = self._record(txn, record["delta"]["base"])
        return depth

    def _choose(
        self, txn: Txn, bits: np.ndarray, record: dict[str, Any], bases: list[str]
    ) -> tuple[
        tuple[str | None, list[list[tuple[str, bytes]]] | None, np.ndarray],
        list[dict[str, Any]],
    ]:
        """Pick the smallest of materialise / delta-vs-each-base; return ``(base, its encoded
        chunks or None, the data to encode)`` and all edges. Candidates of tensors above
        ``_EXACT_BELOW`` elements are sized on samples, not encoded."""
        planes = n_planes(dtype_from_name(record["sdtype"]))
        if not bases:
            return (None, None, bits), [{"base": None, "op": None, "cs": None, "est": False}]
        base_bits = {b: self._bits(txn, b, {}) for b in bases}
        exact = bits.size <= _EXACT_BELOW
        sizes: dict[str | None, float] = {}
        encoded: dict[str | None, list[list[tuple[str, bytes]]]] = {}
        datas: dict[str | None, np.ndarray] = {}
        for b in [None, *bases]:
            data = datas[b] = bits if b is None else self.delta.encode(bits, base_bits[b])
            if exact:
                encoded[b] = self._encode_planes(data, planes)
                sizes[b] = sum(len(v) for p in encoded[b] for _, v in p)
            else:
                sizes[b] = self._estimate(data, planes)
        best = min(sizes, key=lambda b: (sizes[b], b is not None))
        edges = [
            {
                "base": b,
                "op": None if b is None else self.delta.op,
                "cs": sizes[b],
                "est": not exact,
            }
            for b in sizes
        ]
        return (best, encoded.get(best), datas[best]), edges

    def _estimate(self, data: np.ndarray, planes: int) -> float:
        """Encoded size of ``data`` estimated from ``_SAMPLE_WINDOWS`` evenly spaced windows."""
        count = data.size
        step = max(count // _SAMPLE_WINDOWS, _SAMPLE_ELEMS)
        total = sampled = 0
        for start in range(0, count, step):
            window = data[start : start + _SAMPLE_ELEMS]
            for p, plane in enumerate(BytePlanes.split(window, planes)):
                kind, payload = self.compressor.encode(plane, p if planes > 1 else None)
                total += len(payload) + 5
            sampled += window.size
        return total * count / max(sampled, 1)

    def _encode_planes(self, data: np.ndarray, planes: int) -> list[list[tuple[str, bytes]]]:
        split = BytePlanes.split(data, planes)
        jobs = [
            (p if planes > 1 else None, memoryview(plane).cast("B")[start : start + CHUNK_BYTES])
            for p, plane in enumerate(split)
            for start in range(0, plane.nbytes, CHUNK_BYTES)
        ]

        def encode(job: tuple[int | None, memoryview]) -> tuple[str, bytes]:
            value = frame_chunk(*self.compressor.encode(job[1], job[0]))
            return "c/" + hashlib.sha256(value).hexdigest()[:40], value

        values = iter(self._map(encode, jobs, data.nbytes))
        return [[next(values) for _ in range(0, plane.nbytes, CHUNK_BYTES)] for plane in split]

    def _commit_tensor(
        self,
        txn: Txn,
        digest: str,
        record: dict[str, Any],
        base: str | None,
        encoded: list[list[tuple[str, bytes]]] | None,
        bits: np.ndarray | None = None,
    ) -> int:
        """Encode (unless given), write chunks and the tensor record; return new chunk bytes."""
        planes = n_planes(dtype_from_name(record["sdtype"]))
        if encoded is None:
            assert bits is not None
            data = bits if base is None else self.delta.encode(bits, self._bits(txn, base, {}))
            encoded = self._encode_planes(data, planes)
        new = 0
        for plane in encoded:
            for key, value in plane:
                if txn.put_if_absent(key, value):
                    new += len(value)
        record["delta"] = None if base is None else {"op": self.delta.op, "base": base}
        record["compressor"] = self.compressor.to_dict()
        record["chunk_bytes"] = CHUNK_BYTES
        record["planes"] = [[k for k, _ in p] for p in encoded]
        record["plane_stored"] = [sum(len(v) for _, v in p) for p in encoded]
        record["stored"] = sum(record["plane_stored"])
        txn.put("t/" + digest, _dumps(record))
        return new

    def _info(self, name: str, digest: str, record: dict[str, Any], new_bytes: int) -> TensorInfo:
        delta = record.get("delta")
        return TensorInfo(
            name=name,
            digest=digest,
            shape=tuple(record["shape"]),
            dtype=record["dtype"],
            raw_bytes=record["raw"],
            stored_bytes=record["stored"],
            new_bytes=new_bytes,
            base=delta["base"] if delta else None,
            op=delta["op"] if delta else None,
            scheme=record["scheme"],
        )

    # ------------------------------------------------------------------ reading

    def _record(self, txn: Txn, digest: str) -> dict[str, Any]:
        raw = txn.get("t/" + digest)
        if raw is None:
            raise NotFoundError(f"tensor record {digest[:16]}… is missing")
        return json.loads(bytes(raw))

    @staticmethod
    def _plane_size(record: dict[str, Any]) -> int:
        sdtype = dtype_from_name(record["sdtype"])
        return record["count"] * (1 if n_planes(sdtype) > 1 else sdtype.itemsize)

    def _fetch(self, txn: Txn, record: dict[str, Any], k: int, where: str) -> list[Any]:
        """Zero-copy store values of the chunks of plane ``k``: ``(start, n, value, label)``."""
        size, step = self._plane_size(record), record["chunk_bytes"]
        out = []
        for i, key in enumerate(record["planes"][k]):
            value = txn.get(key)
            label = f"{key} (tensor {where}, plane {k}, chunk {i})"
            if value is None:
                raise CorruptionError(f"missing chunk {label}")
            out.append((i * step, min(step, size - i * step), value, label))
        return out

    @staticmethod
    def _chunk_data(n: int, value: Any, label: str) -> np.ndarray:
        """CRC-check and decode one chunk; raw chunks stay views of the store's buffer."""
        kind, payload = unframe_chunk(value, label)
        data = Zstd.decode(kind, payload, n)
        if len(data) != n:
            raise CorruptionError(f"corrupt chunk {label}: wrong decoded length")
        return np.frombuffer(data, np.uint8)

    def _decode_planes(
        self,
        txn: Txn,
        record: dict[str, Any],
        planes: Sequence[int],
        sink: Callable[[int, int, int, np.ndarray], None],
        where: str,
    ) -> None:
        """Decode the given planes of one record's own chunks (no delta applied), handing each
        chunk to ``sink(plane, start, n, data)``; ``data`` is only valid during the call.
        Chunks of different planes may be decoded concurrently."""
        jobs = [(p, self._fetch(txn, record, p, where)) for p in planes]

        def run(job: tuple[int, list[Any]]) -> None:
            p, chunks = job
            for start, n, value, label in chunks:
                sink(p, start, n, self._chunk_data(n, value, label))

        self._map(run, jobs, self._plane_size(record) * len(jobs))

    def _plane(self, txn: Txn, record: dict[str, Any], k: int, where: str) -> np.ndarray:
        """Decode plane ``k`` of one record's own chunks (no delta applied)."""
        out = np.empty(self._plane_size(record), np.uint8)

        def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
            out[start : start + n] = data

        self._decode_planes(txn, record, [k], sink, where)
        return out

    def _merge_record(self, txn: Txn, record: dict[str, Any], k: int, where: str) -> np.ndarray:
        """Top ``k`` planes of a record's own chunks decoded straight into the columns of a new
        bit-pattern array (missing low bytes zero): no per-plane intermediate."""
        sdtype = dtype_from_name(record["sdtype"])
        total = n_planes(sdtype)
        uint = bits_view(np.empty(0, sdtype)).dtype
        count = record["count"]
        if total == 1 or k == 1:
            flat = np.empty(count, uint)
            if total == 1:
                u8 = flat.view(np.uint8)

                def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
                    u8[start : start + n] = data

            else:
                shift = 8 * (total - 1)

                def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
                    np.left_shift(data, shift, out=flat[start : start + n], dtype=uint)

            self._decode_planes(txn, record, range(k), sink, where)
            return flat
        merger = PlaneMerger(total, count, uint)

        def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
            merger.put(p, start, data)

        self._decode_planes(txn, record, range(k), sink, where)
        return merger.result()

    def _planes(
        self,
        txn: Txn,
        digest: str,
        k: int,
        memo: dict[tuple[str, int], list[np.ndarray]],
        where: str,
    ) -> list[np.ndarray]:
        """The top ``k`` planes of a tensor's stored representation, through its delta chain.

        An XOR chain is decoded by accumulation: the planes of its root (a materialised tensor,
        a cached or memoised one) are decoded once, then every link's chunks are XOR-ed into
        them in place, chunk by chunk. The returned arrays may be shared through ``memo``."""
        if (digest, k) in memo:
            return memo[(digest, k)]
        record = self._record(txn, digest)
        total = n_planes(dtype_from_name(record["sdtype"]))
        delta = record["delta"]
        if delta is None:
            planes = [self._plane(txn, record, p, where) for p in range(k)]
        elif delta["op"] != "xor":
            planes = BytePlanes.split(self._bits(txn, digest, memo, where), total)[:k]
        else:
            links = [record]
            acc: list[np.ndarray] | None = None
            while acc is None:
                base = links[-1]["delta"]["base"]
                cached = self._cache.get(base)
                if (base, k) in memo:
                    acc = [p.copy() for p in memo[(base, k)]]
                elif cached is not None:
                    acc = BytePlanes.split(cached, total)[:k]
                else:
                    rec = self._record(txn, base)
                    if rec["delta"] is None:
                        acc = [self._plane(txn, rec, p, where) for p in range(k)]
                    elif rec["delta"]["op"] != "xor":
                        acc = [p.copy() for p in self._planes(txn, base, k, memo, where)]
                    else:
                        links.append(rec)

            def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
                view = acc[p][start : start + n]
                np.bitwise_xor(view, data, out=view)

            for rec in reversed(links):
                self._decode_planes(txn, rec, range(k), sink, where)
            planes = acc
        memo[(digest, k)] = planes
        return planes

    def _bits(
        self,
        txn: Txn,
        digest: str,
        memo: dict[tuple[str, int], list[np.ndarray]],
        where: str = "",
    ) -> np.ndarray:
        """Full, CRC-checked bit-pattern view of a tensor's stored representation (shared with
        the cache when it came from there: do not modify)."""
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        record = self._record(txn, digest)
        dtype = dtype_from_name(record["sdtype"])
        total = n_planes(dtype)
        uint = bits_view(np.empty(0, dtype)).dtype
        delta = record["delta"]
        label = where or digest[:16]
        if delta is None:
            bits = self._merge_record(txn, record, total, label)
        elif delta["op"] == "xor":
            planes = self._planes(txn, digest, total, memo, label)
            bits = BytePlanes.merge(planes, total, record["count"], uint)
            if total == 1:
                bits = bits.copy()  # a memoised plane: never hand it out
        else:
            own = self._merge_record(txn, record, total, label)
            bits = DeltaCodec("sub").decode(own, self._bits(txn, delta["base"], memo, label))
        if crc32(memoryview(bits).cast("B")) != record["crc"]:
            raise CorruptionError(f"tensor {label!r} does not match its digest after decoding")
        return bits

    def _known(
        self,
        txn: Txn,
        digest: str,
        record: dict[str, Any],
        k: int,
        memo: dict[Any, Any],
        where: str,
    ) -> np.ndarray:
        """Bit patterns with only the top ``k`` (< all) planes known, the low bytes zero."""
        sdtype = dtype_from_name(record["sdtype"])
        if record["delta"] is None:
            return self._merge_record(txn, record, k, where)
        uint = bits_view(np.empty(0, sdtype)).dtype
        planes = self._planes(txn, digest, k, memo, where)
        return BytePlanes.merge(planes, n_planes(sdtype), record["count"], uint)

    def _tensor(
        self, txn: Txn, digest: str, planes: int | None, memo: dict[Any, Any], where: str
    ) -> np.ndarray:
        record = self._record(txn, digest)
        sdtype = dtype_from_name(record["sdtype"])
        total = n_planes(sdtype)
        k = self._check_planes(planes, total)
        if k == total:
            shared = self._cache.get(digest)
            bits = shared if shared is not None else self._bits(txn, digest, memo, where)
            return self._finish(record, bits.view(sdtype), copy=shared is not None)
        return self._finish(record, self._known(txn, digest, record, k, memo, where).view(sdtype))

    @staticmethod
    def _check_planes(planes: int | None, total: int) -> int:
        if planes is None:
            return total
        if not isinstance(planes, int) or planes < 1:
            raise InvalidInputError(f"planes must be a positive int, got {planes!r}")
        return min(planes, total)

    @staticmethod
    def _finish(record: dict[str, Any], stored: np.ndarray, copy: bool = False) -> np.ndarray:
        """The caller's array: ``stored`` decoded by its scheme and reshaped; ``copy`` when
        ``stored`` is shared (the write cache) and must not be handed out."""
        dtype = dtype_from_name(record["dtype"])
        if record["scheme"] is not None:
            scheme = codec_from_dict(record["scheme"])
            assert isinstance(scheme, Scheme)
            stored, copy = scheme.decode(stored, dtype), False
        out = stored.reshape(record["shape"])
        return out.copy() if copy else out

    def read_tensor(self, snapshot_id: str, name: str, *, planes: int | None = None) -> np.ndarray:
        """One tensor of a snapshot, bit-exact; with ``planes=k`` only the top ``k`` byte planes
        are read and the low bytes are zero (non-float tensors are always exact)."""
        with self.store.begin() as txn:
            digest = self._digest_of(txn, snapshot_id, name)
            return self._tensor(txn, digest, planes, {}, name)

    def read_snapshot(
        self, snapshot_id: str, *, planes: int | None = None
    ) -> dict[str, np.ndarray]:
        """All tensors of a snapshot (shared delta bases are decoded once)."""
        with self.store.begin() as txn:
            names = self._manifest(txn, snapshot_id)["tensors"]
            memo: dict[Any, Any] = {}
            return {n: self._tensor(txn, d, planes, memo, n) for n, d in names.items()}

    def read_interval(
        self, snapshot_id: str, name: str, *, planes: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` such that every non-NaN true value lies in ``[lo, hi]``, reading only the
        top ``planes`` byte planes. Signs are handled (for negatives, padding the unknown bits
        with 1s gives the lower bound). Bounds that padding pushes into the NaN range become
        ±inf; where the known bits already prove a NaN, both bounds are NaN. Non-float tensors
        and integer schemes give ``lo == hi == value``."""
        with self.store.begin() as txn:
            digest = self._digest_of(txn, snapshot_id, name)
            record = self._record(txn, digest)
            sdtype = dtype_from_name(record["sdtype"])
            total = n_planes(sdtype)
            k = self._check_planes(planes, total)
            if k == total or not is_float(sdtype):
                value = self._tensor(txn, digest, None, {}, name)
                return value, value.copy()
            known = self._known(txn, digest, record, k, {}, name)
            lo, hi = plane_interval(known, sdtype, k)
            return self._finish(record, lo), self._finish(record, hi)

    def _digest_of(self, txn: Txn, snapshot_id: str, name: str) -> str:
        tensors = self._manifest(txn, snapshot_id)["tensors"]
        if name not in tensors:
            raise NotFoundError(f"snapshot {snapshot_id!r} has no tensor {name!r}")
        return tensors[name]

    # ------------------------------------------------------------------ maintenance

    def _scan(self, txn: Txn, prefix: str) -> Iterator[tuple[str, Any]]:
        for key in list(txn.keys(prefix)):
            value = txn.get(key)
            assert value is not None
            yield key[len(prefix) :], value

    def stats(self) -> ArchiveStats:
        """Raw and stored bytes in total, per byte plane, per tensor and per snapshot."""
        out = ArchiveStats()
        with self.store.begin() as txn:
            records = {d: json.loads(bytes(v)) for d, v in self._scan(txn, "t/")}
            chunk_size = {"c/" + k: len(v) for k, v in self._scan(txn, "c/")}
            out.metadata_bytes = sum(
                len(v) for p in ("t/", "e/", "s/", "m/") for _, v in self._scan(txn, p)
            )
            manifests = {s: json.loads(bytes(v)) for s, v in self._scan(txn, "s/")}
        seen: set[str] = set()
        for digest, rec in records.items():
            for p, keys in enumerate(rec["planes"]):
                while len(out.per_plane) <= p:
                    out.per_plane.append(0)
                for key in keys:
                    if key not in seen and key in chunk_size:
                        seen.add(key)
                        out.per_plane[p] += chunk_size[key]
            out.per_tensor[digest] = {
                "raw": rec["raw"],
                "stored": rec["stored"],
                "plane_stored": rec["plane_stored"],
                "base": (rec["delta"] or {}).get("base"),
                "dtype": rec["dtype"],
            }
        out.chunk_bytes = sum(chunk_size.values())
        out.n_chunks, out.n_tensors, out.n_snapshots = len(chunk_size), len(records), len(manifests)
        out.unique_raw_bytes = sum(r["raw"] for r in records.values())
        for sid, man in manifests.items():
            out.per_snapshot[sid] = _snapshot_sizes(man, records)
            out.raw_bytes += out.per_snapshot[sid]["raw"]
        return out

    def snapshot_stats(self, snapshot_id: str) -> dict[str, int]:
        """``{"raw", "stored"}`` bytes of one snapshot, reading only its manifest and tensor
        records (:meth:`stats` scans the whole archive)."""
        with self.store.begin() as txn:
            man = self._manifest(txn, snapshot_id)
            records = {d: self._record(txn, d) for d in set(man["tensors"].values())}
        return _snapshot_sizes(man, records)

    def verify(self) -> VerifyReport:
        """Check every chunk (CRC and SHA-256 key), every tensor (decoded CRC) and that every
        manifest's tensors exist. Never raises for corruption; lists it in ``errors``."""
        report = VerifyReport()
        with self.store.begin() as txn:
            for key, value in self._scan(txn, "c/"):
                report.chunks += 1
                try:
                    unframe_chunk(value, "c/" + key)
                    if hashlib.sha256(value).hexdigest()[:40] != key:
                        raise CorruptionError(f"corrupt chunk c/{key}: SHA-256 mismatch")
                except CorruptionError as exc:
                    report.errors.append(str(exc))
            for digest, _ in list(self._scan(txn, "t/")):
                report.tensors += 1
                try:
                    self._bits(txn, digest, {}, digest[:16])
                except StorageError as exc:
                    report.errors.append(str(exc))
            for sid, value in self._scan(txn, "s/"):
                report.snapshots += 1
                for name, digest in json.loads(bytes(value))["tensors"].items():
                    if txn.get("t/" + digest) is None:
                        report.errors.append(f"snapshot {sid!r}: tensor {name!r} is missing")
        return report

    def gc(self, live_snapshot_ids: Sequence[str] | None = None) -> GCResult:
        """Remove unreferenced tensor records and chunks in one write transaction.

        If ``live_snapshot_ids`` is given, snapshots not in it are deleted first.
        """
        result = GCResult()
        self._cache.clear()
        with self.store.begin(write=True) as txn:
            if live_snapshot_ids is not None:
                live = set(live_snapshot_ids)
                for sid in list(k[2:] for k in txn.keys("s/")):
                    if sid not in live:
                        txn.delete("s/" + sid)
                        result.snapshots += 1
            reachable: set[str] = set()
            stack = [
                d
                for _, v in self._scan(txn, "s/")
                for d in json.loads(bytes(v))["tensors"].values()
            ]
            records: dict[str, dict[str, Any]] = {}
            while stack:
                d = stack.pop()
                if d in reachable:
                    continue
                reachable.add(d)
                records[d] = self._record(txn, d)
                if records[d]["delta"] is not None:
                    stack.append(records[d]["delta"]["base"])
            chunks = {k for r in records.values() for p in r["planes"] for k in p}
            for digest in [k[2:] for k in txn.keys("t/")]:
                if digest not in reachable:
                    txn.delete("t/" + digest)
                    txn.delete("e/" + digest)
                    result.tensors += 1
            for key in list(txn.keys("c/")):
                if key not in chunks:
                    value = txn.get(key)
                    result.bytes += len(value) if value is not None else 0
                    txn.delete(key)
                    result.chunks += 1
        return result

    # ------------------------------------------------------------------ planning

    def storage_graph(self) -> tuple[planner.StorageGraph, dict[str, str | None]]:
        """The matrix storage graph of the archive and the current base of every tensor.

        Storage costs are the measured (or sampled) encoded sizes recorded at write time;
        recreation cost of an edge is estimated as bytes decoded plus bytes read
        (``raw + cs``)."""
        with self.store.begin() as txn:
            records = {d: json.loads(bytes(v)) for d, v in self._scan(txn, "t/")}
            edges = {d: json.loads(bytes(v)) for d, v in self._scan(txn, "e/")}
            groups = {
                s: sorted(set(json.loads(bytes(v))["tensors"].values()))
                for s, v in self._scan(txn, "s/")
            }
        current = {d: (r["delta"] or {}).get("base") for d, r in records.items()}
        best: dict[tuple[str, str], float] = {}
        for d, rec in records.items():
            size = rec["count"] * dtype_from_name(rec["sdtype"]).itemsize
            for e in edges.get(d, []):
                base = e["base"]
                if base is not None and base not in records:
                    continue
                cs = e["cs"] if e["cs"] is not None else rec["stored"]
                if base == current[d]:
                    cs = rec["stored"]  # exact for the edge actually stored
                key = (planner.ROOT if base is None else base, d)
                key = key if base is None else tuple(sorted(key))  # type: ignore[assignment]
                best[key] = min(best.get(key, float("inf")), float(cs))
            if (planner.ROOT, d) not in best:
                best[(planner.ROOT, d)] = float(rec["stored"] if current[d] is None else size)
        sizes = {d: r["count"] * dtype_from_name(r["sdtype"]).itemsize for d, r in records.items()}
        graph_edges = [
            planner.Edge(u, v, cs, float(sizes[v if v != planner.ROOT else u] + cs))
            for (u, v), cs in best.items()
        ]
        return planner.StorageGraph(sorted(records), graph_edges, groups), current

    def replan(
        self, algorithm: str = "pas-mt", *, alpha: float = 2.0, scheme: str = "independent"
    ) -> ReplanResult:
        """Re-optimise the archive with ``algorithm`` under θ_i = α · C_r(SPT, s_i) and rewrite
        only the tensors whose base changes, one committed write transaction per tensor in
        new-plan order (so a crash at any point leaves a consistent archive), then gc."""
        graph, current = self.storage_graph()
        before = sum(
            e.cs
            for e in graph.edges
            if (e.u == planner.ROOT and current.get(e.v) is None)
            or (e.u != planner.ROOT and (current.get(e.v) == e.u or current.get(e.u) == e.v))
        )
        result = planner.solve(graph, algorithm, alpha=alpha, scheme=scheme)
        rewritten = 0
        for digest in self._plan_order(result.plan):
            base = result.plan.base_of(digest)
            new_base = None if base == planner.ROOT else base
            if new_base == current.get(digest):
                continue
            self._rewrite(digest, new_base)
            rewritten += 1
        return ReplanResult(result, before, rewritten, self.gc())

    @staticmethod
    def _plan_order(plan: planner.Plan) -> list[str]:
        children: dict[str, list[str]] = {}
        for v in plan.parent:
            children.setdefault(plan.base_of(v), []).append(v)
        order, queue = [], list(children.get(planner.ROOT, []))
        while queue:
            v = queue.pop(0)
            order.append(v)
            queue.extend(sorted(children.get(v, [])))
        return order

    def _rewrite(self, digest: str, base: str | None) -> None:
        with self.store.begin() as txn:
            record = self._record(txn, digest)
            bits = self._bits(txn, digest, {})
            base_bits = None if base is None else self._bits(txn, base, {})
        data = bits if base_bits is None else self.delta.encode(bits, base_bits)
        encoded = self._encode_planes(data, n_planes(dtype_from_name(record["sdtype"])))
        with self.store.begin(write=True, reserve=int(bits.nbytes) * 2) as txn:
            self._commit_tensor(txn, digest, record, base, encoded)
            edges = json.loads(bytes(txn.get("e/" + digest) or b"[]"))
            size = float(record["stored"])
            edges = [e for e in edges if e["base"] != base]
            edges.append(
                {
                    "base": base,
                    "op": None if base is None else self.delta.op,
                    "cs": size,
                    "est": False,
                }
            )
            txn.put("e/" + digest, _dumps(edges))
