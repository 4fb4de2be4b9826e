"""ONNX in and out: :func:`from_onnx` and :func:`to_onnx`, faithfully.

:func:`from_onnx` makes one layer per ONNX node, named by the node name; the known ops become
canonical layers (tables both ways: ONNX op type → import handler, layer type → export handler)
with their weights as tensors in PyTorch layout (``Gemm``/``Conv`` ``B`` → ``<node>.weight``,
``C`` → ``.bias``); every other node becomes an ``Other`` layer that keeps the node as it was.
What a round trip needs is kept too: value names (``onnx_outputs``), initializer names
(``onnx_names``), nodes with several outputs (edges carry an output index), sub-graphs of
``If``/``Loop``/``Scan`` (as attributes, their weights lifted into tensors), and model-level
facts in ``NetworkDef.meta["onnx"]``: IR version, opsets, graph outputs and their types,
producer, metadata properties, local functions. :func:`to_onnx` writes it all back, so a
checked-out model has the same inputs, outputs, names and opset and computes the same values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from onnx import TensorProto, helper, numpy_helper

from provdb.errors import InvalidInput
from provdb.models import _onnx_proto as proto
from provdb.models._common import Tensors, as_numpy, existing_file, first_line, ints, unique_name
from provdb.models.network import Layer, NetworkDef

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _load_onnx(source: str | os.PathLike[str] | bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        model, where = source, "ONNX model"
    elif isinstance(source, bytes):
        where = "ONNX bytes"
        try:
            model = onnx.load_from_string(source)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise InvalidInput(f"{where}: not a valid ONNX model ({first_line(exc)})") from None
    else:
        path = existing_file(source)
        where = str(path)
        try:
            model = onnx.load(str(path))
        except (DecodeError, ValueError, RuntimeError, OSError) as exc:
            raise InvalidInput(
                f"{where}: not a valid ONNX model, truncated or corrupt ({first_line(exc)})"
            ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise InvalidInput(f"{where}: not an ONNX model (no ir_version or empty graph)")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InvalidInput(f"{where}: invalid ONNX model ({first_line(exc)})") from None
    return model


def _plain_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """Number and string attributes of a node (what the canonical handlers read)."""
    out: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type in proto.JSON_TYPES:
            value = helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                value = [v.decode("utf-8", "replace") for v in value]
            out[attr.name] = value
    return out


class _OnnxNode:
    """One ONNX node with its attributes and constant inputs, seen by an op handler."""

    def __init__(self, node: onnx.NodeProto, consts: Mapping[str, np.ndarray], opset: int) -> None:
        self.node, self.opset = node, opset
        self.attrs = _plain_attrs(node)
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
    attrs: dict[str, Any] = {
        "in_features": int(weight.shape[1]),
        "out_features": int(weight.shape[0]),
        "bias": c is not None,
    }
    if not a.get("transB", 0):
        attrs["onnx_transB"] = 0
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
    found = [n.const(i) for i in range(1, 5)]
    arrays = [x for x in found if x is not None]
    if len(arrays) != 4 or n.dynamic() != [0]:
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
    if n.dynamic() != [0] or len(n.inputs) != 1:
        return None
    return "Dropout", "", {"p": round(float(n.attrs.get("ratio", 0.5)), 6)}, {}


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


@dataclass(frozen=True)
class _Op:
    """An import handler, the attributes it understands and the input slot of each param."""

    handler: Callable[[_OnnxNode], Handled | None]
    attrs: frozenset[str] = frozenset()
    params: Mapping[int, str] = field(default_factory=dict)


_SPATIAL = frozenset({"kernel_shape", "strides", "pads", "auto_pad", "dilations"})
_WB = {1: "weight", 2: "bias"}

#: ONNX op type (default domain) → import handler. A node becomes ``Other`` when the handler
#: returns ``None``, has an attribute the handler does not know, or has a second output.
_IMPORTERS: dict[str, _Op] = {
    "Conv": _Op(_onnx_conv, _SPATIAL | {"group"}, _WB),
    "MaxPool": _Op(_onnx_pool, _SPATIAL | {"ceil_mode"}),
    "AveragePool": _Op(_onnx_pool, _SPATIAL | {"ceil_mode", "count_include_pad"}),
    "GlobalAveragePool": _Op(_onnx_global_pool),
    "GlobalMaxPool": _Op(_onnx_global_pool),
    "Relu": _Op(_onnx_simple("ReLU")),
    "Sigmoid": _Op(_onnx_simple("Sigmoid")),
    "Tanh": _Op(_onnx_simple("Tanh")),
    "Identity": _Op(_onnx_simple("Identity")),
    "Gemm": _Op(_onnx_gemm, frozenset({"alpha", "beta", "transA", "transB"}), _WB),
    "MatMul": _Op(_onnx_matmul, params={1: "weight"}),
    "BatchNormalization": _Op(
        _onnx_batchnorm,
        frozenset({"epsilon", "momentum"}),
        {1: "weight", 2: "bias", 3: "running_mean", 4: "running_var"},
    ),
    "Dropout": _Op(_onnx_dropout, frozenset({"ratio"})),
    "Flatten": _Op(_onnx_flatten, frozenset({"axis"})),
    "Softmax": _Op(_onnx_softmax, frozenset({"axis"})),
    "LRN": _Op(_onnx_lrn, frozenset({"size", "alpha", "beta", "bias"})),
    "Add": _Op(_onnx_variadic("Add")),
    "Sum": _Op(_onnx_variadic("Add")),
    "Concat": _Op(_onnx_variadic("Concat"), frozenset({"axis"})),
    "Gather": _Op(_onnx_gather, frozenset({"axis"}), {0: "weight"}),
    "LayerNormalization": _Op(_onnx_layernorm, frozenset({"axis", "epsilon"}), _WB),
}


def _canonical(n: _OnnxNode) -> tuple[Handled, dict[str, str]] | None:
    """The canonical layer of a node and its params' ONNX value names, or ``None``."""
    node = n.node
    op = _IMPORTERS.get(node.op_type) if node.domain in _DEFAULT_DOMAINS else None
    outputs = [o for o in node.output[1:] if o]
    if op is None or outputs or not node.output or not node.output[0]:
        return None
    if any(a.name not in op.attrs for a in node.attribute):
        return None
    handled = op.handler(n)
    if handled is None:
        return None
    names = {p: node.input[slot] for slot, p in op.params.items() if p in handled[3]}
    return handled, names


