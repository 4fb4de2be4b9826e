"""Importers and exporters, re-exported from their per-format modules (kept for callers).

* :mod:`provdb.models.onnx` — :func:`from_onnx`, :func:`to_onnx`
* :mod:`provdb.models.torch` — :func:`from_torch`, :func:`load_torch_checkpoint`
* :mod:`provdb.models.safetensors` — :func:`load_safetensors`, :func:`save_safetensors`

Importing this module imports torch and onnx; :mod:`provdb.models.files` imports each format
only when a file of that format is read or written.
"""

from __future__ import annotations

from provdb.models._common import Tensors
from provdb.models.onnx import from_onnx, to_onnx
from provdb.models.safetensors import load_safetensors, save_safetensors
from provdb.models.torch import from_torch, load_torch_checkpoint

__all__ = [
    "Tensors",
    "from_onnx",
    "from_torch",
    "load_safetensors",
    "load_torch_checkpoint",
    "save_safetensors",
    "to_onnx",
]
