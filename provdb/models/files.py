"""Model files in and out: ONNX (network + weights), safetensors and PyTorch checkpoints.

PyTorch checkpoints are loaded with ``torch.load(weights_only=True)``: a pickle that needs more
than tensors is refused, never executed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from provdb.errors import InvalidInput
from provdb.models.network import NetworkDef

#: Suffix → framework recorded on the version.
FORMATS = {
    ".onnx": "onnx",
    ".safetensors": "safetensors",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".bin": "pytorch",
}


def read_model_file(
    path: str | os.PathLike[str],
) -> tuple[NetworkDef | None, dict[str, np.ndarray], str]:
    """``(network or None, tensors, framework)`` of a model file; the network comes only with
    ONNX (for weights-only formats the caller supplies it)."""
    p = Path(path)
    kind = FORMATS.get(p.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"{p}: unknown model file type {p.suffix!r}; expected one of {', '.join(FORMATS)}"
        )
    if not p.is_file():
        raise InvalidInput(f"{p}: no such file")
    from provdb.models import importers

    if kind == "onnx":
        net, tensors = importers.from_onnx(p)
        return net, tensors, kind
    if kind == "safetensors":
        return None, importers.load_safetensors(p), kind
    return None, importers.load_torch_checkpoint(p), kind


def write_model_file(
    path: str | os.PathLike[str], network: NetworkDef, tensors: dict[str, np.ndarray]
) -> Path:
    """Write ``.safetensors`` (weights, bit-exact) or ``.onnx`` (network + weights)."""
    p = Path(path)
    from provdb.models import importers

    if p.suffix.lower() == ".safetensors":
        importers.save_safetensors(tensors, p)
    elif p.suffix.lower() == ".onnx":
        importers.to_onnx(network, tensors, p)
    else:
        raise InvalidInput(f"{p}: checkout writes .safetensors or .onnx, not {p.suffix!r}")
    return p


def read_network_file(path: str | os.PathLike[str]) -> NetworkDef:
    """A network definition from a JSON file (``docs/network-format.md``)."""
    p = Path(path)
    try:
        return NetworkDef.from_json(p.read_text())
    except OSError as exc:
        raise InvalidInput(f"{p}: cannot read the network definition: {exc}") from None
