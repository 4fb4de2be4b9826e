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
    an end is matched with, if any. LadybugDB binds a property only where one of the labels an
    end can have declares it, so each end returns the properties of its possible labels (and
    ``r.op`` only when ``DERIVED_FROM``, the one relationship with an ``op``, is among them)."""
    pairs = [pair for rel in kinds.split("|") for pair in RELS[rel][0]]
    pairs = [(x, y) for x, y in pairs if x == (a or x) and y == (b or y)]
    cols = [
        f"{side}.`{p}` AS `{side}.{p}`"
        for side, labels in (("a", {x for x, _ in pairs}), ("b", {y for _, y in pairs}))
        for p in VERTEX_PROPS
        if any(p in NODES[label][1] for label in labels)
    ]
    op = "r.op" if "DERIVED_FROM" in kinds.split("|") else "''"
    return (
        f" RETURN {dialect.node_label('a')} AS al, {dialect.node_label('b')} AS bl, "
        f"{dialect.rel_type('r')} AS t, {op} AS op, {', '.join(cols)}"
    )


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
        destinations — one statement for the traversal, one for the destinations' own edges."""
        kinds = _rels(rels)
        if not kinds or not destinations:
            return RawGraph()
        graph = self.incident([("ModelVersion", d) for d in destinations], kinds.split("|"), ())
        reach = self.dialect.reach(kinds, self.dialect.depth(None))
        rows = self.run_read(
            f"MATCH (d:ModelVersion) WHERE d.id IN $ids MATCH (d){reach}(a) "
            f"WITH DISTINCT a MATCH (a)-[r:{kinds}]->(b)" + _edge_return(self.dialect, kinds),
            {"ids": list(destinations)},
        )
        graph.merge(rows)
        return graph

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
        vertices, with both ends (two statements per label present)."""
        graph = RawGraph()
        by_label: dict[str, list[str]] = {}
        for label, key in refs:
            by_label.setdefault(label, []).append(key)
        for label, keys in sorted(by_label.items()):
            key_prop = NODES[label][0]
            anchor = f"MATCH (x:{label}) WHERE x.`{key_prop}` IN $keys"
            for kinds, pattern, ends in (
                (_rels(out), "(x)-[r:{}]->(b) WITH x AS a, r, b", (label, None)),
                (_rels(into), "(x)<-[r:{}]-(a) WITH a, r, x AS b", (None, label)),
            ):
                kinds = "|".join(k for k in kinds.split("|") if k and _connects(k, *ends))
                if kinds:
                    ret = _edge_return(self.dialect, kinds, *ends)
                    rows = self.run_read(
                        f"{anchor} MATCH {pattern.format(kinds)}{ret}", {"keys": keys}
                    )
                    graph.merge(rows)
        return graph

    def param_names(self, refs: Iterable[Ref]) -> dict[Ref, tuple[str, ...]]:
        """The hyper-parameter names of these versions and runs (not their values)."""
        names: dict[Ref, tuple[str, ...]] = {}
        for label in ("ModelVersion", "Run"):
            keys = [k for lab, k in refs if lab == label]
            if not keys:
                continue
            rows = self.run_read(
                f"MATCH (o:{label}) WHERE o.id IN $keys "
                "MATCH (o)-[:HAS_PARAM]->(h:Hyperparameter) RETURN o.id AS id, h.name AS name",
                {"keys": keys},
            )
            found: dict[str, set[str]] = {}
            for row in rows:
                found.setdefault(str(row["id"]), set()).add(str(row["name"]))
            names.update({(label, k): tuple(sorted(v)) for k, v in found.items()})
        return names

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
