"""PAS: byte-plane, delta-encoded parameter archive on LMDB.

A leaf library: it never imports ``provdb``. The versioning layer stores model weights here.

Quick start::

    from storage import Archive

    with Archive.open(".dlv/archive") as ar:                    # one LMDB env per repository
        ar.write_snapshot("run1/ckpt-0", {"fc.weight": w0})
        ar.write_snapshot("run1/ckpt-1", {"fc.weight": w1}, bases=["run1/ckpt-0"])
        w = ar.read_tensor("run1/ckpt-1", "fc.weight")           # bit-exact, digest-checked
        approx = ar.read_snapshot("run1/ckpt-1", planes=1)      # only the top byte plane
        lo, hi = ar.read_interval("run1/ckpt-1", "fc.weight", planes=2)
        ar.replan("pas-mt", alpha=2.0)                          # re-optimise storage

Public API
----------
``Archive.open(path, *, readonly=False, map_size=1 GiB, sync=True, **options) -> Archive``
    Open/create the archive directory (context manager; ``close()``). ``Archive(store, *,
    compressor=DEFAULT_COMPRESSOR, delta_op="xor"|"sub", max_chain=8, cache_bytes=256 MiB,
    threads=1, pack_below=128 KiB)`` wraps any :class:`Store` (``DEFAULT_COMPRESSOR``: zstd
    level 1 on the two high byte planes, -1 on the low ones; ``threads > 1`` decodes/encodes
    byte planes concurrently). Lossless tensors smaller than ``pack_below`` bytes are stored
    together, one *pack* per snapshot and dtype (format 3), each still addressed by its own
    digest; ``pack_below=0`` stores every tensor on its own.
    Do not share an open archive across ``fork()``; open one per process.
``write_snapshot(snapshot_id, tensors, *, bases=(), scheme=None, series=True) -> SnapshotInfo``
    One write transaction: chunks first, manifest last. Identical tensors (same bytes, dtype,
    shape, scheme) are stored once; ``bases`` name earlier snapshots whose same-named tensors are
    candidate delta bases. A linear series uses **reverse deltas**: the new tensor is stored
    materialised and its predecessor re-encoded as a delta against it in the same transaction
    (its old chunks deleted there too), so the newest snapshot reads at materialised speed;
    every ``max_chain + 1``-th tensor of a run starts a new materialised keyframe. When a
    tensor gets a second successor (fine-tunes of one base) it is materialised again and the
    siblings keep forward deltas against it. ``scheme`` is an optional lossy :class:`Scheme`
    (or ``{name: Scheme}``), recorded per tensor. ``series=False``: ``bases`` is a model this
    one derives from (forward deltas against it), not a predecessor.
``read_snapshot(snapshot_id, *, planes=None) -> dict[str, np.ndarray]``
``read_tensor(snapshot_id, name, *, planes=None) -> np.ndarray``
    Bit-exact reads (every chunk's CRC-32 and the reconstructed tensor's CRC-32 are checked;
    ISA-L's SIMD CRC-32 is used when the optional ``isal`` package is installed); with
    ``planes=k`` only the top ``k`` byte planes are read (XOR deltas keep this working through
    delta chains) and the low bytes are zero.
``read_interval(snapshot_id, name, *, planes) -> (lo, hi)``
    Every non-NaN true value lies in ``[lo, hi]``; see the method for NaN/inf rules.
``has_snapshot(id)``, ``list_snapshots()``, ``manifest(id)``, ``delete_snapshot(id)``
``stats() -> ArchiveStats``  raw/stored bytes in total, per plane, per tensor, per snapshot.
``unique_bytes() -> {id: bytes}``  stored bytes each snapshot added that no earlier one shares
    (summing to the chunk bytes the snapshots need).
``compact() -> (before, after)``  rewrite the store's file with live pages only (LMDB: a
    compacted, fsynced copy renamed over ``data.mdb``); its bytes on disk before and after.
``snapshot_stats(id) -> {"raw", "stored", "chain_depth", "read_bytes"}``  one snapshot's bytes
    without a full scan; ``chain_depth``: delta links to a materialised tensor (max over its
    tensors); ``read_bytes``: stored bytes a full read touches (its chains' chunks, once each).
``verify() -> VerifyReport``  every chunk (CRC + SHA-256 key) and every tensor (decoded CRC).
``gc(live_snapshot_ids=None) -> GCResult``  drop snapshots not listed as live, then
    unreferenced tensors and chunks.
``snapshot_chunks(id) -> list[str]``  digests of every chunk a snapshot needs (through its
    delta chains): what another archive must hold to rebuild it.
``missing_chunks(digests) -> list[str]``  which of ``digests`` this archive lacks.
``get_chunk(digest) -> bytes`` / ``put_chunk(digest, data) -> bool``  a chunk's stored value
    by digest (``get_chunks``/``put_chunks``: a batch in one transaction); ``put_chunk``
    checks ``data`` against ``digest`` first (a mismatch raises :class:`CorruptionError` and
    stores nothing) and returns whether it was new.
``export_snapshot(id) -> bytes`` / ``import_snapshot(bundle, *, verify=True) -> str``
    A snapshot's manifest plus every tensor record it needs, as one value; importing it once
    the chunks are there re-creates the snapshot (missing chunks: :class:`NotFoundError`;
    with ``verify`` every tensor is decoded and checked against its CRC and, when lossless,
    its digest before the manifest is written). A hub moves a snapshot with
    ``missing = dst.missing_chunks(src.snapshot_chunks(id))``, ``dst.put_chunk(d,
    src.get_chunk(d))`` for each, then ``dst.import_snapshot(src.export_snapshot(id))``.
``replan(algorithm="pas-mt", *, alpha=2.0, scheme="independent") -> ReplanResult``
    Solve the storage plan (``mst``, ``spt``, ``last``, ``pas-mt``, ``pas-pt``; retrieval
    scheme ``independent`` or ``parallel``; θ_i = α · C_r(SPT, s_i)) and rewrite only tensors
    whose base changes, one transaction each, in an order that is consistent after any crash.

Integrity: every record the archive reads is verified. Manifests, tensor records and planner
edges are sealed with a CRC-32 and name their own key, chunks carry a CRC-32 and are addressed
by a digest of their stored bytes, and every reconstructed tensor is checked against its CRC;
damage raises a one-line :class:`CorruptionError` naming the snapshot, never a ``KeyError`` or
wrong names or values. LMDB errors surface as :class:`StorageError`. (LMDB 0.9 has no page
checksums: a damaged page header can still make LMDB itself fault; the store pads the file so
that this is rare — see ``tests/storage/test_corruption.py``.)

Format: archives are format 2: sealed records; tensor digests are BLAKE3 (was SHA-256) of the
dtype/shape/scheme header and the bit patterns; chunks are *owned* (framed with a 16-byte salt
of their record: tensor digest, base, plane, index) and keyed by BLAKE3 of the stored value, so
each chunk belongs to one record and re-encoding a record may delete its old chunks at once;
a full read checks the reconstructed tensor's CRC-32 only (it covers every chunk), a partial
read checks every chunk's CRC-32, and a failed full read re-checks the chunks to name the
damaged one. Format-1 archives (plain-JSON records, SHA-256 digests, shared chunks) still read
and mix with new records; opening one for writing marks it format 2, which older code
refuses to open; their shared chunks are only ever removed by ``gc``.

Layout and records: :mod:`storage.layout` is the one module that spells the store keys;
:mod:`storage.records` holds the typed records (``TensorRecord``, ``Manifest``, ``Delta``).

Planner (pure, :mod:`storage.planner`): ``StorageGraph``, ``Edge``, ``ROOT``, ``mst``, ``spt``,
``last``, ``pas_mt``, ``pas_pt``, ``budgets_for``, ``solve``, ``exact``.

Codecs (:mod:`storage.codecs`): ``BytePlanes``, ``DeltaCodec``, ``Zstd`` and the lossy schemes
``Float16Scheme``, ``BFloat16Scheme``, ``FixedPointScheme``, ``QuantizeScheme`` — frozen
dataclasses with ``to_dict()``/``from_dict()``.

Stores (:mod:`storage.abc`): ``Store``/``Txn`` ABCs, ``LMDBStore``, ``MemoryStore``,
``S3Store`` (any S3-compatible object store; ``Archive.open("s3://BUCKET/PREFIX?endpoint=URL")``,
``parse_url``/``is_s3_url`` are the one place URLs are read; see :mod:`storage._s3`); the
conformance suite is :class:`storage.testing.StoreTests`.

Errors: ``StorageError`` (``.code``) and ``NotFoundError``, ``CorruptionError``,
``InvalidInputError``, ``ReadOnlyError``, ``ConflictError``.
"""

