"""Provenance operators: segmentation (PgSeg), summarization (PgSum) and reuse queries.

The semantics are in ``docs/provenance.md``. In short:

* **PgSeg(sources, destinations, boundary)** returns the *path* vertices — versions and runs
  that lie on a derivation path from a destination back to a source, one generation being
  ``DERIVED_FROM`` or ``WAS_GENERATED_BY · Run · USED`` — plus their *same-generation context*:
  the inputs, agents and co-generated outputs of every derivation step inside the segment and
  the snapshots and files of its versions. An off-path vertex is admitted only one balanced step
  away from a path step (the inputs of a step, not the inputs' own ancestry; the outputs of a
  step, not other descendants of the sources). Boundary criteria exclude vertex kinds, vertices
  by property and edge kinds, and add ``hops`` rings of undirected context.
* **PgSum(segments, aggregation, k)** merges segment vertices with equal aggregated labels and
  equal k-step provenance types, then refines the partition greedily until it is stable with
  respect to successor classes, so every path of the summary is a path of some segment.

The database does the traversals (:mod:`provdb.graph.provenance`); this module combines them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provdb.errors import InvalidInput
from provdb.graph.provenance import (
    DERIVATION_RELS,
    PROV_RELS,
    SEGMENT_LABELS,
    RawGraph,
    Ref,
)
from provdb.results import Result

if TYPE_CHECKING:
    from provdb.graph import GraphStore

#: User-facing vertex kinds → labels.
KINDS = {
    "version": "ModelVersion",
    "snapshot": "Snapshot",
    "run": "Run",
    "dataset": "Dataset",
    "file": "File",
    "agent": "Agent",
}
LABEL_KIND = {label: kind for kind, label in KINDS.items()}
#: User-facing edge kinds → relationship types.
EDGE_KINDS = {rel.lower(): rel for rel in PROV_RELS}
#: Properties a vertex exclusion (``KEY=VALUE``) may test.
EXCLUDABLE_PROPS = ("id", "name", "uri", "path", "command", "status", "digest", "author")
#: Properties a summary may aggregate vertices by.
AGGREGATABLE = ("kind", "role", "op", "params", "name", "status", "uri", "path", "command")
DEFAULT_AGGREGATION = ("kind", "role", "op", "params")
#: Most hops of context a segment may add.
MAX_HOPS = 5


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boundary(Result):
    """Boundary criteria of a segment: excluded vertex kinds, vertices (``KEY=VALUE``) and
    edge kinds, and how many hops of context to add."""

    kinds: tuple[str, ...] = ()
    props: tuple[tuple[str, str], ...] = ()
    edges: tuple[str, ...] = ()
    hops: int = 0

    @classmethod
    def parse(cls, excludes: Iterable[str] = (), hops: int = 0) -> Boundary:
        """``--exclude`` values: a vertex kind (``agent``), an edge kind (``used``) or
        ``KEY=VALUE`` (``uri=builtin:digits``)."""
        kinds: list[str] = []
        props: list[tuple[str, str]] = []
        edges: list[str] = []
        for raw in excludes:
            text = str(raw).strip()
            if "=" in text:
                key, value = text.split("=", 1)
                if key.strip().lower() not in EXCLUDABLE_PROPS:
                    allowed = ", ".join(EXCLUDABLE_PROPS)
                    raise InvalidInput(f"cannot exclude by {key.strip()[:40]!r}; one of {allowed}")
                props.append((key.strip().lower(), value))
            elif text.lower().rstrip("s") in KINDS:
                kinds.append(text.lower().rstrip("s"))
            elif text.lower() in EDGE_KINDS:
                edges.append(text.lower())
            else:
                raise InvalidInput(
                    f"cannot exclude {text[:40]!r}: not a vertex kind "
                    f"({', '.join(KINDS)}), an edge kind ({', '.join(EDGE_KINDS)}) or KEY=VALUE"
                )
        if not 0 <= int(hops) <= MAX_HOPS:
            raise InvalidInput(f"hops must be between 0 and {MAX_HOPS}, not {hops}")
        return cls(tuple(dict.fromkeys(kinds)), tuple(props), tuple(dict.fromkeys(edges)), hops)

    def keeps(self, ref: Ref, props: dict[str, Any]) -> bool:
        """Whether a vertex survives the exclusions."""
        if LABEL_KIND.get(ref[0]) in self.kinds:
            return False
        return not any(str(props.get(k, "")) == v for k, v in self.props)

    def rels(self, kinds: Iterable[str]) -> list[str]:
        """``kinds`` minus the excluded edge kinds (and the edges of excluded vertex kinds)."""
        dropped = {EDGE_KINDS[e] for e in self.edges}
        if "run" in self.kinds:
            dropped |= {"USED", "WAS_GENERATED_BY", "WAS_ASSOCIATED_WITH"}
        return [k for k in kinds if k not in dropped]


@dataclass(frozen=True)
class SegmentVertex(Result):
    """One vertex of a segment. ``role``: ``source``, ``destination``, ``path`` (on a
    derivation path between them), ``context`` (same-generation context) or ``hop``
    (k-hop expansion); ``op``: for a version, how it derives from its in-segment parent."""

    ref: str
    kind: str
    id: str
    name: str
    role: str
    op: str = ""
    params: tuple[str, ...] = ()
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentEdge(Result):
    """A stored relationship ``src -[kind]-> dst`` between two segment vertices (refs)."""

    src: str
    dst: str
    kind: str
    op: str = ""


@dataclass(frozen=True)
class Segment(Result):
    """The result of PgSeg: how the destinations derive from the sources."""

    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    boundary: Boundary
    vertices: tuple[SegmentVertex, ...]
    edges: tuple[SegmentEdge, ...]

    def vertex(self, ref: str) -> SegmentVertex:
        """The vertex with this ref."""
        for v in self.vertices:
            if v.ref == ref:
                return v
        raise KeyError(ref)

    def refs(self, role: str | None = None) -> set[str]:
        """Refs of the vertices (with ``role`` only, when given)."""
        return {v.ref for v in self.vertices if role is None or v.role == role}

    @property
    def empty(self) -> bool:
        """Whether no destination derives from any source."""
        return not any(v.role == "path" or v.role == "destination" for v in self.vertices)


def ref_str(ref: Ref) -> str:
    """``kind:key`` — a vertex's stable name in results."""
    return f"{LABEL_KIND[ref[0]]}:{ref[1]}"


