"""PyTorch in: modules traced with ``torch.fx`` and checkpoints loaded with ``weights_only=True``.

* :func:`from_torch` traces a module with ``torch.fx`` at module granularity. A leaf module's
  layer is named by its qualified module name *with dots kept* (``features.0``), so tensor names
  equal the module's own ``state_dict`` keys; functional calls (``torch.flatten``, ``F.relu``,
  ``+``) become layers named by their fx node name (``flatten``, ``relu``, ``add_1``).
* :func:`load_torch_checkpoint` reads a state dict; a pickle that needs more than tensors is
  refused, never executed.
"""

from __future__ import annotations

import inspect
import operator
import os
import pickle
from collections.abc import Mapping
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F  # noqa: N812
from torch import nn

from provdb.errors import InvalidInput
from provdb.models._common import Tensors, as_numpy, existing_file, first_line, ints, unique_name
from provdb.models.builder import encode_arg, module_tensors, resolve_function
from provdb.models.network import Layer, NetworkDef


def load_torch_checkpoint(path: str | os.PathLike[str]) -> Tensors:
    """Tensors of a PyTorch checkpoint, loaded with ``torch.load(weights_only=True)``.

    Accepts a state dict, or a dict holding one under ``state_dict``, ``model_state_dict`` or
    ``model``; non-tensor entries (``epoch``, ...) are ignored. Pickles that need more than
    tensors and plain containers (a whole pickled ``nn.Module``, arbitrary objects) are refused.
    """
    p = existing_file(path)
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise InvalidInput(
                f"{p}: refusing to unpickle a checkpoint that holds more than tensors "
                "(only weights_only=True checkpoints such as state dicts are accepted)"
            ) from None
        raise InvalidInput(f"{p}: not a PyTorch checkpoint ({first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler fails in many ways
        raise InvalidInput(f"{p}: not a PyTorch checkpoint ({first_line(exc)})") from None
    state = _state_dict_of(obj)
    if not state:
        raise InvalidInput(f"{p}: the checkpoint holds no tensors")
    return {name: as_numpy(t) for name, t in state.items()}


def _state_dict_of(obj: Any) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        return {}
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
    if tensors:
        return tensors
    for key in ("state_dict", "model_state_dict", "model"):
        if key in obj:
            return _state_dict_of(obj[key])
    return {}


def _conv_attrs(m: nn.modules.conv._ConvNd) -> dict[str, Any] | None:
    if m.padding_mode != "zeros" or m.transposed:
        return None
    dims = len(m.kernel_size)
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": list(m.kernel_size),
        "stride": list(m.stride),
        "padding": ints(m.padding, dims),
        "dilation": list(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
    }


def _pool_attrs(m: nn.Module) -> tuple[str, dict[str, Any]] | None:
    name = type(m).__name__
    mode = "MAX" if "Max" in name else "AVG"
    if name.startswith("Adaptive"):
        if getattr(m, "return_indices", False):
            return None
        return mode, {"adaptive": True, "output_size": ints(m.output_size, int(name[-2]))}
    if getattr(m, "return_indices", False) or getattr(m, "divisor_override", None):
        return None
    dims = int(name[-2])
    attrs = {
        "kernel_size": ints(m.kernel_size, dims),
        "stride": ints(m.stride or m.kernel_size, dims),
        "padding": ints(m.padding, dims),
        "ceil_mode": bool(m.ceil_mode),
    }
    if mode == "MAX":
        attrs["dilation"] = ints(m.dilation, dims)
    else:
        attrs["count_include_pad"] = bool(m.count_include_pad)
    return mode, attrs


def _torch_module_layer(m: nn.Module) -> tuple[str, str, dict[str, Any]]:
    """(type, mode, attrs) of a leaf module; unknown modules become ``Other``."""
    simple = {nn.ReLU: "ReLU", nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh", nn.Identity: "Identity"}
    if type(m) in simple:
        return simple[type(m)], "", {}
    if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) and (attrs := _conv_attrs(m)):
        return "Conv", "", attrs
    pools = (
        nn.MaxPool1d,
        nn.MaxPool2d,
        nn.MaxPool3d,
        nn.AvgPool1d,
        nn.AvgPool2d,
        nn.AvgPool3d,
        nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d,
        nn.AdaptiveAvgPool3d,
        nn.AdaptiveMaxPool1d,
        nn.AdaptiveMaxPool2d,
        nn.AdaptiveMaxPool3d,
    )
    if type(m) in pools and (pool := _pool_attrs(m)):
        return "Pool", pool[0], pool[1]
    if type(m) is nn.Linear:
        return (
            "FC",
            "",
            {
                "in_features": m.in_features,
                "out_features": m.out_features,
                "bias": m.bias is not None,
            },
        )
    if type(m) is nn.Dropout:
        return "Dropout", "", {"p": m.p}
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return (
            "BatchNorm",
            "",
            {
                "num_features": m.num_features,
                "eps": m.eps,
                "momentum": m.momentum,
                "affine": m.affine,
                "track_running_stats": m.track_running_stats,
                "dims": int(type(m).__name__[-2]),
            },
        )
    if type(m) is nn.Flatten:
        return "Flatten", "", {"start_dim": m.start_dim, "end_dim": m.end_dim}
    if type(m) is nn.Softmax:
        return "Softmax", "", {"dim": m.dim}
    if type(m) is nn.LocalResponseNorm:
        return "LRN", "", {"size": m.size, "alpha": m.alpha, "beta": m.beta, "k": m.k}
    if type(m) is nn.Embedding and m.max_norm is None and not m.sparse:
        return (
            "Embedding",
            "",
            {
                "num_embeddings": m.num_embeddings,
                "embedding_dim": m.embedding_dim,
                "padding_idx": m.padding_idx,
            },
        )
    if type(m) is nn.LayerNorm:
        return (
            "LayerNorm",
            "",
            {
                "normalized_shape": list(m.normalized_shape),
                "eps": m.eps,
                "elementwise_affine": m.elementwise_affine,
                "bias": m.bias is not None,
            },
        )
    return "Other", "", _other_module_attrs(m)


def _other_module_attrs(m: nn.Module) -> dict[str, Any]:
    """``op``, and ``module``/``init`` when the module can be rebuilt from its attributes."""
    cls = type(m)
    attrs: dict[str, Any] = {"op": cls.__name__}
    if getattr(nn, cls.__name__, None) is not cls:
        return attrs
    init: dict[str, Any] = {}
    for pname, param in inspect.signature(cls.__init__).parameters.items():
        if pname in ("self", "device", "dtype") or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        if not hasattr(m, pname):
            continue
        try:
            init[pname] = encode_arg(getattr(m, pname), lambda v: None)
        except InvalidInput:
            continue
    if _rebuilds(cls, init, m):
        attrs.update({"module": f"torch.nn.{cls.__name__}", "init": init})
    return attrs


def _rebuilds(cls: type[nn.Module], init: dict[str, Any], m: nn.Module) -> bool:
    """Whether ``cls(**init)`` has the same state (names and shapes) as ``m``."""
    from provdb.models.builder import decode_arg

    try:
        fresh = cls(**decode_arg(init, ()))
    except Exception:  # noqa: BLE001 - any failure means "not rebuildable"
        return False
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    return shapes == {k: tuple(v.shape) for k, v in fresh.state_dict().items()}


def _function_spec(node: torch.fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    name = getattr(target, "__name__", str(target))
    for prefix, namespace in (("torch", torch), ("torch.nn.functional", F), ("operator", operator)):
        if getattr(namespace, name, None) is target:
            return f"{prefix}.{name}"
    return f"{getattr(target, '__module__', None) or '?'}.{name}"


def _arg(node: torch.fx.Node, index: int, key: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(key, default)


_FUNC_TYPES: dict[str, str] = {
    "torch.relu": "ReLU",
    "torch.nn.functional.relu": "ReLU",
    "Tensor.relu": "ReLU",
    "torch.sigmoid": "Sigmoid",
    "torch.nn.functional.sigmoid": "Sigmoid",
    "Tensor.sigmoid": "Sigmoid",
    "torch.tanh": "Tanh",
    "torch.nn.functional.tanh": "Tanh",
    "Tensor.tanh": "Tanh",
}


def _torch_function_layer(node: torch.fx.Node, spec: str) -> tuple[str, str, dict[str, Any]] | None:
    """Canonical (type, mode, attrs) of a functional call, or ``None`` for ``Other``."""
    is_node = [isinstance(a, torch.fx.Node) for a in node.args]
    if spec in _FUNC_TYPES and len(node.args) == 1 and set(node.kwargs) <= {"inplace"}:
        return _FUNC_TYPES[spec], "", {}
    if spec in ("operator.add", "operator.iadd", "torch.add", "Tensor.add") and (
        len(node.args) == 2 and all(is_node) and not node.kwargs
    ):
        return "Add", "", {}
    if spec in ("torch.flatten", "Tensor.flatten") and set(node.kwargs) <= {"start_dim", "end_dim"}:
        return (
            "Flatten",
            "",
            {"start_dim": _arg(node, 1, "start_dim", 0), "end_dim": _arg(node, 2, "end_dim", -1)},
        )
    if (
        spec == "torch.cat"
        and isinstance(node.args[0], list | tuple)
        and set(node.kwargs) <= {"dim"}
    ):
        if all(isinstance(a, torch.fx.Node) for a in node.args[0]):
            return "Concat", "", {"dim": _arg(node, 1, "dim", 0)}
    if spec in ("torch.nn.functional.softmax", "torch.softmax", "Tensor.softmax") and (
        _arg(node, 3 if spec.endswith("functional.softmax") else 2, "dtype", None) is None
    ):
        dim = _arg(node, 1, "dim", None)
        return ("Softmax", "", {"dim": dim}) if isinstance(dim, int) else None
    if spec == "torch.nn.functional.dropout" and isinstance(_arg(node, 1, "p", 0.5), float):
        return "Dropout", "", {"p": _arg(node, 1, "p", 0.5)}
    if spec == "torch.nn.functional.max_pool2d" and not _arg(node, 6, "return_indices", False):
        kernel = ints(_arg(node, 1, "kernel_size", None), 2)
        return (
            "Pool",
            "MAX",
            {
                "kernel_size": kernel,
                "stride": ints(_arg(node, 2, "stride", None) or kernel, 2),
                "padding": ints(_arg(node, 3, "padding", 0), 2),
                "dilation": ints(_arg(node, 4, "dilation", 1), 2),
                "ceil_mode": bool(_arg(node, 5, "ceil_mode", False)),
            },
        )
    if spec == "torch.nn.functional.adaptive_avg_pool2d":
        return (
            "Pool",
            "AVG",
            {"adaptive": True, "output_size": ints(_arg(node, 1, "output_size", None), 2)},
        )
    return None


class _TorchImport:
    """State of one :func:`from_torch` run."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.layers: list[Layer] = []
        self.edges: list[tuple[str, str]] = []
        self.tensors: Tensors = {}
        self.names: dict[torch.fx.Node, str] = {}
        self.used: set[str] = set()
        self.module_layer: dict[str, str] = {}

    def unique(self, name: str) -> str:
        return unique_name(name, self.used)

    def add(
        self,
        node: torch.fx.Node,
        name: str,
        kind: tuple[str, str, dict[str, Any]],
        refs: list[torch.fx.Node],
    ) -> None:
        type_, mode, attrs = kind
        self.layers.append(Layer(name, type_, mode, attrs))
        self.edges += [(self.names[r], name) for r in refs]
        self.names[node] = name

    def call_attrs(self, node: torch.fx.Node, refs: list[torch.fx.Node]) -> dict[str, Any]:
        """Encoded ``args``/``kwargs`` of a call, inputs numbered in ``refs`` order."""
        position = iter(range(len(refs)))

        def index(value: Any) -> int | None:
            return next(position) if isinstance(value, torch.fx.Node) else None

        return {
            "args": encode_arg(list(node.args), index),
            "kwargs": encode_arg(dict(node.kwargs), index)["$dict"],
        }

    def module_node(self, node: torch.fx.Node) -> None:
        target = str(node.target)
        module = self.root.get_submodule(target)
        refs = _node_refs(node)
        shared = self.module_layer.get(target)
        kind = _torch_module_layer(module)
        attrs = dict(kind[2])
        if tuple(node.args) != tuple(refs) or node.kwargs:
            attrs.update(self.call_attrs(node, refs))
        name = self.unique(target if shared is None else target.replace(".", "_"))
        if shared is not None:
            attrs["shared_with"] = shared
        else:
            self.module_layer[target] = name
            for key, value in module_tensors(module).items():
                self.tensors[f"{name}.{key}"] = value
        self.add(node, name, (kind[0], kind[1], attrs), refs)

    def function_node(self, node: torch.fx.Node) -> None:
        spec = _function_spec(node)
        refs = _node_refs(node)
        kind = _torch_function_layer(node, spec)
        if kind is None:
            attrs: dict[str, Any] = {"op": spec.rpartition(".")[2]}
            try:
                resolve_function(spec)
                attrs.update({"function": spec, **self.call_attrs(node, refs)})
            except InvalidInput:
                pass
            kind = ("Other", "", attrs)
        self.add(node, self.unique(node.name), kind, refs)


def _node_refs(node: torch.fx.Node) -> list[torch.fx.Node]:
    """Graph values a call reads, in argument order, repeats kept (``x + x``)."""
    refs: list[torch.fx.Node] = []

    def keep(n: torch.fx.Node) -> torch.fx.Node:
        refs.append(n)
        return n

    torch.fx.node.map_arg((node.args, node.kwargs), keep)
    return refs


def from_torch(module: nn.Module, example_input: Any = None) -> tuple[NetworkDef, Tensors]:
    """Network definition and tensors of a PyTorch module, traced with ``torch.fx``.

    ``example_input`` (a tensor or a tuple of tensors) records the ``Input`` shapes (without the
    batch dimension). Raises :class:`InvalidInput` for modules fx cannot trace (data-dependent
    control flow) and for parameters used directly in ``forward``.
    """
    if not isinstance(module, nn.Module):
        raise InvalidInput(f"expected a torch.nn.Module, got {type(module).__name__}")
    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - fx raises many types; report one line
        raise InvalidInput(
            f"cannot trace {type(module).__name__} with torch.fx: {first_line(exc)}"
        ) from None
    traced.graph.eliminate_dead_code()
    state = _TorchImport(module)
    examples = example_input if isinstance(example_input, tuple | list) else (example_input,)
    placeholders = 0
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            attrs: dict[str, Any] = {}
            example = examples[placeholders] if placeholders < len(examples) else None
            if torch.is_tensor(example):
                attrs["shape"] = list(example.shape[1:])
            placeholders += 1
            state.add(node, state.unique(node.name), ("Input", "", attrs), [])
        elif node.op == "call_module":
            state.module_node(node)
        elif node.op in ("call_function", "call_method"):
            state.function_node(node)
        elif node.op == "get_attr":
            raise InvalidInput(
                f"unsupported construct in {type(module).__name__}: forward reads "
                f"{node.target!r} directly; wrap parameters and constants in a module"
            )
    net = NetworkDef(tuple(state.layers), tuple(state.edges))
    return net, state.tensors
