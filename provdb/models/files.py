"""Model files in and out, dispatched by file suffix: ONNX (network + weights), safetensors and
PyTorch checkpoints.

Each format's module (and torch/onnx with it) is imported only when a file of that format is
read or written, so commands that never touch a model file stay fast. PyTorch checkpoints are
loaded with ``torch.load(weights_only=True)``: a pickle that needs more than tensors is refused,
never executed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from provdb.errors import InvalidInput
from provdb.models.network import NetworkDef

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelFile:
    """What a model file holds. Unpacks as ``(network, tensors, framework)``.

    ``network`` is ``None`` for weights-only files (safetensors, PyTorch) unless read with
    ``infer=True``; then it is :func:`~provdb.models.weights.infer_network`'s guess and
    ``inferred`` is true. ``metadata`` is the safetensors ``__metadata__`` (``{}`` otherwise);
    :func:`write_model_file` writes it back.
    """

    network: NetworkDef | None
    tensors: Tensors
    framework: str
    metadata: dict[str, str] = field(default_factory=dict)
    inferred: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.network, self.tensors, self.framework))

    def infer_network(self) -> NetworkDef:
        """The file's network, or one inferred from its tensors (carrying ``metadata``)."""
        if self.network is not None:
            return self.network
        from provdb.models.weights import infer_network

        net = infer_network(self.tensors)
        if self.metadata:
            net = net.replace(meta={**net.meta, "safetensors": {"metadata": self.metadata}})
        return net


Read = tuple[NetworkDef | None, Tensors, dict[str, str]]
Reader = Callable[[Path], Read]
Writer = Callable[[Path, NetworkDef, Tensors, dict[str, str] | None], None]

#: Suffix → framework recorded on the version.
FORMATS = {
    ".onnx": "onnx",
    ".safetensors": "safetensors",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".bin": "pytorch",
}


def _read_onnx(p: Path) -> Read:
    from provdb.models.onnx import from_onnx

    return (*from_onnx(p), {})


def _read_safetensors(p: Path) -> Read:
    from provdb.models.safetensors import read_safetensors

    return (None, *read_safetensors(p))


def _read_pytorch(p: Path) -> Read:
    from provdb.models.torch import load_torch_checkpoint

    return None, load_torch_checkpoint(p), {}


def _write_onnx(p: Path, network: NetworkDef, tensors: Tensors, _: dict[str, str] | None) -> None:
    from provdb.models.onnx import to_onnx

    to_onnx(network, tensors, p)


def _write_safetensors(
    p: Path, network: NetworkDef, tensors: Tensors, metadata: dict[str, str] | None
) -> None:
    from provdb.models.safetensors import save_safetensors

    if metadata is None:
        metadata = network.meta.get("safetensors", {}).get("metadata")
    save_safetensors(tensors, p, metadata)


#: Framework → reader; suffix → writer.
_READERS: dict[str, Reader] = {
    "onnx": _read_onnx,
    "safetensors": _read_safetensors,
    "pytorch": _read_pytorch,
}
_WRITERS: dict[str, Writer] = {".onnx": _write_onnx, ".safetensors": _write_safetensors}


def read_model_file(path: str | os.PathLike[str], *, infer: bool = False) -> ModelFile:
    """What a model file holds; unpacks as ``(network or None, tensors, framework)``.

    The network comes with ONNX; for weights-only formats it is ``None`` (the caller supplies
    one) or, with ``infer=True``, guessed from the tensor names and shapes. Tensors keep their
    dtypes (bfloat16 included); safetensors metadata is in ``.metadata``.
    """
    p = Path(path)
    kind = FORMATS.get(p.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"{p}: unknown model file type {p.suffix!r}; expected one of {', '.join(FORMATS)}"
        )
    if not p.is_file():
        raise InvalidInput(f"{p}: no such file")
    net, tensors, metadata = _READERS[kind](p)
    found = ModelFile(net, tensors, kind, metadata)
    if infer and net is None:
        return ModelFile(found.infer_network(), tensors, kind, metadata, inferred=True)
    return found


def write_model_file(
    path: str | os.PathLike[str],
    network: NetworkDef,
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``.safetensors`` (weights, bit-exact, dtypes kept) or ``.onnx`` (network + weights).

    Safetensors ``metadata`` defaults to what an inferred network recorded from its file
    (``network.meta["safetensors"]["metadata"]``).
    """
    p = Path(path)
    writer = _WRITERS.get(p.suffix.lower())
    if writer is None:
        raise InvalidInput(f"{p}: checkout writes .safetensors or .onnx, not {p.suffix!r}")
    writer(p, network, tensors, metadata)
    return p


def read_network_file(path: str | os.PathLike[str]) -> NetworkDef:
    """A network definition from a JSON file (``docs/network-format.md``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{p}: the network definition must be UTF-8 JSON text") from None
    except OSError as exc:
        raise InvalidInput(f"{p}: cannot read the network definition: {exc}") from None
    return NetworkDef.from_json(text)
