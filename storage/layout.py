"""The archive's key layout on a :class:`~storage.abc.Store`: the one module that spells it.

=====================  ==========================================================================
key                    value
=====================  ==========================================================================
``m/format``           ``{"version": n}`` (JSON): the archive format (see :mod:`storage.records`)
``c/<chunk digest>``   a chunk: framed, compressed bytes of one piece of one byte plane
``t/<tensor digest>``  a :class:`~storage.records.TensorRecord`: how to rebuild one tensor (a
                       pack of small tensors, or a small tensor's slot in a pack, is one too)
``e/<tensor digest>``  measured candidate delta edges (storage cost per base) for the planner
``s/<snapshot id>``    a :class:`~storage.records.Manifest` ``{name: tensor digest}``, written last
``p/<series>/<seq>``   block ``seq`` (12 digits) of an append-only series: opaque bytes the caller
                       packs (metric points); never touched by ``gc``
=====================  ==========================================================================

A chunk digest names the chunk's stored value (see :func:`storage.codecs.chunk_digest`), so any
copy of a chunk can be checked against its key alone.
"""

from __future__ import annotations

FORMAT_KEY = "m/format"

META = "m/"
CHUNKS = "c/"
TENSORS = "t/"
EDGES = "e/"
SNAPSHOTS = "s/"
SERIES = "p/"

#: Every prefix whose values count as archive metadata (not chunk payload).
METADATA = (TENSORS, EDGES, SNAPSHOTS, META)


def chunk_key(digest: str) -> str:
    """Store key of the chunk with this digest."""
    return CHUNKS + digest


def tensor_key(digest: str) -> str:
    """Store key of the record of the tensor with this digest."""
    return TENSORS + digest


def edges_key(digest: str) -> str:
    """Store key of the planner edges of the tensor with this digest."""
    return EDGES + digest


def snapshot_key(snapshot_id: str) -> str:
    """Store key of a snapshot's manifest."""
    return SNAPSHOTS + snapshot_id


def series_prefix(series_id: str) -> str:
    """Store key prefix of every block of a series."""
    return f"{SERIES}{series_id}/"


def series_key(series_id: str, seq: int) -> str:
    """Store key of block ``seq`` of a series (zero-padded, so keys sort in block order)."""
    return f"{series_prefix(series_id)}{seq:012d}"


def name_of(prefix: str, key: str) -> str:
    """The digest or id a key holds (``key`` without ``prefix``)."""
    assert key.startswith(prefix), (prefix, key)
    return key[len(prefix) :]


def chunk_digest_of_key(key: str) -> str:
    """The digest in a chunk key as format-1 records spelled it (``c/<digest>``)."""
    return key[len(CHUNKS) :] if key.startswith(CHUNKS) else key
