"""Model versions: commit (N, W, M, F + lineage), read back, describe and compare.

A commit is crash-safe in the order DESIGN.md §4 gives: the weights go to the archive first
(content-addressed, idempotent), then one graph transaction writes the version, its network,
snapshot, tensors, hyper-parameters, metrics, files and lineage with ``committed = true``. A
crash in between leaves only archive snapshots no graph node names, which ``dlv gc`` removes.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provdb.entities import (
    Derivation,
    File,
    Hyperparameter,
    Layer,
    Metric,
    Model,
    ModelVersion,
    Snapshot,
    Tensor,
    now_iso,
)
from provdb.errors import InvalidInput, NotFound
from provdb.graph import GraphStore, WriteBatch
from provdb.models.network import NetworkDef, layer_of

if TYPE_CHECKING:
    import numpy as np

    from storage import SnapshotInfo

#: Names users give versions: printable, no control characters, at most this long.
MAX_NAME = 200
#: Longer references cannot name anything (ids are 32 characters, names ≤ MAX_NAME).
MAX_REF = MAX_NAME
#: How many candidates an ambiguous id prefix lists.
MAX_CANDIDATES = 5


@dataclass(frozen=True)
class FileRecord:
    """A file attached to a version (by content digest; the file itself stays where it is)."""

    path: str
    digest: str
    size: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileRecord:
        """Digest a file on disk (SHA-256)."""
        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"not a file: {p}")
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return cls(str(p), h.hexdigest(), p.stat().st_size)

    def entity(self) -> File:
        """The graph node (one per path and content)."""
        key = hashlib.sha256(f"{self.path}\0{self.digest}".encode()).hexdigest()[:32]
        return File(id=key, path=self.path, digest=self.digest, size=self.size)


def check_name(name: str) -> str:
    """A version/model name, validated (any text but control characters, ≤ 200 chars)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a version name must be a non-empty string")
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"invalid version name {name[:40]!r}: control characters or too long")
    return name


def new_version_id() -> str:
    """A fresh version id (32 hex digits; commands accept any unique prefix)."""
    return uuid.uuid4().hex


def snapshot_id(version_id: str, iteration: int) -> str:
    """The archive key of a version's snapshot at ``iteration``."""
    return f"{version_id}/{int(iteration)}"