from storage._lmdb import LMDBStore, disk_bytes, fsync_path
from storage._memory import MemoryStore
from storage._s3 import S3Store, is_s3_url, parse_url
from storage.abc import Store, Txn
from storage.archive import (
    Archive,
    ArchiveStats,
    GCResult,
    ReplanResult,
    SnapshotInfo,
    TensorInfo,
    VerifyReport,
)
from storage.codecs import (
    BFloat16Scheme,
    BytePlanes,
    DeltaCodec,
    FixedPointScheme,
    Float16Scheme,
    QuantizeScheme,
    Scheme,
    Zstd,
)
from storage.errors import (
    ConflictError,
    CorruptionError,
    InvalidInputError,
    NotFoundError,
    ReadOnlyError,
    StorageError,
)

__all__ = [
    "Archive",
    "ArchiveStats",
    "BFloat16Scheme",
    "BytePlanes",
    "ConflictError",
    "CorruptionError",
    "DeltaCodec",
    "FixedPointScheme",
    "Float16Scheme",
    "GCResult",
    "InvalidInputError",
    "LMDBStore",
    "MemoryStore",
    "NotFoundError",
    "QuantizeScheme",
    "ReadOnlyError",
    "ReplanResult",
    "S3Store",
    "Scheme",
    "SnapshotInfo",
    "Store",
    "StorageError",
    "TensorInfo",
    "Txn",
    "VerifyReport",
    "Zstd",
    "is_s3_url",
    "parse_url",
    "disk_bytes",
    "fsync_path",
]
