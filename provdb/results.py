"""Typed results of the :class:`provdb.Repository` facade.

Every result is a frozen dataclass with ``to_dict()``: the JSON that ``dlv … --json`` prints
and that the server returns. Shells render these; they never build dicts of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from provdb.entities import Derivation, ModelVersion


class Result:
    """Base of the facade's results: ``to_dict()`` is the JSON form."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (field names are the keys)."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class Parent(Result):
    """A version this one derives from (or, as a child, one that derives from it)."""

    id: str
    op: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Parent:
        """The parent from its ``to_dict()`` JSON."""
        return cls(str(d["id"]), str(d["op"]))


@dataclass(frozen=True)
class RunInfo(Result):
    """The run (SDK training/evaluation activity) that generated a version: its status
    (``RUNNING``, ``FINISHED``, ``FAILED``), start and end times, agent and command."""

    id: str
    status: str
    started_at: str
    ended_at: str
    agent: str
    command: str

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RunInfo | None:
        """The run from its ``to_dict()`` JSON (``None`` stays ``None``)."""
        return None if d is None else cls(**d)

    @property
    def failed(self) -> bool:
        """Whether the run ended with an error."""
        return self.status == "FAILED"

    def duration(self) -> float | None:
        """Seconds from start to end (``None`` while running or when a time is unreadable)."""
        from datetime import datetime

        try:
            start = datetime.fromisoformat(self.started_at)
            end = datetime.fromisoformat(self.ended_at)
        except (TypeError, ValueError):
            return None
        return (end - start).total_seconds()


@dataclass(frozen=True)
class VersionRow(Result):
    """A version as ``dlv list`` shows it: the version, the versions it derives from and
    the run that generated it (``None`` for plain commits)."""

    id: str
    name: str
    created_at: str
    message: str
    author: str
    parents: list[Parent]
    run: RunInfo | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VersionRow:
        """The row from its ``to_dict()`` JSON (what a hub's ``/api/lineage`` serves)."""
        return cls(
            d["id"], d["name"], d["created_at"], d["message"], d["author"],
            [Parent.from_dict(p) for p in d["parents"]], RunInfo.from_dict(d.get("run")),
        )  # fmt: skip


@dataclass(frozen=True)
class RepoInfo(Result):
    """Where a repository's parts live and how much it holds."""

    root: str
    id: str
    backend: str
    graph: str
    archive: str
    versions: int
    models: int


@dataclass(frozen=True)
class CommitResult(Result):
    """What a commit created."""

    version: ModelVersion
    snapshot: str
    raw_bytes: int
    new_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """``id``, ``name``, ``snapshot``, ``raw_bytes``, ``new_bytes``."""
        return {
            "id": self.version.id,
            "name": self.version.name,
            "snapshot": self.snapshot,
            "raw_bytes": self.raw_bytes,
            "new_bytes": self.new_bytes,
        }


