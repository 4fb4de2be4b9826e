"""A dlv repository: a ``.dlv/`` folder holding its config, the archive and (by default) the
embedded provenance graph. The CLI, the SDK and the server are thin shells over this class.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provdb.entities import now_iso
from provdb.errors import InvalidInput, RepositoryError
from provdb.graph import GraphStore, LineageEdge, is_server_uri, open_store

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

    # -- creation and discovery -------------------------------------------------------------

    @classmethod
    def init(cls, path: str | os.PathLike[str] = ".", graph: str | None = None) -> Repository:
        """Create a repository at ``path``; ``graph`` is a Neo4j URI (default: embedded)."""
        root = Path(path).resolve()
        dlv = root / DLV_DIR
        if (dlv / CONFIG_FILE).exists():
            raise RepositoryError(f"{root} is already a dlv repository", code="ALREADY_EXISTS")
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
        tmp = dlv / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(dlv / CONFIG_FILE)
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
                raise RepositoryError(f"corrupt repository at {folder}: {config_path} is missing")
        raise RepositoryError(
            f"not a dlv repository (or any parent folder): {start}; run `dlv init` first",
            code="NOT_A_REPOSITORY",
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

    def close(self) -> None:
        """Close the graph store."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None

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


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepositoryError(f"corrupt repository: cannot read {path}: {exc}") from exc
    if not isinstance(config, dict) or "graph" not in config or "id" not in config:
        raise RepositoryError(f"corrupt repository: {path} lacks the 'graph' and 'id' keys")
    if config.get("format") != FORMAT:
        raise RepositoryError(
            f"{path} has format {config.get('format')!r}; this dlv reads format {FORMAT}"
        )
    return config
