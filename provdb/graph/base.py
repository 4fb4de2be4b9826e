"""The graph-store interface every backend implements (DESIGN.md §2–3).

A backend supplies four primitives — :meth:`GraphStore.setup`, :meth:`GraphStore.run_write`
(statements in one transaction), :meth:`GraphStore.run_read` and :meth:`GraphStore.close`.
Everything else (batched entity writes, lookups, version listing, lineage) is defined here once,
on top of them, in Cypher both dialects accept; dialect differences live in
:mod:`provdb.graph.dialect`. All Cypher is parameterised: labels and property names come from
:mod:`provdb.graph.schema`, never from user text.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any, TypeVar

from provdb.entities import Derivation, Entity, ModelVersion
from provdb.errors import Conflict, InvalidInput, NotFound
from provdb.graph.dialect import Dialect
from provdb.graph.provenance import ProvenanceReads
from provdb.graph.reads import GraphReads
from provdb.graph.schema import DERIVATION_OPS, NODES, RELS
from provdb.results import Lineage

E = TypeVar("E", bound=Entity)
#: A node reference: (label, key value).
NodeRef = tuple[str, str]


@dataclass(frozen=True)
class Statement:
    """One parameterised Cypher statement."""

    cypher: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: When set, the statement must return one row whose ``n`` equals this count, or the
    #: whole transaction fails (used to refuse relationships to missing endpoints).
    expect: int | None = None


def checked(stmt: Statement, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` if ``stmt``'s expectation holds; raises inside the transaction otherwise.

    Backends call this on every statement before committing, so a relationship to a missing
    node rolls the whole batch back.
    """
    if stmt.expect is not None and (not rows or rows[0].get("n") != stmt.expect):
        raise Conflict("a relationship refers to a node that does not exist")
    return rows


class WriteBatch:
    """Nodes and relationships written together in one transaction.

    Nodes are grouped by label and relationships by (type, endpoint labels), so a batch of any
    size becomes one ``UNWIND`` statement per group — never one query per item. Items added
    with ``new=True`` are known not to exist yet (a fresh version's layers, tensors, …): they
    are ``CREATE``d, several times cheaper than ``MERGE``, and if one does exist the key
    constraint fails the whole transaction.
    """

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, bool], dict[str, dict[str, Any]]] = {}
        self._rels: dict[tuple[str, str, str, bool], dict[tuple[str, str], dict[str, Any]]] = {}

    def __len__(self) -> int:
        return sum(map(len, self._nodes.values())) + sum(map(len, self._rels.values()))

    def add(self, *entities: Entity, new: bool = False) -> WriteBatch:
        """Create or update nodes (keyed by the label's key property); ``new``: create only."""
        for entity in entities:
            key = NODES[entity.LABEL][0]
            props = entity.props()
            self._nodes.setdefault((entity.LABEL, new), {})[props[key]] = props
        return self

    def relate(
        self,
        rel: str,
        src: Entity | NodeRef,
        dst: Entity | NodeRef,
        *,
        new: bool = False,
        **props: Any,
    ) -> WriteBatch:
        """Create (or update) the relationship ``(src)-[:rel {props}]->(dst)``; ``new``: the
        relationship cannot exist yet (one of its ends is new)."""
        (a_label, a_key), (b_label, b_key) = _ref(src), _ref(dst)
        pairs, allowed = RELS[rel]
        if (a_label, b_label) not in pairs:
            raise InvalidInput(f"{rel} does not connect {a_label} to {b_label}")
        unknown = set(props) - set(allowed)
        if unknown:
            raise InvalidInput(f"{rel} has no properties {sorted(unknown)}")
        rows = self._rels.setdefault((rel, a_label, b_label, new), {})
        rows[(a_key, b_key)] = {"src": a_key, "dst": b_key, **{p: props.get(p) for p in allowed}}
        return self

    def derive(self, derivation: Derivation, *, new: bool = False) -> WriteBatch:
        """Add a lineage edge ``(derived)-[:DERIVED_FROM]->(base)``."""
        if derivation.op not in DERIVATION_OPS:
            raise InvalidInput(f"unknown derivation op {derivation.op!r}; one of {DERIVATION_OPS}")
        return self.relate(
            "DERIVED_FROM",
            ("ModelVersion", derivation.derived),
            ("ModelVersion", derivation.base),
            new=new,
            op=derivation.op,
            query=derivation.query,
            at=derivation.at,
        )

    def statements(self, dialect: Dialect) -> list[Statement]:
        """The batch as statements: all nodes first, then all relationships."""
        out = [
            _write_nodes(dialect, label, list(rows.values()), new)
            for (label, new), rows in self._nodes.items()
            if rows
        ]
        out += [
            _write_rels(dialect, rel, a, b, list(rows.values()), new)
            for (rel, a, b, new), rows in self._rels.items()
            if rows
        ]
        return out