@dataclass(frozen=True)
class LineageNode:
    """One version in a lineage tree, with the op that leads to it from its tree parent."""

    id: str
    name: str
    created_at: str
    op: str
    children: tuple[LineageNode, ...] = ()

    def walk(self, depth: int = 0) -> Iterator[tuple[int, LineageNode]]:
        """This node and every descendant, depth first, with their depth in the tree."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass(frozen=True)
class Lineage(Result):
    """A version's lineage: the versions reached (with their hop distance) and the edges.

    ``direction`` is ``up`` (ancestors), ``down`` (descendants) or ``both``.
    """

    root: str
    versions: dict[str, ModelVersion]
    depth: dict[str, int]
    edges: list[Derivation]
    direction: str = "up"

    def to_dict(self) -> dict[str, Any]:
        """``root``, ``depth``, ``versions`` (name, created_at) and ``edges``."""
        return {
            "root": self.root,
            "depth": self.depth,
            "versions": {
                k: {"name": v.name, "created_at": v.created_at} for k, v in self.versions.items()
            },
            "edges": [asdict(e) for e in self.edges],
        }

    def tree(self) -> LineageNode:
        """The lineage as a tree rooted at :attr:`root`: each version appears under the
        version one hop nearer the root (a DAG's shared ancestors appear once per path)."""
        down = self.direction == "down"
        children: dict[str, list[tuple[str, str]]] = {}
        for e in self.edges:
            a, b = (e.base, e.derived) if down else (e.derived, e.base)
            children.setdefault(a, []).append((b, e.op))

        def grow(vid: str, op: str, seen: frozenset[str]) -> LineageNode:
            v = self.versions[vid]
            kids = tuple(
                grow(nxt, nop, seen | {nxt})
                for nxt, nop in children.get(vid, [])
                if self.depth.get(nxt, 0) > self.depth.get(vid, 0)
                and nxt not in seen
                and nxt in self.versions
            )
            return LineageNode(vid, v.name, v.created_at, op, kids)

        return grow(self.root, "", frozenset({self.root}))


@dataclass(frozen=True)
class LayerRow(Result):
    """A layer as ``desc`` lists it."""

    name: str
    type: str
    mode: str
    attrs: dict[str, Any]


@dataclass(frozen=True)
class MetricSummary(Result):
    """A metric series with its summary."""

    last: float | None
    min: float | None
    max: float | None
    points: int
    steps: list[int]
    values: list[float]


@dataclass(frozen=True)
class FileRow(Result):
    """A file recorded with a version."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class SnapshotRow(Result):
    """A snapshot of a version with its raw bytes and the stored bytes it added to the
    archive (chunks no earlier snapshot shares; ``extra["referenced"]`` are those it reads
    from earlier ones)."""

    id: str
    iteration: int
    latest: bool
    raw: int
    stored: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``id``, ``iteration``, ``latest``, ``raw``, ``stored`` and any archive extras."""
        out = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**out, **self.extra}


@dataclass(frozen=True)
class PlaneBytes(Result):
    """One byte plane of a snapshot (plane 0: the most significant byte): its tensors' raw
    bytes and the stored bytes of their own chunks."""

    plane: int
    raw: int
    stored: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlaneBytes:
        """The plane from its ``to_dict()`` JSON."""
        return cls(int(d["plane"]), int(d["raw"]), int(d["stored"]))


@dataclass(frozen=True)
class Description(Result):
    """Everything about one version (``dlv desc``). ``network_inferred``: the network was
    guessed from a weights file's tensor names and shapes; ``run``: the run that generated
    the version, if any."""

    id: str
    name: str
    created_at: str
    author: str
    message: str
    framework: str
    layers: list[LayerRow]
    edges: list[list[str]]
    params: dict[str, Any]
    metrics: dict[str, MetricSummary]
    files: list[FileRow]
    snapshots: list[SnapshotRow]
    parents: list[Parent]
    children: list[Parent]
    network_inferred: bool = False
    run: RunInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """The description as JSON (snapshots keep their archive extras)."""
        out = asdict(self)
        out["snapshots"] = [s.to_dict() for s in self.snapshots]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Description:
        """The description from its ``to_dict()`` JSON (what a hub serves); a snapshot's
        keys other than its fields are its archive extras again."""
        base = ("id", "iteration", "latest", "raw", "stored")
        return cls(
            **{k: d[k] for k in ("id", "name", "created_at", "author", "message", "framework",
                                 "edges", "params", "network_inferred")},
            layers=[LayerRow(**x) for x in d["layers"]],
            metrics={k: MetricSummary(**m) for k, m in d["metrics"].items()},
            files=[FileRow(**f) for f in d["files"]],
            snapshots=[SnapshotRow(s["id"], s["iteration"], s["latest"], s["raw"], s["stored"],
                                   {k: v for k, v in s.items() if k not in base})
                       for s in d["snapshots"]],
            parents=[Parent.from_dict(p) for p in d["parents"]],
            children=[Parent.from_dict(p) for p in d["children"]],
            run=RunInfo.from_dict(d.get("run")),
        )  # fmt: skip


