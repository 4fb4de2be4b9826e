"""Safetensors files, read and written with numpy alone: every dtype kept, metadata kept.

The format is an 8-byte little-endian header length, a JSON header (``{name: {"dtype", "shape",
"data_offsets"}}`` plus an optional ``"__metadata__"`` of strings) and the tensor bytes.
bfloat16 and float8 tensors come back as ``ml_dtypes`` arrays (not widened), tensors keep the
file's order, and :func:`save_safetensors` writes the same layout back, so loading and saving
an unchanged file reproduces its tensors and metadata exactly.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from provdb.errors import InvalidInput
from provdb.models._common import Tensors, as_numpy, existing_file

#: safetensors dtype → numpy dtype.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
}
_NAMES: dict[np.dtype[Any], str] = {dtype: name for name, dtype in DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path: str | os.PathLike[str]) -> tuple[Tensors, dict[str, str]]:
    """``(tensors, metadata)`` of a ``.safetensors`` file, tensors in file (data) order."""
    p = existing_file(path)
    try:
        data = p.read_bytes()
        header, start = _header(data)
    except (OSError, ValueError, struct.error) as exc:
        raise InvalidInput(f"{p}: not a valid safetensors file ({exc})") from None
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidInput(f"{p}: not a valid safetensors file (__metadata__ is not strings)")
    entries = sorted(header.items(), key=lambda item: _offsets(item[1])[0])
    tensors: Tensors = {}
    for name, entry in entries:
        try:
            tensors[name] = _tensor(data, start, entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{p}: not a valid safetensors file ({name}: {exc})") from None
    return tensors, dict(metadata)


def load_safetensors(path: str | os.PathLike[str]) -> Tensors:
    """Tensors of a ``.safetensors`` file as numpy arrays, dtypes kept (bf16 as ml_dtypes)."""
    return read_safetensors(path)[0]


def save_safetensors(
    tensors: Mapping[str, Any], path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write numpy arrays (or torch tensors) to a ``.safetensors`` file, in the given order."""
    arrays = {name: _little_endian(as_numpy(value)) for name, value in tensors.items()}
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, array in arrays.items():
        dtype = _NAMES.get(array.dtype)
        if dtype is None:
            raise InvalidInput(f"tensor {name!r}: safetensors cannot hold dtype {array.dtype}")
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with Path(path).open("wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for array in arrays.values():
            f.write(array.tobytes())


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.asarray(array, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(_MAX_HEADER, len(data) - 8):
        raise ValueError("header length beyond the end of the file")
    header = json.loads(data[8 : 8 + size])
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, 8 + size


def _offsets(entry: Any) -> tuple[int, int]:
    if not isinstance(entry, dict):
        raise InvalidInput("not a valid safetensors file (a header entry is not an object)")
    begin, end = entry.get("data_offsets", (0, 0))
    return int(begin), int(end)


def _tensor(data: bytes, start: int, entry: Mapping[str, Any]) -> np.ndarray:
    dtype = DTYPES[entry["dtype"]]
    shape = tuple(int(d) for d in entry["shape"])
    begin, end = _offsets(entry)
    count = int(np.prod(shape, dtype=np.int64))
    if end - begin != count * dtype.itemsize or start + end > len(data) or begin < 0:
        raise ValueError("data offsets do not match the shape and dtype")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=start + begin)
    return flat.reshape(shape).copy()
