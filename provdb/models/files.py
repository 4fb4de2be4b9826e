"""Model files in and out, dispatched by file suffix: ONNX (network + weights), safetensors and
PyTorch checkpoints.

Each format's module (and torch/onnx with it) is imported only when a file of that format is
read or written, so commands that never touch a model file stay fast. PyTorch checkpoints are
loaded with ``torch.load(weights_only=True)``: a pickle that needs more than tensors is refused,
never executed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from provdb.errors import InvalidInput
from provdb.models.network import NetworkDef

Tensors = dict[str, np.ndarray]
Reader = Callable[[Path], tuple[NetworkDef | None, Tensors]]
Writer = Callable[[Path, NetworkDef, Tensors], None]

#: Suffix → framework recorded on the version.
FORMATS = {
    ".onnx": "onnx",
    ".safetensors": "safetensors",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".bin": "pytorch",
}


def _read_onnx(p: Path) -> tuple[NetworkDef | None, Tensors]:
    from provdb.models.onnx import from_onnx

    return from_onnx(p)


def _read_safetensors(p: Path) -> tuple[NetworkDef | None, Tensors]:
    from provdb.models.safetensors import load_safetensors

    return None, load_safetensors(p)


def _read_pytorch(p: Path) -> tuple[NetworkDef | None, Tensors]:
    from provdb.models.torch import load_torch_checkpoint

    return None, load_torch_checkpoint(p)


def _write_onnx(p: Path, network: NetworkDef, tensors: Tensors) -> None:
    from provdb.models.onnx import to_onnx

    to_onnx(network, tensors, p)


def _write_safetensors(p: Path, network: NetworkDef, tensors: Tensors) -> None:
    from provdb.models.safetensors import save_safetensors

    save_safetensors(tensors, p)


#: Framework → reader; suffix → writer.
_READERS: dict[str, Reader] = {
    "onnx": _read_onnx,
    "safetensors": _read_safetensors,
    "pytorch": _read_pytorch,
}
_WRITERS: dict[str, Writer] = {".onnx": _write_onnx, ".safetensors": _write_safetensors}


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
    net, tensors = _READERS[kind](p)
    return net, tensors, kind


def write_model_file(
    path: str | os.PathLike[str], network: NetworkDef, tensors: dict[str, np.ndarray]
) -> Path:
    """Write ``.safetensors`` (weights, bit-exact) or ``.onnx`` (network + weights)."""
    p = Path(path)
    writer = _WRITERS.get(p.suffix.lower())
    if writer is None:
        raise InvalidInput(f"{p}: checkout writes .safetensors or .onnx, not {p.suffix!r}")
    writer(p, network, tensors)
    return p


def read_network_file(path: str | os.PathLike[str]) -> NetworkDef:
    """A network definition from a JSON file (``docs/network-format.md``)."""
    p = Path(path)
    try:
        return NetworkDef.from_json(p.read_text())
    except OSError as exc:
        raise InvalidInput(f"{p}: cannot read the network definition: {exc}") from None