def _onnx_other(n: _OnnxNode) -> tuple[Handled, dict[str, str]]:
    """``Other`` with what :func:`to_onnx` needs to write the node back, and value names."""
    slots: list[Any] = []
    params: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    for i, name in enumerate(n.inputs):
        const = n.const(i)
        if not name:
            slots.append("")
        elif const is None:
            slots.append("@")
        elif proto.inlinable(const):
            slots.append(proto.inline(const))
            names[f"const{i}"] = name
        else:
            slots.append(f"in{i}")
            params[f"in{i}"] = const
            names[f"in{i}"] = name
    typed = {a.name: proto.encode_attr(a, params) for a in n.node.attribute}
    attrs: dict[str, Any] = {"op": n.node.op_type, "onnx_inputs": slots, "onnx_attrs": typed}
    if n.node.domain not in _DEFAULT_DOMAINS:
        attrs["onnx_domain"] = n.node.domain
    else:
        attrs["onnx_opset"] = n.opset
    return ("Other", "", attrs, params), names


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a ``Constant`` node that can fold into its consumers, else ``None``."""
    if (
        node.op_type != "Constant"
        or node.domain not in _DEFAULT_DOMAINS
        or len(node.attribute) != 1
        or len(node.output) != 1
    ):
        return None
    attr = node.attribute[0]
    kinds: dict[str, type[np.generic]] = {"value_float": np.float32, "value_floats": np.float32}
    kinds |= {"value_int": np.int64, "value_ints": np.int64}
    if attr.name == "value" and attr.t.data_location != TensorProto.EXTERNAL:
        array = numpy_helper.to_array(attr.t)
        return None if array.dtype == object else array
    if attr.name in kinds:
        return np.asarray(helper.get_attribute_value(attr), dtype=kinds[attr.name])
    return None


def _input_layer(value: onnx.ValueInfoProto) -> Layer:
    type_ = proto.type_json(value.type)
    attrs: dict[str, Any] = {}
    if "proto" in type_:
        attrs["onnx_type"] = type_
        return Layer(value.name, "Input", "", attrs)
    if "dims" in type_:
        dims = type_["dims"]
        attrs["shape"] = [d if isinstance(d, int) else None for d in dims[1:]]
        attrs["dims"] = dims
    if type_["dtype"] != "float32":
        attrs["dtype"] = type_["dtype"]
    return Layer(value.name, "Input", "", attrs)


class _Import:
    """State of one :func:`from_onnx` run."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model, self.graph = model, model.graph
        self.opset = next(
            (o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), 0
        )
        self.consts: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in self.graph.initializer
        }
        self.layers: list[Layer] = []
        self.edges: list[Any] = []  # (source, destination, output index)
        self.tensors: Tensors = {}
        self.producer: dict[str, tuple[str, int]] = {}
        self.used: set[str] = set()
        self.graph_outputs = {o.name for o in self.graph.output}

    def unique(self, name: str) -> str:
        return unique_name(name, self.used)

    def run(self) -> NetworkDef:
        for value in self.graph.input:
            if value.name not in self.consts:
                self.layers.append(_input_layer(value))
                self.producer[value.name] = (value.name, 0)
                self.used.add(value.name)
        for index, node in enumerate(self.graph.node):
            value = _constant_value(node)
            if value is not None and node.output[0] not in self.graph_outputs:
                self.consts[node.output[0]] = value
                continue
            self.node(index, node)
        return NetworkDef(tuple(self.layers), tuple(self.edges), {"onnx": self.meta()})

    def node(self, index: int, node: onnx.NodeProto) -> None:
        name = self.unique(node.name or f"{node.op_type}_{index}")
        n = _OnnxNode(node, self.consts, self.opset)
        (type_, mode, attrs, params), names = _canonical(n) or _onnx_other(n)
        for i in n.dynamic():
            self.edge(name, node.input[i])
        for j, value in enumerate(proto.node_free_names(node)):
            if value in self.consts:
                params[f"outer{j}"] = self.consts[value]
                names[f"outer{j}"] = value
            else:
                self.edge(name, value)
        names = {p: v for p, v in names.items() if v != f"{name}.{p}"}
        if names:
            attrs["onnx_names"] = names
        if list(node.output) != [name]:
            attrs["onnx_outputs"] = list(node.output)
        self.layers.append(Layer(name, type_, mode, attrs))
        self.tensors.update({f"{name}.{p}": np.asarray(a) for p, a in params.items()})
        for k, out in enumerate(node.output):
            if out:
                self.producer[out] = (name, k)

    def edge(self, layer: str, value: str) -> None:
        if value not in self.producer:
            raise InvalidInput(f"node {layer!r} reads {value!r}, which nothing produces")
        src, port = self.producer[value]
        self.edges.append((src, layer, port))

    def meta(self) -> dict[str, Any]:
        m, g = self.model, self.graph
        outputs = []
        for value in g.output:
            if value.name not in self.producer:
                raise InvalidInput(f"graph output {value.name!r} is a constant (not supported)")
            layer, port = self.producer[value.name]
            outputs.append(
                {
                    "name": value.name,
                    "layer": layer,
                    "output": port,
                    "type": proto.type_json(value.type),
                }
            )
        meta: dict[str, Any] = {
            "ir_version": m.ir_version,
            "opset_import": [[o.domain, o.version] for o in m.opset_import],
            "outputs": outputs,
        }
        optional = {
            "producer_name": m.producer_name,
            "producer_version": m.producer_version,
            "domain": m.domain,
            "model_version": m.model_version,
            "doc_string": m.doc_string,
            "graph_name": g.name,
            "graph_doc_string": g.doc_string,
            "metadata_props": [[p.key, p.value] for p in m.metadata_props],
            "functions": [proto.encode_proto(f) for f in m.functions],
        }
        meta.update({k: v for k, v in optional.items() if v})
        return meta