# -- PgSeg ----------------------------------------------------------------------------------


def segment(
    graph: GraphStore,
    sources: Sequence[str],
    destinations: Sequence[str],
    boundary: Boundary = Boundary(),
) -> Segment:
    """PgSeg over version ids (already resolved): see the module docstring."""
    if not sources or not destinations:
        raise InvalidInput("a segment needs at least one source and one destination")
    src = [("ModelVersion", s) for s in dict.fromkeys(sources)]
    dst = [("ModelVersion", d) for d in dict.fromkeys(destinations)]
    with graph.session():
        ancestry = graph.ancestry([d for _, d in dst], boundary.rels(DERIVATION_RELS))
        missing = [r for r in dict.fromkeys(src + dst) if r not in ancestry.vertices]
        ancestry.vertices.update(graph.vertices(missing) if missing else {})
        core = _paths(ancestry, src, dst, boundary)
        roles: dict[Ref, str] = {r: "path" for r in core}
        roles.update({r: "source" for r in src if r in core})
        roles.update({r: "destination" for r in dst if r in core})
        found = RawGraph(
            {r: ancestry.vertices[r] for r in core},
            {k: e for k, e in ancestry.edges.items() if e.src in core and e.dst in core},
        )
        if core:
            _add_context(graph, found, roles, set(src), boundary)
            frontier = set(roles)
            for _ in range(boundary.hops):
                ring = graph.incident(frontier, boundary.rels(PROV_RELS), boundary.rels(PROV_RELS))
                new = {
                    r for r, p in ring.vertices.items() if r not in roles and boundary.keeps(r, p)
                }
                _take(found, ring, set(roles) | new)
                roles.update({r: "hop" for r in new})
                frontier = new
            if boundary.hops and frontier:  # edges among the last ring
                _take(found, graph.incident(frontier, boundary.rels(PROV_RELS), ()), set(roles))
        params = graph.param_names(roles)
    return _result(found, roles, params, sources, destinations, boundary)


