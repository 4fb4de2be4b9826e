"""A dlv repository: a ``.dlv/`` folder holding its config, the archive and (by default) the
embedded provenance graph. The CLI, the SDK and the server are thin shells over this class.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provdb import versioning as vs
from provdb.entities import ModelVersion, now_iso
from provdb.errors import (
    AlreadyExists,
    CorruptData,
    InvalidInput,
    NotFound,
    from_storage,
    storage_errors,
)
from provdb.graph import GraphStore, Lineage, LineageEdge, WriteBatch, is_server_uri, open_store
from provdb.models.network import NetworkDef

if TYPE_CHECKING:
    import numpy as np

    from storage import Archive

DLV_DIR = ".dlv"
CONFIG_FILE = "config.json"
FORMAT = 1
#: The embedded graph's database file inside ``.dlv/``.
EMBEDDED_GRAPH = "graph.lbdb"
ARCHIVE_DIR = "archive"


@dataclass(frozen=True)
class VersionRow:
    """A version as ``dlv list`` shows it: the version and the versions it derives from."""

    id: str
    name: str
    created_at: str
    message: str
    author: str
    parents: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(self.__dict__)


class Repository:
    """A model repository rooted at ``root`` (the folder that holds ``.dlv/``)."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.config = config
        self._graph: GraphStore | None = None
        self._archive: Archive | None = None

    # -- creation and discovery -------------------------------------------------------------

    @classmethod
    def init(cls, path: str | os.PathLike[str] = ".", graph: str | None = None) -> Repository:
        """Create a repository at ``path``; ``graph`` is a Neo4j URI (default: embedded)."""
        root = Path(path).resolve()
        dlv = root / DLV_DIR
        if (dlv / CONFIG_FILE).exists():
            raise AlreadyExists(f"{root} is already a dlv repository")
        if graph is not None and not is_server_uri(graph):
            raise InvalidInput(
                f"--graph must be a Neo4j URI (bolt://, neo4j://, neo4j+s://), not {graph!r}; "
                "leave it out for the embedded graph"
            )
        config = {
            "format": FORMAT,
            "id": uuid.uuid4().hex,
            "created_at": now_iso(),
            "graph": graph or "embedded",
            "archive": ARCHIVE_DIR,
        }
        repo = cls(root, config)
        repo.graph.setup()  # fail before writing anything if the graph is unreachable
        (dlv / ARCHIVE_DIR).mkdir(parents=True, exist_ok=True)
        _write_json(dlv / CONFIG_FILE, config)
        return repo

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Repository:
        """Open the repository at ``path`` or the nearest one above it (default: cwd)."""
        start = Path(path or os.environ.get("DLV_REPO") or ".").resolve()
        for folder in (start, *start.parents):
            config_path = folder / DLV_DIR / CONFIG_FILE
            if config_path.is_file():
                return cls(folder, _read_config(config_path))
            if (folder / DLV_DIR).is_dir():
                raise CorruptData(f"corrupt repository at {folder}: {config_path} is missing")
        raise NotFound(
            f"not a dlv repository (or any parent folder): {start}; run `dlv init` first"
        )

    # -- parts ------------------------------------------------------------------------------

    @property
    def dlv_dir(self) -> Path:
        """The ``.dlv/`` folder."""
        return self.root / DLV_DIR

    @property
    def graph_uri(self) -> str:
        """The graph store's URI (a Neo4j URI or the embedded database's path)."""
        uri = self.config["graph"]
        return str(self.dlv_dir / EMBEDDED_GRAPH) if uri == "embedded" else uri

    @property
    def backend(self) -> str:
        """``neo4j`` or ``ladybug``."""
        return "neo4j" if is_server_uri(self.graph_uri) else "ladybug"

    @property
    def archive_path(self) -> Path:
        """The parameter archive's folder."""
        return self.dlv_dir / self.config.get("archive", ARCHIVE_DIR)

    @property
    def graph(self) -> GraphStore:
        """The provenance graph (opened on first use)."""
        if self._graph is None:
            self._graph = open_store(self.graph_uri)
        return self._graph

    @property
    def archive(self) -> Archive:
        """The parameter archive (LMDB; opened on first use, shared within the process)."""
        if self._archive is None:
            self._archive = _ARCHIVES.acquire(self.archive_path)
        return self._archive

    def close(self) -> None:
        """Close the graph store and the archive."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        if self._archive is not None:
            _ARCHIVES.release(self.archive_path)
            self._archive = None

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------

    def list_versions(self, name: str | None = None, limit: int | None = None) -> list[VersionRow]:
        """Versions newest first, each with its parents; ``name`` is a glob."""
        with self.graph.session():
            versions = self.graph.versions(name=name, limit=limit)
            edges = self.graph.parents([v.id for v in versions]) if versions else []
        parents: dict[str, list[LineageEdge]] = {}
        for edge in edges:
            parents.setdefault(edge.derived, []).append(edge)
        return [
            VersionRow(
                id=v.id,
                name=v.name,
                created_at=v.created_at,
                message=v.message,
                author=v.author,
                parents=[{"id": e.base, "op": e.op} for e in parents.get(v.id, [])],
            )
            for v in versions
        ]

    def info(self) -> dict[str, Any]:
        """Where the repository's parts live and how much it holds."""
        with self.graph.session():
            counts = {label: self.graph.count(label) for label in ("ModelVersion", "Model")}
        return {
            "root": str(self.root),
            "id": self.config["id"],
            "backend": self.backend,
            "graph": self.graph_uri,
            "archive": str(self.archive_path),
            "versions": counts["ModelVersion"],
            "models": counts["Model"],
        }

    # -- versions ----------------------------------------------------------------------------

    def resolve(self, ref: str) -> ModelVersion:
        """A version by id, unique id prefix, or name (newest of that name)."""
        return vs.resolve(self.graph, ref)

    def commit(
        self,
        name: str,
        network: NetworkDef,
        tensors: dict[str, np.ndarray],
        *,
        parent: str | None = None,
        op: str = "commit",
        query: str = "",
        message: str = "",
        author: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, tuple[list[int], list[float]]] | None = None,
        files: list[vs.FileRecord] | None = None,
        iteration: int = 0,
        framework: str = "",
    ) -> vs.CommitResult:
        """Commit a new version: weights to the archive, then one graph transaction.

        ``parent`` (a version reference) records ``DERIVED_FROM {op}`` and offers the parent's
        weights as delta bases, so unchanged layers cost no new bytes.
        """
        vs.check_name(name)
        owners = vs.check_tensors(network, tensors)
        with self.graph.session():  # one read handle for the look-ups
            base = self.resolve(parent) if parent else None
            bases = [vs.latest_snapshot(self.graph, base.id).id] if base else []
        version = ModelVersion(
            id=vs.new_version_id(),
            name=name,
            message=message,
            author=vs.default_author() if author is None else author,
            framework=framework,
            network=network.to_json(),
        )
        info = self.archive.write_snapshot(
            vs.snapshot_id(version.id, iteration), tensors, bases=bases
        )
        batch = WriteBatch().add(vs.model_of(name)).add(version, new=True)
        batch.relate("VERSION_OF", version, ("Model", name), new=True)
        vs.network_batch(batch, version, network)
        vs.snapshot_batch(batch, version, info, owners, iteration)
        vs.metadata_batch(batch, version, params, metrics, files or [], new=True)
        if base is not None:
            batch.derive(vs.derivation(version.id, base.id, op, query), new=True)
        self.graph.write(batch)
        return vs.CommitResult(version, info.snapshot_id, info.raw_bytes, info.new_bytes)

    def network(self, ref: str) -> NetworkDef:
        """A version's network definition."""
        return vs.network_of(self.resolve(ref))

    def weights(self, ref: str, *, planes: int | None = None) -> dict[str, np.ndarray]:
        """A version's weights from its latest snapshot (bit-exact unless ``planes``)."""
        with self.graph.session():
            version = self.resolve(ref)
            snap = vs.latest_snapshot(self.graph, version.id)
        return self.archive.read_snapshot(snap.id, planes=planes)

    def copy(self, ref: str, name: str, message: str = "") -> vs.CommitResult:
        """A new version with the same network and weights (no new weight bytes)."""
        with self.graph.session():
            source = self.resolve(ref)
            weights = self.weights(source.id)
            params = vs.params_of(self.graph, source.id)
        return self.commit(
            name,
            vs.network_of(source),
            weights,
            parent=source.id,
            op="copy",
            message=message or f"copy of {source.name} ({source.id[:12]})",
            params=params,
            framework=source.framework,
        )

    def commit_file(
        self,
        path: str | os.PathLike[str] | None,
        name: str,
        *,
        parent: str | None = None,
        network: NetworkDef | None = None,
        **kwargs: Any,
    ) -> vs.CommitResult:
        """Commit a model file (``.onnx``, ``.safetensors``, PyTorch checkpoint) and the staged
        files. Weights-only files take their network from ``network`` or the parent; with no
        file, the parent's weights are committed again (a metadata-only version)."""
        from provdb.models.files import read_model_file

        base = self.resolve(parent) if parent else None
        if path is None:
            if base is None:
                raise InvalidInput("give a model file, or --parent to commit the parent's weights")
            net, tensors, framework = network, self.weights(base.id), base.framework
        else:
            net, tensors, framework = read_model_file(path)
            net = net or network
        if net is None:
            if base is None:
                raise InvalidInput(
                    f"{path} holds weights only: give --network NET.json or --parent VERSION"
                )
            net = vs.network_of(base)
        files = [*self.staged(), *kwargs.pop("files", [])]
        result = self.commit(
            name,
            net,
            tensors,
            parent=base.id if base else None,
            framework=kwargs.pop("framework", framework),
            files=files,
            **kwargs,
        )
        self.clear_staged()
        return result

    def checkout(self, ref: str, path: str | os.PathLike[str]) -> Path:
        """Write a version's weights to ``.safetensors`` (bit-exact) or ``.onnx``."""
        from provdb.models.files import write_model_file

        version = self.resolve(ref)
        return write_model_file(path, vs.network_of(version), self.weights(version.id))

    # -- staging (dlv add) ----------------------------------------------------------------

    @property
    def _staged_path(self) -> Path:
        return self.dlv_dir / "staged.json"

    def stage(self, paths: list[str | os.PathLike[str]]) -> list[vs.FileRecord]:
        """Record files (path, SHA-256, size) to attach to the next commit."""
        records = {r.path: r for r in self.staged()}
        for p in paths:
            record = vs.FileRecord.of(p)
            records[record.path] = record
        _write_json(self._staged_path, [r.__dict__ for r in records.values()])
        return list(records.values())

    def staged(self) -> list[vs.FileRecord]:
        """Files staged with :meth:`stage`."""
        if not self._staged_path.exists():
            return []
        return [vs.FileRecord(**r) for r in json.loads(self._staged_path.read_text())]

    def clear_staged(self) -> None:
        """Forget the staged files."""
        self._staged_path.unlink(missing_ok=True)

    # -- storage --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Raw vs stored bytes: total, per byte plane, and per version."""
        st = self.archive.stats()
        rows = self.graph.run_read(
            "MATCH (s:Snapshot)-[:SNAPSHOT_OF]->(v:ModelVersion) WHERE s.committed "
            "RETURN v.id AS id, v.name AS name, s.id AS snapshot ORDER BY v.created_at"
        )
        per_version: dict[str, dict[str, Any]] = {}
        for r in rows:
            row = per_version.setdefault(
                r["id"], {"id": r["id"], "name": r["name"], "snapshots": 0, "raw_bytes": 0}
            )
            row["snapshots"] += 1
            row["raw_bytes"] += st.per_snapshot.get(r["snapshot"], {}).get("raw", 0)
        return {
            "raw_bytes": st.raw_bytes,
            "unique_raw_bytes": st.unique_raw_bytes,
            "stored_bytes": st.stored_bytes,
            "ratio": st.ratio,
            "per_plane": st.per_plane,
            "snapshots": st.n_snapshots,
            "tensors": st.n_tensors,
            "chunks": st.n_chunks,
            "versions": list(per_version.values()),
        }

    def replan(
        self, alpha: float, algorithm: str = "pas-mt", scheme: str = "independent"
    ) -> dict[str, Any]:
        """Re-optimise the archive under recreation budgets θ_i = α · C_r(SPT, s_i)."""
        with storage_errors("archive re-plan failed"):
            result = self.archive.replan(algorithm, alpha=alpha, scheme=scheme)
        return {
            "algorithm": algorithm,
            "alpha": alpha,
            "scheme": scheme,
            "planned_storage_before": result.storage_before,
            "planned_storage_after": result.result.storage,
            "budget_violations": list(result.result.violations),
            "rewritten": result.rewritten,
            "gc": dict(result.gc.__dict__),
            "stats": {"stored_bytes": self.archive.stats().stored_bytes},
        }

    def evaluate(self, ref: str, data: str, top_k: tuple[int, ...] = (1, 5)) -> dict[str, Any]:
        """Accuracy/top-k/loss of a version on a data set (``builtin:digits`` or ``.npz``)."""
        from provdb.models import learner

        version = self.resolve(ref)
        dataset = learner.load_dataset(data)
        return learner.evaluate(
            vs.network_of(version), self.weights(version.id), dataset, top_k=top_k
        )

    def lineage(self, ref: str, depth: int | None = None, direction: str = "up") -> Lineage:
        """Ancestors/descendants of a version."""
        return self.graph.lineage(self.resolve(ref).id, depth=depth, direction=direction)

    def live_snapshots(self) -> list[str]:
        """Ids of every committed snapshot the graph knows."""
        rows = self.graph.run_read("MATCH (s:Snapshot) WHERE s.committed RETURN s.id AS id")
        return [r["id"] for r in rows]

    def gc(self) -> dict[str, int]:
        """Drop archive snapshots no committed graph snapshot names, then unreferenced chunks."""
        result = self.archive.gc(self.live_snapshots())
        return dict(result.__dict__)


class _ArchiveRegistry:
    """One open :class:`storage.Archive` per archive folder and process.

    LMDB allows a single environment per file in a process, so every :class:`Repository` on
    the same folder shares one, closed when the last of them closes. Keyed by pid as well: an
    environment must never be used across ``fork()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[int, Path], list[Any]] = {}

    def acquire(self, path: Path) -> Archive:
        from storage import Archive, StorageError

        key = (os.getpid(), path.resolve())
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                try:
                    entry = self._open[key] = [Archive.open(path), 0]
                except StorageError as exc:
                    raise from_storage(exc, f"cannot open the archive {path}") from exc
            entry[1] += 1
            return entry[0]

    def release(self, path: Path) -> None:
        key = (os.getpid(), path.resolve())
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del self._open[key]
                entry[0].close()


_ARCHIVES = _ArchiveRegistry()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptData(f"corrupt repository: cannot read {path}: {exc}") from exc
    if not isinstance(config, dict) or "graph" not in config or "id" not in config:
        raise CorruptData(f"corrupt repository: {path} lacks the 'graph' and 'id' keys")
    if config.get("format") != FORMAT:
        raise InvalidInput(
            f"{path} has format {config.get('format')!r}; this dlv reads format {FORMAT}"
        )
    return config
