"""The parameter archive: snapshots of named tensors on a :class:`~storage.abc.Store`.

The key layout lives in :mod:`storage.layout`, the record types in :mod:`storage.records`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Self

import blake3
import numpy as np

from storage import layout, planner
from storage._lmdb import DEFAULT_MAP_SIZE, LMDBStore
from storage._s3 import S3Store, is_s3_url
from storage.abc import Store, Txn
from storage.codecs import (
    DEFAULT_COMPRESSOR,
    BytePlanes,
    DeltaCodec,
    PlaneMerger,
    Scheme,
    Zstd,
    bits_view,
    chunk_digest,
    chunk_salt,
    codec_from_dict,
    crc32,
    dtype_from_name,
    dtype_name,
    frame_chunk,
    is_float,
    n_planes,
    plane_interval,
    unframe_chunk,
    work_buffer,
)
from storage.errors import (
    ConflictError,
    CorruptionError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)
from storage.records import (
    RECORD_VERSION,
    Delta,
    Manifest,
    Slot,
    TensorRecord,
    dump_edges,
    dumps,
    load_edges,
    load_manifest,
    load_tensor,
    loads,
    seal,
)

#: Archive format written: 2 seals every record with a CRC-32, 3 adds packs of small tensors
#: (see :mod:`storage.records`).
FORMAT_VERSION = 3
#: Formats this code reads; opening an older archive for writing marks it format 3 (its records
#: stay as they are and read as before).
READABLE_FORMATS = (1, 2, 3)
CHUNK_BYTES = 1 << 20
#: Default ``pack_below``: lossless tensors smaller than this (bytes) are stored in packs.
PACK_BELOW = 128 << 10
PACK_BYTES = 1 << 20  # a pack holds at most this many bytes (or one tensor)
_PARSED_MAX = 1 << 14  # parsed records kept across transactions
_SAMPLE_WINDOWS = 8
_SAMPLE_ELEMS = 1 << 13  # elements per sample window (8 windows: 64 Ki elements at most)
_EXACT_BELOW = 1 << 16  # elements: below this every candidate is encoded fully
_PARALLEL_ABOVE = 1 << 19  # bytes: smaller tensors are coded on the calling thread
_MAX_LINKS = 1 << 16  # a delta chain longer than this is a cycle: corrupt
# a read on a store with batch reads fetches ahead the chunks of this many raw plane bytes at a
# time (then decodes them, then fetches the next window): bounds what is held fetched
_PREFETCH_BYTES = 64 << 20

Encoded = list[list[tuple[str, bytes]]]  # per plane: (chunk digest, stored value)


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


@dataclass
class _Ctx:
    """One operation on one transaction: records parsed once, decoded planes shared."""

    txn: Txn
    where: str = ""  # the snapshot id, for error messages
    records: dict[str, TensorRecord] = field(default_factory=dict)
    planes: dict[tuple[str, int], list[np.ndarray]] = field(default_factory=dict)
    fresh: bool = False  # decode everything from the store (verify), never from the cache
    packs: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # (pack, planes)
    fetched: dict[str, Any] = field(default_factory=dict)  # store values fetched ahead

    def get(self, key: str) -> Any:
        """The store value under ``key``: fetched ahead, or from the transaction now."""
        value = self.fetched.get(key)
        return value if value is not None else self.txn.get(key)

    def label(self, name: str) -> str:
        """``name`` qualified by the snapshot, for error messages."""
        return f"{name!r} of snapshot {self.where!r}" if self.where else repr(name)


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


def tensor_digest(
    arr: np.ndarray,
    scheme: Scheme | dict[str, Any] | None,
    version: int = 1,
    pack: bool = False,
) -> str:
    """Content digest of a tensor: its dtype, shape, (unfitted) scheme and bit patterns
    (``pack``: of a pack of small tensors, a name space of its own)."""
    conf = scheme.to_dict() if isinstance(scheme, Scheme) else scheme
    header: dict[str, Any] = {
        "dtype": dtype_name(arr.dtype),
        "shape": list(arr.shape),
        "scheme": conf,
    }
    if pack:
        header["pack"] = True
    h = hashlib.sha256() if version < 2 else blake3.blake3()
    h.update(dumps(header))
    h.update(bits_view(arr).view(np.uint8).data)
    return h.hexdigest()


def _shares(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, in integers that sum to ``total``."""
    whole = sum(weights)
    out = [total * w // whole if whole else 0 for w in weights]
    if out:
        out[-1] += total - sum(out)
    return out


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

    def pop(self, key: str) -> np.ndarray | None:
        item = self._items.pop(key, None)
        if item is not None:
            self.used -= item.nbytes
        return item

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
        Longest delta chain a write may create.
    cache_bytes:
        Memory for recently written/read tensors used as delta bases.
    threads:
        Threads that decode (read) and encode (write) the chunks of different byte planes
        concurrently (default 1; zstd, CRC-32, hashing and numpy copies release the GIL).
    pack_below:
        Lossless tensors smaller than this many bytes are stored in one pack per snapshot and
        stored dtype (one record and one chunk per plane for all of them, delta-encoded against
        the predecessor's pack); 0 stores every tensor on its own.
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
        pack_below: int = PACK_BELOW,
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
        if not isinstance(pack_below, int) or pack_below < 0:
            raise InvalidInputError(f"pack_below must be an int ≥ 0, got {pack_below!r}")
        self.pack_below = pack_below
        # digest -> (stored bytes, record): a record is parsed once and reused while its stored
        # bytes are unchanged (compared in full, so a rewrite by anyone is seen)
        self._parsed: dict[str, tuple[bytes, TensorRecord]] = {}
        self._manifests: dict[str, tuple[bytes, Manifest]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._spare: np.ndarray | None = None
        self._check_format()

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], nbytes: int) -> list[Any]:
        """``[fn(x) for x in items]``, on the decode/encode thread pool when ``threads > 1`` and
        the work (``nbytes``) is worth a hand-off. Store transactions are only touched by the
        calling thread."""
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
        """Open (creating unless ``readonly``) the LMDB archive in directory ``path``, or the
        archive in an S3 bucket when ``path`` is ``s3://BUCKET/PREFIX?endpoint=URL``."""
        if is_s3_url(path):
            return cls(S3Store.from_url(str(path), read_only=readonly), **kwargs)
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
        raw = self.store.get(layout.FORMAT_KEY)
        if raw is None:
            if not self.store.read_only:
                self.store.set(layout.FORMAT_KEY, dumps({"version": FORMAT_VERSION}))
            self.format_version = FORMAT_VERSION
            return
        meta = loads(raw, "archive format marker")
        version = meta.get("version") if isinstance(meta, dict) else None
        if version not in READABLE_FORMATS:
            raise StorageError(f"archive format {version!r} is not supported", code="format")
        if version != FORMAT_VERSION and not self.store.read_only:
            self.store.set(layout.FORMAT_KEY, dumps({"version": FORMAT_VERSION}))
            version = FORMAT_VERSION
        self.format_version = int(version)

    # ------------------------------------------------------------------ records

    def _maybe_record(self, ctx: _Ctx, digest: str) -> TensorRecord | None:
        record = ctx.records.get(digest)
        if record is None:
            raw = ctx.get(layout.tensor_key(digest))
            if raw is None:
                return None
            hit = self._parsed.get(digest)
            if hit is not None and hit[0] == raw:
                record = ctx.records[digest] = hit[1]
                return record
            try:
                record = ctx.records[digest] = load_tensor(digest, raw)
            except CorruptionError as exc:
                if not ctx.where:
                    raise
                raise CorruptionError(f"snapshot {ctx.where!r}: {exc}") from exc
            self._remember(digest, bytes(raw), record)
        return record

    def _remember(self, digest: str, raw: bytes, record: TensorRecord) -> None:
        if len(self._parsed) >= _PARSED_MAX:
            self._parsed.clear()
        self._parsed[digest] = (raw, record)

    def tensor_record(self, digest: str) -> TensorRecord:
        """The verified record of the tensor stored under ``digest`` (its planes' chunks and
        stored sizes, its delta base): for readers that plan partial reads."""
        with self.store.begin() as txn:
            return self._record(_Ctx(txn, fresh=True), digest)

    def _record(self, ctx: _Ctx, digest: str) -> TensorRecord:
        record = self._maybe_record(ctx, digest)
        if record is None:
            where = f"snapshot {ctx.where!r}: " if ctx.where else ""
            raise NotFoundError(f"{where}tensor record {digest[:16]}… is missing")
        return record

    def _put_record(self, ctx: _Ctx, record: TensorRecord) -> None:
        raw = record.dump()
        ctx.txn.put(layout.tensor_key(record.digest), raw)
        ctx.records[record.digest] = record
        self._remember(record.digest, raw, record)

    def _chain(self, ctx: _Ctx, digest: str) -> list[TensorRecord]:
        """The record of ``digest`` and of every record a read of it needs (its pack, delta
        bases), nearest first."""
        chain = [self._record(ctx, digest)]
        while (base := chain[-1].link) is not None:
            if len(chain) > _MAX_LINKS:
                raise CorruptionError(f"delta chain of {digest[:16]}… does not end: corrupt")
            chain.append(self._record(ctx, base))
        return chain

    # ------------------------------------------------------------------ snapshots

    def has_snapshot(self, snapshot_id: str) -> bool:
        """Whether a snapshot with this id is committed."""
        return self.store.exists(layout.snapshot_key(_check_id("snapshot id", snapshot_id)))

    def list_snapshots(self) -> list[str]:
        """Ids of all committed snapshots, sorted."""
        keys = self.store.list_prefix(layout.SNAPSHOTS)
        return sorted(layout.name_of(layout.SNAPSHOTS, k) for k in keys)

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        """The stored manifest of a snapshot (``{"tensors": {name: digest}, ...}``)."""
        with self.store.begin() as txn:
            return self._manifest(_Ctx(txn, snapshot_id), snapshot_id).to_dict()

    def _maybe_manifest(self, ctx: _Ctx, snapshot_id: str) -> Manifest | None:
        raw = ctx.txn.get(layout.snapshot_key(_check_id("snapshot id", snapshot_id)))
        if raw is None:
            return None
        hit = self._manifests.get(snapshot_id)
        if hit is not None and hit[0] == raw:  # parsed before, stored bytes unchanged
            return hit[1]
        manifest = load_manifest(snapshot_id, raw)
        if len(self._manifests) >= _PARSED_MAX:
            self._manifests.clear()
        self._manifests[snapshot_id] = (bytes(raw), manifest)
        return manifest

    def _manifest(self, ctx: _Ctx, snapshot_id: str) -> Manifest:
        manifest = self._maybe_manifest(ctx, snapshot_id)
        if manifest is None:
            raise NotFoundError(f"no snapshot {snapshot_id!r}")
        return manifest

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot's manifest; its chunks go at the next :meth:`gc`."""
        with self.store.begin(write=True) as txn:
            if not txn.delete(layout.snapshot_key(_check_id("snapshot id", snapshot_id))):
                raise NotFoundError(f"no snapshot {snapshot_id!r}")

    def write_snapshot(
        self,
        snapshot_id: str,
        tensors: Mapping[str, np.ndarray],
        *,
        bases: Sequence[str] = (),
        scheme: Scheme | Mapping[str, Scheme | None] | None = None,
        series: bool = True,
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
        series:
            ``bases`` are this snapshot's predecessors in a linear series (checkpoints of one
            run): the newest stays materialised and its predecessor is re-encoded as a
            (reverse) delta against it. ``False`` for a derived model (a fine-tune of a base):
            the new tensors are forward deltas against the base, which stays as it is, so
            siblings share it and the base's bytes never change.
        """
        _check_id("snapshot id", snapshot_id)
        if not isinstance(tensors, Mapping):
            raise InvalidInputError(f"tensors must be a mapping, got {type(tensors).__name__}")
        arrays = {_check_id("tensor name", n): _as_array(n, a) for n, a in tensors.items()}
        schemes = {n: scheme.get(n) if isinstance(scheme, Mapping) else scheme for n in arrays}
        for sch in schemes.values():
            if sch is not None and not isinstance(sch, Scheme):
                raise InvalidInputError(f"scheme must be a Scheme, got {type(sch).__name__}")
        digests = {n: tensor_digest(a, schemes[n], self._version) for n, a in arrays.items()}
        reserve = sum(a.nbytes for a in arrays.values()) * 3 + (1 << 20)
        with self.store.begin(write=True, reserve=reserve) as txn:
            ctx = _Ctx(txn, snapshot_id)
            base_mans = [self._manifest(ctx, b) for b in bases]
            base_maps = [m.tensors for m in base_mans]
            old = self._maybe_manifest(ctx, snapshot_id)
            if old is not None:
                if old.tensors != digests:
                    raise ConflictError(f"snapshot {snapshot_id!r} exists with other tensors")
                return SnapshotInfo(
                    snapshot_id,
                    {n: self._info(n, self._record(ctx, d), 0) for n, d in digests.items()},
                )
            small = {
                n: a for n, a in arrays.items() if schemes[n] is None and a.nbytes < self.pack_below
            }
            infos: dict[str, TensorInfo] = {}
            for name, arr in arrays.items():
                if name in small:
                    continue
                candidates = list(dict.fromkeys(m[name] for m in base_maps if name in m))
                infos[name] = self._put_tensor(
                    ctx, name, arr, schemes[name], digests[name], candidates, series
                )
            packs = self._put_packs(ctx, small, digests, base_mans, series, infos)
            manifest = Manifest(snapshot_id, digests, tuple(bases), time.time(), packs)
            txn.put(layout.snapshot_key(snapshot_id), manifest.dump())
        return SnapshotInfo(snapshot_id, {n: infos[n] for n in arrays})

    @property
    def _version(self) -> int:
        """Record version new writes produce."""
        return RECORD_VERSION

    # ------------------------------------------------------------------ writing tensors

    def _put_packs(
        self,
        ctx: _Ctx,
        small: dict[str, np.ndarray],
        digests: dict[str, str],
        base_mans: list[Manifest],
        series: bool,
        infos: dict[str, TensorInfo],
    ) -> tuple[str, ...]:
        """Store a snapshot's new small tensors in packs: per stored dtype, in name order, at
        most ``PACK_BYTES`` each. A pack is a tensor (its delta bases: the same pack of the base
        snapshots); each small tensor gets a record naming its slot. Fills ``infos`` (a pack's
        bytes are shared out by raw size) and returns the new packs' digests."""
        groups: dict[str, list[list[str]]] = {}
        chosen: set[str] = set()
        for name in sorted(small):
            digest = digests[name]
            if digest in chosen or self._maybe_record(ctx, digest) is not None:
                continue  # stored already (by an earlier snapshot or an equal tensor here)
            chosen.add(digest)
            batches = groups.setdefault(dtype_name(small[name].dtype), [[]])
            size = sum(small[n].nbytes for n in batches[-1])
            if batches[-1] and size + small[name].nbytes > PACK_BYTES:
                batches.append([])
            batches[-1].append(name)
        packs: list[str] = []
        for sdtype, batches in groups.items():
            for j, names in enumerate(batches):
                arr = np.concatenate([small[n].reshape(-1) for n in names])
                digest = tensor_digest(arr, None, self._version, pack=True)
                candidates = []
                for man in base_mans:
                    theirs = [
                        p
                        for p in man.packs
                        if (r := self._maybe_record(ctx, p)) is not None and r.sdtype == sdtype
                    ]
                    if j < len(theirs):
                        candidates.append(theirs[j])
                info = self._put_tensor(ctx, "", arr, None, digest, candidates, series, pack=True)
                packs.append(digest)
                self._put_slots(ctx, names, small, digests, info, infos)
        for name in small:
            if name not in infos:
                infos[name] = self._info(name, self._record(ctx, digests[name]), 0)
        return tuple(packs)

    def _put_slots(
        self,
        ctx: _Ctx,
        names: list[str],
        small: dict[str, np.ndarray],
        digests: dict[str, str],
        pack: TensorInfo,
        infos: dict[str, TensorInfo],
    ) -> None:
        """The records of the tensors ``names`` stored, in this order, in the pack ``pack``."""
        raws = [small[n].nbytes for n in names]
        stored, new = _shares(pack.stored_bytes, raws), _shares(pack.new_bytes, raws)
        offset = 0
        for i, name in enumerate(names):
            arr = small[name]
            bits = bits_view(arr)
            planes = n_planes(arr.dtype)
            record = TensorRecord(
                digest=digests[name],
                dtype=dtype_name(arr.dtype),
                shape=tuple(int(x) for x in arr.shape),
                scheme=None,
                sdtype=dtype_name(arr.dtype),
                count=int(bits.size),
                crc=crc32(bits.data.cast("B")),
                raw=int(arr.nbytes),
                planes=((),) * planes,
                plane_stored=(0,) * planes,
                slot=Slot(pack.digest, offset),
                version=self._version,
            )
            self._put_record(ctx, record)
            offset += record.count
            infos[name] = replace(
                self._info(name, record, 0), stored_bytes=stored[i], new_bytes=new[i]
            )

    def _put_tensor(
        self,
        ctx: _Ctx,
        name: str,
        arr: np.ndarray,
        scheme: Scheme | None,
        digest: str,
        candidates: list[str],
        series: bool = True,
        pack: bool = False,
    ) -> TensorInfo:
        """Store one tensor (``pack``: a pack of small tensors, an array of this archive's own
        that the cache may keep as it is)."""
        existing = self._maybe_record(ctx, digest)
        if existing is not None:
            return self._info(name, existing, new_bytes=0)
        fitted = scheme.fit(arr) if scheme is not None else None
        stored = fitted.encode(arr) if fitted is not None else arr
        bits = bits_view(stored)
        proto = TensorRecord(
            digest=digest,
            dtype=dtype_name(arr.dtype),
            shape=tuple(int(x) for x in arr.shape),
            scheme=fitted.to_dict() if fitted is not None else None,
            sdtype=dtype_name(stored.dtype),
            count=int(bits.size),
            crc=crc32(bits.data.cast("B")),
            raw=int(arr.nbytes),
            pack=pack,
            version=self._version,
        )
        bases = [b for b in candidates if self._compatible(ctx, b, proto)]
        placed = self._put_reverse(ctx, bits, proto, bases[0]) if bases and series else None
        if placed is None:
            placed = self._put_forward(ctx, bits, proto, bases)
        record, new, edges = placed
        ctx.txn.put(layout.edges_key(digest), dump_edges(edges))
        # the cache must not alias the caller's array (it may be mutated after the write);
        # the predecessor's cached copy is reused (fresh pages cost as much as the copy)
        if stored is arr and not pack:
            spare, self._spare = self._spare, None
            if spare is not None and spare.dtype == bits.dtype and spare.size == bits.size:
                np.copyto(spare, bits)
                bits = spare
            else:
                bits = bits.copy()
        self._cache.put(digest, bits)
        return self._info(name, record, new_bytes=new)

    def _put_forward(
        self, ctx: _Ctx, bits: np.ndarray, proto: TensorRecord, bases: list[str]
    ) -> tuple[TensorRecord, int, list[dict[str, Any]]]:
        """Store ``proto`` as the smallest of materialised / a delta against one of ``bases``
        (chains stay ≤ ``max_chain``)."""
        bases = [b for b in bases if len(self._chain(ctx, b)) <= self.max_chain]
        (base, encoded, data), edges = self._choose(ctx, bits, proto, bases)
        if encoded is None:
            encoded = self._encode_planes(data, proto.nplanes, proto.digest, base)
        delta = None if base is None else Delta(self.delta.op, base)
        record, new = self._commit_tensor(ctx, proto, delta, encoded)
        for edge in edges:
            if edge["base"] == base:
                edge.update(cs=record.stored, est=False)
        return record, new, edges

    def _put_reverse(
        self, ctx: _Ctx, bits: np.ndarray, proto: TensorRecord, head: str
    ) -> tuple[TensorRecord, int, list[dict[str, Any]]] | None:
        """Linear series: store ``proto`` materialised and re-encode its predecessor ``head``
        as a delta against it (git-pack style), in this same transaction; ``head``'s old chunks
        go at once. ``None`` when the forward path applies: ``head`` already has a successor
        (a fork: ``head`` is re-materialised and its children delta against it), is itself a
        delta, or is a fork base. A full run (``max_chain`` tensors behind ``head``), or a
        delta that would not be smaller, starts afresh with ``proto`` materialised (never a
        forward delta: the newest stays materialised and chains stay ≤ ``max_chain``)."""
        hrec = self._record(ctx, head)
        if hrec.delta is not None and hrec.delta.reverse:
            self._fork(ctx, hrec)
            return None
        if hrec.delta is not None or hrec.fork:
            return None
        head_bits = self._bits(ctx, head)
        scratch = work_buffer("delta", bits.nbytes).view(bits.dtype)
        data = self.delta.encode(head_bits, bits, out=scratch)  # the head, against its successor
        # the delta is encoded in full (a sampled estimate first costs more than it saves:
        # the delta is stored unless the run is full); a full run only needs its size estimate
        exact = hrec.run < self.max_chain or bits.size <= _EXACT_BELOW
        encoded = self._encode_planes(data, hrec.nplanes, head, proto.digest) if exact else None
        size = self._size(encoded) if encoded is not None else self._estimate(data, hrec.nplanes)
        edge = {"base": head, "op": self.delta.op, "cs": size, "est": not exact}
        own = self._encode_planes(bits, proto.nplanes, proto.digest, None)
        if hrec.run >= self.max_chain or size >= hrec.stored:
            # a full run, or a delta that does not pay: a fresh keyframe, the head stays. The
            # run count goes on in the second case, so all tensors of a series start their
            # runs at the same checkpoints (a snapshot's depth is the maximum over them)
            run = 0 if hrec.run >= self.max_chain else hrec.run + 1
            record, new = self._commit_tensor(ctx, proto, None, own, run=run)
            return record, new, [self._edge(None, record.stored), edge]
        record, new = self._commit_tensor(ctx, proto, None, own, run=hrec.run + 1)
        if encoded is None:
            encoded = self._encode_planes(data, hrec.nplanes, head, proto.digest)
        delta = Delta(self.delta.op, proto.digest, reverse=True)
        moved = self._replace(ctx, hrec, delta, encoded)
        self._set_edge(ctx, head, proto.digest, float(moved.stored))
        self._spare = self._cache.pop(head)  # no longer a delta base: the successor is
        return record, new, [self._edge(None, record.stored), {**edge, "est": False}]

    def _fork(self, ctx: _Ctx, hrec: TensorRecord) -> None:
        """``hrec`` (re-encoded against its successor) gets a second successor: store it
        materialised again, as the base its children (siblings) delta against, and turn its
        first successor, when that is still materialised, into a forward delta against it."""
        assert hrec.delta is not None
        head_bits = self._bits(ctx, hrec.digest)
        own = self._encode_planes(head_bits, hrec.nplanes, hrec.digest, None)
        self._replace(ctx, hrec, None, own, fork=True)
        self._set_edge(ctx, hrec.digest, None, float(self._size(own)))
        succ = self._record(ctx, hrec.delta.base)
        if succ.delta is not None or succ.fork:
            return
        data = self.delta.encode(self._bits(ctx, succ.digest), head_bits)
        encoded = self._encode_planes(data, succ.nplanes, succ.digest, hrec.digest)
        if self._size(encoded) < succ.stored:
            moved = self._replace(ctx, succ, Delta(self.delta.op, hrec.digest), encoded, run=0)
            self._set_edge(ctx, succ.digest, hrec.digest, float(moved.stored))

    def _replace(
        self,
        ctx: _Ctx,
        old: TensorRecord,
        delta: Delta | None,
        encoded: Encoded,
        **changes: Any,
    ) -> TensorRecord:
        """Store ``old``'s tensor as ``encoded`` and delete its previous chunks, which only it
        owns (format-1 chunks may be shared: those are left to :meth:`gc`)."""
        record, _ = self._commit_tensor(ctx, old, delta, encoded, **changes)
        if old.version >= 2:
            keep = set(record.chunks())
            for digest in old.chunks():
                if digest not in keep:
                    ctx.txn.delete(layout.chunk_key(digest))
        return record

    @staticmethod
    def _size(encoded: Encoded) -> int:
        return sum(len(v) for plane in encoded for _, v in plane)

    def _edge(self, base: str | None, size: float, est: bool = False) -> dict[str, Any]:
        op = None if base is None else self.delta.op
        return {"base": base, "op": op, "cs": size, "est": est}

    def _compatible(self, ctx: _Ctx, base: str, record: TensorRecord) -> bool:
        other = self._record(ctx, base)
        return (
            other.slot is None
            and other.pack == record.pack
            and other.sdtype == record.sdtype
            and other.count == record.count
            and other.shape == record.shape
            and (other.scheme or {}).get("name") == (record.scheme or {}).get("name")
        )

    def _choose(
        self, ctx: _Ctx, bits: np.ndarray, record: TensorRecord, bases: list[str]
    ) -> tuple[tuple[str | None, Encoded | None, np.ndarray], list[dict[str, Any]]]:
        """Pick the smallest of materialise / delta-vs-each-base; return ``(base, its encoded
        chunks or None, the data to encode)`` and all edges. Candidates of tensors above
        ``_EXACT_BELOW`` elements are sized on samples, not encoded."""
        planes = record.nplanes
        if not bases:
            return (None, None, bits), [{"base": None, "op": None, "cs": None, "est": False}]
        base_bits = {b: self._bits(ctx, b) for b in bases}
        exact = bits.size <= _EXACT_BELOW
        sizes: dict[str | None, float] = {}
        encoded: dict[str | None, Encoded] = {}
        datas: dict[str | None, np.ndarray] = {}
        for b in [None, *bases]:
            data = datas[b] = bits if b is None else self.delta.encode(bits, base_bits[b])
            if exact:
                encoded[b] = self._encode_planes(data, planes, record.digest, b)
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

    def _encode_planes(
        self, data: np.ndarray, planes: int, owner: str, base: str | None
    ) -> Encoded:
        """Split ``data`` into byte planes and encode their chunks (``owner``/``base``: the
        record the chunks belong to)."""
        split = BytePlanes.split(data, planes, scratch=True)  # encoded values are copies
        jobs = [
            (p, start, plane.data.cast("B")[start : start + CHUNK_BYTES])
            for p, plane in enumerate(split)
            for start in range(0, plane.nbytes, CHUNK_BYTES)
        ]

        def encode(job: tuple[int, int, memoryview]) -> tuple[str, bytes]:
            p, start, piece = job
            kind, payload = self.compressor.encode(piece, p if planes > 1 else None)
            value = frame_chunk(kind, payload, chunk_salt(owner, base, p, start // CHUNK_BYTES))
            return chunk_digest(value), value

        values = iter(self._map(encode, jobs, data.nbytes))
        return [[next(values) for _ in range(0, plane.nbytes, CHUNK_BYTES)] for plane in split]

    def _commit_tensor(
        self,
        ctx: _Ctx,
        record: TensorRecord,
        delta: Delta | None,
        encoded: Encoded,
        **changes: Any,
    ) -> tuple[TensorRecord, int]:
        """Write the chunks and the record of ``record`` stored as ``encoded``; return the new
        record and the bytes of chunks added."""
        new = 0
        for plane in encoded:
            for digest, value in plane:
                if ctx.txn.put_if_absent(layout.chunk_key(digest), value):
                    new += len(value)
        placed = record.placed(
            delta,
            self.compressor.to_dict(),
            CHUNK_BYTES,
            [[(d, len(v)) for d, v in p] for p in encoded],
            **changes,
        )
        self._put_record(ctx, placed)
        return placed, new

    @staticmethod
    def _info(name: str, record: TensorRecord, new_bytes: int) -> TensorInfo:
        delta = record.delta
        return TensorInfo(
            name=name,
            digest=record.digest,
            shape=record.shape,
            dtype=record.dtype,
            raw_bytes=record.raw,
            stored_bytes=record.stored,
            new_bytes=new_bytes,
            base=delta.base if delta else None,
            op=delta.op if delta else None,
            scheme=record.scheme,
        )

    # ------------------------------------------------------------------ reading

    def _fetch(self, ctx: _Ctx, record: TensorRecord, k: int, where: str) -> list[Any]:
        """Zero-copy store values of the chunks of plane ``k``: ``(start, n, value, label)``."""
        size, step = record.plane_size, record.chunk_bytes
        out = []
        for i, digest in enumerate(record.planes[k]):
            key = layout.chunk_key(digest)
            value = ctx.get(key)
            label = f"{key} (tensor {where}, plane {k}, chunk {i})"
            if value is None:
                raise CorruptionError(f"missing chunk {label}")
            out.append((i * step, min(step, size - i * step), value, label))
        return out

    @staticmethod
    def _chunk_data(n: int, value: Any, label: str, check: bool = True) -> np.ndarray:
        """Decode one chunk (CRC-checked unless ``check`` is off); raw chunks stay views of the
        store's buffer."""
        kind, payload = unframe_chunk(value, label, check)
        data = Zstd.decode(kind, payload, n, label)
        if len(data) != n:
            raise CorruptionError(f"corrupt chunk {label}: wrong decoded length")
        return np.frombuffer(data, np.uint8)

    def _decode_planes(
        self,
        ctx: _Ctx,
        record: TensorRecord,
        planes: Iterable[int],
        sink: Callable[[int, int, int, np.ndarray], None],
        where: str,
        check: bool = True,
    ) -> None:
        """Decode the given planes of one record's own chunks (no delta applied), handing each
        chunk to ``sink(plane, start, n, data)``; ``data`` is only valid during the call.
        Chunks of different planes may be decoded concurrently."""
        jobs = [(p, self._fetch(ctx, record, p, where)) for p in planes]

        def run(job: tuple[int, list[Any]]) -> None:
            p, chunks = job
            for start, n, value, label in chunks:
                sink(p, start, n, self._chunk_data(n, value, label, check))

        self._map(run, jobs, record.plane_size * len(jobs))

    def _plane(
        self, ctx: _Ctx, record: TensorRecord, k: int, where: str, check: bool = True
    ) -> np.ndarray:
        """Decode plane ``k`` of one record's own chunks (no delta applied)."""
        out = np.empty(record.plane_size, np.uint8)

        def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
            out[start : start + n] = data

        self._decode_planes(ctx, record, [k], sink, where, check)
        return out

    def _merge_record(
        self, ctx: _Ctx, record: TensorRecord, k: int, where: str, check: bool = True
    ) -> np.ndarray:
        """Top ``k`` planes of a record's own chunks decoded straight into the columns of a new
        bit-pattern array (missing low bytes zero): no per-plane intermediate."""
        total, uint, count = record.nplanes, record.uint, record.count
        if total == 1 or k == 1:
            flat = np.empty(count, uint)
            if total == 1:
                u8 = flat.view(np.uint8)

                def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
                    u8[start : start + n] = data

            else:
                shift = 8 * (total - 1)

                def sink(p: int, start: int, n: int, data: np.ndarray) -> None:  # type: ignore[misc]
                    np.left_shift(data, shift, out=flat[start : start + n], dtype=uint)

            self._decode_planes(ctx, record, range(k), sink, where, check)
            return flat
        merger = PlaneMerger(total, count, uint)

        def put(p: int, start: int, n: int, data: np.ndarray) -> None:
            merger.put(p, start, data)

        self._decode_planes(ctx, record, range(k), put, where, check)
        return merger.result()

    def _planes(
        self, ctx: _Ctx, digest: str, k: int, where: str, check: bool = True
    ) -> list[np.ndarray]:
        """The top ``k`` planes of a tensor's stored representation, through its delta chain.

        An XOR chain is decoded by accumulation: the planes of its root (a materialised tensor,
        a cached or memoised one) are decoded once, then every link's chunks are XOR-ed into
        them in place, chunk by chunk. The returned arrays may be shared through ``ctx``."""
        if (digest, k) in ctx.planes:
            return ctx.planes[(digest, k)]
        record = self._record(ctx, digest)
        delta = record.delta
        if delta is None:
            planes = [self._plane(ctx, record, p, where, check) for p in range(k)]
        elif delta.op != "xor":
            planes = BytePlanes.split(self._bits(ctx, digest, where), record.nplanes)[:k]
        else:
            planes = self._xor_chain(ctx, record, k, where, check)
        ctx.planes[(digest, k)] = planes
        return planes

    def _xor_chain(
        self, ctx: _Ctx, record: TensorRecord, k: int, where: str, check: bool
    ) -> list[np.ndarray]:
        links = [record]
        acc: list[np.ndarray] | None = None
        while acc is None:
            if len(links) > _MAX_LINKS:
                raise CorruptionError(f"delta chain of tensor {where} does not end: corrupt")
            base = links[-1].base
            assert base is not None
            cached = self._cached(ctx, base)
            if (base, k) in ctx.planes:
                acc = [p.copy() for p in ctx.planes[(base, k)]]
            elif cached is not None:
                acc = BytePlanes.split(cached, record.nplanes)[:k]
                if record.nplanes == 1:  # a view of the cached array, which the XOR below
                    acc = [acc[0].copy()]  # must not touch
            else:
                rec = self._record(ctx, base)
                if rec.delta is None:
                    acc = [self._plane(ctx, rec, p, where, check) for p in range(k)]
                elif rec.delta.op != "xor":
                    acc = [p.copy() for p in self._planes(ctx, base, k, where)]
                else:
                    links.append(rec)

        def sink(p: int, start: int, n: int, data: np.ndarray) -> None:
            view = acc[p][start : start + n]
            np.bitwise_xor(view, data, out=view)

        for rec in reversed(links):
            self._decode_planes(ctx, rec, range(k), sink, where, check)
        return acc

    def _bits(self, ctx: _Ctx, digest: str, where: str = "") -> np.ndarray:
        """Full, CRC-checked bit-pattern view of a tensor's stored representation (shared with
        the cache when it came from there: do not modify)."""
        cached = self._cached(ctx, digest)
        if cached is not None:
            return cached
        record = self._record(ctx, digest)
        total, uint, delta = record.nplanes, record.uint, record.delta
        label = where or ctx.label(digest[:16])
        # chunk CRCs are skipped here: the tensor's own CRC covers every chunk it was built from
        # (a packed tensor's CRC, over a few small bytes, checks its slot in the checked pack)
        if record.slot is not None:
            bits = self._in_pack(ctx, record, total, label)
        elif delta is None:
            bits = self._merge_record(ctx, record, total, label, check=False)
        elif delta.op == "xor":
            planes = self._planes(ctx, digest, total, label, check=False)
            bits = BytePlanes.merge(planes, total, record.count, uint)
            if total == 1:
                bits = bits.copy()  # a memoised plane: never hand it out
        else:
            own = self._merge_record(ctx, record, total, label, check=False)
            bits = DeltaCodec("sub").decode(own, self._bits(ctx, delta.base, label))
        if crc32(bits.data.cast("B")) != record.crc:
            self._diagnose(ctx, digest, label)
            raise CorruptionError(f"tensor {label} does not match its digest after decoding")
        return bits

    def _diagnose(self, ctx: _Ctx, digest: str, label: str) -> None:
        """Raise the CorruptionError of the first damaged chunk in ``digest``'s chain, if any
        (called once a full read's CRC failed, to name the culprit)."""
        for record in self._chain(ctx, digest):
            for k in range(record.nplanes):
                for _, _, value, where in self._fetch(ctx, record, k, label):
                    unframe_chunk(value, where)

    def _in_pack(self, ctx: _Ctx, record: TensorRecord, k: int, where: str) -> np.ndarray:
        """A packed tensor's bit patterns (a copy) from its pack, decoded once per operation:
        all planes, or only the top ``k`` (the low bytes zero)."""
        slot = record.slot
        assert slot is not None
        key = (slot.pack, k)
        bits = ctx.packs.get(key)
        if bits is None:
            pack = self._record(ctx, slot.pack)
            if not (
                pack.pack
                and pack.sdtype == record.sdtype
                and slot.offset + record.count <= pack.count
            ):
                raise CorruptionError(f"tensor {where}: its pack record does not hold it")
            if k == pack.nplanes:
                bits = self._bits(ctx, slot.pack, where)
            else:
                bits = self._known(ctx, pack, k, where)
            ctx.packs[key] = bits
        return bits[slot.offset : slot.offset + record.count].copy()

    def _cached(self, ctx: _Ctx, digest: str) -> np.ndarray | None:
        return None if ctx.fresh else self._cache.get(digest)

    def _known(self, ctx: _Ctx, record: TensorRecord, k: int, where: str) -> np.ndarray:
        """Bit patterns with only the top ``k`` (< all) planes known, the low bytes zero."""
        if record.slot is not None:
            return self._in_pack(ctx, record, k, where)
        if record.delta is None:
            return self._merge_record(ctx, record, k, where)
        planes = self._planes(ctx, record.digest, k, where)
        return BytePlanes.merge(planes, record.nplanes, record.count, record.uint)

    def _tensor(self, ctx: _Ctx, digest: str, planes: int | None, where: str) -> np.ndarray:
        record = self._record(ctx, digest)
        total = record.nplanes
        k = self._check_planes(planes, total)
        if k == total:
            shared = self._cached(ctx, digest)
            bits = shared if shared is not None else self._bits(ctx, digest, where)
            return self._finish(record, bits.view(record.stored_dtype), copy=shared is not None)
        known = self._known(ctx, record, k, where)
        return self._finish(record, known.view(record.stored_dtype))

    @staticmethod
    def _check_planes(planes: int | None, total: int) -> int:
        if planes is None:
            return total
        if not isinstance(planes, int) or planes < 1:
            raise InvalidInputError(f"planes must be a positive int, got {planes!r}")
        return min(planes, total)

    @staticmethod
    def _finish(record: TensorRecord, stored: np.ndarray, copy: bool = False) -> np.ndarray:
        """The caller's array: ``stored`` decoded by its scheme and reshaped; ``copy`` when
        ``stored`` is shared (the write cache) and must not be handed out."""
        if record.scheme is not None:
            try:
                scheme = codec_from_dict(record.scheme)
            except InvalidInputError as exc:
                raise CorruptionError(f"tensor record {record.digest[:16]}…: {exc}") from exc
            assert isinstance(scheme, Scheme)
            stored, copy = scheme.decode(stored, dtype_from_name(record.dtype)), False
        out = stored.reshape(record.shape)
        return out.copy() if copy else out

    def read_tensor(self, snapshot_id: str, name: str, *, planes: int | None = None) -> np.ndarray:
        """One tensor of a snapshot, bit-exact; with ``planes=k`` only the top ``k`` byte planes
        are read and the low bytes are zero (non-float tensors are always exact)."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn, snapshot_id)
            digest = self._digest_of(ctx, snapshot_id, name)
            return self._read_all(ctx, {name: digest}, planes)[name]

    def read_snapshot(
        self, snapshot_id: str, *, planes: int | None = None
    ) -> dict[str, np.ndarray]:
        """All tensors of a snapshot (shared delta bases are decoded once)."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn, snapshot_id)
            return self._read_all(ctx, self._manifest(ctx, snapshot_id).tensors, planes)

    def _read_all(
        self, ctx: _Ctx, names: Mapping[str, str], planes: int | None
    ) -> dict[str, np.ndarray]:
        """The tensors ``names`` (name → digest). On a store with batch reads their records,
        then their chunks, window by window of :data:`_PREFETCH_BYTES`, are fetched ahead
        with :meth:`Txn.get_many` (concurrent GETs) and then decoded as usual."""
        if not self.store.batch_reads:
            return {n: self._tensor(ctx, d, planes, ctx.label(n)) for n, d in names.items()}
        self._prefetch_records(ctx, names.values())
        out: dict[str, np.ndarray] = {}
        window: list[str] = []
        keys: dict[str, None] = {}
        size = 0
        for i, name in enumerate(names):
            for key, nbytes in self._chunks_to_read(ctx, names[name], planes):
                size += nbytes if key not in keys else 0
                keys[key] = None
            window.append(name)
            if size >= _PREFETCH_BYTES or i == len(names) - 1:
                self._prefetch(ctx, list(keys))
                for n in window:
                    out[n] = self._tensor(ctx, names[n], planes, ctx.label(n))
                ctx.fetched.clear()
                window, keys, size = [], {}, 0
        return out

    def _prefetch(self, ctx: _Ctx, keys: list[str]) -> None:
        """Fetch ``keys`` into ``ctx.fetched`` (concurrently where the store can)."""
        for key, value in zip(keys, ctx.txn.get_many(keys)):
            if value is not None:  # a missing one is reported by the read that needs it
                ctx.fetched[key] = value

    def _prefetch_records(self, ctx: _Ctx, digests: Iterable[str]) -> None:
        """Fetch the records of ``digests`` and of every record their reads need, one chain
        level at a time (each level's records concurrently)."""
        level = set(digests)
        for _ in range(_MAX_LINKS):
            todo = sorted(d for d in level if d not in ctx.records)
            if not todo:
                return
            self._prefetch(ctx, [layout.tensor_key(d) for d in todo])
            level = set()
            for digest in todo:
                record = self._maybe_record(ctx, digest)
                link = None if record is None else record.link
                if link is not None and self._cached(ctx, link) is None:
                    level.add(link)
        raise CorruptionError(f"delta chain of snapshot {ctx.where!r} does not end: corrupt")

    def _chunks_to_read(self, ctx: _Ctx, digest: str, planes: int | None) -> list[tuple[str, int]]:
        """``(key, raw bytes)`` of the chunks a read of ``digest`` (its top ``planes``) will
        fetch, walking its pack and delta chain down to a tensor the cache holds. A guide for
        fetching ahead: a read still fetches anything it lacks itself."""
        record = self._record(ctx, digest)
        k = self._check_planes(planes, record.nplanes)
        out: list[tuple[str, int]] = []
        if k == record.nplanes and self._cached(ctx, digest) is not None:
            return out
        for _ in range(_MAX_LINKS):
            if record.delta is not None and record.delta.op != "xor":
                k = record.nplanes  # a "sub" delta is decoded in full, its base too
            if record.slot is None:
                size, step = record.plane_size, record.chunk_bytes
                for p in range(min(k, record.nplanes)):
                    for i, chunk in enumerate(record.planes[p]):
                        out.append((layout.chunk_key(chunk), min(step, size - i * step)))
                if record.delta is None:
                    return out
            link = record.link
            assert link is not None
            if self._cached(ctx, link) is not None:
                return out
            record = self._record(ctx, link)
        raise CorruptionError(f"delta chain of {digest[:16]}… does not end: corrupt")

    def read_interval(
        self, snapshot_id: str, name: str, *, planes: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` such that every non-NaN true value lies in ``[lo, hi]``, reading only the
        top ``planes`` byte planes. Signs are handled (for negatives, padding the unknown bits
        with 1s gives the lower bound). Bounds that padding pushes into the NaN range become
        ±inf; where the known bits already prove a NaN, both bounds are NaN. Non-float tensors
        and integer schemes give ``lo == hi == value``."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn, snapshot_id)
            digest = self._digest_of(ctx, snapshot_id, name)
            record = self._record(ctx, digest)
            k = self._check_planes(planes, record.nplanes)
            label = ctx.label(name)
            if k == record.nplanes or not is_float(record.stored_dtype):
                value = self._tensor(ctx, digest, None, label)
                return value, value.copy()
            known = self._known(ctx, record, k, label)
            lo, hi = plane_interval(known, record.stored_dtype, k)
            return self._finish(record, lo), self._finish(record, hi)

    def _digest_of(self, ctx: _Ctx, snapshot_id: str, name: str) -> str:
        tensors = self._manifest(ctx, snapshot_id).tensors
        if name not in tensors:
            raise NotFoundError(f"snapshot {snapshot_id!r} has no tensor {name!r}")
        return tensors[name]

    # ------------------------------------------------------------------ chunks by digest (hub)

    def snapshot_chunks(self, snapshot_id: str) -> list[str]:
        """Digests of every chunk a snapshot needs (its tensors and their delta chains),
        sorted, each once: what another archive must hold to rebuild it."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn, snapshot_id)
            records = self._needed_records(ctx, self._manifest(ctx, snapshot_id))
        return sorted({d for r in records.values() for d in r.chunks()})

    def _needed_records(self, ctx: _Ctx, manifest: Manifest) -> dict[str, TensorRecord]:
        out: dict[str, TensorRecord] = {}
        for digest in manifest.tensors.values():
            for record in self._chain(ctx, digest):
                if record.digest in out:
                    break
                out[record.digest] = record
        return out

    def missing_chunks(self, digests: Iterable[str]) -> list[str]:
        """The digests among ``digests`` this archive holds no chunk for (in the given order,
        each once)."""
        with self.store.begin() as txn:
            return [d for d in dict.fromkeys(digests) if not txn.exists(layout.chunk_key(d))]

    def get_chunk(self, digest: str) -> bytes:
        """The stored value of the chunk ``digest`` (framed, compressed), checked against its
        digest; :class:`NotFoundError` when absent, :class:`CorruptionError` when damaged."""
        with self.store.begin() as txn:
            value = txn.get(layout.chunk_key(_check_id("chunk digest", digest)))
            if value is None:
                raise NotFoundError(f"no chunk {digest}")
            data = bytes(value)
        self._check_chunk(digest, data)
        return data

    def get_chunks(self, digests: Sequence[str]) -> list[bytes]:
        """:meth:`get_chunk` for a batch, in one read transaction (on an object store that is
        one round trip per chunk fewer)."""
        with self.store.begin() as txn:
            keys = [layout.chunk_key(_check_id("chunk digest", d)) for d in digests]
            values = []
            for digest, value in zip(digests, txn.get_many(keys)):
                if value is None:
                    raise NotFoundError(f"no chunk {digest}")
                values.append(bytes(value))
        for digest, data in zip(digests, values):
            self._check_chunk(digest, data)
        return values

    def put_chunk(self, digest: str, data: bytes | memoryview) -> bool:
        """Store a chunk received from another archive, after checking ``data`` against
        ``digest`` (a mismatch raises :class:`CorruptionError` and stores nothing); return
        whether it was new."""
        return self.put_chunks([(digest, data)])[0]

    def put_chunks(self, chunks: Sequence[tuple[str, bytes | memoryview]]) -> list[bool]:
        """:meth:`put_chunk` for a batch in one write transaction: every chunk is checked
        first, so one mismatch stores none of them; per chunk, whether it was new."""
        checked = []
        for digest, data in chunks:
            value = bytes(data)
            self._check_chunk(_check_id("chunk digest", digest), value)
            checked.append((layout.chunk_key(digest), value))
        reserve = sum(len(v) for _, v in checked)
        with self.store.begin(write=True, reserve=reserve) as txn:
            return [txn.put_if_absent(key, value) for key, value in checked]

    @staticmethod
    def _check_chunk(digest: str, data: bytes) -> None:
        unframe_chunk(data, layout.chunk_key(digest))
        if chunk_digest(data) != digest:
            raise CorruptionError(f"chunk {digest}: content does not match its digest")

    def export_snapshot(self, snapshot_id: str) -> bytes:
        """A snapshot's manifest and every tensor record it needs (through delta chains), as
        one self-contained value for :meth:`import_snapshot` on another archive. Chunks travel
        separately (:meth:`snapshot_chunks`, :meth:`get_chunk`, :meth:`put_chunk`)."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn, snapshot_id)
            manifest = self._manifest(ctx, snapshot_id)
            records = self._needed_records(ctx, manifest)
        bundle = {
            "format": FORMAT_VERSION,
            "snapshot": snapshot_id,
            "manifest": manifest.to_dict(),
            "records": {d: r.to_dict() for d, r in records.items()},
        }
        return seal(bundle)

    def import_snapshot(self, bundle: bytes | memoryview, *, verify: bool = True) -> str:
        """Re-create a snapshot from :meth:`export_snapshot` output once its chunks are here.

        Records this archive already holds are kept (they rebuild the same bytes). Every chunk
        the new records name must be present (:class:`NotFoundError` otherwise, nothing
        written). With ``verify`` every tensor is decoded and checked against its CRC and, for
        lossless tensors, against its digest, before the manifest is written; a mismatch
        raises :class:`CorruptionError` and writes nothing. Returns the snapshot id.
        """
        snapshot_id, manifest, records = self._parse_bundle(bundle)
        reserve = sum(r.count * r.uint.itemsize for r in records.values()) + (1 << 20)
        with self.store.begin(write=True, reserve=reserve) as txn:
            ctx = _Ctx(txn, snapshot_id)
            old = self._maybe_manifest(ctx, snapshot_id)
            if old is not None:
                if old.tensors != manifest.tensors:
                    raise ConflictError(f"snapshot {snapshot_id!r} exists with other tensors")
                return snapshot_id
            fresh = [r for d, r in records.items() if self._maybe_record(ctx, d) is None]
            missing = [d for r in fresh for d in r.chunks() if not txn.exists(layout.chunk_key(d))]
            if missing:
                raise NotFoundError(
                    f"snapshot {snapshot_id!r}: {len(missing)} chunks are missing "
                    f"(first {missing[0]}); put them before importing"
                )
            for record in fresh:
                self._put_record(ctx, record)
            if verify:
                for name, digest in manifest.tensors.items():
                    self._verify_tensor(ctx, digest, ctx.label(name))
            txn.put(layout.snapshot_key(snapshot_id), manifest.dump())
        return snapshot_id

    def _parse_bundle(self, bundle: bytes | memoryview) -> tuple[str, Manifest, dict[str, Any]]:
        data = loads(bundle, "snapshot bundle")
        try:
            snapshot_id = _check_id("snapshot id", data["snapshot"])
            manifest = Manifest.from_dict(snapshot_id, data["manifest"])
            records = {d: TensorRecord.from_dict(d, r) for d, r in dict(data["records"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptionError(f"snapshot bundle is corrupt ({type(exc).__name__})") from exc
        return snapshot_id, manifest, records

    def _verify_tensor(self, ctx: _Ctx, digest: str, where: str) -> None:
        """Decode a tensor (CRC-checked) and, when lossless, check it against its digest."""
        self._check_digest(self._record(ctx, digest), self._bits(ctx, digest, where), where)

    @staticmethod
    def _check_digest(record: TensorRecord, bits: np.ndarray, where: str) -> None:
        """Check a lossless tensor's decoded bit patterns against its digest."""
        if record.scheme is None:
            arr = bits.view(record.stored_dtype).reshape(record.shape)
            if tensor_digest(arr, None, record.version, pack=record.pack) != record.digest:
                raise CorruptionError(f"tensor {where} does not match its digest")

    # ------------------------------------------------------------------ maintenance

    def _scan(self, txn: Txn, prefix: str) -> Iterator[tuple[str, Any]]:
        for key in list(txn.keys(prefix)):
            value = txn.get(key)
            assert value is not None
            yield layout.name_of(prefix, key), value

    def _all_records(self, ctx: _Ctx) -> dict[str, TensorRecord]:
        for digest, value in self._scan(ctx.txn, layout.TENSORS):
            if digest not in ctx.records:
                ctx.records[digest] = load_tensor(digest, value)
        return ctx.records

    def _all_manifests(self, ctx: _Ctx) -> dict[str, Manifest]:
        return {s: load_manifest(s, v) for s, v in self._scan(ctx.txn, layout.SNAPSHOTS)}

    # ------------------------------------------------------------------ series

    def put_series(self, blocks: Sequence[tuple[str, int, bytes]]) -> None:
        """Store blocks of append-only series, ``(series id, seq, data)`` each, in one write
        transaction (a block written again is overwritten: writes are idempotent)."""
        if not blocks:
            return
        keys = [
            (layout.series_key(_check_id("series", sid), int(seq)), data)
            for sid, seq, data in blocks
        ]
        with self.store.begin(write=True, reserve=sum(len(d) + 64 for _, d in keys)) as txn:
            for key, data in keys:
                txn.put(key, data)

    def series(self, series_ids: Iterable[str]) -> dict[str, list[bytes]]:
        """The blocks of each series in ``seq`` order (one read transaction); series without
        blocks map to ``[]``."""
        out: dict[str, list[bytes]] = {}
        with self.store.begin() as txn:
            for sid in series_ids:
                prefix = layout.series_prefix(_check_id("series", sid))
                out[sid] = [
                    bytes(v) for k, v in self._scan(txn, prefix) if len(k) == 12 and k.isdigit()
                ]
        return out

    def copy_series(self, source: str, target: str) -> int:
        """Copy every block of series ``source`` to series ``target`` (same seqs), in one
        write transaction; how many blocks were copied."""
        src = layout.series_prefix(_check_id("series", source))
        _check_id("series", target)
        with self.store.begin() as txn:
            found = [(k, bytes(v)) for k, v in self._scan(txn, src) if len(k) == 12 and k.isdigit()]
        with self.store.begin(write=True, reserve=sum(len(v) + 64 for _, v in found)) as txn:
            for seq, data in found:
                txn.put(layout.series_key(target, int(seq)), data)
        return len(found)

    def stats(self) -> ArchiveStats:
        """Raw and stored bytes in total, per byte plane, per tensor and per snapshot."""
        out = ArchiveStats()
        with self.store.begin() as txn:
            ctx = _Ctx(txn)
            records = self._all_records(ctx)
            chunk_size = {k: len(v) for k, v in self._scan(txn, layout.CHUNKS)}
            out.metadata_bytes = sum(len(v) for p in layout.METADATA for _, v in self._scan(txn, p))
            manifests = self._all_manifests(ctx)
            for sid, man in manifests.items():
                out.per_snapshot[sid] = self._snapshot_sizes(ctx, man)
                out.raw_bytes += out.per_snapshot[sid]["raw"]
        seen: set[str] = set()
        for digest, rec in records.items():
            for p, digests in enumerate(rec.planes):
                while len(out.per_plane) <= p:
                    out.per_plane.append(0)
                for d in digests:
                    if d not in seen and d in chunk_size:
                        seen.add(d)
                        out.per_plane[p] += chunk_size[d]
            out.per_tensor[digest] = {
                "raw": rec.raw,
                "stored": rec.stored,
                "plane_stored": list(rec.plane_stored),
                "base": rec.base,
                "dtype": rec.dtype,
                "scheme": rec.scheme,
                "pack": rec.slot.pack if rec.slot is not None else None,
            }
        out.chunk_bytes = sum(chunk_size.values())
        out.n_chunks, out.n_tensors, out.n_snapshots = len(chunk_size), len(records), len(manifests)
        out.unique_raw_bytes = sum(r.raw for r in records.values() if not r.pack)
        return out

    def _snapshot_sizes(self, ctx: _Ctx, manifest: Manifest) -> dict[str, int]:
        """Raw and stored bytes of a snapshot's tensors, its chain depth and read bytes."""
        digests = set(manifest.tensors.values())
        records = [r for d in digests if (r := self._maybe_record(ctx, d)) is not None]
        depth, touched = 0, dict[str, int]()
        for record in records:
            chain = self._chain(ctx, record.digest)
            depth = max(depth, sum(r.delta is not None for r in chain))
            touched.update((r.digest, r.stored) for r in chain)
        return {
            "raw": sum(r.raw for r in records),
            "stored": sum(r.stored for r in records),
            "chain_depth": depth,
            "read_bytes": sum(touched.values()),
        }

    def _unique_bytes(self, ctx: _Ctx, manifests: Mapping[str, Manifest]) -> dict[str, int]:
        """Stored bytes each snapshot added that no earlier one (by creation time) shares: the
        records it names (and the packs they sit in) that no earlier snapshot names, plus the
        delta bases behind them that
        no snapshot names and no earlier one needs. Summed over all snapshots this is every
        needed record's bytes once (what ``gc`` keeps)."""

        def own(manifest: Manifest) -> set[str]:  # its records and the packs they sit in
            digests = set(manifest.tensors.values())
            slots = (self._record(ctx, d).slot for d in digests)
            return digests | {slot.pack for slot in slots if slot is not None}

        owns = {sid: own(m) for sid, m in manifests.items()}
        named = set().union(*owns.values())
        owned: set[str] = set()
        out: dict[str, int] = {}
        for sid in sorted(manifests, key=lambda s: (manifests[s].created, s)):
            total = 0
            for digest in dict.fromkeys(manifests[sid].tensors.values()):
                for record in self._chain(ctx, digest):
                    other = record.digest not in owns[sid] and record.digest in named
                    if other or record.digest in owned:
                        continue
                    owned.add(record.digest)
                    total += record.stored
            out[sid] = total
        return out

    def unique_bytes(self) -> dict[str, int]:
        """Stored bytes each snapshot added that no earlier snapshot (by creation time)
        shares, reading only manifests and tensor records; they sum to the chunk bytes every
        snapshot needs (after :meth:`gc`, ``stats().chunk_bytes``)."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn)
            return self._unique_bytes(ctx, self._all_manifests(ctx))

    def snapshot_stats(self, snapshot_id: str) -> dict[str, int]:
        """One snapshot's bytes, reading only its manifest and tensor records (:meth:`stats`
        scans the whole archive): ``raw`` and ``stored`` (its tensors' raw bytes and own
        chunks), ``chain_depth`` (delta links to a materialised tensor, the maximum over its
        tensors: the recreation cost) and ``read_bytes`` (stored bytes a full read touches:
        its tensors' chunks and those of every delta base behind them, each once)."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn, snapshot_id)
            return self._snapshot_sizes(ctx, self._manifest(ctx, snapshot_id))

    def snapshot_planes(self, snapshot_id: str) -> list[tuple[int, int]]:
        """``(raw, stored)`` bytes of a snapshot's own tensors per byte plane, plane 0 the most
        significant (a tensor's raw bytes split evenly over its planes; stored: its chunks)."""
        out: list[list[int]] = []
        with self.store.begin() as txn:
            ctx = _Ctx(txn, snapshot_id)
            digests = set(self._manifest(ctx, snapshot_id).tensors.values())
            for digest in digests:
                record = self._maybe_record(ctx, digest)
                if record is None or not record.plane_stored:
                    continue
                share = record.raw // len(record.plane_stored)
                for p, stored in enumerate(record.plane_stored):
                    while len(out) <= p:
                        out.append([0, 0])
                    out[p][0] += share
                    out[p][1] += stored
        return [(raw, stored) for raw, stored in out]

    def verify(self) -> VerifyReport:
        """Check every chunk (CRC and digest), every tensor (decoded CRC) and that every
        manifest's tensors exist. Never raises for corruption; lists it in ``errors``."""
        report = VerifyReport()
        with self.store.begin() as txn:
            for digest, value in self._scan(txn, layout.CHUNKS):
                report.chunks += 1
                try:
                    self._check_chunk(digest, bytes(value))
                except CorruptionError as exc:
                    report.errors.append(str(exc))
            for digest, _ in list(self._scan(txn, layout.TENSORS)):
                report.tensors += 1
                try:
                    ctx = _Ctx(txn, fresh=True)
                    bits = self._bits(ctx, digest, digest[:16])
                    record = self._record(ctx, digest)
                    if record.slot is not None:  # not CRC-checked on reads: check its digest
                        self._check_digest(record, bits, digest[:16])
                except StorageError as exc:
                    report.errors.append(str(exc))
            for sid, value in self._scan(txn, layout.SNAPSHOTS):
                report.snapshots += 1
                try:
                    manifest = load_manifest(sid, value)
                except CorruptionError as exc:
                    report.errors.append(str(exc))
                    continue
                for name, digest in manifest.tensors.items():
                    if txn.get(layout.tensor_key(digest)) is None:
                        report.errors.append(f"snapshot {sid!r}: tensor {name!r} is missing")
        return report

    def gc(self, live_snapshot_ids: Sequence[str] | None = None) -> GCResult:
        """Remove unreferenced tensor records and chunks in one write transaction.

        If ``live_snapshot_ids`` is given, snapshots not in it are deleted first (the caller
        holds off commits meanwhile: provdb takes its exclusive write guard).
        """
        result = GCResult()
        self._cache.clear()
        with self.store.begin(write=True) as txn:
            ctx = _Ctx(txn)
            if live_snapshot_ids is not None:
                live = set(live_snapshot_ids)
                for sid in self._all_manifests(ctx):
                    if sid in live:
                        continue
                    txn.delete(layout.snapshot_key(sid))
                    result.snapshots += 1
            records: dict[str, TensorRecord] = {}
            for manifest in self._all_manifests(ctx).values():
                records.update(self._needed_records(ctx, manifest))
            chunks = {layout.chunk_key(d) for r in records.values() for d in r.chunks()}
            for key in list(txn.keys(layout.TENSORS)):
                digest = layout.name_of(layout.TENSORS, key)
                if digest not in records:
                    txn.delete(key)
                    txn.delete(layout.edges_key(digest))
                    result.tensors += 1
            for key in list(txn.keys(layout.CHUNKS)):
                if key not in chunks:
                    value = txn.get(key)
                    result.bytes += len(value) if value is not None else 0
                    txn.delete(key)
                    result.chunks += 1
        return result

    def compact(self) -> tuple[int, int]:
        """Rewrite the store without its free pages (LMDB never shrinks its file after
        deletes); returns the file's bytes on disk before and after. Call it with no other
        writer (the caller's exclusive lock); stores without a file keep what they have."""
        compact = getattr(self.store, "compact", None)
        if compact is None:
            return 0, 0
        self._cache.clear()
        before, after = compact()
        return int(before), int(after)

    # ------------------------------------------------------------------ planning

    def storage_graph(self) -> tuple[planner.StorageGraph, dict[str, str | None]]:
        """The matrix storage graph of the archive and the current base of every tensor.

        Storage costs are the measured (or sampled) encoded sizes recorded at write time;
        recreation cost of an edge is estimated as bytes decoded plus bytes read
        (``raw + cs``)."""
        with self.store.begin() as txn:
            ctx = _Ctx(txn)
            every = self._all_records(ctx)
            # a packed tensor is stored as (a part of) its pack: the planner sees the pack
            records = {d: r for d, r in every.items() if r.slot is None}
            edges = {d: load_edges(d, v) for d, v in self._scan(txn, layout.EDGES)}
            groups = {
                s: sorted({self._stored_as(every, d) for d in m.tensors.values()})
                for s, m in self._all_manifests(ctx).items()
            }
        current = {d: r.base for d, r in records.items()}
        best: dict[tuple[str, str], float] = {}
        for d, rec in records.items():
            size = rec.count * rec.uint.itemsize
            for e in edges.get(d, []):
                base = e["base"]
                if base is not None and base not in records:
                    continue
                cs = e["cs"] if e["cs"] is not None else rec.stored
                if base == current[d]:
                    cs = rec.stored  # exact for the edge actually stored
                key = (planner.ROOT, d) if base is None else tuple(sorted((base, d)))
                best[key] = min(best.get(key, float("inf")), float(cs))  # type: ignore[index]
            if (planner.ROOT, d) not in best:
                best[(planner.ROOT, d)] = float(rec.stored if current[d] is None else size)
        sizes = {d: r.count * r.uint.itemsize for d, r in records.items()}
        graph_edges = [
            planner.Edge(u, v, cs, float(sizes[v if v != planner.ROOT else u] + cs))
            for (u, v), cs in best.items()
        ]
        return planner.StorageGraph(sorted(records), graph_edges, groups), current

    @staticmethod
    def _stored_as(records: dict[str, TensorRecord], digest: str) -> str:
        record = records.get(digest)
        return record.slot.pack if record is not None and record.slot is not None else digest

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
            ctx = _Ctx(txn)
            record = self._record(ctx, digest)
            bits = self._bits(ctx, digest)
            base_bits = None if base is None else self._bits(ctx, base)
        data = bits if base_bits is None else self.delta.encode(bits, base_bits)
        encoded = self._encode_planes(data, record.nplanes, digest, base)
        with self.store.begin(write=True, reserve=int(bits.nbytes) * 2) as txn:
            ctx = _Ctx(txn)
            delta = None if base is None else Delta(self.delta.op, base)
            placed = self._replace(ctx, self._record(ctx, digest), delta, encoded)
            self._set_edge(ctx, digest, base, float(placed.stored))

    def _set_edge(self, ctx: _Ctx, digest: str, base: str | None, size: float) -> None:
        """Record the exact storage cost of ``digest`` stored against ``base``."""
        edges = load_edges(digest, ctx.txn.get(layout.edges_key(digest)))
        edges = [e for e in edges if e["base"] != base]
        edges.append(self._edge(base, size))
        ctx.txn.put(layout.edges_key(digest), dump_edges(edges))
