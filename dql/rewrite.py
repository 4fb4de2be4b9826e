"""Pure rewrites of network definitions (docs/network-format.md) for slice and construct.

Functions take a network dict and return a new one; the argument is never modified. Layers
keep their order (a topological order) and their attributes; only the layers a rewrite adds
are new, so an executor can reuse the parent's weights for every other layer by name.
"""

from __future__ import annotations

import copy
import typing as t

from dql.errors import DQLError
from dql.patterns import interpolate
from dql.plan import MutationPlan
from dql.templates import LayerSpec

Network = dict[str, t.Any]


class RewriteError(DQLError):
    """A slice or construct cannot be applied to a network (e.g. a name clash)."""

    code = "rewrite"


def slice_network(
    net: t.Mapping[str, t.Any], input: str | t.Sequence[str], output: str | t.Sequence[str]
) -> Network:
    """The sub-network from ``input`` layer(s) to ``output`` layer(s).

    Keeps every layer on a path from an input to an output, plus the other layers the outputs
    depend on that are not upstream of the inputs ("the connections needed to produce the
    output"). The result lists its entry and exit layers under ``inputs`` and ``outputs``.

    Raises:
        RewriteError: an endpoint is not in the network, or no output depends on an input.
    """
    inputs, outputs = _names(input), _names(output)
    layers = {layer["name"] for layer in net["layers"]}
    missing = [n for n in (*inputs, *outputs) if n not in layers]
    if missing:
        raise RewriteError(f"Slice endpoint(s) not in the network: {', '.join(missing)}")
    preds, succs = _adjacency(net)
    upstream = _reach(inputs, preds) - set(inputs)
    keep = _reach(outputs, preds) - upstream
    if not set(inputs) <= keep:
        raise RewriteError(f"No path from {', '.join(inputs)} to {', '.join(outputs)}")
    result = _with(
        net,
        [layer for layer in net["layers"] if layer["name"] in keep],
        [e for e in net["edges"] if e[0] in keep and e[1] in keep],
    )
    result["inputs"] = [
        layer["name"]
        for layer in result["layers"]
        if not preds[layer["name"]] & keep or layer["name"] in inputs
    ]
    result["outputs"] = list(outputs)
    return result


def apply_mutations(
    net: t.Mapping[str, t.Any],
    mutations: t.Sequence[MutationPlan],
    bindings: t.Mapping[str, t.Sequence[str] | None],
) -> Network:
    """Apply a construct's mutations, in order, to the layers they bind.

    Args:
        net: the parent network.
        mutations: ``CompiledQuery.mutations``.
        bindings: per mutation column, the bound layer names (a result row works as is).

    ``insert = T``: after each bound layer ``u``, add a layer built from ``T`` (``$n`` in its
    name replaced by what the selector captured from ``u``'s name) and route all of ``u``'s
    out-edges through it. ``delete [= T]``: remove ``u``'s out-edges (only those to layers
    matching ``T`` when given), then drop layers no longer reachable from an input.

    Raises:
        RewriteError: an inserted name already exists in the network.
    """
    result = _with(net, net["layers"], net["edges"])
    for mutation in mutations:
        roots = _roots(result)
        names = [n for n in (bindings.get(mutation.column) or []) if _has_layer(result, n)]
        for name in sorted(set(names), key=_order(result)):
            captures = mutation.selector.match(name) or {}
            if mutation.action == "insert":
                _insert_after(result, name, t.cast(LayerSpec, mutation.template), captures)
            else:
                _delete_out_edges(result, name, mutation.template)
        if mutation.action == "delete":
            _drop_unreachable(result, roots)
    return result


def new_layer(
    spec: LayerSpec, captures: t.Mapping[str, str], default_name: str
) -> dict[str, t.Any]:
    """A network-format layer dict built from a template."""
    name = interpolate(str(spec.name), dict(captures)) if spec.name else default_name
    return {
        "name": name,
        "type": spec.type or "Other",
        "mode": spec.mode if spec.type == "Pool" and spec.mode else "",
        "attrs": dict(spec.attrs),
    }


# -- helpers -------------------------------------------------------------------------------------
def _names(value: str | t.Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _with(
    net: t.Mapping[str, t.Any], layers: t.Iterable[t.Any], edges: t.Iterable[t.Any]
) -> Network:
    result = {k: copy.deepcopy(v) for k, v in net.items() if k not in ("layers", "edges")}
    result["layers"] = [copy.deepcopy(layer) for layer in layers]
    result["edges"] = [list(edge) for edge in edges]
    return result


def _adjacency(net: t.Mapping[str, t.Any]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    preds: dict[str, set[str]] = {layer["name"]: set() for layer in net["layers"]}
    succs: dict[str, set[str]] = {layer["name"]: set() for layer in net["layers"]}
    for src, dst in net["edges"]:
        preds[dst].add(src)
        succs[src].add(dst)
    return preds, succs


def _reach(start: t.Iterable[str], step: t.Mapping[str, set[str]]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for nxt in step[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _has_layer(net: Network, name: str) -> bool:
    return any(layer["name"] == name for layer in net["layers"])


def _order(net: Network) -> t.Callable[[str], int]:
    index = {layer["name"]: i for i, layer in enumerate(net["layers"])}
    return lambda name: index[name]


def _insert_after(net: Network, name: str, spec: LayerSpec, captures: t.Mapping[str, str]) -> None:
    layer = new_layer(spec, captures, default_name=f"{name}_{(spec.type or 'layer').lower()}")
    if _has_layer(net, layer["name"]):
        raise RewriteError(f"Cannot insert {layer['name']!r} after {name!r}: the name exists")
    position = _order(net)(name) + 1
    net["layers"].insert(position, layer)
    net["edges"] = [
        [layer["name"], dst] if src == name else [src, dst] for src, dst in net["edges"]
    ]
    net["edges"].append([name, layer["name"]])


def _delete_out_edges(net: Network, name: str, spec: LayerSpec | None) -> None:
    by_name = {layer["name"]: layer for layer in net["layers"]}

    def doomed(edge: list[str]) -> bool:
        return edge[0] == name and (spec is None or _matches(by_name[edge[1]], spec))

    net["edges"] = [edge for edge in net["edges"] if not doomed(edge)]


def _matches(layer: t.Mapping[str, t.Any], spec: LayerSpec) -> bool:
    from dql.patterns import Glob

    return (
        (spec.type is None or layer["type"] == spec.type)
        and (spec.mode is None or layer.get("mode") == spec.mode)
        and (spec.name is None or Glob(str(spec.name)).match(layer["name"]) is not None)
    )


def _roots(net: Network) -> list[str]:
    preds, _ = _adjacency(net)
    return [
        layer["name"]
        for layer in net["layers"]
        if layer["type"] == "Input" or not preds[layer["name"]]
    ]


def _drop_unreachable(net: Network, roots: list[str]) -> None:
    _, succs = _adjacency(net)
    alive = _reach([r for r in roots if r in succs], succs)
    net["layers"] = [layer for layer in net["layers"] if layer["name"] in alive]
    net["edges"] = [e for e in net["edges"] if e[0] in alive and e[1] in alive]