def _paths(graph: RawGraph, src: list[Ref], dst: list[Ref], boundary: Boundary) -> set[Ref]:
    """Vertices on a derivation path from a destination to a source avoiding excluded ones:
    ancestors of the destinations ∩ descendants of the sources, in the fetched ancestry."""
    kept = {r for r, p in graph.vertices.items() if boundary.keeps(r, p)}
    up: dict[Ref, list[Ref]] = {}
    down: dict[Ref, list[Ref]] = {}
    for e in graph.edges.values():
        if e.src in kept and e.dst in kept:
            up.setdefault(e.src, []).append(e.dst)
            down.setdefault(e.dst, []).append(e.src)
    above = _reach([d for d in dst if d in kept], up)
    below = _reach([s for s in src if s in kept], down)
    return above & below


def _reach(start: Iterable[Ref], nbrs: dict[Ref, list[Ref]]) -> set[Ref]:
    seen, todo = set(start), list(start)
    while todo:
        for w in nbrs.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _add_context(
    graph: GraphStore, found: RawGraph, roles: dict[Ref, str], sources: set[Ref], b: Boundary
) -> None:
    """Same-generation context: one balanced step off the path, never further."""
    runs = [r for r in roles if r[0] == "Run"]
    versions = [r for r in roles if r[0] == "ModelVersion"]
    derived = [v for v in versions if v not in sources]
    ring = graph.incident_many(
        [
            # inputs, agents and outputs of every derivation step (run) inside the segment
            (
                runs,
                b.rels(("USED", "HAS_FILE", "WAS_ASSOCIATED_WITH")),
                b.rels(("WAS_GENERATED_BY",)),
            ),
            # the snapshots and files of every version
            (versions, b.rels(("HAS_FILE",)), b.rels(("SNAPSHOT_OF",))),
            # the other parents of every version derived inside the segment (not the sources')
            (derived, b.rels(("DERIVED_FROM",)), ()),
        ]
    )
    new = {r for r, p in ring.vertices.items() if r not in roles and b.keeps(r, p)}
    _take(found, ring, set(roles) | new)
    roles.update({r: "context" for r in new})


def _take(found: RawGraph, ring: RawGraph, allowed: set[Ref]) -> None:
    for r in allowed:
        if r in ring.vertices and r not in found.vertices:
            found.vertices[r] = ring.vertices[r]
    for key, e in ring.edges.items():
        if e.src in allowed and e.dst in allowed:
            found.edges.setdefault(key, e)


def _result(
    found: RawGraph,
    roles: dict[Ref, str],
    params: dict[Ref, tuple[str, ...]],
    sources: Sequence[str],
    destinations: Sequence[str],
    boundary: Boundary,
) -> Segment:
    edges = sorted(found.edges.values(), key=lambda e: (e.kind, e.src, e.dst))
    ops: dict[Ref, str] = {}
    for e in edges:
        if e.kind == "DERIVED_FROM" and e.op:
            ops.setdefault(e.src, e.op)
    order = {"source": 0, "path": 1, "destination": 2, "context": 3, "hop": 4}
    vertices = [
        SegmentVertex(
            ref=ref_str(r),
            kind=LABEL_KIND[r[0]],
            id=r[1],
            name=str(found.vertices.get(r, {}).get("name") or ""),
            role=role,
            op=ops.get(r, ""),
            params=params.get(r, ()),
            props=dict(found.vertices.get(r, {})),
        )
        for r, role in roles.items()
        if r[0] in SEGMENT_LABELS
    ]
    vertices.sort(key=lambda v: (order[v.role], str(v.props.get("created_at", "")), v.ref))
    return Segment(
        tuple(dict.fromkeys(sources)),
        tuple(dict.fromkeys(destinations)),
        boundary,
        tuple(vertices),
        tuple(SegmentEdge(ref_str(e.src), ref_str(e.dst), e.kind, e.op) for e in edges),
    )


# -- PgSum ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryNode(Result):
    """A class of equivalent segment vertices: its aggregated label, how many segment vertices
    it merges (``frequency``), in how many segments it occurs, and the merged refs."""

    id: int
    kind: str
    label: dict[str, Any]
    frequency: int
    segments: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class SummaryEdge(Result):
    """Segment edges between two classes, of one kind, and how many there are."""

    src: int
    dst: int
    kind: str
    frequency: int


