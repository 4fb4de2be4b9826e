"""Network definitions N: a JSON-serialisable DAG of layers (``docs/network-format.md``).

A :class:`NetworkDef` holds :class:`Layer` s (name, canonical type, pooling mode, attributes) and
directed edges between them. It is immutable, validated on construction (unique names, edges
between known layers, no cycles, canonical types) and always keeps its layers in a topological
order, so ``ordinal`` in the graph is the index in :attr:`NetworkDef.layers`.

This module does not import torch: importers live in :mod:`provdb.models.importers`, the PyTorch
builder in :mod:`provdb.models.builder`.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provdb.errors import InvalidInput

FORMAT = "provdb.network/1"

#: Canonical layer types (``docs/network-format.md``).
LAYER_TYPES: frozenset[str] = frozenset(
    {
        "Input",
        "Conv",
        "Pool",
        "ReLU",
        "Sigmoid",
        "Tanh",
        "FC",
        "Dropout",
        "BatchNorm",
        "Flatten",
        "Softmax",
        "LRN",
        "Add",
        "Concat",
        "Identity",
        "Embedding",
        "LayerNorm",
        "Other",
    }
)
POOL_MODES: frozenset[str] = frozenset({"MAX", "AVG"})
#: Types whose layers own learnable tensors (``Other`` may own some too; see ``param_layers``).
PARAM_TYPES: frozenset[str] = frozenset({"Conv", "FC", "BatchNorm", "Embedding", "LayerNorm"})


@dataclass(frozen=True)
class Layer:
    """One node of a network: ``name`` (unique), canonical ``type``, ``mode`` and ``attrs``.

    ``mode`` is ``"MAX"`` or ``"AVG"`` for ``Pool`` and ``""`` otherwise; ``attrs`` is a
    JSON-compatible dict of hyper-parameters (kernel sizes, channel counts, ...).
    """

    name: str
    type: str
    mode: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInput(f"layer name must be a non-empty string, got {self.name!r}")
        if self.type not in LAYER_TYPES:
            raise InvalidInput(
                f"layer {self.name!r} has unknown type {self.type!r}; "
                f"known types: {', '.join(sorted(LAYER_TYPES))}"
            )
        if self.type == "Pool" and self.mode not in POOL_MODES:
            raise InvalidInput(f"Pool layer {self.name!r} needs mode MAX or AVG, got {self.mode!r}")
        if self.type != "Pool" and self.mode:
            raise InvalidInput(f"layer {self.name!r} of type {self.type} must have mode ''")
        if not isinstance(self.attrs, dict):
            raise InvalidInput(f"attrs of layer {self.name!r} must be an object")
        try:
            json.dumps(self.attrs, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"attrs of layer {self.name!r} are not JSON: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The layer as the JSON object of the network format."""
        return {"name": self.name, "type": self.type, "mode": self.mode, "attrs": self.attrs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        """A layer from its JSON object; ``mode`` and ``attrs`` are optional."""
        if not isinstance(data, Mapping) or "name" not in data or "type" not in data:
            raise InvalidInput(f"a layer needs 'name' and 'type', got {data!r}")
        return cls(
            name=data["name"],
            type=data["type"],
            mode=data.get("mode") or "",
            attrs=dict(data.get("attrs") or {}),
        )

    def replace(self, **changes: Any) -> Layer:
        """A copy with some fields changed (``attrs`` is copied, never shared)."""
        fields: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "mode": self.mode,
            "attrs": dict(self.attrs),
        }
        fields.update(changes)
        return Layer(**fields)


