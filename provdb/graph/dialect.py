"""Where Neo4j's and LadybugDB's Cypher differ — and nowhere else.

Everything the graph layer writes is plain openCypher both engines accept (``UNWIND``,
``MERGE`` on the key, explicit ``SET n.p = row.p``, ``=~``, bounded variable-length
patterns). What differs: schema DDL (LadybugDB declares tables; Neo4j is schemaless and gets
uniqueness constraints and indexes), typed parameters (LadybugDB infers a parameter's type
from its values, so a column of nulls or an empty list must be ``CAST`` to the column's type;
Neo4j has no ``CAST``) and the longest variable-length pattern allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from provdb.graph.schema import NODES, RELS

#: Properties worth an index on Neo4j besides each label's key (tuples: composite indexes,
#: for DQL's structural templates and metric/hyper-parameter comparisons).
NEO4J_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ModelVersion", ("name",)),
    ("ModelVersion", ("created_at",)),
    ("Layer", ("name",)),
    ("Layer", ("type", "mode")),
    ("Hyperparameter", ("name", "num")),
    ("Metric", ("name", "last")),
)


@dataclass(frozen=True)
class Dialect:
    """A Cypher dialect: its name, its schema DDL and its variable-length bound."""

    name: str
    max_depth: int

    def schema_statements(self) -> list[str]:
        """Idempotent statements that create the provenance schema."""
        if self.name == "neo4j":
            return _neo4j_schema()
        return _ladybug_schema()

    def value(self, expr: str, column_type: str) -> str:
        """``expr`` as a value for a column of ``column_type`` (a LadybugDB type name)."""
        if self.name == "ladybug" and column_type != "STRING":
            return f"CAST({expr} AS {column_type})"
        return expr

    def depth(self, depth: int | None) -> int:
        """Clamp a requested traversal depth (``None`` = as deep as allowed) to the dialect's."""
        if depth is None:
            return self.max_depth
        return max(1, min(int(depth), self.max_depth))


def _neo4j_schema() -> list[str]:
    stmts = [
        f"CREATE CONSTRAINT {label.lower()}_{key} IF NOT EXISTS "
        f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE"
        for label, (key, _) in NODES.items()
    ]
    stmts += [
        f"CREATE INDEX {label.lower()}_{'_'.join(props)} IF NOT EXISTS FOR (n:{label}) "
        f"ON ({', '.join(f'n.{p}' for p in props)})"
        for label, props in NEO4J_INDEXES
    ]
    return stmts


def _ladybug_schema() -> list[str]:
    stmts = []
    for label, (key, props) in NODES.items():
        cols = ", ".join(f"`{p}` {t}" for p, t in props.items())
        stmts.append(f"CREATE NODE TABLE IF NOT EXISTS {label}({cols}, PRIMARY KEY(`{key}`))")
    for rel, (pairs, props) in RELS.items():
        ends = ", ".join(f"FROM {a} TO {b}" for a, b in pairs)
        cols = "".join(f", `{p}` {t}" for p, t in props.items())
        stmts.append(f"CREATE REL TABLE IF NOT EXISTS {rel}({ends}{cols})")
    return stmts


NEO4J = Dialect("neo4j", max_depth=100)
#: LadybugDB's default bound is 30; the store raises it with ``var_length_extend_max_depth``.
LADYBUG = Dialect("ladybug", max_depth=100)