@dataclass(frozen=True)
class Summary(Result):
    """The result of PgSum over ``segments`` segments."""

    segments: int
    aggregation: tuple[str, ...]
    k: int
    algorithm: str
    nodes: tuple[SummaryNode, ...]
    edges: tuple[SummaryEdge, ...]

    def node(self, node_id: int) -> SummaryNode:
        """The node with this id."""
        return next(n for n in self.nodes if n.id == node_id)

    def sinks(self) -> list[SummaryNode]:
        """Nodes no summary edge enters — where a rendering of derivations starts (the
        destinations: edges point from a derived vertex to what it came from)."""
        entered = {e.dst for e in self.edges}
        return [n for n in self.nodes if n.id not in entered]


ALGORITHM = (
    "greedy: classes of equal aggregated label and equal k-step provenance type (Moreau), "
    "refined until every member of a class has an edge to every successor class of the class "
    "(so every summary path is a real segment path); sound, not minimal"
)


def summarize(
    segments: Sequence[Segment], aggregation: Sequence[str] = DEFAULT_AGGREGATION, k: int = 1
) -> Summary:
    """PgSum: merge equivalent vertices of ``segments`` (see the module docstring)."""
    if not segments:
        raise InvalidInput("nothing to summarize: no segments")
    agg = tuple(dict.fromkeys(a.strip().lower() for a in aggregation if a.strip()))
    bad = [a for a in agg if a not in AGGREGATABLE]
    if bad:
        raise InvalidInput(f"cannot aggregate by {bad[0][:40]!r}; one of {', '.join(AGGREGATABLE)}")
    if not 0 <= int(k) <= 10:
        raise InvalidInput(f"k must be between 0 and 10, not {k}")
    # one occurrence per (segment, vertex): a vertex shared by two segments counts twice
    label: dict[tuple[int, str], tuple[Any, ...]] = {}
    out: dict[tuple[int, str], list[tuple[str, tuple[int, str]]]] = {}
    for i, seg in enumerate(segments):
        for v in seg.vertices:
            label[(i, v.ref)] = _aggregate(v, agg)
        for e in seg.edges:
            if (i, e.src) in label and (i, e.dst) in label:
                out.setdefault((i, e.src), []).append((e.kind, (i, e.dst)))
    cls = _provenance_types(label, out, int(k))
    cls = _stabilize(cls, out)
    return _summary(segments, label, cls, out, agg, int(k))


def _aggregate(v: SegmentVertex, agg: tuple[str, ...]) -> tuple[Any, ...]:
    values: list[Any] = [v.kind]
    for a in agg:
        if a == "kind":
            continue
        if a == "op":
            values.append(v.op)
        elif a == "role":
            values.append(v.role)
        elif a == "params":
            values.append(v.params)
        else:
            values.append(str(v.props.get(a, "")))
    return tuple(values)


Occ = tuple[int, str]


def _provenance_types(
    label: dict[Occ, tuple[Any, ...]], out: dict[Occ, list[tuple[str, Occ]]], k: int
) -> dict[Occ, int]:
    """Class ids: equal label and equal set of (edge kind, successor type) up to depth k."""
    types: dict[Occ, Any] = dict(label)
    for _ in range(k):
        types = {
            o: (label[o], frozenset((kind, types[d]) for kind, d in out.get(o, ()))) for o in label
        }
    return _number(types)


def _stabilize(cls: dict[Occ, int], out: dict[Occ, list[tuple[str, Occ]]]) -> dict[Occ, int]:
    """The coarsest refinement of ``cls`` in which all members of a class have the same set of
    (edge kind, successor class): then a path through classes lifts to a real path from any
    member. Segments are acyclic (edges point to what a vertex came from), so one pass from
    the vertices without successors decides every class; a cyclic input is refined by
    iterating to the fixpoint instead."""
    sig: dict[Occ, int] = {}
    ids: dict[tuple[int, frozenset[tuple[str, int]]], int] = {}
    visiting: set[Occ] = set()

    def visit(o: Occ) -> int:
        if o not in sig:
            if o in visiting:
                raise _Cycle
            visiting.add(o)
            key = (cls[o], frozenset((kind, visit(d)) for kind, d in out.get(o, ())))
            sig[o] = ids.setdefault(key, len(ids))
            visiting.discard(o)
        return sig[o]

    try:
        for o in cls:
            visit(o)
        return _number(sig)
    except (_Cycle, RecursionError):
        pass
    while True:
        step = {o: (c, frozenset((kd, cls[d]) for kd, d in out.get(o, ()))) for o, c in cls.items()}
        refined = _number(step)
        if len(set(refined.values())) == len(set(cls.values())):
            return refined
        cls = refined


