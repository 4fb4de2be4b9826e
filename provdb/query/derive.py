"""``slice`` and ``construct``: rewrite each matching version's network and commit it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dql
from dql.rewrite import apply_mutations, slice_network
from provdb.errors import InvalidInput, NotFound
from provdb.models.network import PARAM_TYPES, Layer, NetworkDef, layer_of

if TYPE_CHECKING:
    import numpy as np

    from provdb.repository import Repository

from provdb.query.results import CreatedVersion, QueryResult, Tensors, run_rows

# -- slice and construct -------------------------------------------------------------------


@dataclass
class DerivedNetwork:
    """A rewritten network with its tensors (None until asked for) and bookkeeping."""

    created: CreatedVersion
    tensors: Tensors | None
    added: list[str]
    removed: list[str]


DERIVE_COLUMNS = ["name", "id", "parent_name", "parent", "added", "removed", "new_bytes"]


def derive(repo: Repository, compiled: dql.CompiledQuery, dry_run: bool) -> QueryResult:
    with repo.graph.session(write=not dry_run):
        derived = derive_versions(repo, compiled, commit=not dry_run, with_tensors=not dry_run)
    rows = [_derived_row(d) for d in derived]
    return QueryResult(
        compiled.kind,
        list(DERIVE_COLUMNS),
        rows,
        [d.created for d in derived],
        compiled.cypher,
        compiled.params,
        dry_run,
        compiled,
    )


def _derived_row(derived: DerivedNetwork) -> dict[str, Any]:
    c = derived.created
    return {
        "id": c.id,
        "name": c.name,
        "parent": c.parent,
        "parent_name": c.parent_name,
        "added": derived.added,
        "removed": derived.removed,
        "new_bytes": c.new_bytes,
    }


def derive_versions(
    repo: Repository, compiled: dql.CompiledQuery, *, commit: bool, with_tensors: bool
) -> list[DerivedNetwork]:
    """Run a slice/construct's Cypher and rewrite (and optionally commit) every match."""
    derived = []
    for row in run_rows(repo, compiled):
        item = _rewrite(repo, compiled, row, with_tensors=with_tensors or commit)
        if commit:
            _commit(repo, item, compiled)
        derived.append(item)
    return derived


def _row_network(row: Mapping[str, Any]) -> dict[str, Any]:
    network = row["network"]
    return json.loads(network) if isinstance(network, str | bytes) else dict(network)


def _rewrite(
    repo: Repository, compiled: dql.CompiledQuery, row: Mapping[str, Any], with_tensors: bool
) -> DerivedNetwork:
    parent_dict = _row_network(row)
    parent = NetworkDef.from_dict(parent_dict)
    if compiled.kind == "slice":
        new = _slice(parent, parent_dict, row)
    else:
        new = _network(apply_mutations(parent_dict, compiled.mutations, row))
    unchanged = _unchanged_layers(parent, new)
    tensors: Tensors | None = None
    reused: list[str] = []
    initialised: list[str] = []
    if with_tensors:
        new, tensors, reused, initialised = _tensors_for(
            new, unchanged, parent_weights(repo, row["id"])
        )
    created = CreatedVersion(
        name=f"{row['name']}-{compiled.kind}",
        op=compiled.kind,
        parent=row["id"],
        parent_name=row["name"],
        network=new,
        reused=reused,
        initialised=initialised,
    )
    added = [n for n in new.names if n not in parent]
    removed = [n for n in parent.names if n not in new]
    return DerivedNetwork(created, tensors, added, removed)


def _commit(repo: Repository, item: DerivedNetwork, compiled: dql.CompiledQuery) -> None:
    c = item.created
    result = repo.commit(
        c.name,
        c.network,
        item.tensors or {},
        parent=c.parent,
        op=c.op,
        query=compiled.dql,
        message=f"{c.op} of {c.parent_name} ({(c.parent or '')[:12]}) by DQL",
        params=c.params or None,
    )
    c.id, c.raw_bytes, c.new_bytes = result.version.id, result.raw_bytes, result.new_bytes


def _network(data: Mapping[str, Any]) -> NetworkDef:
    """A NetworkDef from a rewritten dict (keys other than the format's are dropped)."""
    try:
        return NetworkDef.from_dict(
            {k: data[k] for k in ("format", "layers", "edges") if k in data}
        )
    except InvalidInput as exc:
        raise InvalidInput(f"the rewritten network is not valid: {exc.message}") from exc


def _slice(parent: NetworkDef, parent_dict: dict[str, Any], row: Mapping[str, Any]) -> NetworkDef:
    """The sliced network with an ``Input`` layer in front of every cut edge."""
    if not row["input"] or not row["output"]:
        port = "input" if not row["input"] else "output"
        raise InvalidInput(
            f"slice: no layer of {row['name']!r} ({row['id'][:12]}) matches the {port} selector"
        )
    sliced = slice_network(parent_dict, row["input"], row["output"])
    kept = {layer["name"] for layer in sliced["layers"]}
    # Each layer feeding the slice from outside becomes an Input of the same name (so every
    # edge, and the input order of multi-input layers, stays as in the parent).
    cut = list(
        dict.fromkeys(
            pred
            for layer in sliced["layers"]
            for pred in parent.predecessors(layer["name"])
            if pred not in kept
        )
    )
    shapes = _output_shapes(parent) if cut else {}
    inputs = [_input_layer(parent.layer(name), shapes.get(name)).to_dict() for name in cut]
    edges = [[src, dst] for src, dst in parent.edges if dst in kept and src in kept | set(cut)]
    return _network({"layers": [*inputs, *sliced["layers"]], "edges": edges})


