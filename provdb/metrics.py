"""Metric series stored append-only: the points of a series the SDK logs live in the archive
as packed blocks (``storage`` series ``<metric id>``, block ``seq``), one per take of the
buffer, while the graph's ``(:Metric)`` node keeps the summary (``last``/``min``/``max``, what
DQL filters on). A series written in one go (a commit's metrics, a pull) stays inline on the
node; a series may have both, inline points first.

A block is ``MS1`` + zlib of the points' step deltas (int64) followed by their values
(float64), little-endian: about 9 bytes a point for regular steps.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from provdb.errors import CorruptData

if TYPE_CHECKING:
    from provdb.entities import Metric
    from storage import Archive

BLOCK_FORMAT = b"MS1"
_HEADER = struct.Struct("<3sI")  # format, number of points


def pack(steps: Sequence[int], values: Sequence[float]) -> bytes:
    """One block holding these points (equally many steps and values)."""
    if len(steps) != len(values):
        raise ValueError("a metric block needs as many steps as values")
    deltas = np.diff(np.asarray(steps, dtype="<i8"), prepend=np.int64(0))
    raw = deltas.astype("<i8").tobytes() + np.asarray(values, dtype="<f8").tobytes()
    return _HEADER.pack(BLOCK_FORMAT, len(steps)) + zlib.compress(raw, 1)


def points_in(block: bytes) -> int:
    """How many points a block holds (read from its header)."""
    return int(_HEADER.unpack_from(block)[1])


def unpack(block: bytes) -> tuple[list[int], list[float]]:
    """The steps and values of a block; :class:`CorruptData` when it does not decode."""
    try:
        fmt, count = _HEADER.unpack_from(block)
        if fmt != BLOCK_FORMAT:
            raise ValueError(f"unknown format {fmt!r}")
        raw = zlib.decompress(block[_HEADER.size :])
        if len(raw) != 16 * count:
            raise ValueError(f"{count} points in {len(raw)} bytes")
    except (struct.error, zlib.error, ValueError) as exc:
        raise CorruptData(f"corrupt metric block: {exc}") from exc
    steps = np.cumsum(np.frombuffer(raw, dtype="<i8", count=count))
    return steps.tolist(), np.frombuffer(raw, dtype="<f8", offset=8 * count).tolist()


def with_blocks(archive: Archive, metrics: Mapping[str, Metric]) -> dict[str, Metric]:
    """``metrics`` (read from the graph) with each series' archived blocks appended."""
    blocks = archive.series([m.id for m in metrics.values()]) if metrics else {}
    out = {}
    for name, metric in metrics.items():
        steps, values = list(metric.steps), list(metric.values)
        for block in blocks.get(metric.id, []):
            more_steps, more_values = unpack(block)
            steps += more_steps
            values += more_values
        out[name] = replace(metric, steps=steps, values=values)
    return out