def from_onnx(
    source: str | os.PathLike[str] | bytes | onnx.ModelProto,
) -> tuple[NetworkDef, Tensors]:
    """Network definition and tensors of an ONNX model (a path, bytes or a ``ModelProto``).

    One layer per node (foldable ``Constant`` nodes fold into their consumers), named by the
    node name (``<op>_<index>`` when empty). Float and large constants become tensors
    ``<layer>.<param>``; small integer constants (shapes, axes) stay inline in ``attrs``.
    Value and initializer names, multi-output nodes, sub-graphs and model-level facts are
    kept (module docstring), so :func:`to_onnx` writes the model back faithfully. Raises
    :class:`InvalidInput` for truncated, corrupt or non-ONNX files.
    """
    state = _Import(_load_onnx(source))
    return state.run(), state.tensors


# ---- export -------------------------------------------------------------------------------


def _output_names(layer: Layer) -> list[str]:
    """ONNX value names of a layer's outputs (its own name unless recorded otherwise)."""
    names = layer.attrs.get("onnx_outputs")
    return list(names) if names else [layer.name]


def _value_name(layer: Layer, port: int) -> str:
    names = _output_names(layer)
    if port < len(names) and names[port]:
        return names[port]
    raise InvalidInput(f"layer {layer.name!r} has no output #{port}")


