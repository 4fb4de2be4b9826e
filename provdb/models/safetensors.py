"""Safetensors files: tensors in, tensors out (bit-exact)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from provdb.errors import InvalidInput
from provdb.models._common import Tensors, as_numpy, existing_file, first_line


def load_safetensors(path: str | os.PathLike[str]) -> Tensors:
    """Tensors of a ``.safetensors`` file as numpy arrays (bfloat16 widened to float32)."""
    from safetensors import SafetensorError, safe_open

    p = existing_file(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            return {name: as_numpy(f.get_tensor(name)) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InvalidInput(f"{p}: not a valid safetensors file ({first_line(exc)})") from None


def save_safetensors(
    tensors: Mapping[str, Any], path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write numpy arrays (or torch tensors) to a ``.safetensors`` file."""
    from safetensors.numpy import save_file

    arrays = {name: np.array(as_numpy(value), order="C") for name, value in tensors.items()}
    save_file(arrays, str(path), metadata=metadata)