def _topological(layers: tuple[Layer, ...], edges: tuple[tuple[str, str], ...]) -> list[Layer]:
    """Kahn's algorithm, stable w.r.t. the given layer order; raises on a cycle."""
    order = {layer.name: i for i, layer in enumerate(layers)}
    indegree = dict.fromkeys(order, 0)
    succ: dict[str, list[str]] = {name: [] for name in order}
    for src, dst in edges:
        succ[src].append(dst)
        indegree[dst] += 1
    ready = [order[n] for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        name = layers[heapq.heappop(ready)].name
        result.append(name)
        for nxt in succ[name]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, order[nxt])
    if len(result) != len(layers):
        cyclic = sorted(n for n, d in indegree.items() if d > 0)
        raise InvalidInput(f"network has a cycle through layers {', '.join(cyclic)}")
    by_name = {layer.name: layer for layer in layers}
    return [by_name[n] for n in result]


@dataclass(frozen=True)
class NetworkDef:
    """A validated network DAG; ``layers`` are kept in topological order.

    Edges are ``(source, destination)`` layer names; their order gives the input order of
    multi-input layers (Add, Concat). A pair may repeat (``x + x``). An edge may be given as
    ``(source, destination, output)`` when it carries output ``output`` (> 0) of a layer with
    several outputs (an LSTM's ``Y_h``); ``edges`` always holds pairs and :attr:`ports` the
    output index of each edge (0 for most). ``meta`` is model-level JSON metadata that formats
    keep for a faithful round trip (``meta["onnx"]``: opset, IR version, graph outputs, ...).
    """

    layers: tuple[Layer, ...]
    edges: tuple[tuple[str, str], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    _index: dict[str, Layer] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layers = tuple(
            layer if isinstance(layer, Layer) else Layer.from_dict(layer) for layer in self.layers
        )
        triples = [_edge(e) for e in self.edges]
        given = tuple(self.ports)
        if len(given) > len(triples) or any(not isinstance(p, int) or p < 0 for p in given):
            raise InvalidInput("ports must be one non-negative output index per edge")
        ports = tuple(
            given[i] if i < len(given) and given[i] else port
            for i, (_, _, port) in enumerate(triples)
        )
        edges = tuple((src, dst) for src, dst, _ in triples)
        if not isinstance(self.meta, dict):
            raise InvalidInput("network meta must be an object")
        try:
            json.dumps(self.meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"network meta is not JSON: {exc}") from None
        names = [layer.name for layer in layers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInput(f"duplicate layer names: {', '.join(dupes)}")
        known = set(names)
        for src, dst in edges:
            for end in (src, dst):
                if end not in known:
                    raise InvalidInput(f"edge {src!r} -> {dst!r} refers to unknown layer {end!r}")
            if src == dst:
                raise InvalidInput(f"edge {src!r} -> {dst!r} is a self-loop")
        types = {layer.name: layer.type for layer in layers}
        for src, dst in edges:
            if types[dst] == "Input":
                raise InvalidInput(f"Input layer {dst!r} cannot have an incoming edge from {src!r}")
        ordered = tuple(_topological(layers, edges))
        object.__setattr__(self, "layers", ordered)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "ports", ports)
        object.__setattr__(self, "_index", {layer.name: layer for layer in ordered})

    # ---- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The network as the JSON object of ``docs/network-format.md``."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "layers": [layer.to_dict() for layer in self.layers],
            "edges": [list(edge) for edge in self.port_edges],
        }
        if self.meta:
            data["meta"] = self.meta
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkDef:
        """A network from its JSON object; raises :class:`InvalidInput` when malformed."""
        if not isinstance(data, Mapping):
            raise InvalidInput("a network definition must be a JSON object")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise InvalidInput(f"unsupported network format {fmt!r}; expected {FORMAT!r}")
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise InvalidInput("a network definition needs a 'layers' list")
        edges = data.get("edges") or []
        if not isinstance(edges, list):
            raise InvalidInput("'edges' must be a list of [source, destination] pairs")
        meta = data.get("meta") or {}
        return cls(tuple(Layer.from_dict(layer) for layer in layers), tuple(edges), dict(meta))

    def to_json(self, indent: int | None = None) -> str:
        """The network as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> NetworkDef:
        """A network from JSON text."""
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"network definition is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # ---- navigation ----------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def names(self) -> list[str]:
        """Layer names in topological order."""
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> Layer:
        """The layer called ``name``; raises :class:`InvalidInput` when there is none."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise InvalidInput(f"network has no layer named {name!r}") from None

    def topological_order(self) -> list[Layer]:
        """The layers in topological order (the stored order)."""
        return list(self.layers)

    @property
    def port_edges(self) -> list[tuple[str, str] | tuple[str, str, int]]:
        """Edges as in JSON: ``(source, destination)``, or ``(source, destination, output)``
        when the edge carries an output other than the first."""
        return [
            (src, dst, port) if port else (src, dst)
            for (src, dst), port in zip(self.edges, self.ports)
        ]

    def inputs_of(self, name: str) -> list[tuple[str, int]]:
        """``(predecessor, output index)`` pairs feeding ``name``, in edge (= input) order."""
        self.layer(name)
        return [(src, port) for (src, dst), port in zip(self.edges, self.ports) if dst == name]

    def replace(self, **changes: Any) -> NetworkDef:
        """A copy with some fields changed (``layers``, ``edges``, ``meta``, ``ports``)."""
        fields: dict[str, Any] = {
            "layers": self.layers,
            "edges": self.edges,
            "meta": dict(self.meta),
            "ports": self.ports,
        }
        if "edges" in changes and "ports" not in changes:
            fields["ports"] = ()
        fields.update(changes)
        return NetworkDef(**fields)

    def successors(self, name: str) -> list[str]:
        """Names of the layers fed by ``name``, in edge order."""
        self.layer(name)
        return [dst for src, dst in self.edges if src == name]

    def predecessors(self, name: str) -> list[str]:
        """Names of the layers feeding ``name``, in edge order (= input order)."""
        self.layer(name)
        return [src for src, dst in self.edges if dst == name]

    def inputs(self) -> list[Layer]:
        """The layers of type ``Input``."""
        return [layer for layer in self.layers if layer.type == "Input"]

    def roots(self) -> list[Layer]:
        """Layers without predecessors: they read the network's inputs."""
        fed = {dst for _, dst in self.edges}
        return [layer for layer in self.layers if layer.name not in fed]

    def outputs(self) -> list[Layer]:
        """Layers with no out-edge, in topological order."""
        feeding = {src for src, _ in self.edges}
        return [layer for layer in self.layers if layer.name not in feeding]

    def param_layers(self, tensors: Iterable[str] | None = None) -> list[Layer]:
        """Layers that own learnable tensors.

        Without ``tensors``, by type (:data:`PARAM_TYPES`); with tensor names, the layers that
        own at least one of them (``<layer>.<param>``), which also finds parametric ``Other``.
        """
        if tensors is None:
            return [layer for layer in self.layers if layer.type in PARAM_TYPES]
        owners = {layer_of(name, self.names) for name in tensors}
        return [layer for layer in self.layers if layer.name in owners]


def _edge(edge: Any) -> tuple[str, str, int]:
    """``(source, destination, output)`` of ``[source, destination]`` or ``[..., output]``."""
    if (
        not isinstance(edge, list | tuple)
        or len(edge) not in (2, 3)
        or not all(isinstance(end, str) for end in edge[:2])
        or (len(edge) == 3 and (not isinstance(edge[2], int) or edge[2] < 0))
    ):
        raise InvalidInput(
            "an edge must be a [source, destination] pair of names (optionally with an output "
            f"index), got {edge!r}"
        )
    return (edge[0], edge[1], edge[2] if len(edge) == 3 else 0)


def layer_of(tensor_name: str, layer_names: Iterable[str]) -> str | None:
    """The layer owning ``tensor_name`` (``<layer>.<param>``): the longest matching layer name.

    Layer names may contain dots (``features.0``), so the owner is the longest layer name that
    is a dotted prefix of the tensor name; ``None`` when no layer matches.
    """
    best: str | None = None
    for name in layer_names:
        if tensor_name.startswith(name + ".") and (best is None or len(name) > len(best)):
            best = name
    return best
