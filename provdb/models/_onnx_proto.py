"""ONNX protobuf pieces as JSON for layer attributes and network ``meta``, and back.

* value types (``{"dtype": "float32", "dims": [null, 3, "height"]}``, or ``{"proto": base64}``
  for non-tensor types),
* typed node attributes (``[ATTRIBUTE_TYPE, value]``): numbers, strings and small non-float
  tensors as JSON; float or large tensors as layer tensors (``{"$param": key}``); sub-graphs and
  other protobuf-only attributes as ``{"$attr": base64, "tensors": {index: key}}`` with their
  float and large tensors lifted out into layer tensors, so weights inside ``If``/``Loop``
  bodies live in the archive like any other weight,
* :func:`free_names`: the outer-scope values a sub-graph reads (implicit inputs of its node).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

INLINE_LIMIT = 64
_FLOAT_TYPES = frozenset(
    {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
)
_GRAPH_TYPES = frozenset({AttributeProto.GRAPH, AttributeProto.GRAPHS})
JSON_TYPES = frozenset(
    {
        AttributeProto.INT,
        AttributeProto.INTS,
        AttributeProto.FLOAT,
        AttributeProto.FLOATS,
        AttributeProto.STRING,
        AttributeProto.STRINGS,
    }
)

Lookup = Callable[[str], np.ndarray]


# ---- dtypes and value types ------------------------------------------------------------------


def _dtype_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for elem in helper.get_all_tensor_dtypes():
        try:
            names[elem] = np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name
        except (KeyError, TypeError, ValueError):
            continue
    names[TensorProto.STRING] = "string"
    return names


DTYPE_NAMES: dict[int, str] = _dtype_names()
ELEM_TYPES: dict[str, int] = {}
for _elem, _name in sorted(DTYPE_NAMES.items()):
    ELEM_TYPES.setdefault(_name, _elem)


def dtype_name(elem: int) -> str:
    """``"float32"``-style name of an ONNX element type (``"elem<N>"`` when unknown)."""
    return DTYPE_NAMES.get(elem, f"elem{elem}")


def elem_type(name: str) -> int:
    """The ONNX element type of a :func:`dtype_name`."""
    if name.startswith("elem") and name[4:].isdigit():
        return int(name[4:])
    return ELEM_TYPES.get(name, TensorProto.FLOAT)


def type_json(type_: onnx.TypeProto) -> dict[str, Any]:
    """A value type as JSON; tensor dims are ints, ``dim_param`` strings or ``None``."""
    if type_.WhichOneof("value") != "tensor_type":
        return {"proto": _b64(type_)}
    tensor = type_.tensor_type
    out: dict[str, Any] = {"dtype": dtype_name(tensor.elem_type)}
    if tensor.HasField("shape"):
        out["dims"] = [_dim(d) for d in tensor.shape.dim]
    return out


def _dim(d: onnx.TensorShapeProto.Dimension) -> int | str | None:
    if d.HasField("dim_value"):
        return int(d.dim_value)
    return d.dim_param or None


def value_info(name: str, type_: Mapping[str, Any]) -> onnx.ValueInfoProto:
    """A graph input/output of the given :func:`type_json`."""
    if "proto" in type_:
        info = onnx.ValueInfoProto(name=name)
        info.type.CopyFrom(onnx.TypeProto.FromString(_unb64(type_["proto"])))
        return info
    dims = type_.get("dims")
    return helper.make_tensor_value_info(name, elem_type(type_.get("dtype", "float32")), dims)


def _b64(message: Any) -> str:
    return base64.b64encode(message.SerializeToString()).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def encode_proto(message: Any) -> str:
    """A protobuf message as base64 text."""
    return _b64(message)


def decode_function(text: str) -> onnx.FunctionProto:
    """A :class:`onnx.FunctionProto` from :func:`encode_proto` text."""
    return onnx.FunctionProto.FromString(_unb64(text))


# ---- inline constants -------------------------------------------------------------------------


def inline(array: np.ndarray) -> dict[str, Any]:
    """A small array as JSON (``{"dtype", "dims", "values"}``)."""
    return {"dtype": str(array.dtype), "dims": list(array.shape), "values": array.ravel().tolist()}


def from_inline(value: Mapping[str, Any]) -> np.ndarray:
    """The array of :func:`inline` JSON."""
    return np.asarray(value["values"], dtype=value["dtype"]).reshape(value["dims"])


def inlinable(array: np.ndarray) -> bool:
    """Whether a constant stays inline in attrs: small and not floating point."""
    return array.dtype.kind in "biu" and array.size <= INLINE_LIMIT


# ---- typed node attributes ----------------------------------------------------------------------


def encode_attr(attr: AttributeProto, params: dict[str, np.ndarray]) -> list[Any]:
    """``[ATTRIBUTE_TYPE, JSON value]`` of a node attribute; lifted tensors go to ``params``."""
    type_name = AttributeProto.AttributeType.Name(attr.type)
    if attr.type in JSON_TYPES:
        return [type_name, _json_value(helper.get_attribute_value(attr))]
    if attr.type == AttributeProto.TENSOR:
        array = numpy_helper.to_array(attr.t)
        if inlinable(array):
            return [type_name, inline(array)]
        if array.dtype != object and attr.t.data_location != TensorProto.EXTERNAL:
            key = f"attr.{attr.name}"
            params[key] = array
            return [type_name, {"$param": key, "name": attr.t.name}]
    return [type_name, _lift(attr, params)]


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value


def _python_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_python_value(v) for v in value]
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"])
    if isinstance(value, dict) and "$float" in value:
        return float(value["$float"])
    return value


def decode_attr(name: str, typed: list[Any], lookup: Lookup) -> AttributeProto:
    """The attribute of :func:`encode_attr` output; ``lookup(key)`` returns a lifted tensor."""
    type_name, value = typed
    if isinstance(value, dict) and "$attr" in value:
        attr = AttributeProto.FromString(_unb64(value["$attr"]))
        _restore(attr, value.get("tensors", {}), lookup)
        attr.name = name
        return attr
    if type_name == "TENSOR":
        if isinstance(value, dict) and "$param" in value:
            tensor = numpy_helper.from_array(np.asarray(lookup(value["$param"])), value["name"])
        else:
            tensor = numpy_helper.from_array(from_inline(value))
        return helper.make_attribute(name, tensor)
    return helper.make_attribute(
        name, _python_value(value), attr_type=AttributeProto.AttributeType.Value(type_name)
    )


def has_subgraph(node: onnx.NodeProto) -> bool:
    """Whether a node carries sub-graphs (``If``, ``Loop``, ``Scan``, ...)."""
    return any(a.type in _GRAPH_TYPES for a in node.attribute)


# ---- sub-graphs -------------------------------------------------------------------------------


def _attr_tensors(attr: AttributeProto, label: str) -> Iterator[tuple[TensorProto, str]]:
    """Every tensor an attribute holds, depth first, with a readable label."""
    if attr.type == AttributeProto.TENSOR:
        yield attr.t, label
    for t in attr.tensors:
        yield t, label
    if attr.type == AttributeProto.GRAPH:
        yield from _graph_tensors(attr.g)
    for g in attr.graphs:
        yield from _graph_tensors(g)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[tuple[TensorProto, str]]:
    for init in graph.initializer:
        yield init, init.name
    for node in graph.node:
        for attr in node.attribute:
            constant = node.op_type == "Constant" and node.output
            label = node.output[0] if constant else f"{node.name or node.op_type}.{attr.name}"
            yield from _attr_tensors(attr, label)


def _liftable(t: TensorProto) -> bool:
    if t.data_location == TensorProto.EXTERNAL or t.data_type == TensorProto.STRING:
        return False
    size = math.prod(t.dims)
    return t.data_type in _FLOAT_TYPES or size > INLINE_LIMIT


def _lift(attr: AttributeProto, params: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"$attr": base64, "tensors": {index: key}}`` with liftable tensors moved to ``params``."""
    copy = AttributeProto()
    copy.CopyFrom(attr)
    _strip_debug(copy)
    moved: dict[str, str] = {}
    for index, (tensor, label) in enumerate(_attr_tensors(copy, attr.name)):
        if not _liftable(tensor):
            continue
        key = f"{attr.name}.{label}"
        k = 1
        while key in params:
            key, k = f"{attr.name}.{label}_{k}", k + 1
        params[key] = numpy_helper.to_array(tensor)
        moved[str(index)] = key
        stub = TensorProto(
            name=tensor.name, data_type=tensor.data_type, doc_string=tensor.doc_string
        )
        stub.dims.extend(tensor.dims)
        tensor.CopyFrom(stub)
    return {"$attr": _b64(copy), "tensors": moved}