def _ref(x: Entity | NodeRef) -> NodeRef:
    if isinstance(x, Entity):
        return x.LABEL, x.props()[NODES[x.LABEL][0]]
    if x[0] not in NODES:
        raise InvalidInput(f"unknown node label {x[0]!r}")
    return x


def _write_nodes(dialect: Dialect, label: str, rows: list[dict[str, Any]], new: bool) -> Statement:
    key, props = NODES[label]
    if new:
        fields = ", ".join(f"`{p}`: {dialect.value(f'row.`{p}`', t)}" for p, t in props.items())
        return Statement(f"UNWIND $rows AS row CREATE (n:{label} {{{fields}}})", {"rows": rows})
    cypher = f"UNWIND $rows AS row MERGE (n:{label} {{`{key}`: row.`{key}`}})"
    on_create = _sets(dialect, props, skip={key})
    on_match = _sets(dialect, props, skip={key, "created_at"})  # creation time never moves
    cypher += f" ON CREATE SET {on_create}" if on_create else ""
    cypher += f" ON MATCH SET {on_match}" if on_match else ""
    return Statement(cypher, {"rows": rows})


def _sets(dialect: Dialect, props: dict[str, str], skip: set[str]) -> str:
    return ", ".join(
        f"n.`{p}` = {dialect.value(f'row.`{p}`', t)}" for p, t in props.items() if p not in skip
    )


def _write_rels(
    dialect: Dialect, rel: str, a: str, b: str, rows: list[dict[str, Any]], new: bool
) -> Statement:
    _, props = RELS[rel]
    sets = ", ".join(f"r.`{p}` = {dialect.value(f'row.`{p}`', t)}" for p, t in props.items())
    cypher = (
        f"UNWIND $rows AS row MATCH (a:{a} {{`{NODES[a][0]}`: row.src}}) "
        f"MATCH (b:{b} {{`{NODES[b][0]}`: row.dst}}) {'CREATE' if new else 'MERGE'} "
        f"(a)-[r:{rel}]->(b)" + (f" SET {sets}" if sets else "") + " RETURN count(r) AS n"
    )
    return Statement(cypher, {"rows": rows}, expect=len(rows))


