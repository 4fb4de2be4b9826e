"""Importers and exporters: ONNX files, PyTorch modules, safetensors and torch checkpoints.

Every importer returns ``(NetworkDef, tensors)`` where tensors are numpy arrays named
``<layer>.<param>`` (``docs/network-format.md``):

* :func:`from_torch` traces a module with ``torch.fx`` at module granularity. A leaf module's
  layer is named by its qualified module name *with dots kept* (``features.0``), so tensor names
  equal the module's own ``state_dict`` keys; functional calls (``torch.flatten``, ``F.relu``,
  ``+``) become layers named by their fx node name (``flatten``, ``relu``, ``add_1``).
* :func:`from_onnx` makes one layer per ONNX node, named by the node name; initializers become
  tensors in PyTorch layout (``Gemm``/``Conv`` ``B`` → ``<node>.weight``, ``C`` → ``.bias``).
  :func:`to_onnx` writes a definition and its tensors back; ONNX → definition → ONNX keeps every
  layer, attribute and tensor value.

Files from outside are data: a damaged ONNX file, a non-model file or a pickle that is more than
tensors raises :class:`~provdb.errors.InvalidInput` with one line saying why.
"""

from __future__ import annotations

import inspect
import operator
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.fx
import torch.nn.functional as F  # noqa: N812
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, helper, numpy_helper
from torch import nn

from provdb.errors import InvalidInput
from provdb.models.builder import encode_arg, module_tensors, resolve_function
from provdb.models.network import Layer, NetworkDef

Tensors = dict[str, np.ndarray]

# =========================================================================================
# safetensors and torch checkpoints
# =========================================================================================


def _existing_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"{p}: no such file")
    return p


