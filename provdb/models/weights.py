"""Weights without a network: infer a definition from tensor names, map a state dict onto one.

* :func:`infer_network` makes a :class:`NetworkDef` from a weights-only file's tensors: one layer
  per name prefix (``encoder.layer.0.attention.self.query`` owns ``….weight`` and ``….bias``),
  its type guessed from parameter names and shapes (FC, Conv, Embedding, LayerNorm, BatchNorm,
  else ``Other``), every layer marked ``"inferred": true``, in the file's order and without
  edges (the file says nothing about the data flow).
* :func:`map_state_dict` renames a PyTorch state dict to the tensor names of a network imported
  from a torch-exported ONNX file (``conv1.weight`` → ``/conv1/Conv.weight``): by the exporter's
  initializer names first, then by shape and order, and says which mapping it used.

Neither imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from provdb.errors import InvalidInput
from provdb.models.network import Layer, NetworkDef, layer_of

Tensors = dict[str, np.ndarray]
Shape = tuple[int, ...]

_BATCHNORM = frozenset({"running_mean", "running_var"})
_EMBEDDING_WORDS = ("embed", "wte", "wpe", "tok_emb", "pos_emb")
_NORM_WORDS = ("norm", "ln", "layernorm")


def _prefix(name: str) -> tuple[str, str]:
    layer, dot, param = name.rpartition(".")
    return (layer, param) if dot else (name, "")


def _has_word(name: str, words: tuple[str, ...]) -> bool:
    parts = name.lower().replace("_", ".").split(".")
    return any(w in name.lower() if len(w) > 3 else w in parts for w in words)


def _guess_batchnorm(name: str, p: Mapping[str, Shape]) -> tuple[str, dict[str, Any]] | None:
    if not _BATCHNORM <= set(p):
        return None
    return "BatchNorm", {"num_features": p["running_mean"][0], "affine": "weight" in p}


def _guess_embedding(name: str, p: Mapping[str, Shape]) -> tuple[str, dict[str, Any]] | None:
    weight = p.get("weight")
    if weight is None or len(weight) != 2 or "bias" in p or not _has_word(name, _EMBEDDING_WORDS):
        return None
    return "Embedding", {"num_embeddings": weight[0], "embedding_dim": weight[1]}


def _guess_layernorm(name: str, p: Mapping[str, Shape]) -> tuple[str, dict[str, Any]] | None:
    weight = p.get("weight")
    if weight is None or len(weight) != 1 or not _has_word(name, _NORM_WORDS):
        return None
    return "LayerNorm", {"normalized_shape": list(weight), "bias": "bias" in p}


def _guess_fc(name: str, p: Mapping[str, Shape]) -> tuple[str, dict[str, Any]] | None:
    weight = p.get("weight")
    if weight is None or len(weight) != 2 or not set(p) <= {"weight", "bias"}:
        return None
    return "FC", {"in_features": weight[1], "out_features": weight[0], "bias": "bias" in p}


def _guess_conv(name: str, p: Mapping[str, Shape]) -> tuple[str, dict[str, Any]] | None:
    weight = p.get("weight")
    if weight is None or len(weight) not in (3, 4, 5) or not set(p) <= {"weight", "bias"}:
        return None
    return "Conv", {
        "in_channels": weight[1],
        "out_channels": weight[0],
        "kernel_size": list(weight[2:]),
        "bias": "bias" in p,
    }


Guess = Callable[[str, Mapping[str, Shape]], tuple[str, dict[str, Any]] | None]
#: Tried in order; the first that recognises a layer's parameters names its type.
_GUESSES: tuple[Guess, ...] = (
    _guess_batchnorm,
    _guess_embedding,
    _guess_layernorm,
    _guess_fc,
    _guess_conv,
)


def _guess(name: str, params: Mapping[str, Shape]) -> Layer:
    for guess in _GUESSES:
        found = guess(name, params)
        if found is not None:
            return Layer(name, found[0], "", {**found[1], "inferred": True})
    return Layer(name, "Other", "", {"op": "Parameters", "params": list(params), "inferred": True})


def infer_network(tensors: Mapping[str, Any]) -> NetworkDef:
    """A network definition guessed from tensor names and shapes (module docstring).

    Layers come in the order their first tensor appears; ``meta["inferred"]`` says the network
    was inferred. Raises :class:`InvalidInput` for a tensor name with no ``.`` (no layer can own
    it) or an empty mapping.
    """
    if not tensors:
        raise InvalidInput("cannot infer a network from no tensors")
    groups: dict[str, dict[str, Shape]] = {}
    for name, value in tensors.items():
        layer, param = _prefix(name)
        if not param:
            raise InvalidInput(f"tensor {name!r} is not named '<layer>.<param>'; no layer owns it")
        groups.setdefault(layer, {})[param] = tuple(int(d) for d in np.shape(value))
    layers = tuple(_guess(name, params) for name, params in groups.items())
    meta = {"inferred": {"from": "tensor names and shapes", "layers": len(layers)}}
    return NetworkDef(layers, (), meta)


# ---- state dicts onto an imported network --------------------------------------------------


def _exporter_names(network: NetworkDef) -> dict[str, str]:
    """ONNX initializer name → our tensor name, from the layers' ``onnx_names``."""
    names: dict[str, str] = {}
    for layer in network.layers:
        for param, onnx_name in layer.attrs.get("onnx_names", {}).items():
            names.setdefault(onnx_name, f"{layer.name}.{param}")
    return names


