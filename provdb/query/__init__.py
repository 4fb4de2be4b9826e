"""Execute DQL (``docs/dql.md``) against a repository: the executor behind ``dlv query``.

:func:`execute` compiles a statement with :func:`dql.compile` for the repository's graph
dialect and runs it:

* ``select`` — one Cypher round trip; the rows are the matching versions.
* ``slice`` / ``construct`` — one Cypher round trip finds the versions and their bound layers;
  each network is rewritten in Python (:mod:`dql.rewrite`) and committed as a new version named
  ``<source name>-slice`` / ``<source name>-construct`` with ``DERIVED_FROM {op, query}`` to its
  source. Every layer whose definition (name, type, mode, attributes) is unchanged keeps the
  source's tensors as they are, so the archive stores no new bytes for them; new parametric
  layers are initialised by :func:`provdb.models.builder.build_module` (missing ``in_channels`` /
  ``in_features`` / ``num_features`` are inferred and written into the new definition). A slice
  gets an ``Input`` layer in front of each cut edge, named after the layer it replaces and
  carrying that layer's output shape.
* ``evaluate`` — runs the source query (a select's versions, or the versions a slice/construct
  creates; with ``dry_run`` the rewritten networks are used in memory), loads the JSON
  :class:`~provdb.models.learner.TrainConfig`, enumerates the grid, trains every candidate with the
  learner, prunes with the ``keep`` rules and trains the survivors on to the config's
  ``iterations``. Survivors are committed as ``<source name>-eval-<n>`` (``n``: the candidate's
  number) with their effective config as hyper-parameters and their metric curves.

``dry_run`` commits nothing and reports what would be created. Saved queries live in
``.dlv/queries.json`` (:func:`save_query`, :func:`saved_queries`) and can be referenced by
name: ``from "query3"``. DQL errors become :class:`provdb.errors.QuerySyntaxError` (code
``syntax_error``) whose message keeps the line, column and the caret snippet.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dql
from dql.errors import DQLError, ResolveError
from dql.plan import KeepThreshold, KeepTop
from dql.rewrite import apply_mutations, slice_network
from provdb.errors import InvalidInput, NotFound, from_dql
from provdb.models.network import PARAM_TYPES, Layer, NetworkDef, layer_of

if TYPE_CHECKING:
    import numpy as np

    from provdb.models.learner import TrainConfig, TrainResult
    from provdb.repository import Repository

#: File (inside ``.dlv/``) holding the saved queries, ``{name: text}``.
QUERIES_FILE = "queries.json"
#: Metric series stored with evaluate's survivors under DQL's short names as well.
METRIC_ALIASES = {"loss": "test_loss", "accuracy": "test_accuracy"}
Tensors = dict[str, "np.ndarray"]


# -- results -----------------------------------------------------------------------------------


@dataclass
class CreatedVersion:
    """A version a query created (or, in a dry run, would create)."""

    name: str
    op: str
    parent: str | None
    parent_name: str
    network: NetworkDef
    id: str | None = None
    raw_bytes: int = 0
    new_bytes: int = 0
    reused: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (with the network definition)."""
        return {
            "id": self.id,
            "name": self.name,
            "op": self.op,
            "parent": self.parent,
            "parent_name": self.parent_name,
            "layers": self.network.names,
            "reused_tensors": len(self.reused),
            "initialised_tensors": len(self.initialised),
            "raw_bytes": self.raw_bytes,
            "new_bytes": self.new_bytes,
            "params": self.params,
            "network": self.network.to_dict(),
        }


