"""The library's read queries over the provenance graph, shared by every backend.

Each is one parameterised Cypher statement both dialects accept; labels come from the schema,
never from user text. :class:`~provdb.graph.base.GraphStore` inherits these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from provdb.entities import File, Hyperparameter, Metric, ModelVersion, Run, Snapshot, Tensor
from provdb.errors import InvalidInput
from provdb.results import RunInfo

#: Node labels that own hyper-parameters, metrics and files.
OWNERS = ("ModelVersion", "Run")


class GraphReads:
    """Read queries; a backend supplies :meth:`run_read`."""

    def run_read(
        self, cypher: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def versions_with_prefix(self, prefix: str, limit: int = 2) -> list[ModelVersion]:
        """Versions whose id starts with ``prefix`` (by id, at most ``limit``)."""
        rows = self.run_read(
            "MATCH (v:ModelVersion) WHERE v.id STARTS WITH $p RETURN v ORDER BY v.id LIMIT $n",
            {"p": prefix, "n": int(limit)},
        )
        return [ModelVersion.from_props(r["v"]) for r in rows]

    def newest_named(self, name: str) -> ModelVersion | None:
        """The newest version called ``name``."""
        rows = self.run_read(
            "MATCH (v:ModelVersion {name: $n}) RETURN v ORDER BY v.created_at DESC LIMIT 1",
            {"n": name},
        )
        return ModelVersion.from_props(rows[0]["v"]) if rows else None

    def snapshots(self, version_id: str) -> list[Snapshot]:
        """A version's committed snapshots, by iteration."""
        rows = self.run_read(
            "MATCH (s:Snapshot)-[:SNAPSHOT_OF]->(:ModelVersion {id: $id}) WHERE s.committed "
            "RETURN s ORDER BY s.iteration",
            {"id": version_id},
        )
        return [Snapshot.from_props(r["s"]) for r in rows]

    def tensors_of(self, snapshot_id: str) -> list[Tensor]:
        """A snapshot's tensors (name, layer, shape, dtype, digest), by name."""
        rows = self.run_read(
            "MATCH (:Snapshot {id: $id})-[:HAS_TENSOR]->(t:Tensor) RETURN t ORDER BY t.name",
            {"id": snapshot_id},
        )
        return [Tensor.from_props(r["t"]) for r in rows]

    def committed_snapshots(self) -> list[tuple[str, str, str]]:
        """``(version id, version name, snapshot id)`` of every committed snapshot, by the
        versions' creation time."""
        rows = self.run_read(
            "MATCH (s:Snapshot)-[:SNAPSHOT_OF]->(v:ModelVersion) WHERE s.committed "
            "RETURN v.id AS id, v.name AS name, s.id AS snapshot ORDER BY v.created_at"
        )
        return [(r["id"], r["name"], r["snapshot"]) for r in rows]

    def repository_ids(self) -> list[str]:
        """Ids of the repositories that claimed this graph (at most one, normally)."""
        return [r["id"] for r in self.run_read("MATCH (r:Repository) RETURN r.id AS id")]

    def live_snapshot_ids(self) -> list[str]:
        """Ids of every committed snapshot."""
        rows = self.run_read("MATCH (s:Snapshot) WHERE s.committed RETURN s.id AS id")
        return [r["id"] for r in rows]

    def params_of(self, owner_id: str, label: str = "ModelVersion") -> dict[str, Any]:
        """Hyper-parameters of a version or run, decoded."""
        rows = self.run_read(
            f"MATCH (o:{_owner(label)} {{id: $id}})-[:HAS_PARAM]->(h:Hyperparameter) "
            "RETURN h ORDER BY h.name",
            {"id": owner_id},
        )
        return {r["h"]["name"]: Hyperparameter.from_props(r["h"]).parsed for r in rows}

    def metrics_of(self, owner_id: str, label: str = "ModelVersion") -> dict[str, Metric]:
        """Metric series of a version or run."""
        rows = self.run_read(
            f"MATCH (o:{_owner(label)} {{id: $id}})-[:HAS_METRIC]->(m:Metric) "
            "RETURN m ORDER BY m.name",
            {"id": owner_id},
        )
        return {r["m"]["name"]: Metric.from_props(r["m"]) for r in rows}

    def files_of(self, owner_id: str, label: str = "ModelVersion") -> list[File]:
        """Files attached to a version or run."""
        rows = self.run_read(
            f"MATCH (o:{_owner(label)} {{id: $id}})-[:HAS_FILE]->(f:File) RETURN f ORDER BY f.path",
            {"id": owner_id},
        )
        return [File.from_props(r["f"]) for r in rows]

    def runs_of(self, version_ids: Sequence[str]) -> dict[str, RunInfo]:
        """The run that generated each of these versions, with its agent (one round trip);
        versions no run generated are absent. A version with several runs gets the newest."""
        if not version_ids:
            return {}
        rows = self.run_read(
            "UNWIND $ids AS i MATCH (v:ModelVersion {id: i})-[:WAS_GENERATED_BY]->(r:Run) "
            "OPTIONAL MATCH (r)-[:WAS_ASSOCIATED_WITH]->(a:Agent) "
            "RETURN v.id AS version, r AS run, a.name AS agent",
            {"ids": list(version_ids)},
        )
        found: dict[str, RunInfo] = {}
        for row in sorted(rows, key=lambda r: str(r["run"].get("started_at") or "")):
            run = Run.from_props(row["run"])
            found[row["version"]] = RunInfo(
                run.id, run.status, run.started_at, run.ended_at, row["agent"] or "", run.command
            )
        return found


def _owner(label: str) -> str:
    if label not in OWNERS:
        raise InvalidInput(f"metadata owners are ModelVersion or Run, not {label!r}")
    return label
