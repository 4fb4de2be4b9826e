"""ONNX in and out: :func:`from_onnx` and :func:`to_onnx`.

:func:`from_onnx` makes one layer per ONNX node, named by the node name; initializers become
tensors in PyTorch layout (``Gemm``/``Conv`` ``B`` → ``<node>.weight``, ``C`` → ``.bias``).
:func:`to_onnx` writes a definition and its tensors back; ONNX → definition → ONNX keeps every
layer, attribute and tensor value. Both directions are tables: ONNX op type → import handler,
layer type → export handler.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from provdb.errors import InvalidInput
from provdb.models._common import Tensors, as_numpy, existing_file, first_line, ints
from provdb.models.network import Layer, NetworkDef

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


#: ONNX op type (default domain) → import handler; ``None`` from a handler means ``Other``.
_IMPORTERS: dict[str, Callable[[_OnnxNode], Handled | None]] = {
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
        handler = _IMPORTERS.get(node.op_type)
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
        array = np.array(transform(as_numpy(self.tensors[key])), order="C")
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
        w.node("Gemm", layer, ins + [w.tensor(layer, "weight")] + bias, transB=1)


def _export_dropout(w: _OnnxWriter, layer: Layer, ins: list[str]) -> None:
    p = np.asarray(layer.attrs.get("p", 0.5), dtype=np.float32)
    w.node("Dropout", layer, ins + [w.const(f"{layer.name}.ratio", p)])


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
        extra: dict[str, Any] = {"ceil_mode": int(bool(a.get("ceil_mode", False)))}
        if layer.mode == "MAX":
            extra["dilations"] = ints(a.get("dilation", 1), len(a["kernel_size"]))
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
        _EXPORTERS[layer.type](w, layer, preds)
    opset = max([opset] + [int(layer.attrs.get("onnx_opset", 0)) for layer in net.layers])
    graph = helper.make_graph(w.nodes, "provdb", graph_inputs, [], w.initializers)
    domains = {n.domain for n in w.nodes if n.domain}
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in sorted(domains)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="provdb")
    model.graph.output.extend(_output_infos(model, [layer.name for layer in net.outputs()]))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidInput(f"exported ONNX model is invalid: {first_line(exc)}") from None
    if path is not None:
        onnx.save(model, str(path))
    return model
