"""Typed entities of the provenance graph (DESIGN.md §3).

Each entity is a frozen dataclass whose fields are exactly the node's properties in
:mod:`provdb.graph.schema`; ``LABEL`` names the node label. Stores take and return these.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

E = TypeVar("E", bound="Entity")


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (the graph's timestamp format)."""
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Entity:
    """Base of every node entity: ``LABEL`` is the node label, fields are its properties."""

    LABEL: ClassVar[str] = ""

    def props(self) -> dict[str, Any]:
        """The node's properties as a dict (lists copied, nothing else converted)."""
        return asdict(self)

    @classmethod
    def from_props(cls: type[E], props: dict[str, Any]) -> E:
        """Build the entity from a node's properties, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in props.items() if k in names and v is not None})


@dataclass(frozen=True)
class Model(Entity):
    """A named series of improvement efforts (``(:Model {name})``)."""

    LABEL: ClassVar[str] = "Model"
    name: str
    created_at: str = field(default_factory=now_iso)


@dataclass(frozen=True)
class ModelVersion(Entity):
    """A model version, the paper's ``model_version(name, id, N, W, M, F)`` (a PROV Entity)."""

    LABEL: ClassVar[str] = "ModelVersion"
    id: str
    name: str
    created_at: str = field(default_factory=now_iso)
    message: str = ""
    author: str = ""
    framework: str = ""
    tags: list[str] = field(default_factory=list)
    network: str = ""


@dataclass(frozen=True)
class Snapshot(Entity):
    """A checkpoint of a version; its tensors live in the archive under ``id``."""

    LABEL: ClassVar[str] = "Snapshot"
    id: str
    iteration: int = 0
    created_at: str = field(default_factory=now_iso)
    is_latest: bool = False
    committed: bool = False


@dataclass(frozen=True)
class Layer(Entity):
    """A layer of a version's network definition; ``attrs`` is a JSON object string."""

    LABEL: ClassVar[str] = "Layer"
    id: str
    name: str
    type: str
    mode: str = ""
    ordinal: int = 0
    attrs: str = "{}"


@dataclass(frozen=True)
class Tensor(Entity):
    """A weight tensor of a snapshot; the bytes are in the archive."""

    LABEL: ClassVar[str] = "Tensor"
    id: str
    name: str
    layer: str = ""
    shape: list[int] = field(default_factory=list)
    dtype: str = ""
    digest: str = ""


@dataclass(frozen=True)
class Hyperparameter(Entity):
    """A hyper-parameter of a version or run; ``value`` is JSON, ``num`` the number if any."""

    LABEL: ClassVar[str] = "Hyperparameter"
    id: str
    name: str
    value: str = "null"
    num: float | None = None

    @classmethod
    def of(cls, owner_id: str, name: str, value: Any) -> Hyperparameter:
        """A hyper-parameter of ``owner_id`` holding ``value`` (any JSON-serialisable value)."""
        num = (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )
        return cls(id=f"{owner_id}/{name}", name=name, value=json.dumps(value), num=num)

    @property
    def parsed(self) -> Any:
        """The value decoded from JSON."""
        return json.loads(self.value)


@dataclass(frozen=True)
class Metric(Entity):
    """A metric series (``steps`` and ``values`` of equal length) with summary columns."""

    LABEL: ClassVar[str] = "Metric"
    id: str
    name: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    last: float | None = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def series(cls, owner_id: str, name: str, steps: list[int], values: list[float]) -> Metric:
        """A metric series of ``owner_id`` with ``last``/``min``/``max`` filled in."""
        finite = [v for v in values if not math.isnan(v)]
        return cls(
            id=f"{owner_id}/{name}",
            name=name,
            steps=list(steps),
            values=list(values),
            last=values[-1] if values else None,
            min=min(finite) if finite else None,
            max=max(finite) if finite else None,
        )


@dataclass(frozen=True)
class File(Entity):
    """A file associated with a version or run (script, config, data set)."""

    LABEL: ClassVar[str] = "File"
    id: str
    path: str
    digest: str = ""
    size: int = 0


@dataclass(frozen=True)
class Dataset(Entity):
    """A data set a run used."""

    LABEL: ClassVar[str] = "Dataset"
    id: str
    name: str = ""
    uri: str = ""
    digest: str = ""


@dataclass(frozen=True)
class Run(Entity):
    """A training/evaluation activity (a PROV Activity)."""

    LABEL: ClassVar[str] = "Run"
    id: str
    name: str = ""
    status: str = "RUNNING"
    started_at: str = field(default_factory=now_iso)
    ended_at: str = ""
    command: str = ""


@dataclass(frozen=True)
class Agent(Entity):
    """A person or program a run was associated with (a PROV Agent)."""

    LABEL: ClassVar[str] = "Agent"
    name: str
    kind: str = "person"


@dataclass(frozen=True)
class RepositoryMark(Entity):
    """The repository a graph database belongs to (one per database)."""

    LABEL: ClassVar[str] = "Repository"
    id: str
    root: str = ""
    created_at: str = field(default_factory=now_iso)


@dataclass(frozen=True)
class Derivation:
    """A lineage edge ``(derived)-[:DERIVED_FROM {op, query, at}]->(base)``."""

    derived: str
    base: str
    op: str
    query: str = ""
    at: str = field(default_factory=now_iso)


ENTITY_TYPES: dict[str, type[Entity]] = {
    cls.LABEL: cls
    for cls in (
        Model,
        ModelVersion,
        Snapshot,
        Layer,
        Tensor,
        Hyperparameter,
        Metric,
        File,
        Dataset,
        Run,
        Agent,
        RepositoryMark,
    )
}