def load_safetensors(path: str | os.PathLike[str]) -> Tensors:
    """Tensors of a ``.safetensors`` file as numpy arrays (bfloat16 widened to float32)."""
    from safetensors import SafetensorError, safe_open

    p = _existing_file(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            return {name: _to_numpy(f.get_tensor(name)) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InvalidInput(f"{p}: not a valid safetensors file ({_first_line(exc)})") from None


def save_safetensors(
    tensors: Mapping[str, Any], path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write numpy arrays (or torch tensors) to a ``.safetensors`` file."""
    from safetensors.numpy import save_file

    arrays = {name: np.array(_to_numpy(value), order="C") for name, value in tensors.items()}
    save_file(arrays, str(path), metadata=metadata)


def load_torch_checkpoint(path: str | os.PathLike[str]) -> Tensors:
    """Tensors of a PyTorch checkpoint, loaded with ``torch.load(weights_only=True)``.

    Accepts a state dict, or a dict holding one under ``state_dict``, ``model_state_dict`` or
    ``model``; non-tensor entries (``epoch``, ...) are ignored. Pickles that need more than
    tensors and plain containers (a whole pickled ``nn.Module``, arbitrary objects) are refused.
    """
    p = _existing_file(path)
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise InvalidInput(
                f"{p}: refusing to unpickle a checkpoint that holds more than tensors "
                "(only weights_only=True checkpoints such as state dicts are accepted)"
            ) from None
        raise InvalidInput(f"{p}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler fails in many ways
        raise InvalidInput(f"{p}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    state = _state_dict_of(obj)
    if not state:
        raise InvalidInput(f"{p}: the checkpoint holds no tensors")
    return {name: _to_numpy(t) for name, t in state.items()}


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


def _to_numpy(value: Any) -> np.ndarray:
    if torch.is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy().copy()
    return np.asarray(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


# =========================================================================================
# PyTorch modules (torch.fx)
# =========================================================================================


def _ints(value: Any, dims: int) -> list[int] | Any:
    if isinstance(value, str):
        return value
    return list(value) if isinstance(value, list | tuple) else [value] * dims


def _conv_attrs(m: nn.modules.conv._ConvNd) -> dict[str, Any] | None:
    if m.padding_mode != "zeros" or m.transposed:
        return None
    dims = len(m.kernel_size)
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": list(m.kernel_size),
        "stride": list(m.stride),
        "padding": _ints(m.padding, dims),
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
        return mode, {"adaptive": True, "output_size": _ints(m.output_size, int(name[-2]))}
    if getattr(m, "return_indices", False) or getattr(m, "divisor_override", None):
        return None
    dims = int(name[-2])
    attrs = {
        "kernel_size": _ints(m.kernel_size, dims),
        "stride": _ints(m.stride or m.kernel_size, dims),
        "padding": _ints(m.padding, dims),
        "ceil_mode": bool(m.ceil_mode),
    }
    if mode == "MAX":
        attrs["dilation"] = _ints(m.dilation, dims)
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
        kernel = _ints(_arg(node, 1, "kernel_size", None), 2)
        return (
            "Pool",
            "MAX",
            {
                "kernel_size": kernel,
                "stride": _ints(_arg(node, 2, "stride", None) or kernel, 2),
                "padding": _ints(_arg(node, 3, "padding", 0), 2),
                "dilation": _ints(_arg(node, 4, "dilation", 1), 2),
                "ceil_mode": bool(_arg(node, 5, "ceil_mode", False)),
            },
        )
    if spec == "torch.nn.functional.adaptive_avg_pool2d":
        return (
            "Pool",
            "AVG",
            {"adaptive": True, "output_size": _ints(_arg(node, 1, "output_size", None), 2)},
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
        candidate, k = name, 1
        while candidate in self.used:
            candidate, k = f"{name}_{k}", k + 1
        self.used.add(candidate)
        return candidate

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
    torch.fx.node.map_arg((node.args, node.kwargs), lambda n: refs.append(n) or n)
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
            f"cannot trace {type(module).__name__} with torch.fx: {_first_line(exc)}"
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


# =========================================================================================
# ONNX
# =========================================================================================

_ELEM_TYPES: dict[int, str] = {
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
    TensorProto.FLOAT16: "float16",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
    TensorProto.BOOL: "bool",
    TensorProto.UINT8: "uint8",
    TensorProto.INT8: "int8",
}
_INLINE_LIMIT = 64


def _load_onnx(source: str | os.PathLike[str] | bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        model, where = source, "ONNX model"
    elif isinstance(source, bytes):
        where = "ONNX bytes"
        try:
            model = onnx.load_from_string(source)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise InvalidInput(f"{where}: not a valid ONNX model ({_first_line(exc)})") from None
    else:
        path = _existing_file(source)
        where = str(path)
        try:
            model = onnx.load(str(path))
        except (DecodeError, ValueError, RuntimeError, OSError) as exc:
            raise InvalidInput(
                f"{where}: not a valid ONNX model, truncated or corrupt ({_first_line(exc)})"
            ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise InvalidInput(f"{where}: not an ONNX model (no ir_version or empty graph)")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InvalidInput(f"{where}: invalid ONNX model ({_first_line(exc)})") from None
    return model


def _attr_values(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            raise InvalidInput(
                f"unsupported construct: node {node.name!r} ({node.op_type}) has a sub-graph "
                "(control flow is not supported)"
            )
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        elif isinstance(value, TensorProto):
            value = _inline(numpy_helper.to_array(value))
        elif not isinstance(value, int | float | str | list):
            raise InvalidInput(f"unsupported attribute {attr.name!r} on node {node.name!r}")
        out[attr.name] = value
    return out


def _inline(array: np.ndarray) -> dict[str, Any]:
    return {"dtype": str(array.dtype), "dims": list(array.shape), "values": array.ravel().tolist()}


def _from_inline(value: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(value["values"], dtype=value["dtype"]).reshape(value["dims"])


class _OnnxNode:
    """One ONNX node with its attributes and constant inputs, seen by an op handler."""

    def __init__(self, node: onnx.NodeProto, consts: Mapping[str, np.ndarray], opset: int) -> None:
        self.node, self.opset = node, opset
        self.attrs = _attr_values(node)
        self.inputs = list(node.input)
        self.consts = consts

    def const(self, i: int) -> np.ndarray | None:
        if i < len(self.inputs) and self.inputs[i] and self.inputs[i] in self.consts:
            return self.consts[self.inputs[i]]
        return None

    def dynamic(self) -> list[int]:
        return [i for i, x in enumerate(self.inputs) if x and x not in self.consts]


Handled = tuple[str, str, dict[str, Any], dict[str, np.ndarray]]


def _spatial(n: _OnnxNode, kernel: list[int]) -> tuple[dict[str, Any], bool] | None:
    """Stride/padding/dilation attrs for Conv and Pool; ``None`` when not representable."""
    dims = len(kernel)
    pads = n.attrs.get("pads", [0] * 2 * dims)
    auto_pad = n.attrs.get("auto_pad", "NOTSET")
    attrs: dict[str, Any] = {
        "kernel_size": list(kernel),
        "stride": n.attrs.get("strides", [1] * dims),
    }
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(s != 1 for s in attrs["stride"]) or any(k % 2 == 0 for k in kernel):
            return None
        attrs["padding"] = "same"
    elif auto_pad == "VALID":
        attrs["padding"] = [0] * dims
    elif pads[:dims] == pads[dims:]:
        attrs["padding"] = list(pads[:dims])
    else:
        attrs["padding"], attrs["pads"] = [0] * dims, list(pads)
        return attrs, False
    return attrs, True


def _onnx_conv(n: _OnnxNode) -> Handled | None:
    weight, bias = n.const(1), n.const(2)
    if weight is None or n.dynamic() != [0] or (len(n.inputs) > 2 and n.inputs[2] and bias is None):
        return None
    kernel = n.attrs.get("kernel_shape", list(weight.shape[2:]))
    spatial = _spatial(n, kernel)
    if spatial is None:
        return None
    groups = n.attrs.get("group", 1)
    attrs = {
        "in_channels": int(weight.shape[1]) * groups,
        "out_channels": int(weight.shape[0]),
        **spatial[0],
        "dilation": n.attrs.get("dilations", [1] * len(kernel)),
        "groups": groups,
        "bias": bias is not None,
    }
    params = {"weight": weight} | ({"bias": bias} if bias is not None else {})
    return "Conv", "", attrs, params


def _onnx_pool(n: _OnnxNode) -> Handled | None:
    mode = "MAX" if n.node.op_type == "MaxPool" else "AVG"
    spatial = _spatial(n, n.attrs["kernel_shape"])
    if spatial is None or not spatial[1] or spatial[0]["padding"] == "same":
        return None
    attrs = {**spatial[0], "ceil_mode": bool(n.attrs.get("ceil_mode", 0))}
    if mode == "MAX":
        attrs["dilation"] = n.attrs.get("dilations", [1] * len(attrs["kernel_size"]))
    else:
        attrs["count_include_pad"] = bool(n.attrs.get("count_include_pad", 0))
    return "Pool", mode, attrs, {}


def _onnx_gemm(n: _OnnxNode) -> Handled | None:
    b, c = n.const(1), n.const(2)
    a = n.attrs
    if (
        b is None
        or b.ndim != 2
        or n.dynamic() != [0]
        or a.get("transA", 0)
        or a.get("alpha", 1.0) != 1.0
        or a.get("beta", 1.0) != 1.0
    ):
        return None
    weight = b if a.get("transB", 0) else np.ascontiguousarray(b.T)
    if len(n.inputs) > 2 and n.inputs[2] and (c is None or c.shape != (weight.shape[0],)):
        return None
    attrs = {
        "in_features": int(weight.shape[1]),
        "out_features": int(weight.shape[0]),
        "bias": c is not None,
    }
    return "FC", "", attrs, {"weight": weight} | ({"bias": c} if c is not None else {})


def _onnx_matmul(n: _OnnxNode) -> Handled | None:
    b = n.const(1)
    if b is None or b.ndim != 2 or n.dynamic() != [0]:
        return None
    attrs = {
        "in_features": int(b.shape[0]),
        "out_features": int(b.shape[1]),
        "bias": False,
        "onnx_op": "MatMul",
    }
    return "FC", "", attrs, {"weight": np.ascontiguousarray(b.T)}


def _onnx_batchnorm(n: _OnnxNode) -> Handled | None:
    arrays = [n.const(i) for i in range(1, 5)]
    if any(x is None for x in arrays) or n.dynamic() != [0]:
        return None
    momentum = round(1.0 - float(n.attrs.get("momentum", 0.9)), 6)
    attrs = {
        "num_features": int(arrays[0].shape[0]),
        "eps": n.attrs.get("epsilon", 1e-5),
        "momentum": momentum,
        "affine": True,
        "track_running_stats": True,
    }
    names = ("weight", "bias", "running_mean", "running_var")
    return "BatchNorm", "", attrs, dict(zip(names, arrays))


def _onnx_dropout(n: _OnnxNode) -> Handled | None:
    ratio = n.const(1)
    if n.dynamic() != [0]:
        return None
    p = float(ratio) if ratio is not None else float(n.attrs.get("ratio", 0.5))
    return "Dropout", "", {"p": round(p, 6)}, {}


def _onnx_simple(type_: str) -> Callable[[_OnnxNode], Handled | None]:
    def handler(n: _OnnxNode) -> Handled | None:
        return (type_, "", {}, {}) if n.dynamic() == [0] and len(n.inputs) == 1 else None

    return handler


def _onnx_global_pool(n: _OnnxNode) -> Handled | None:
    mode = "MAX" if n.node.op_type == "GlobalMaxPool" else "AVG"
    return "Pool", mode, {"global": True}, {}


def _onnx_variadic(type_: str) -> Callable[[_OnnxNode], Handled | None]:
    def handler(n: _OnnxNode) -> Handled | None:
        if len(n.dynamic()) != len(n.inputs) or not n.inputs:
            return None
        return (type_, "", {"dim": n.attrs["axis"]} if type_ == "Concat" else {}, {})

    return handler


def _onnx_flatten(n: _OnnxNode) -> Handled | None:
    if n.attrs.get("axis", 1) != 1:
        return None
    return "Flatten", "", {"start_dim": 1, "end_dim": -1}, {}


def _onnx_softmax(n: _OnnxNode) -> Handled | None:
    default = -1 if n.opset >= 13 else 1
    return "Softmax", "", {"dim": n.attrs.get("axis", default)}, {}


def _onnx_lrn(n: _OnnxNode) -> Handled | None:
    a = n.attrs
    return (
        "LRN",
        "",
        {
            "size": a["size"],
            "alpha": a.get("alpha", 1e-4),
            "beta": a.get("beta", 0.75),
            "k": a.get("bias", 1.0),
        },
        {},
    )


def _onnx_gather(n: _OnnxNode) -> Handled | None:
    weight = n.const(0)
    if weight is None or weight.ndim != 2 or n.dynamic() != [1] or n.attrs.get("axis", 0) != 0:
        return None
    attrs = {
        "num_embeddings": int(weight.shape[0]),
        "embedding_dim": int(weight.shape[1]),
        "padding_idx": None,
    }
    return "Embedding", "", attrs, {"weight": weight}


def _onnx_layernorm(n: _OnnxNode) -> Handled | None:
    scale, bias = n.const(1), n.const(2)
    if scale is None or n.dynamic() != [0] or n.attrs.get("axis", -1) != -scale.ndim:
        return None
    attrs = {
        "normalized_shape": list(scale.shape),
        "eps": n.attrs.get("epsilon", 1e-5),
        "elementwise_affine": True,
        "bias": bias is not None,
    }
    return "LayerNorm", "", attrs, {"weight": scale} | ({"bias": bias} if bias is not None else {})


_ONNX_HANDLERS: dict[str, Callable[[_OnnxNode], Handled | None]] = {
    "Conv": _onnx_conv,
    "MaxPool": _onnx_pool,
    "AveragePool": _onnx_pool,
    "GlobalAveragePool": _onnx_global_pool,
    "GlobalMaxPool": _onnx_global_pool,
    "Relu": _onnx_simple("ReLU"),
    "Sigmoid": _onnx_simple("Sigmoid"),
    "Tanh": _onnx_simple("Tanh"),
    "Identity": _onnx_simple("Identity"),
    "Gemm": _onnx_gemm,
    "MatMul": _onnx_matmul,
    "BatchNormalization": _onnx_batchnorm,
    "Dropout": _onnx_dropout,
    "Flatten": _onnx_flatten,
    "Softmax": _onnx_softmax,
    "LRN": _onnx_lrn,
    "Add": _onnx_variadic("Add"),
    "Sum": _onnx_variadic("Add"),
    "Concat": _onnx_variadic("Concat"),
    "Gather": _onnx_gather,
    "LayerNormalization": _onnx_layernorm,
}


def _onnx_other(n: _OnnxNode) -> Handled:
    """``Other`` with what :func:`to_onnx` needs to write the node back."""
    slots: list[Any] = []
    params: dict[str, np.ndarray] = {}
    for i, name in enumerate(n.inputs):
        const = n.const(i)
        if not name:
            slots.append("")
        elif const is None:
            slots.append("@")
        elif const.dtype.kind == "f" or const.size > _INLINE_LIMIT:
            slots.append(f"in{i}")
            params[f"in{i}"] = const
        else:
            slots.append(_inline(const))
    attrs: dict[str, Any] = {
        "op": n.node.op_type,
        "onnx_inputs": slots,
        "onnx_attrs": _typed_attrs(n.node),
    }
    if n.node.domain not in ("", "ai.onnx"):
        attrs["onnx_domain"] = n.node.domain
    else:
        attrs["onnx_opset"] = n.opset
    return "Other", "", attrs, params


def _typed_attrs(node: onnx.NodeProto) -> dict[str, list[Any]]:
    values = _attr_values(node)
    return {
        a.name: [AttributeProto.AttributeType.Name(a.type), values[a.name]] for a in node.attribute
    }


def _input_layer(value: onnx.ValueInfoProto) -> Layer:
    tensor_type = value.type.tensor_type
    attrs: dict[str, Any] = {}
    if tensor_type.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        attrs["shape"] = dims[1:]
    if tensor_type.elem_type not in (0, TensorProto.FLOAT):
        attrs["dtype"] = _ELEM_TYPES.get(tensor_type.elem_type, str(tensor_type.elem_type))
    return Layer(value.name, "Input", "", attrs)


def from_onnx(
    source: str | os.PathLike[str] | bytes | onnx.ModelProto,
) -> tuple[NetworkDef, Tensors]:
    """Network definition and tensors of an ONNX model (a path, bytes or a ``ModelProto``).

    One layer per node (``Constant`` nodes fold into their consumers), named by the node name
    (``<op>_<index>`` when empty). Float initializers become tensors ``<layer>.<param>``; small
    integer constants (shapes, axes) are kept inline in ``attrs``. Raises :class:`InvalidInput`
    for truncated, corrupt or non-ONNX files, control flow, and nodes whose second output is
    used (a layer has one output).
    """
    model = _load_onnx(source)
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    layers: list[Layer] = []
    edges: list[tuple[str, str]] = []
    tensors: Tensors = {}
    producer: dict[str, str] = {}
    extra_outputs: dict[str, tuple[str, int]] = {}
    used: set[str] = set()
    for value in graph.input:
        if value.name not in consts:
            layers.append(_input_layer(value))
            producer[value.name] = value.name
            used.add(value.name)
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output):
            consts[node.output[0]] = (
                numpy_helper.to_array(node.attribute[0].t)
                if (node.attribute[0].name == "value")
                else np.asarray(helper.get_attribute_value(node.attribute[0]))
            )
            continue
        name = _unique(node.name or f"{node.op_type}_{index}", used)
        n = _OnnxNode(node, consts, opset)
        handler = _ONNX_HANDLERS.get(node.op_type)
        handled = handler(n) if handler and node.domain in ("", "ai.onnx") else None
        type_, mode, attrs, params = handled or _onnx_other(n)
        for i in n.dynamic():
            value_name = node.input[i]
            if value_name in extra_outputs:
                owner, k = extra_outputs[value_name]
                raise InvalidInput(
                    f"unsupported construct: node {name!r} uses output #{k} of {owner!r} "
                    "(layers have a single output)"
                )
            if value_name not in producer:
                raise InvalidInput(f"node {name!r} reads {value_name!r}, which nothing produces")
            edges.append((producer[value_name], name))
        layers.append(Layer(name, type_, mode, attrs))
        tensors.update({f"{name}.{p}": np.asarray(a) for p, a in params.items()})
        if node.output:
            producer[node.output[0]] = name
        extra_outputs.update({out: (name, k) for k, out in enumerate(node.output) if k and out})
    return NetworkDef(tuple(layers), tuple(edges)), tensors


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 1
    while candidate in used:
        candidate, k = f"{name}_{k}", k + 1
    used.add(candidate)
    return candidate


# ---- export -------------------------------------------------------------------------------


class _OnnxWriter:
    """Collects nodes and initializers while :func:`to_onnx` walks the layers."""

    def __init__(self, tensors: Mapping[str, Any]) -> None:
        self.tensors = tensors
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def tensor(
        self, layer: Layer, param: str, transform: Callable[[np.ndarray], np.ndarray] = lambda a: a
    ) -> str:
        key = f"{layer.name}.{param}"
        if key not in self.tensors:
            raise InvalidInput(f"to_onnx needs tensor {key!r} for layer {layer.name!r}")
        array = np.array(transform(_to_numpy(self.tensors[key])), order="C")
        self.initializers.append(numpy_helper.from_array(array, key))
        return key

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(
        self, op: str, layer: Layer, inputs: list[str], domain: str = "", **attrs: Any
    ) -> None:
        self.nodes.append(
            helper.make_node(op, inputs, [layer.name], name=layer.name, domain=domain, **attrs)
        )


def _export_spatial(a: Mapping[str, Any]) -> dict[str, Any]:
    kernel = list(a["kernel_size"])
    dims = len(kernel)
    out: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": _ints(a.get("stride") or kernel, dims),
    }
    padding = a.get("padding", 0)
    if "pads" in a:
        out["pads"] = list(a["pads"])
    elif padding == "same":
        out["auto_pad"] = "SAME_UPPER"
    else:
        pads = [0] * dims if padding == "valid" else _ints(padding, dims)
        out["pads"] = list(pads) * 2
    return out


def _export_layer(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:  # noqa: C901
    a, t = layer.attrs, layer.type
    simple = {"ReLU": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Identity": "Identity"}
    if t in simple:
        w.node(simple[t], layer, ins)
    elif t == "Conv":
        params = [w.tensor(layer, "weight")] + (
            [w.tensor(layer, "bias")] if a.get("bias", True) else []
        )
        w.node(
            "Conv",
            layer,
            ins + params,
            **_export_spatial(a),
            dilations=_ints(a.get("dilation", 1), len(a["kernel_size"])),
            group=int(a.get("groups", 1)),
        )
    elif t == "Pool":
        _export_pool(w, layer, ins)
    elif t == "FC":
        if a.get("onnx_op") == "MatMul" and not a.get("bias", True):
            w.node("MatMul", layer, ins + [w.tensor(layer, "weight", lambda x: x.T)])
        else:
            bias = [w.tensor(layer, "bias")] if a.get("bias", True) else []
            w.node("Gemm", layer, ins + [w.tensor(layer, "weight")] + bias, transB=1)
    elif t == "Dropout":
        ratio = w.const(f"{layer.name}.ratio", np.asarray(a.get("p", 0.5), dtype=np.float32))
        w.node("Dropout", layer, ins + [ratio])
    elif t == "BatchNorm":
        params = [w.tensor(layer, p) for p in ("weight", "bias", "running_mean", "running_var")]
        w.node(
            "BatchNormalization",
            layer,
            ins + params,
            epsilon=float(a.get("eps", 1e-5)),
            momentum=1.0 - float(a.get("momentum") or 0.1),
        )
    elif t == "Flatten":
        if (a.get("start_dim", 1), a.get("end_dim", -1)) != (1, -1):
            raise InvalidInput(f"cannot export Flatten {layer.name!r} with {a} to ONNX")
        w.node("Flatten", layer, ins, axis=1)
    elif t == "Softmax":
        w.node(
            "Softmax", layer, ins, axis=int(a.get("dim", -1) if a.get("dim") is not None else -1)
        )
    elif t == "LRN":
        w.node(
            "LRN",
            layer,
            ins,
            size=int(a["size"]),
            alpha=float(a.get("alpha", 1e-4)),
            beta=float(a.get("beta", 0.75)),
            bias=float(a.get("k", 1.0)),
        )
    elif t == "Add":
        w.node("Add" if len(ins) == 2 else "Sum", layer, ins)
    elif t == "Concat":
        w.node("Concat", layer, ins, axis=int(a.get("dim", 1)))
    elif t == "Embedding":
        w.node("Gather", layer, [w.tensor(layer, "weight")] + ins, axis=0)
    elif t == "LayerNorm":
        params = [w.tensor(layer, "weight")] + (
            [w.tensor(layer, "bias")] if a.get("bias", True) else []
        )
        w.node(
            "LayerNormalization",
            layer,
            ins + params,
            axis=-len(a["normalized_shape"]),
            epsilon=float(a.get("eps", 1e-5)),
        )
    else:
        _export_other(w, layer, ins)


def _export_pool(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a, kind = layer.attrs, "Max" if layer.mode == "MAX" else "Average"
    if a.get("global") or (a.get("adaptive") and all(s == 1 for s in _ints(a["output_size"], 1))):
        w.node(f"Global{kind}Pool", layer, ins)
    elif a.get("adaptive"):
        raise InvalidInput(
            f"cannot export adaptive pooling {layer.name!r} "
            f"(output_size {a['output_size']}) to ONNX"
        )
    else:
        extra: dict[str, Any] = {"ceil_mode": int(bool(a.get("ceil_mode", False)))}
        if layer.mode == "MAX":
            extra["dilations"] = _ints(a.get("dilation", 1), len(a["kernel_size"]))
        else:
            extra["count_include_pad"] = int(bool(a.get("count_include_pad", True)))
        w.node(f"{kind}Pool", layer, ins, **_export_spatial(a), **extra)


def _export_other(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a = layer.attrs
    if "onnx_inputs" not in a:
        raise InvalidInput(
            f"cannot export layer {layer.name!r} (Other op {a.get('op', '?')!r}) to ONNX; "
            "build the module and use torch.onnx.export instead"
        )
    pending = iter(ins)
    inputs: list[str] = []
    for i, slot in enumerate(a["onnx_inputs"]):
        if slot == "@":
            inputs.append(next(pending))
        elif slot == "":
            inputs.append("")
        elif isinstance(slot, str):
            inputs.append(w.tensor(layer, slot))
        else:
            inputs.append(w.const(f"{layer.name}.const{i}", _from_inline(slot)))
    attributes = [
        helper.make_attribute(
            name,
            _attr_value(type_name, value),
            attr_type=AttributeProto.AttributeType.Value(type_name),
        )
        for name, (type_name, value) in a.get("onnx_attrs", {}).items()
    ]
    w.node(a["op"], layer, inputs, domain=a.get("onnx_domain", ""))
    w.nodes[-1].attribute.extend(attributes)


def _attr_value(type_name: str, value: Any) -> Any:
    if type_name == "TENSOR":
        return numpy_helper.from_array(_from_inline(value))
    return value


def _value_info(name: str, layer: Layer | None) -> onnx.ValueInfoProto:
    attrs = layer.attrs if layer is not None else {}
    dtype = attrs.get("dtype", "float32")
    elem = next((k for k, v in _ELEM_TYPES.items() if v == dtype), TensorProto.FLOAT)
    shape = attrs.get("shape")
    dims = ["N", *shape] if isinstance(shape, list) else None
    return helper.make_tensor_value_info(name, elem, dims)


def _output_infos(model: onnx.ModelProto, names: list[str]) -> list[onnx.ValueInfoProto]:
    """Typed value infos of the outputs, from ONNX shape inference (float, any shape else)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError):
        inferred = []
    known = {v.name: v for v in inferred if v.type.tensor_type.HasField("shape")}
    return [
        known.get(name)
        or helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [f"{name}_d{i}" for i in range(2)]
        )
        for name in names
    ]


def to_onnx(
    net: NetworkDef,
    tensors: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    opset: int = 17,
) -> onnx.ModelProto:
    """An ONNX model of ``net`` with ``tensors`` as initializers, written to ``path`` if given.

    Every value is named by the layer producing it; ``Input`` layers become graph inputs with a
    symbolic batch dimension. The opset is ``opset`` or the highest opset an imported ``Other``
    layer came from. Raises :class:`InvalidInput` for a layer with no ONNX form
    (``Other`` layers that did not come from ONNX) or a missing tensor.
    """
    w = _OnnxWriter(tensors)
    graph_inputs: list[onnx.ValueInfoProto] = []
    for layer in net.layers:
        preds = net.predecessors(layer.name)
        if layer.type == "Input":
            graph_inputs.append(_value_info(layer.name, layer))
            continue
        if not preds and "@" in layer.attrs.get("onnx_inputs", ["@"]):
            feed = f"{layer.name}.input"
            graph_inputs.append(_value_info(feed, None))
            preds = [feed]
        _export_layer(w, layer, preds)
    opset = max([opset] + [int(layer.attrs.get("onnx_opset", 0)) for layer in net.layers])
    graph = helper.make_graph(w.nodes, "provdb", graph_inputs, [], w.initializers)
    domains = {n.domain for n in w.nodes if n.domain}
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in sorted(domains)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="provdb")
    model.graph.output.extend(_output_infos(model, [layer.name for layer in net.outputs()]))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidInput(f"exported ONNX model is invalid: {_first_line(exc)}") from None
    if path is not None:
        onnx.save(model, str(path))
    return model
