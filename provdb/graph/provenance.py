"""Provenance reads for segmentation (PgSeg) and reuse queries, shared by every backend.

Every statement is parameterised; labels, relationship types and property names come from the
schema (:mod:`provdb.graph.schema`) or from the fixed tuples below, never from user text. The
one dialect difference used here, how a node's label and a relationship's type are returned,
lives in :class:`~provdb.graph.dialect.Dialect`. How the results combine into a segment (the
balanced semantics) is :mod:`provdb.provenance`; see ``docs/provenance.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provdb.graph.schema import NODES, RELS

if TYPE_CHECKING:
    from provdb.graph.dialect import Dialect

#: The PROV-shaped relationships a segment is made of (everything else — layers, tensors,
#: hyper-parameters, metrics, model membership — is detail of a vertex, not provenance).
PROV_RELS = (
    "DERIVED_FROM",
    "USED",
    "WAS_GENERATED_BY",
    "WAS_ASSOCIATED_WITH",
    "SNAPSHOT_OF",
    "HAS_FILE",
)
#: The relationships a derivation path follows, from a destination back to a source: one
#: generation is ``DERIVED_FROM`` or ``WAS_GENERATED_BY`` then ``USED`` (PROV's ``G A U``).
DERIVATION_RELS = ("DERIVED_FROM", "WAS_GENERATED_BY", "USED")
#: The vertex labels a segment can hold.
SEGMENT_LABELS = ("ModelVersion", "Snapshot", "Run", "Dataset", "File", "Agent")
#: Properties returned for every vertex (a label lacking one gets null): what a segment shows.
VERTEX_PROPS = (
    "id",
    "name",
    "created_at",
    "message",
    "author",
    "iteration",
    "status",
    "started_at",
    "ended_at",
    "command",
    "uri",
    "digest",
    "path",
    "size",
    "kind",
)

#: A vertex reference: (label, key), the key being ``id`` (``name`` for agents).
Ref = tuple[str, str]


@dataclass(frozen=True)
class RawEdge:
    """One stored relationship ``src -[kind]-> dst`` (``op`` for ``DERIVED_FROM``)."""

    src: Ref
    dst: Ref
    kind: str
    op: str = ""


@dataclass
class RawGraph:
    """Vertices (their properties) and edges fetched from the store."""

    vertices: dict[Ref, dict[str, Any]] = field(default_factory=dict)
    edges: dict[tuple[Ref, Ref, str], RawEdge] = field(default_factory=dict)

    def merge(self, rows: Iterable[Mapping[str, Any]]) -> list[RawEdge]:
        """Add rows of :func:`_edge_return` (both ends and the relationship); the new edges."""
        added = []
        for row in rows:
            a, b = _vertex(row, "a"), _vertex(row, "b")
            if a is None or b is None:
                continue
            self.vertices.setdefault(a[0], a[1])
            self.vertices.setdefault(b[0], b[1])
            edge = RawEdge(a[0], b[0], str(row["t"]), str(row.get("op") or ""))
            key = (edge.src, edge.dst, edge.kind)
            if key not in self.edges:
                self.edges[key] = edge
                added.append(edge)
        return added


def _edge_return(dialect: Dialect, kinds: str, a: str | None = None, b: str | None = None) -> str:
    """The RETURN clause of an edge query over ``(a)-[r:kinds]->(b)``, ``a``/``b`` the label
    an end is matched with, if any. Every query returns the same columns, so several can be
    joined with ``UNION ALL``. LadybugDB binds a property only where one of the labels an end
    can have declares it, so a property no possible label has is a typed null (and ``r.op``
    is read only when ``DERIVED_FROM``, the one relationship with an ``op``, is among them)."""
    pairs = [pair for rel in kinds.split("|") for pair in RELS[rel][0]]
    pairs = [(x, y) for x, y in pairs if x == (a or x) and y == (b or y)]
    cols = [
        (f"{side}.`{p}`" if any(p in NODES[lab][1] for lab in labels) else _null(dialect, p))
        + f" AS `{side}.{p}`"
        for side, labels in (("a", {x for x, _ in pairs}), ("b", {y for _, y in pairs}))
        for p in VERTEX_PROPS
    ]
    op = "r.op" if "DERIVED_FROM" in kinds.split("|") else "''"
    return (
        f" RETURN {dialect.node_label('a')} AS al, {dialect.node_label('b')} AS bl, "
        f"{dialect.rel_type('r')} AS t, {op} AS op, {', '.join(cols)}"
    )


def _null(dialect: Dialect, prop: str) -> str:
    types = {props[prop] for _, props in NODES.values() if prop in props}
    typ = types.pop() if len(types) == 1 else "STRING"
    return "NULL" if dialect.name == "neo4j" else f"CAST(NULL AS {typ})"


def _vertex(row: Mapping[str, Any], side: str) -> tuple[Ref, dict[str, Any]] | None:
    label = str(row[f"{side[0]}l"])
    if label not in SEGMENT_LABELS:
        return None
    props = {p: row[f"{side}.{p}"] for p in VERTEX_PROPS if row.get(f"{side}.{p}") is not None}
    key = props.get(NODES[label][0])
    if key is None:
        return None
    return (label, str(key)), props


def _connects(rel: str, a: str | None, b: str | None) -> bool:
    """Whether ``rel`` can leave ``a`` / enter ``b`` (LadybugDB refuses a pattern that cannot)."""
    return any(x == (a or x) and y == (b or y) for x, y in RELS[rel][0])


def _rels(kinds: Iterable[str]) -> str:
    return "|".join(k for k in PROV_RELS if k in set(kinds))


class ProvenanceReads:
    """Segment and reuse reads; a backend supplies :meth:`run_read` and ``dialect``."""

    dialect: Dialect

    def run_read(
        self, cypher: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def ancestry(self, destinations: Sequence[str], rels: Iterable[str]) -> RawGraph:
        """Every vertex the destination versions derive from over ``rels`` (a subset of
        :data:`DERIVATION_RELS`, up to the dialect's depth) and the edges leaving them and the
        destinations. On Neo4j one statement; on LadybugDB two (see
        :attr:`~provdb.graph.dialect.Dialect.traversal_edges`): the traversal returns labels and
        keys only, then the edges are read from label-anchored vertices. Its recursive pattern
        also needs the ``WHERE id IN $ids`` anchor: from an ``UNWIND``-ed one LadybugDB searches
        from every node (seconds instead of milliseconds)."""
        kinds = _rels(rels)
        if not kinds or not destinations:
            return RawGraph()
        reach = self.dialect.reach(kinds, self.dialect.depth(None))
        if self.dialect.traversal_edges:  # one statement: the destinations' edges, then the rest
            own, params = self._parts([("ModelVersion", list(destinations), True, kinds)])
            traversal = (
                f"MATCH (d:ModelVersion) WHERE d.id IN $ids MATCH (d){reach}(a) "
                f"WITH DISTINCT a MATCH (a)-[r:{kinds}]->(b)" + _edge_return(self.dialect, kinds)
            )
            graph = RawGraph()
            graph.merge(
                self.run_read(f"{own} UNION ALL {traversal}", {**params, "ids": list(destinations)})
            )
            return graph
        rows = self.run_read(
            f"MATCH (d:ModelVersion) WHERE d.id IN $ids MATCH (d){reach}(a) "
            f"RETURN DISTINCT {self.dialect.node_label('a')} AS label, a.id AS id",
            {"ids": list(destinations)},
        )
        reached = [("ModelVersion", d) for d in destinations]
        reached += [(str(r["label"]), str(r["id"])) for r in rows if r["id"] is not None]
        return self.incident(dict.fromkeys(reached), kinds.split("|"), ())

    def vertices(self, refs: Iterable[Ref]) -> dict[Ref, dict[str, Any]]:
        """The properties of these vertices (one statement per label present)."""
        by_label: dict[str, list[str]] = {}
        for label, key in refs:
            by_label.setdefault(label, []).append(key)
        found: dict[Ref, dict[str, Any]] = {}
        for label, keys in by_label.items():
            key_prop = NODES[label][0]
            cols = ", ".join(f"a.`{p}` AS `a.{p}`" for p in VERTEX_PROPS if p in NODES[label][1])
            rows = self.run_read(
                f"MATCH (a:{label}) WHERE a.`{key_prop}` IN $keys RETURN {cols}",
                {"keys": keys},
            )
            for row in rows:
                props = {p: row[f"a.{p}"] for p in VERTEX_PROPS if row.get(f"a.{p}") is not None}
                found[(label, str(props[key_prop]))] = props
        return found

    def incident(
        self,
        refs: Iterable[Ref],
        out: Iterable[str] = PROV_RELS,
        into: Iterable[str] = PROV_RELS,
    ) -> RawGraph:
        """The ``out`` relationships leaving and the ``into`` relationships entering these
        vertices, with both ends — one statement."""
        return self.incident_many([(refs, out, into)])

    def incident_many(
        self, specs: Sequence[tuple[Iterable[Ref], Iterable[str], Iterable[str]]]
    ) -> RawGraph:
        """:meth:`incident` for several (refs, out, into) at once — one ``UNION ALL``
        statement (a round trip costs more than the small queries themselves)."""
        parts: list[tuple[str, list[str], bool, str]] = []
        for refs, out, into in specs:
            by_label: dict[str, list[str]] = {}
            for label, key in refs:
                by_label.setdefault(label, []).append(key)
            for label, keys in sorted(by_label.items()):
                for outgoing, kinds in ((True, _rels(out)), (False, _rels(into))):
                    ends = (label, None) if outgoing else (None, label)
                    kinds = "|".join(k for k in kinds.split("|") if k and _connects(k, *ends))
                    if kinds:
                        parts.append((label, keys, outgoing, kinds))
        graph = RawGraph()
        if parts:
            cypher, params = self._parts(parts)
            graph.merge(self.run_read(cypher, params))
        return graph

    def _parts(
        self, parts: Sequence[tuple[str, list[str], bool, str]]
    ) -> tuple[str, dict[str, Any]]:
        """One statement returning the edges of every (label, keys, outgoing, kinds) part."""
        queries, params = [], {}
        for i, (label, keys, outgoing, kinds) in enumerate(parts):
            anchor = f"MATCH (x:{label}) WHERE x.`{NODES[label][0]}` IN $k{i}"
            if outgoing:
                match = f"MATCH (x)-[r:{kinds}]->(b) WITH x AS a, r, b"
                ret = _edge_return(self.dialect, kinds, label, None)
            else:
                match = f"MATCH (x)<-[r:{kinds}]-(a) WITH a, r, x AS b"
                ret = _edge_return(self.dialect, kinds, None, label)
            queries.append(f"{anchor} {match}{ret}")
            params[f"k{i}"] = keys
        return " UNION ALL ".join(queries), params

    def param_names(self, refs: Iterable[Ref]) -> dict[Ref, tuple[str, ...]]:
        """The hyper-parameter names of these versions and runs (not their values) — one
        statement."""
        keys = {label: [k for lab, k in refs if lab == label] for label in ("ModelVersion", "Run")}
        parts = [
            f"MATCH (o:{label}) WHERE o.id IN ${label} MATCH (o)-[:HAS_PARAM]->(h:Hyperparameter) "
            f"RETURN '{label}' AS label, o.id AS id, h.name AS name"
            for label, found in keys.items()
            if found
        ]
        if not parts:
            return {}
        names: dict[Ref, set[str]] = {}
        for row in self.run_read(" UNION ALL ".join(parts), {k: v for k, v in keys.items() if v}):
            names.setdefault((str(row["label"]), str(row["id"])), set()).add(str(row["name"]))
        return {ref: tuple(sorted(found)) for ref, found in names.items()}

    def shared_tensors(self, snapshot_id: str) -> list[dict[str, Any]]:
        """Tensors of other versions' latest committed snapshots that are bit-identical (same
        content digest) to a tensor of snapshot ``snapshot_id`` — one statement."""
        return self.run_read(
            "MATCH (:Snapshot {id: $sid})-[:HAS_TENSOR]->(t:Tensor) "
            "MATCH (u:Tensor {digest: t.digest})<-[:HAS_TENSOR]-(s:Snapshot)"
            "-[:SNAPSHOT_OF]->(w:ModelVersion) "
            "WHERE s.id <> $sid AND s.committed AND s.is_latest "
            "RETURN w.id AS version, w.name AS name, w.created_at AS created_at, "
            "s.id AS snapshot, t.name AS tensor, u.name AS as_name, t.layer AS layer, "
            "t.shape AS shape, t.dtype AS dtype, t.digest AS digest "
            "ORDER BY created_at, version, tensor",
            {"sid": snapshot_id},
        )