@dataclass
class QueryResult:
    """What :func:`execute` returns.

    Attributes:
        kind: ``select``, ``slice``, ``construct`` or ``evaluate``.
        columns: the columns of ``rows``, in display order.
        rows: select: the matching versions; slice/construct: one row per derived version;
            evaluate: one row per candidate (``status`` says whether it was kept).
        created: the versions committed (or that a dry run would commit), in order.
        cypher: the Cypher that ran (evaluate: its source's), ``params`` its parameters.
        dry_run: whether nothing was committed.
        compiled: the compiled query.
    """

    kind: str
    columns: list[str]
    rows: list[dict[str, Any]]
    created: list[CreatedVersion]
    cypher: str
    params: dict[str, Any]
    dry_run: bool
    compiled: dql.CompiledQuery

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``dlv query --json``)."""
        return {
            "kind": self.kind,
            "dry_run": self.dry_run,
            "columns": self.columns,
            "rows": self.rows,
            "created": [c.to_dict() for c in self.created],
            "cypher": self.cypher,
            "params": self.params,
        }


# -- saved queries -----------------------------------------------------------------------------


def _queries_path(repo: Repository) -> Path:
    return repo.dlv_dir / QUERIES_FILE


def saved_queries(repo: Repository) -> dict[str, str]:
    """The repository's saved queries, ``{name: DQL text}`` (empty if none)."""
    path = _queries_path(repo)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read saved queries {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidInput(f"{path} must map query names to DQL text")
    return data


def save_query(repo: Repository, name: str, text: str) -> None:
    """Save ``text`` under ``name`` (replacing one of that name) after checking it compiles."""
    if not isinstance(name, str) or not name.strip() or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"invalid query name {name!r}")
    compile_query(repo, text)
    queries = saved_queries(repo)
    queries[name] = text
    path = _queries_path(repo)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(queries, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def compile_query(repo: Repository, text: str) -> dql.CompiledQuery:
    """Compile ``text`` for the repository's dialect, resolving its saved queries."""
    queries = saved_queries(repo)
    try:
        return dql.compile(text, dialect=repo.graph.dialect.name, resolve=queries.get)
    except DQLError as exc:
        raise from_dql(exc) from exc


# -- execution ---------------------------------------------------------------------------------


def execute(repo: Repository, text: str, *, dry_run: bool = False) -> QueryResult:
    """Compile and run one DQL statement against ``repo``.

    Args:
        repo: an open repository.
        text: the DQL statement.
        dry_run: commit nothing; report what would be created.

    Raises:
        QuerySyntaxError: the text is not DQL, a saved query is unknown, or a rewrite does not fit
            a network (the message underlines the offending text).
        InvalidInput: e.g. an evaluate config that cannot be read.
    """
    compiled = compile_query(repo, text)
    try:
        if compiled.kind == "select":
            return _select(repo, compiled, dry_run)
        if compiled.kind in ("slice", "construct"):
            return _derive(repo, compiled, dry_run)
        return _evaluate(repo, compiled, dry_run)
    except DQLError as exc:
        raise from_dql(exc) from exc


def _run(repo: Repository, compiled: dql.CompiledQuery) -> list[dict[str, Any]]:
    rows = repo.graph.run_read(compiled.cypher, compiled.params)
    if "ORDER BY" in compiled.cypher:
        return rows
    return sorted(rows, key=lambda r: (str(r.get("created_at")), str(r.get("id"))))


def _select(repo: Repository, compiled: dql.CompiledQuery, dry_run: bool) -> QueryResult:
    rows = _run(repo, compiled)
    return QueryResult(
        "select",
        list(compiled.columns),
        rows,
        [],
        compiled.cypher,
        compiled.params,
        dry_run,
        compiled,
    )


# -- slice and construct -------------------------------------------------------------------


@dataclass
class DerivedNetwork:
    """A rewritten network with its tensors (None until asked for) and bookkeeping."""

    created: CreatedVersion
    tensors: Tensors | None
    added: list[str]
    removed: list[str]


DERIVE_COLUMNS = ["name", "id", "parent_name", "parent", "added", "removed", "new_bytes"]


def _derive(repo: Repository, compiled: dql.CompiledQuery, dry_run: bool) -> QueryResult:
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
    for row in _run(repo, compiled):
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
            new, unchanged, _parent_weights(repo, row["id"])
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


def _parent_weights(repo: Repository, version_id: str) -> Tensors:
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


# -- evaluate ------------------------------------------------------------------------------


@dataclass
class _Subject:
    """A model evaluate trains: a version (or, in a dry run, a rewritten network)."""

    name: str
    version_id: str | None
    network: NetworkDef
    tensors: Tensors


@dataclass
class _Candidate:
    """One grid point for one subject, and how its training went."""

    key: str
    number: int
    subject: _Subject
    overrides: dict[str, Any]
    config: TrainConfig
    tensors: Tensors | None = None
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    trained: int = 0
    status: str = "kept"


EVALUATE_COLUMNS = ["candidate", "source", "overrides", "score", "trained", "status", "id", "name"]


def _evaluate(repo: Repository, compiled: dql.CompiledQuery, dry_run: bool) -> QueryResult:
    source = compiled.source
    if isinstance(source, str):
        raise from_dql(_unresolved(compiled.dql, source))
    assert source is not None
    if source.kind == "evaluate":
        raise InvalidInput("evaluate cannot range over another evaluate (save its result first)")
    config_data, config_dir = load_config(compiled.config or "", repo)
    created: list[CreatedVersion] = []
    with repo.graph.session(write=not dry_run):
        subjects = _subjects(repo, source, dry_run, created)
    candidates = _candidates(subjects, compiled, config_data, config_dir)
    _train_and_prune(candidates, compiled.keep)
    rows = [_candidate_row(c, compiled.keep) for c in candidates]
    with repo.graph.session(write=not dry_run):
        for candidate, row in zip(candidates, rows):
            if candidate.status == "kept":
                version = _survivor(repo, candidate, compiled, commit=not dry_run)
                row["id"], row["name"] = version.id, version.name
                created.append(version)
    return QueryResult(
        "evaluate",
        list(EVALUATE_COLUMNS),
        rows,
        created,
        source.cypher,
        source.params,
        dry_run,
        compiled,
    )


def _unresolved(text: str, name: str) -> ResolveError:
    for quote in ('"', "'"):
        start = text.find(f"{quote}{name}{quote}")
        if start >= 0:
            return ResolveError(
                f"Unknown saved query {name!r}",
                query=text,
                start=start,
                end=start + len(name) + 2,
            )
    return ResolveError(f"Unknown saved query {name!r}")


def _subjects(
    repo: Repository, source: dql.CompiledQuery, dry_run: bool, created: list[CreatedVersion]
) -> list[_Subject]:
    if source.kind == "select":
        return [
            _Subject(
                row["name"], row["id"], repo.network(row["id"]), _parent_weights(repo, row["id"])
            )
            for row in _run(repo, source)
        ]
    derived = derive_versions(repo, source, commit=not dry_run, with_tensors=True)
    created.extend(d.created for d in derived)
    return [
        _Subject(d.created.name, d.created.id, d.created.network, d.tensors or {}) for d in derived
    ]


def load_config(path: str, repo: Repository) -> tuple[dict[str, Any], Path]:
    """Read an evaluate config (JSON): relative paths are tried from the current folder, then
    from the repository's root. Returns the dict and the folder it came from."""
    candidates = [Path(path)] if os.path.isabs(path) else [Path.cwd() / path, repo.root / path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise InvalidInput(
            f"evaluate config {path!r} not found (tried {', '.join(str(p) for p in candidates)})"
        )
    try:
        data = json.loads(found.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"evaluate config {found} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"evaluate config {found} must be a JSON object")
    return data, found.parent


def _train_config(data: Mapping[str, Any], config_dir: Path) -> TrainConfig:
    """A TrainConfig; a relative ``input_data`` that exists next to the config is used there."""
    from provdb.models.learner import TrainConfig

    data = dict(data)
    spec = data.get("input_data")
    if isinstance(spec, str) and not spec.startswith("builtin:") and not os.path.isabs(spec):
        beside = config_dir / spec
        if not Path(spec).exists() and beside.exists():
            data["input_data"] = str(beside)
    return TrainConfig.from_dict(data)


def _candidates(
    subjects: Sequence[_Subject],
    compiled: dql.CompiledQuery,
    config: Mapping[str, Any],
    config_dir: Path,
) -> list[_Candidate]:
    candidates = []
    for subject in subjects:
        grid = dql.expand_grid(compiled.vary, subject.network.names) or [{}]
        for overrides in grid:
            number = len(candidates) + 1
            merged = dql.apply_overrides(config, overrides)
            candidates.append(
                _Candidate(
                    f"c{number:06d}", number, subject, overrides, _train_config(merged, config_dir)
                )
            )
    return candidates


def _checkpoints(keep: Sequence[Any], iterations: int) -> list[int]:
    points = {rule.iters for rule in keep if rule.iters is not None}
    return sorted(points | {max([iterations, *points])})


def _train_and_prune(candidates: list[_Candidate], keep: Sequence[Any]) -> None:
    """Train the candidates still kept to each checkpoint, applying the rules due there."""
    if not candidates:
        return
    iterations = candidates[0].config.iterations
    points = _checkpoints(keep, iterations)
    for point in points:
        alive = [c for c in candidates if c.status == "kept"]
        for candidate in alive:
            _train_to(candidate, point)
        _prune([c for c in alive if c.status == "kept"], keep, point, point == points[-1])


def _train_to(candidate: _Candidate, iterations: int) -> None:
    from provdb.models.learner import train

    steps = iterations - candidate.trained
    if steps <= 0:
        return
    start = candidate.tensors if candidate.tensors is not None else candidate.subject.tensors
    config = candidate.config.replace(iterations=steps)
    try:
        result: TrainResult = train(candidate.subject.network, start, config)
    except InvalidInput as exc:
        if "diverged" not in exc.message:
            raise
        candidate.status = f"diverged@{candidate.trained + steps}"
        return
    offset = candidate.trained
    for name, series in result.metrics.items():
        candidate.metrics.setdefault(name, []).extend((s + offset, v) for s, v in series)
    candidate.tensors, candidate.final = result.tensors, result.final
    candidate.trained = iterations


def _prune(alive: list[_Candidate], keep: Sequence[Any], point: int, last: bool) -> None:
    for rule in keep:
        due = rule.iters == point or (rule.iters is None and last)
        if not due:
            continue
        if isinstance(rule, KeepTop):
            scores = {c.key: _score(c, rule.metric, rule.field) for c in alive}
            best = set(rule.survivors({k: _nan(v) for k, v in scores.items()}))
            for c in alive:
                if c.key not in best:
                    c.status = f"pruned@{point}"
        elif isinstance(rule, KeepThreshold):
            for c in alive:
                if not rule.passes(_score(c, rule.metric, rule.field)):
                    c.status = f"pruned@{point}"
        alive = [c for c in alive if c.status == "kept"]


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _score(candidate: _Candidate, metric: str, which: str = "last") -> float | None:
    """A candidate's metric: its series ``metric`` or ``test_<metric>`` (last/min/max), else the
    final evaluation's value."""
    series = candidate.metrics.get(metric) or candidate.metrics.get(f"test_{metric}")
    if series:
        values = [v for _, v in series]
        return {"min": min, "max": max}.get(which, lambda vs: vs[-1])(values)
    value = candidate.final.get(metric)
    return None if value is None else float(value)


def _survivor(
    repo: Repository, candidate: _Candidate, compiled: dql.CompiledQuery, commit: bool
) -> CreatedVersion:
    subject = candidate.subject
    params = {**candidate.config.to_dict(), "iterations": candidate.trained}
    params["dql.overrides"] = candidate.overrides
    created = CreatedVersion(
        name=f"{subject.name}-eval-{candidate.number}",
        op="evaluate",
        parent=subject.version_id,
        parent_name=subject.name,
        network=subject.network,
        params=params,
    )
    if not commit:
        return created
    metrics = {
        name: ([s for s, _ in series], [v for _, v in series])
        for name, series in candidate.metrics.items()
    }
    for alias, name in METRIC_ALIASES.items():
        if name in metrics and alias not in metrics:
            metrics[alias] = metrics[name]
    result = repo.commit(
        created.name,
        subject.network,
        candidate.tensors or {},
        parent=subject.version_id,
        op="evaluate",
        query=compiled.dql,
        message=f"evaluate candidate {candidate.number} of {subject.name} by DQL",
        params=params,
        metrics=metrics,
        iteration=candidate.trained,
    )
    created.id, created.raw_bytes = result.version.id, result.raw_bytes
    created.new_bytes = result.new_bytes
    return created


def _candidate_row(candidate: _Candidate, keep: Sequence[Any]) -> dict[str, Any]:
    metric = keep[0].metric if keep else "loss"
    which = keep[0].field if keep else "last"
    return {
        "candidate": candidate.number,
        "source": candidate.subject.name,
        "overrides": candidate.overrides,
        "score": _score(candidate, metric, which),
        "metric": metric,
        "trained": candidate.trained,
        "status": candidate.status,
        "id": None,
        "name": None,
    }


__all__ = [
    "CreatedVersion",
    "QueryResult",
    "compile_query",
    "execute",
    "load_config",
    "save_query",
    "saved_queries",
]