def _strip_debug(attr: AttributeProto) -> None:
    """Drop node doc strings and metadata (exporters' debug notes, often most of a sub-graph's
    bytes) from an attribute's sub-graphs, as the top-level graph's nodes drop them too."""
    for g in [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs):
        for node in g.node:
            node.ClearField("doc_string")
            node.ClearField("metadata_props")
            for inner in node.attribute:
                _strip_debug(inner)


def _restore(attr: AttributeProto, moved: Mapping[str, str], lookup: Lookup) -> None:
    for index, (tensor, _) in enumerate(_attr_tensors(attr, attr.name)):
        key = moved.get(str(index))
        if key is not None:
            filled = numpy_helper.from_array(np.asarray(lookup(key)), tensor.name)
            filled.doc_string = tensor.doc_string
            tensor.CopyFrom(filled)


def free_names(graph: onnx.GraphProto) -> list[str]:
    """Outer-scope value names a sub-graph (and its own sub-graphs) reads, in first-use order."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {s.values.name for s in graph.sparse_initializer}
    free: dict[str, None] = {}
    for node in graph.node:
        refs = list(node.input)
        for attr in node.attribute:
            for g in [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs):
                refs += free_names(g)
        free.update((r, None) for r in refs if r and r not in defined)
        defined.update(node.output)
    free.update((o.name, None) for o in graph.output if o.name not in defined)
    return list(free)


def node_free_names(node: onnx.NodeProto) -> list[str]:
    """Outer-scope values the sub-graphs of ``node`` read (its implicit inputs)."""
    free: dict[str, None] = {}
    for attr in node.attribute:
        for g in [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs):
            free.update((n, None) for n in free_names(g))
    return list(free)