@dataclass(frozen=True)
class DiffRow(Result):
    """One compared item: its values in each version (first = base) and its status
    (``same``, ``changed``, ``added``, ``removed``)."""

    name: str
    status: str
    values: list[Any]


@dataclass(frozen=True)
class Diff(Result):
    """Versions compared against the first (``dlv diff``)."""

    versions: list[dict[str, str]]
    layers: list[DiffRow]
    edges: dict[str, list[list[str]]]
    params: list[DiffRow]
    metrics: list[DiffRow]
    weights: list[DiffRow]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diff:
        """The diff from its ``to_dict()`` JSON (what a hub serves)."""
        rows = {k: [DiffRow(**r) for r in d[k]] for k in ("layers", "params", "metrics", "weights")}
        return cls(versions=d["versions"], edges=d["edges"], **rows)


@dataclass(frozen=True)
class VersionStorage(Result):
    """A version's share of the archive: ``unique_bytes`` are the chunk bytes its snapshots
    added that no earlier snapshot shares; ``float_scheme`` how its float tensors are stored
    (``lossless``, ``fp16``, … or ``mixed``)."""

    id: str
    name: str
    snapshots: int
    raw_bytes: int
    unique_bytes: int = 0
    float_scheme: str = "lossless"


@dataclass(frozen=True)
class SnapshotCost(Result):
    """What reading a snapshot costs: ``chain_depth`` delta links to a materialised tensor
    (the maximum over its tensors) and ``read_bytes``, the stored bytes a full read touches."""

    id: str
    version: str
    chain_depth: int
    read_bytes: int


@dataclass(frozen=True)
class Stats(Result):
    """Raw vs stored bytes of the archive: total, per byte plane and per version, and the
    recreation cost of every committed snapshot. ``chunk_bytes``: the weights' chunks
    (``stored_bytes`` adds the archive's records); ``archive_disk_bytes``: the archive's
    file on disk (LMDB keeps freed pages until ``dlv gc --compact``; ``None`` on S3);
    ``graph_disk_bytes``:
    the embedded graph's files on disk (``None`` for a Neo4j server)."""

    raw_bytes: int
    unique_raw_bytes: int
    stored_bytes: int
    ratio: float
    per_plane: list[int]
    snapshots: int
    tensors: int
    chunks: int
    versions: list[VersionStorage]
    per_snapshot: list[SnapshotCost]
    chunk_bytes: int = 0
    archive_disk_bytes: int | None = 0
    graph_disk_bytes: int | None = None


@dataclass(frozen=True)
class GCResult(Result):
    """What ``gc`` removed; with ``--compact`` also the bytes on disk of the archive's file
    and of the embedded graph before and after compaction (``None`` without it, and the
    graph's for a Neo4j server)."""

    snapshots: int
    tensors: int
    chunks: int
    bytes: int
    archive_bytes_before: int | None = None
    archive_bytes_after: int | None = None
    graph_bytes_before: int | None = None
    graph_bytes_after: int | None = None


@dataclass(frozen=True)
class ReplanResult(Result):
    """What ``dlv archive`` changed."""

    algorithm: str
    alpha: float
    scheme: str
    planned_storage_before: float
    planned_storage_after: float
    budget_violations: list[Any]
    rewritten: int
    gc: GCResult
    stats: dict[str, int]


@dataclass(frozen=True)
class EvalResult(Result):
    """A version's accuracy, top-k accuracies and loss on a data set."""

    n: int
    loss: float
    accuracy: float
    top: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        """``loss``, ``n``, ``top1``, ``top5``, … and ``accuracy``."""
        return {
            "loss": self.loss,
            "n": self.n,
            **{f"top{k}": v for k, v in self.top.items()},
            "accuracy": self.accuracy,
        }