class _OnnxWriter:
    """Collects nodes and initializers while :func:`to_onnx` walks the layers."""

    def __init__(self, tensors: Mapping[str, Any], opset: int) -> None:
        self.tensors = tensors
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}

    def array(self, layer: Layer, param: str) -> np.ndarray:
        key = f"{layer.name}.{param}"
        if key not in self.tensors:
            raise InvalidInput(f"to_onnx needs tensor {key!r} for layer {layer.name!r}")
        return as_numpy(self.tensors[key])

    def tensor(
        self, layer: Layer, param: str, transform: Callable[[np.ndarray], np.ndarray] = lambda a: a
    ) -> str:
        """Write ``<layer>.<param>`` as an initializer under its ONNX name; that name."""
        array = np.array(transform(self.array(layer, param)), order="C")
        return self.const(self.name_of(layer, param), array)

    def name_of(self, layer: Layer, key: str) -> str:
        return str(layer.attrs.get("onnx_names", {}).get(key, f"{layer.name}.{key}"))

    def const(self, name: str, array: np.ndarray) -> str:
        """Write an initializer; a name already used for other values gets a suffix."""
        made = numpy_helper.from_array(np.asarray(array), name)
        candidate, k = name, 1
        while candidate in self.initializers:
            if self.initializers[candidate].SerializeToString() == made.SerializeToString():
                return candidate
            candidate, k = f"{name}_{k}", k + 1
        made.name = candidate
        self.initializers[candidate] = made
        return candidate

    def node(
        self, op: str, layer: Layer, inputs: list[str], domain: str = "", **attrs: Any
    ) -> onnx.NodeProto:
        made = helper.make_node(
            op, inputs, _output_names(layer), name=layer.name, domain=domain, **attrs
        )
        self.nodes.append(made)
        return made