class GraphStore(GraphReads, ProvenanceReads, ABC):
    """A provenance graph backend.

    Subclasses implement the four primitives; everything else is shared. Stores are context
    managers (``with open_store(uri) as g: ...``).
    """

    dialect: Dialect
    uri: str

    # -- primitives -------------------------------------------------------------------------

    @abstractmethod
    def setup(self) -> None:
        """Create the schema (constraints/tables). Idempotent."""

    @abstractmethod
    def run_write(self, statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        """Run ``statements`` in one transaction, each through :func:`checked`; all or nothing."""

    @abstractmethod
    def run_read(
        self, cypher: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one read query; rows as dicts with nodes/relationships turned into property dicts."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and handles."""

    def run_read_page(
        self,
        cypher: str,
        params: Mapping[str, Any] | None,
        columns: Sequence[str],
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """The first ``limit`` rows (all when None) of a read, and how many rows it has in all.

        ``cypher`` must end in a ``RETURN`` of exactly ``columns`` (optionally with ``ORDER BY``
        / ``LIMIT``), returning plain values (no nodes). This default runs the query and cuts
        the rows here, which costs nothing for an in-process database; a server backend
        overrides it to count on the server and send only the page.
        """
        rows = self.run_read(cypher, params)
        return (rows if limit is None else rows[:limit]), len(rows)

    # -- shared API -------------------------------------------------------------------------

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self, write: bool = False) -> AbstractContextManager[GraphStore]:
        """A block of statements sharing one connection or handle (a no-op where that is
        free); with ``write``, the block may write and other writers wait (embedded graph)."""
        return nullcontext(self)

    def write(self, batch: WriteBatch) -> None:
        """Write a batch in one transaction (nothing is written if any part fails)."""
        stmts = batch.statements(self.dialect)
        if not stmts:
            return
        self.run_write(stmts)

    def put(self, *entities: Entity) -> None:
        """Create or update entities in one transaction."""
        self.write(WriteBatch().add(*entities))

    def get(self, cls: type[E], key: str) -> E | None:
        """The entity of type ``cls`` with key ``key``, or ``None``."""
        found = self.get_many(cls, [key])
        return found[0] if found else None

    def get_many(self, cls: type[E], keys: Iterable[str]) -> list[E]:
        """The entities of type ``cls`` with these keys (missing keys are skipped)."""
        label = cls.LABEL
        rows = self.run_read(
            f"UNWIND $keys AS k MATCH (n:{label} {{`{NODES[label][0]}`: k}}) RETURN n",
            {"keys": list(keys)},
        )
        return [cls.from_props(r["n"]) for r in rows]

    def count(self, label: str) -> int:
        """How many nodes carry ``label``."""
        if label not in NODES:
            raise InvalidInput(f"unknown node label {label!r}")
        return int(self.run_read(f"MATCH (n:{label}) RETURN count(n) AS n")[0]["n"])

    def versions(self, name: str | None = None, limit: int | None = None) -> list[ModelVersion]:
        """Versions, newest first; ``name`` is a glob over version names (``alexnet*``)."""
        params: dict[str, Any] = {"re": _glob_regex(name) if name else ".*"}
        cypher = (
            "MATCH (v:ModelVersion) WHERE v.name =~ $re RETURN v ORDER BY v.created_at DESC, v.id"
        )
        if limit is not None:
            cypher += " LIMIT $limit"
            params["limit"] = int(limit)
        return [ModelVersion.from_props(r["v"]) for r in self.run_read(cypher, params)]

    def parents(self, version_ids: Sequence[str]) -> list[Derivation]:
        """The DERIVED_FROM edges leaving these versions (one round trip)."""
        return self._edges(
            "UNWIND $ids AS i MATCH (d:ModelVersion {id: i})-[r:DERIVED_FROM]->(b:ModelVersion) ",
            {"ids": list(version_ids)},
        )

    def lineage(self, version_id: str, depth: int | None = None, direction: str = "up") -> Lineage:
        """Ancestors (``up``), descendants (``down``) or both of a version, up to ``depth`` hops."""
        if direction not in ("up", "down", "both"):
            raise InvalidInput(f"direction must be up, down or both, not {direction!r}")
        with self.session():
            return self._lineage(version_id, depth, direction)

    def _lineage(self, version_id: str, depth: int | None, direction: str) -> Lineage:
        root = self.get(ModelVersion, version_id)
        if root is None:
            raise NotFound(f"no version {version_id!r}")
        hops = self.dialect.depth(depth)
        arrows = {"up": ("-", "->"), "down": ("<-", "-"), "both": ("-", "-")}[direction]
        reached = self.run_read(
            f"MATCH (v:ModelVersion {{id: $id}}){arrows[0]}[:DERIVED_FROM*1..{hops}]{arrows[1]}"
            "(a:ModelVersion) RETURN DISTINCT a.id AS id",
            {"id": version_id},
        )
        ids = [version_id] + [r["id"] for r in reached if r["id"] != version_id]
        edges = self._edges(
            "MATCH (d:ModelVersion)-[r:DERIVED_FROM]->(b:ModelVersion) "
            "WHERE d.id IN $ids AND b.id IN $ids ",
            {"ids": ids},
        )
        versions = {v.id: v for v in self.get_many(ModelVersion, ids)}
        distances = _hop_distances(version_id, edges, direction, hops)
        return Lineage(version_id, versions, distances, edges, direction)

    def _edges(self, match: str, params: Mapping[str, Any]) -> list[Derivation]:
        rows = self.run_read(
            match
            + "RETURN d.id AS derived, b.id AS base, r.op AS op, r.query AS query, r.at AS at "
            "ORDER BY at, derived, base",
            params,
        )
        return [Derivation(**{k: v if v is not None else "" for k, v in r.items()}) for r in rows]

    def clear(self) -> None:
        """Delete every node and relationship (tests and ``dlv init --force`` only)."""
        self.run_write([Statement(f"MATCH (n:{label}) DETACH DELETE n") for label in NODES])


def _glob_regex(pattern: str) -> str:
    """A glob (``*``, ``?``, ``[...]``) as a regex for Cypher's ``=~`` (whole-string match)."""
    rx = translate(pattern)  # '(?s:...)\\Z'
    return re.sub(r"\\Z$", "", rx)


def _hop_distances(root: str, edges: list[Derivation], direction: str, hops: int) -> dict[str, int]:
    nbrs: dict[str, set[str]] = {}
    for e in edges:
        if direction in ("up", "both"):
            nbrs.setdefault(e.derived, set()).add(e.base)
        if direction in ("down", "both"):
            nbrs.setdefault(e.base, set()).add(e.derived)
    dist, frontier = {root: 0}, [root]
    while frontier and dist[frontier[0]] < hops:
        nxt = []
        for v in frontier:
            for w in nbrs.get(v, ()):
                if w not in dist:
                    dist[w] = dist[v] + 1
                    nxt.append(w)
        frontier = nxt
    return dist
