"""Helpers shared by the model-file formats (no torch, no onnx at import time)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from provdb.errors import InvalidInput

Tensors = dict[str, np.ndarray]


def existing_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path`; raises :class:`InvalidInput` when it is not a file."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"{p}: no such file")
    return p


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), for one-line errors."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def ints(value: Any, dims: int) -> list[int] | Any:
    """``value`` as a per-dimension list (a scalar repeated ``dims`` times; strings kept)."""
    if isinstance(value, str):
        return value
    return list(value) if isinstance(value, list | tuple) else [value] * dims


#: torch dtypes numpy lacks → (same-width integer view, ml_dtypes type).
_VIEWED = {
    "torch.bfloat16": ("int16", ml_dtypes.bfloat16),
    "torch.float8_e4m3fn": ("uint8", ml_dtypes.float8_e4m3fn),
    "torch.float8_e5m2": ("uint8", ml_dtypes.float8_e5m2),
}


def as_numpy(value: Any) -> np.ndarray:
    """A numpy copy of a torch tensor, dtype kept (bfloat16/float8 as ``ml_dtypes`` arrays),
    or ``np.asarray(value)``; torch is never imported here."""
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        tensor = value.detach().cpu()
        viewed = _VIEWED.get(str(tensor.dtype))
        if viewed is None:
            return np.array(tensor.numpy())
        import torch

        raw = tensor.contiguous().view(getattr(torch, viewed[0])).numpy()
        return np.array(raw).view(viewed[1])
    return np.asarray(value)


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name_1``, ``name_2``… — the first not in ``used`` (which it joins)."""
    candidate, k = name, 1
    while candidate in used:
        candidate, k = f"{name}_{k}", k + 1
    used.add(candidate)
    return candidate