def check_tensors(network: NetworkDef, tensors: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Map every tensor to its layer; refuse tensors that belong to no layer."""
    import numpy as np  # here: commands that only read the graph never load numpy

    owners = {}
    for name, value in tensors.items():
        if not isinstance(value, np.ndarray):
            raise InvalidInput(f"tensor {name!r} is a {type(value).__name__}, not a numpy array")
        owner = layer_of(name, network.names)
        if owner is None:
            raise InvalidInput(
                f"tensor {name!r} belongs to no layer of the network "
                f"(expected '<layer>.<param>' with a layer among {network.names[:8]}…)"
            )
        owners[name] = owner
    return owners


def check_like(
    expected: Mapping[str, Tensor], tensors: Mapping[str, np.ndarray], what: str
) -> None:
    """Refuse ``tensors`` unless they are exactly ``expected``'s names, shapes and dtypes
    (weights committed on a parent's network must fit it)."""
    if not tensors:
        raise InvalidInput(f"the weights file holds no tensors (the network of {what} has "
                           f"{len(expected)})")  # fmt: skip
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        raise InvalidInput(
            f"tensor {missing[0]!r} of {what} is missing"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if extra:
        raise InvalidInput(
            f"tensor {extra[0]!r} is not in the network of {what}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    from storage.codecs import dtype_from_name

    for name, want in expected.items():
        got = tensors[name]
        dtype = dtype_from_name(want.dtype) if want.dtype else got.dtype
        if list(got.shape) != list(want.shape) or got.dtype != dtype:
            raise InvalidInput(
                f"tensor {name!r}: expected shape {list(want.shape)} {dtype}, "
                f"got {list(got.shape)} {got.dtype}"
            )


def version_batch(
    batch: WriteBatch,
    version: ModelVersion,
    network: NetworkDef,
    *,
    base_id: str | None = None,
    op: str = "commit",
    query: str = "",
    run: Any | None = None,
) -> None:
    """Add a new version with its model, network, lineage edge to ``base_id`` and the run
    that generated it to ``batch`` — the one write path of commits and SDK runs."""
    batch.add(model_of(version.name)).add(version, new=True)
    batch.relate("VERSION_OF", version, ("Model", version.name), new=True)
    if run is not None:
        batch.relate("WAS_GENERATED_BY", version, run, new=True)
    network_batch(batch, version, network)
    if base_id is not None:
        batch.derive(derivation(version.id, base_id, op, query), new=True)


def network_batch(batch: WriteBatch, version: ModelVersion, network: NetworkDef) -> None:
    """Add the version's layers (``HAS_LAYER``) and their edges (``NEXT``) to ``batch``."""
    layers = {
        layer.name: Layer(
            id=f"{version.id}/{layer.name}",
            name=layer.name,
            type=layer.type,
            mode=layer.mode,
            ordinal=i,
            attrs=json.dumps(layer.attrs, sort_keys=True),
        )
        for i, layer in enumerate(network.layers)
    }
    batch.add(*layers.values(), new=True)
    for layer in layers.values():
        batch.relate("HAS_LAYER", version, layer, new=True)
    for src, dst in dict.fromkeys(network.edges):
        batch.relate("NEXT", layers[src], layers[dst], new=True)


def snapshot_batch(
    batch: WriteBatch,
    version: ModelVersion,
    info: SnapshotInfo,
    owners: Mapping[str, str],
    iteration: int,
    *,
    is_latest: bool = True,
) -> Snapshot:
    """Add a committed snapshot of ``version`` and its tensors to ``batch``."""
    snap = Snapshot(
        id=info.snapshot_id, iteration=int(iteration), is_latest=is_latest, committed=True
    )
    batch.add(snap, new=True).relate("SNAPSHOT_OF", snap, version, new=True)
    for name, t in info.tensors.items():
        tensor = Tensor(
            id=f"{snap.id}/{name}",
            name=name,
            layer=owners.get(name, ""),
            shape=list(t.shape),
            dtype=t.dtype,
            digest=t.digest,
        )
        batch.add(tensor, new=True).relate("HAS_TENSOR", snap, tensor, new=True)
    return snap


def metadata_batch(
    batch: WriteBatch,
    owner: ModelVersion | Any,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
    files: Sequence[FileRecord] = (),
    *,
    new: bool = False,
) -> None:
    """Add hyper-parameters, metric series and files of ``owner`` (a version or run);
    ``new``: the owner was just created, so none of these exist yet."""
    for key, value in (params or {}).items():
        hp = Hyperparameter.of(owner.id, str(key), value)
        batch.add(hp, new=new).relate("HAS_PARAM", owner, hp, new=new)
    for key, (steps, values) in (metrics or {}).items():
        metric = Metric.series(owner.id, str(key), list(steps), [float(v) for v in values])
        batch.add(metric, new=new).relate("HAS_METRIC", owner, metric, new=new)
    for record in files:
        node = record.entity()
        batch.add(node).relate("HAS_FILE", owner, node, new=new)


def default_author() -> str:
    """``$DLV_AUTHOR``, else the login name."""
    try:
        return os.environ.get("DLV_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):
        return ""


# -- reading ---------------------------------------------------------------------------------


def resolve(graph: GraphStore, ref: str) -> ModelVersion:
    """A version by reference, in a precedence that cannot change under a user's feet:

    1. an exact version id;
    2. an exact version name (its newest version) — so a name is never shadowed by ids that
       happen to start with it;
    3. a unique id prefix of at least 4 characters; an ambiguous prefix is an error that
       lists the candidates.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput("empty version reference")
    shown = ref if len(ref) <= 60 else ref[:57] + "..."
    if len(ref) > MAX_REF:
        raise NotFound(f"no version {shown!r} (longer than any id or name)")
    exact = graph.get(ModelVersion, ref)
    if exact is not None:
        return exact
    named = graph.newest_named(ref)
    if named is not None:
        return named
    if len(ref) >= 4:
        found = graph.versions_with_prefix(ref, limit=MAX_CANDIDATES + 1)
        if len(found) == 1:
            return found[0]
        if found:
            listed = ", ".join(f"{v.id[:12]} ({v.name})" for v in found[:MAX_CANDIDATES])
            more = "…" if len(found) > MAX_CANDIDATES else ""
            raise InvalidInput(
                f"version prefix {shown!r} is ambiguous: {listed}{more}; give more characters",
                candidates=[v.id for v in found[:MAX_CANDIDATES]],
            )
    raise NotFound(f"no version {shown!r} (not an id, a version name or an id prefix)")


def latest_snapshot(graph: GraphStore, version_id: str) -> Snapshot:
    """The snapshot a version's weights are read from (``is_latest``, else the last one)."""
    snaps = graph.snapshots(version_id)
    if not snaps:
        raise NotFound(f"version {version_id[:12]} has no committed weights")
    latest = [s for s in snaps if s.is_latest]
    return latest[-1] if latest else snaps[-1]


def network_of(version: ModelVersion) -> NetworkDef:
    """The version's network definition."""
    if not version.network:
        raise NotFound(f"version {version.id[:12]} has no network definition")
    return NetworkDef.from_json(version.network)


def derivation(derived: str, base: str, op: str, query: str = "") -> Derivation:
    """A lineage edge stamped now."""
    return Derivation(derived, base, op=op, query=query, at=now_iso())


def model_of(name: str) -> Model:
    """The model a version of ``name`` belongs to."""
    return Model(name=check_name(name))