def _export_spatial(a: Mapping[str, Any]) -> dict[str, Any]:
    kernel = list(a["kernel_size"])
    dims = len(kernel)
    out: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": ints(a.get("stride") or kernel, dims),
    }
    padding = a.get("padding", 0)
    if "pads" in a:
        out["pads"] = list(a["pads"])
    elif padding == "same":
        out["auto_pad"] = "SAME_UPPER"
    else:
        pads = [0] * dims if padding == "valid" else ints(padding, dims)
        out["pads"] = list(pads) * 2
    return out


Exporter = Callable[["_OnnxWriter", Layer, list[str]], None]


def _export_simple(op: str) -> Exporter:
    def export(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
        w.node(op, layer, ins)

    return export


def _optional(w: _OnnxWriter, layer: Layer, param: str) -> list[str]:
    """``[tensor name]`` when ``attrs.bias`` is true (the default), else ``[]``."""
    return [w.tensor(layer, param)] if layer.attrs.get("bias", True) else []


def _export_conv(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a = layer.attrs
    w.node(
        "Conv",
        layer,
        ins + [w.tensor(layer, "weight"), *_optional(w, layer, "bias")],
        **_export_spatial(a),
        dilations=ints(a.get("dilation", 1), len(a["kernel_size"])),
        group=int(a.get("groups", 1)),
    )


def _export_fc(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a = layer.attrs
    if a.get("onnx_op") == "MatMul" and not a.get("bias", True):
        w.node("MatMul", layer, ins + [w.tensor(layer, "weight", lambda x: x.T)])
    else:
        bias = _optional(w, layer, "bias")
        if a.get("onnx_transB") == 0:
            w.node("Gemm", layer, ins + [w.tensor(layer, "weight", lambda x: x.T)] + bias)
        else:
            w.node("Gemm", layer, ins + [w.tensor(layer, "weight")] + bias, transB=1)


def _export_dropout(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    p = float(layer.attrs.get("p", 0.5))
    if w.opset < 12:
        w.node("Dropout", layer, ins, ratio=p)
    elif p == 0.5:
        w.node("Dropout", layer, ins)
    else:
        ratio = w.const(f"{layer.name}.ratio", np.asarray(p, dtype=np.float32))
        w.node("Dropout", layer, ins + [ratio])


def _export_batchnorm(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a = layer.attrs
    params = [w.tensor(layer, p) for p in ("weight", "bias", "running_mean", "running_var")]
    w.node(
        "BatchNormalization",
        layer,
        ins + params,
        epsilon=float(a.get("eps", 1e-5)),
        momentum=1.0 - float(a.get("momentum") or 0.1),
    )


def _export_flatten(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a = layer.attrs
    if (a.get("start_dim", 1), a.get("end_dim", -1)) != (1, -1):
        raise InvalidInput(f"cannot export Flatten {layer.name!r} with {a} to ONNX")
    w.node("Flatten", layer, ins, axis=1)


def _export_softmax(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    dim = layer.attrs.get("dim")
    w.node("Softmax", layer, ins, axis=int(dim if dim is not None else -1))


def _export_lrn(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a = layer.attrs
    w.node(
        "LRN",
        layer,
        ins,
        size=int(a["size"]),
        alpha=float(a.get("alpha", 1e-4)),
        beta=float(a.get("beta", 0.75)),
        bias=float(a.get("k", 1.0)),
    )


def _export_add(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    w.node("Add" if len(ins) == 2 else "Sum", layer, ins)


def _export_concat(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    w.node("Concat", layer, ins, axis=int(layer.attrs.get("dim", 1)))


def _export_embedding(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    w.node("Gather", layer, [w.tensor(layer, "weight")] + ins, axis=0)


def _export_layernorm(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a = layer.attrs
    w.node(
        "LayerNormalization",
        layer,
        ins + [w.tensor(layer, "weight"), *_optional(w, layer, "bias")],
        axis=-len(a["normalized_shape"]),
        epsilon=float(a.get("eps", 1e-5)),
    )


def _export_pool(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    a, kind = layer.attrs, "Max" if layer.mode == "MAX" else "Average"
    if a.get("global") or (a.get("adaptive") and all(s == 1 for s in ints(a["output_size"], 1))):
        w.node(f"Global{kind}Pool", layer, ins)
    elif a.get("adaptive"):
        raise InvalidInput(
            f"cannot export adaptive pooling {layer.name!r} "
            f"(output_size {a['output_size']}) to ONNX"
        )
    else:
        dims = len(a["kernel_size"])
        extra: dict[str, Any] = {}
        if a.get("ceil_mode"):
            extra["ceil_mode"] = 1
        if layer.mode == "MAX" and ints(a.get("dilation", 1), dims) != [1] * dims:
            extra["dilations"] = ints(a["dilation"], dims)
        if layer.mode == "AVG" and a.get("count_include_pad", True):
            extra["count_include_pad"] = 1
        w.node(f"{kind}Pool", layer, ins, **_export_spatial(a), **extra)


def _export_other(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    """Write an imported node back: its input slots, typed attributes and outer constants."""
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
            inputs.append(w.const(w.name_of(layer, f"const{i}"), proto.from_inline(slot)))
    for key in a.get("onnx_names", {}):
        if key.startswith("outer"):
            w.tensor(layer, key)
    attributes = [
        proto.decode_attr(name, typed, lambda key: w.array(layer, key))
        for name, typed in a.get("onnx_attrs", {}).items()
    ]
    w.node(a["op"], layer, inputs, domain=a.get("onnx_domain", "")).attribute.extend(attributes)


#: Layer type → export handler (``Other`` writes back the ONNX node it came from).
_EXPORTERS: dict[str, Exporter] = {
    "ReLU": _export_simple("Relu"),
    "Sigmoid": _export_simple("Sigmoid"),
    "Tanh": _export_simple("Tanh"),
    "Identity": _export_simple("Identity"),
    "Conv": _export_conv,
    "Pool": _export_pool,
    "FC": _export_fc,
    "Dropout": _export_dropout,
    "BatchNorm": _export_batchnorm,
    "Flatten": _export_flatten,
    "Softmax": _export_softmax,
    "LRN": _export_lrn,
    "Add": _export_add,
    "Concat": _export_concat,
    "Embedding": _export_embedding,
    "LayerNorm": _export_layernorm,
    "Other": _export_other,
}


def _input_info(name: str, layer: Layer | None) -> onnx.ValueInfoProto:
    """A graph input: the recorded ONNX type, else ``dtype`` and a batch dim + ``shape``."""
    attrs = layer.attrs if layer is not None else {}
    if "onnx_type" in attrs:
        return proto.value_info(name, attrs["onnx_type"])
    dims = attrs.get("dims")
    if dims is None and isinstance(attrs.get("shape"), list):
        dims = ["N", *attrs["shape"]]
    return proto.value_info(name, {"dtype": attrs.get("dtype", "float32"), "dims": dims})


def _recorded_outputs(net: NetworkDef) -> list[onnx.ValueInfoProto] | None:
    """Graph outputs recorded at import, when every one still names an existing layer."""
    recorded = net.meta.get("onnx", {}).get("outputs")
    if not recorded or any(o["layer"] not in net for o in recorded):
        return None
    return [
        proto.value_info(_value_name(net.layer(o["layer"]), int(o["output"])), o["type"])
        for o in recorded
    ]


def _inferred_outputs(model: onnx.ModelProto, names: list[str]) -> list[onnx.ValueInfoProto]:
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


def _opsets(net: NetworkDef, default: int, nodes: list[onnx.NodeProto]) -> list[Any]:
    """The recorded opset imports (plus any new domain), else ``default``/imported opsets."""
    recorded = net.meta.get("onnx", {}).get("opset_import")
    if recorded:
        versions = {domain: int(version) for domain, version in recorded}
    else:
        layer_opsets = [int(layer.attrs.get("onnx_opset", 0)) for layer in net.layers]
        versions = {"": max([default, *layer_opsets])}
    for domain in sorted({n.domain for n in nodes} - set(versions)):
        versions[domain] = 1
    return [helper.make_opsetid(domain, version) for domain, version in versions.items()]


def _default_opset(net: NetworkDef, opset: int) -> int:
    recorded = net.meta.get("onnx", {}).get("opset_import") or []
    versions = [int(v) for d, v in recorded if d in _DEFAULT_DOMAINS]
    if versions:
        return versions[0]
    return max([opset] + [int(layer.attrs.get("onnx_opset", 0)) for layer in net.layers])


def _model_facts(model: onnx.ModelProto, meta: Mapping[str, Any]) -> None:
    """Copy the model-level facts recorded by :func:`from_onnx` onto ``model``."""
    if "ir_version" in meta:
        model.ir_version = int(meta["ir_version"])
    for key in ("producer_name", "producer_version", "domain", "doc_string"):
        if key in meta:
            setattr(model, key, meta[key])
    if "model_version" in meta:
        model.model_version = int(meta["model_version"])
    if "graph_name" in meta:
        model.graph.name = meta["graph_name"]
    if "graph_doc_string" in meta:
        model.graph.doc_string = meta["graph_doc_string"]
    for key, value in meta.get("metadata_props", []):
        model.metadata_props.add(key=key, value=value)
    model.functions.extend(proto.decode_function(f) for f in meta.get("functions", []))


def to_onnx(
    net: NetworkDef,
    tensors: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    opset: int = 17,
) -> onnx.ModelProto:
    """An ONNX model of ``net`` with ``tensors`` as initializers, written to ``path`` if given.

    A network imported by :func:`from_onnx` comes back with its opsets, IR version, value
    names, graph inputs and outputs. Otherwise every value is named by the layer producing it,
    ``Input`` layers become graph inputs with a symbolic batch dimension, outputs are the layers
    without successors, and the opset is ``opset`` or the highest opset an imported ``Other``
    layer came from. Raises :class:`InvalidInput` for a layer with no ONNX form (``Other``
    layers that did not come from ONNX) or a missing tensor.
    """
    meta = net.meta.get("onnx", {})
    w = _OnnxWriter(tensors, _default_opset(net, opset))
    feeds: dict[str, list[tuple[str, int]]] = {layer.name: [] for layer in net.layers}
    for (src, dst), port in zip(net.edges, net.ports):
        feeds[dst].append((src, port))
    graph_inputs: list[onnx.ValueInfoProto] = []
    for layer in net.layers:
        if layer.type == "Input":
            graph_inputs.append(_input_info(layer.name, layer))
            continue
        ins = [_value_name(net.layer(src), port) for src, port in feeds[layer.name]]
        if not ins and "@" in layer.attrs.get("onnx_inputs", ["@"]):
            feed = f"{layer.name}.input"
            graph_inputs.append(_input_info(feed, None))
            ins = [feed]
        _EXPORTERS[layer.type](w, layer, ins)
    graph = helper.make_graph(w.nodes, "provdb", graph_inputs, [], list(w.initializers.values()))
    opsets = _opsets(net, w.opset, w.nodes)
    model = helper.make_model(graph, opset_imports=opsets, producer_name="provdb")
    _model_facts(model, meta)
    outputs = _recorded_outputs(net)
    if outputs is None:
        outputs = _inferred_outputs(model, [_output_names(layer)[0] for layer in net.outputs()])
    model.graph.output.extend(outputs)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidInput(f"exported ONNX model is invalid: {first_line(exc)}") from None
    if path is not None:
        onnx.save(model, str(path))
    return model