class _Cycle(Exception):
    """A segment with a cycle (not produced by dlv, possible in a hand-written graph)."""


def _number(keys: dict[Occ, Any]) -> dict[Occ, int]:
    ids: dict[Any, int] = {}
    return {o: ids.setdefault(key, len(ids)) for o, key in sorted(keys.items(), key=_occ_order)}


def _occ_order(item: tuple[Occ, Any]) -> tuple[int, str]:
    return item[0]


def _summary(
    segments: Sequence[Segment],
    label: dict[Occ, tuple[Any, ...]],
    cls: dict[Occ, int],
    out: dict[Occ, list[tuple[str, Occ]]],
    agg: tuple[str, ...],
    k: int,
) -> Summary:
    members: dict[int, list[Occ]] = {}
    for o, c in cls.items():
        members.setdefault(c, []).append(o)
    names = ["kind", *[a for a in agg if a != "kind"]]
    nodes = []
    for c, occs in sorted(members.items()):
        values = label[occs[0]]
        shown = {n: (list(v) if isinstance(v, tuple) else v) for n, v in zip(names, values)}
        nodes.append(
            SummaryNode(
                id=c,
                kind=str(values[0]),
                label=shown,
                frequency=len(occs),
                segments=len({i for i, _ in occs}),
                members=tuple(sorted({r for _, r in occs})),
            )
        )
    counts: Counter[tuple[int, int, str]] = Counter()
    for o, outs in out.items():
        for kind, d in outs:
            counts[(cls[o], cls[d], kind)] += 1
    edges = tuple(SummaryEdge(a, b, kind, n) for (a, b, kind), n in sorted(counts.items()))
    return Summary(len(segments), tuple(names), k, ALGORITHM, tuple(nodes), edges)


# -- reuse ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedTensor(Result):
    """A tensor of the queried version found bit-identical in another version."""

    tensor: str
    as_name: str
    layer: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int
    digest: str


@dataclass(frozen=True)
class Reuser(Result):
    """A version whose latest weights reuse some of the queried version's tensors."""

    id: str
    name: str
    created_at: str
    snapshot: str
    shared_bytes: int
    tensors: tuple[SharedTensor, ...]


@dataclass(frozen=True)
class Reuse(Result):
    """Every later version reusing tensors of ``version``'s latest snapshot (bit-identical:
    the same content digest), with the bytes each shares."""

    version: str
    name: str
    snapshot: str
    total_bytes: int
    reusers: tuple[Reuser, ...]


def tensor_bytes(shape: Sequence[int], dtype: str) -> int:
    """Raw bytes of a tensor of this shape and dtype."""
    from storage.codecs import dtype_from_name

    return int(math.prod(int(s) for s in shape)) * int(dtype_from_name(dtype).itemsize)


def reuse(
    rows: list[dict[str, Any]], version: str, name: str, created_at: str, snapshot: str,
    total_bytes: int,
) -> Reuse:  # fmt: skip
    """Group :meth:`~provdb.graph.provenance.ProvenanceReads.shared_tensors` rows by version;
    only versions created after ``version`` count as reusing it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["version"] != version and str(row["created_at"] or "") > created_at:
            found.setdefault(row["version"], []).append(row)
    reusers = []
    for vid, group in found.items():
        tensors: dict[str, SharedTensor] = {}
        for r in group:  # one entry per queried tensor (a digest may repeat inside a version)
            shape = tuple(int(s) for s in r["shape"] or ())
            tensors.setdefault(
                r["tensor"],
                SharedTensor(
                    r["tensor"],
                    r["as_name"],
                    r["layer"] or "",
                    shape,
                    r["dtype"],
                    tensor_bytes(shape, r["dtype"]),
                    r["digest"],
                ),  # fmt: skip
            )
        shared = tuple(sorted(tensors.values(), key=lambda t: t.tensor))
        first = group[0]
        reusers.append(
            Reuser(
                vid,
                first["name"],
                first["created_at"] or "",
                first["snapshot"],
                sum(t.bytes for t in shared),
                shared,
            )  # fmt: skip
        )
    reusers.sort(key=lambda r: (r.created_at, r.id))
    return Reuse(version, name, snapshot, total_bytes, tuple(reusers))
