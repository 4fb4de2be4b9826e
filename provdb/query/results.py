"""Results of DQL execution and the one place that runs a compiled query's Cypher."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dql
from provdb.models.network import NetworkDef

if TYPE_CHECKING:
    import numpy as np

    from provdb.repository import Repository

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
        total: how many rows the query has in all (more than ``len(rows)`` when a select
            was asked for its first page only); None means ``len(rows)``.
    """

    kind: str
    columns: list[str]
    rows: list[dict[str, Any]]
    created: list[CreatedVersion]
    cypher: str
    params: dict[str, Any]
    dry_run: bool
    compiled: dql.CompiledQuery
    total: int | None = None

    def __post_init__(self) -> None:
        if self.total is None:
            self.total = len(self.rows)

    @property
    def truncated(self) -> bool:
        """Whether ``rows`` is only the first page of the result."""
        return (self.total or 0) > len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``dlv query --json``)."""
        return {
            "kind": self.kind,
            "dry_run": self.dry_run,
            "columns": self.columns,
            "rows": self.rows,
            "total": self.total,
            "truncated": self.truncated,
            "created": [c.to_dict() for c in self.created],
            "cypher": self.cypher,
            "params": self.params,
        }


def run_rows(repo: Repository, compiled: dql.CompiledQuery) -> list[dict[str, Any]]:
    """The rows of a compiled select/slice/construct, in its order (by creation time and id
    when the query has no ORDER BY of its own)."""
    rows = repo.graph.run_read(compiled.cypher, compiled.params)
    if compiled.ordered:
        return rows
    return sorted(rows, key=lambda r: (str(r.get("created_at")), str(r.get("id"))))