def _expected_shapes(network: NetworkDef) -> dict[str, Shape]:
    """Tensor name → shape a layer's attributes imply (canonical parametric types only)."""
    shapes: dict[str, Shape] = {}
    for layer in network.param_layers():
        a, n = layer.attrs, layer.name
        if layer.type == "FC":
            shapes[f"{n}.weight"] = (a["out_features"], a.get("in_features", 0))
            if a.get("bias", True):
                shapes[f"{n}.bias"] = (a["out_features"],)
        elif layer.type == "Conv":
            groups = int(a.get("groups", 1))
            kernel = tuple(a["kernel_size"])
            shapes[f"{n}.weight"] = (a["out_channels"], a.get("in_channels", 0) // groups, *kernel)
            if a.get("bias", True):
                shapes[f"{n}.bias"] = (a["out_channels"],)
        elif layer.type == "BatchNorm":
            for param in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{n}.{param}"] = (a["num_features"],)
        elif layer.type == "Embedding":
            shapes[f"{n}.weight"] = (a["num_embeddings"], a["embedding_dim"])
        elif layer.type == "LayerNorm":
            shapes[f"{n}.weight"] = tuple(a["normalized_shape"])
            if a.get("bias", True):
                shapes[f"{n}.bias"] = tuple(a["normalized_shape"])
    return shapes


def map_state_dict(
    network: NetworkDef,
    tensors: Mapping[str, Any],
    reference: Mapping[str, Any] | None = None,
) -> tuple[Tensors, str]:
    """``(tensors renamed to the network's names, how)`` for a state dict and a network.

    ``how`` is ``"names"`` when the state dict already uses the network's names,
    ``"exporter names"`` when the ONNX initializer names recorded at import (``onnx_names``)
    map every tensor, and ``"exporter names, then shape and order"`` / ``"shape and order"``
    when some tensors were matched to the remaining network tensors of the same shape, in
    order. ``reference`` (the network's current tensors, e.g. the parent version's weights)
    gives those names and shapes; without it they come from the layer attributes.
    ``num_batches_tracked`` counters the network has no place for are dropped. Raises
    :class:`InvalidInput` naming the tensors that match nothing.
    """
    arrays = {name: np.asarray(value) for name, value in tensors.items()}
    names = network.names
    if all(layer_of(name, names) for name in arrays):
        return arrays, "names"
    slots: dict[str, Shape] = (
        {name: tuple(np.shape(v)) for name, v in reference.items()}
        if reference is not None
        else _expected_shapes(network)
    )
    exporter = _exporter_names(network)
    mapped: Tensors = {}
    left: list[str] = []
    for name, array in arrays.items():
        target = name if layer_of(name, names) else exporter.get(name)
        if target is not None and slots.get(target, array.shape) == array.shape:
            mapped[target] = array
        else:
            left.append(name)
    by_names = len(mapped)
    free = [slot for slot in slots if slot not in mapped]
    for name in list(left):
        match = next((s for s in free if slots[s] == arrays[name].shape), None)
        if match is not None:
            mapped[match] = arrays[name]
            free.remove(match)
            left.remove(name)
    unmatched = [name for name in left if not name.endswith("num_batches_tracked")]
    if unmatched:
        shown = ", ".join(f"{n} {list(arrays[n].shape)}" for n in unmatched[:5])
        more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
        raise InvalidInput(f"state dict tensors match no tensor of the network: {shown}{more}")
    by_shape = len(mapped) - by_names
    if not by_shape:
        return mapped, "exporter names"
    return mapped, "exporter names, then shape and order" if by_names else "shape and order"