def _input_layer(cut: Layer, shape: list[int] | None) -> Layer:
    """An ``Input`` standing for ``cut`` (with its output shape when known)."""
    if cut.type == "Input":
        return cut
    return Layer(cut.name, "Input", "", {"shape": shape} if shape else {})


def _output_shapes(net: NetworkDef) -> dict[str, list[int]]:
    """Per layer, its output shape without the batch dimension (empty if it cannot run)."""
    import torch

    from provdb.models.builder import build_module

    roots = net.roots()
    if not all(isinstance(r.attrs.get("shape"), list) for r in roots):
        return {}
    shapes: dict[str, list[int]] = {}
    try:
        with torch.random.fork_rng():
            module = build_module(net)
        handles = []
        for name in net.names:
            sub = module.get_submodule(name)

            def hook(_m: Any, _i: Any, out: Any, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    shapes.setdefault(name, list(out.shape[1:]))

            handles.append(sub.register_forward_hook(hook))
        module.eval()
        with torch.no_grad():
            module(*(torch.zeros(1, *r.attrs["shape"]) for r in roots))
        for handle in handles:
            handle.remove()
    except (InvalidInput, RuntimeError, AttributeError):
        return shapes
    return shapes


def _unchanged_layers(parent: NetworkDef, new: NetworkDef) -> set[str]:
    """Layers of ``new`` defined exactly as in ``parent`` (same name, type, mode and attrs)."""
    return {
        layer.name
        for layer in new.layers
        if layer.name in parent and parent.layer(layer.name).to_dict() == layer.to_dict()
    }


def parent_weights(repo: Repository, version_id: str) -> Tensors:
    try:
        return repo.weights(version_id)
    except NotFound:
        return {}


def _tensors_for(
    net: NetworkDef, unchanged: set[str], parent_tensors: Mapping[str, np.ndarray]
) -> tuple[NetworkDef, Tensors, list[str], list[str]]:
    """The new version's tensors: the parent's for unchanged layers, fresh ones otherwise.

    Returns the network (with inferred input sizes written into new layers), the tensors, and
    the names of the reused and of the initialised tensors. A reused tensor is the parent's
    array itself, so its bytes are identical and the archive dedups them.
    """
    names = net.names
    reused = {
        name: value for name, value in parent_tensors.items() if layer_of(name, names) in unchanged
    }
    fresh = [
        layer for layer in net.layers if layer.name not in unchanged and layer.type in PARAM_TYPES
    ]
    if not fresh:
        return net, dict(reused), sorted(reused), []
    module_state = _fresh_state(net, reused)
    tensors: Tensors = {}
    initialised: list[str] = []
    for name, value in module_state.items():
        kept = reused.get(name)
        if kept is not None and tuple(kept.shape) == tuple(value.shape):
            tensors[name] = kept
        else:
            tensors[name] = value
            initialised.append(name)
    net = _with_inferred_sizes(net, tensors, {layer.name for layer in fresh})
    return net, tensors, sorted(set(tensors) - set(initialised)), sorted(initialised)


def _fresh_state(net: NetworkDef, reused: Mapping[str, np.ndarray]) -> Tensors:
    """A freshly initialised state (seeded, without touching the global RNG)."""
    import torch

    from provdb.models.builder import build_module, module_tensors

    with torch.random.fork_rng():
        torch.manual_seed(0)
        try:
            module = build_module(net)
        except InvalidInput as exc:
            raise InvalidInput(f"cannot initialise the new layers: {exc.message}") from exc
    state = module_tensors(module)
    missing = sorted(n for n in reused if n not in state)
    for name in missing:  # tensors the builder does not know (e.g. extra buffers): keep them
        state[name] = reused[name]
    return state


def _with_inferred_sizes(
    net: NetworkDef, tensors: Mapping[str, np.ndarray], fresh: set[str]
) -> NetworkDef:
    """Write the input sizes the builder inferred into new Conv/FC/BatchNorm layers."""
    layers = []
    for layer in net.layers:
        weight = tensors.get(f"{layer.name}.weight")
        attrs = dict(layer.attrs)
        if layer.name in fresh and weight is not None:
            if layer.type == "Conv" and attrs.get("in_channels") is None:
                attrs["in_channels"] = int(weight.shape[1]) * int(attrs.get("groups", 1))
            elif layer.type == "FC" and attrs.get("in_features") is None:
                attrs["in_features"] = int(weight.shape[1])
            elif layer.type == "BatchNorm" and attrs.get("num_features") is None:
                attrs["num_features"] = int(weight.shape[0])
        layers.append(layer if attrs == layer.attrs else layer.replace(attrs=attrs))
    return NetworkDef(tuple(layers), net.edges)
