"""What travels between a repository and a hub, and how a version is rebuilt from it.

A version travels as a **manifest** (JSON: the version's properties and network,
hyper-parameters, metric series, files, each snapshot's archive bundle and chunk digests, and
its lineage) plus the **chunks** the receiver lacks. Chunks move in framed streams
(:func:`frame` / :func:`unframe`): per chunk 40 ASCII hex digits of its digest, an 8-byte
big-endian length and the stored bytes; every chunk is checked against its digest on arrival
(:func:`check_chunk`). Both sides use :func:`import_version` to turn a manifest whose chunks
have arrived into archive snapshots and one graph transaction.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provdb import versioning as vs
from provdb.entities import Derivation, ModelVersion, now_iso
from provdb.errors import InvalidInput, storage_errors
from provdb.graph import WriteBatch
from provdb.hub.names import check_digest, check_version_id
from provdb.models.network import NetworkDef, layer_of
from storage import records

if TYPE_CHECKING:
    from provdb.repository import Repository

MANIFEST_FORMAT = 1
_LEN = struct.Struct(">Q")
_HEADER = 40 + _LEN.size
#: Version properties a manifest carries (the graph node's, verbatim).
VERSION_KEYS = ("id", "name", "created_at", "message", "author", "framework", "tags", "network")
#: Properties kept for the versions of a lineage (provenance records: no weights).
RECORD_KEYS = ("id", "name", "created_at", "message", "author", "framework")


# -- chunk streams ---------------------------------------------------------------------------


def frame(chunks: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    """The framed stream of ``(digest, stored bytes)`` pairs, one piece per chunk (one write,
    one HTTP chunk each, not two)."""
    for digest, data in chunks:
        yield b"".join((digest.encode("ascii"), _LEN.pack(len(data)), data))


def unframe(body: bytes | memoryview, limit: int | None = None) -> list[tuple[str, bytes]]:
    """Parse a framed stream; malformed framing is :class:`InvalidInput`."""
    view = memoryview(body)
    out: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(view):
        if len(view) - pos < _HEADER:
            raise InvalidInput("truncated chunk stream (incomplete header)")
        try:
            digest = bytes(view[pos : pos + 40]).decode("ascii")
        except UnicodeDecodeError as exc:
            raise InvalidInput("malformed chunk stream (digest is not ASCII)") from exc
        check_digest(digest)
        (n,) = _LEN.unpack(view[pos + 40 : pos + _HEADER])
        pos += _HEADER
        if pos + n > len(view):
            raise InvalidInput(f"truncated chunk stream (chunk {digest} is cut short)")
        out.append((digest, bytes(view[pos : pos + n])))
        pos += n
        if limit is not None and len(out) > limit:
            raise InvalidInput(f"at most {limit} chunks per request")
    return out


def check_chunk(digest: str, data: bytes) -> None:
    """Refuse a chunk whose bytes do not hash to ``digest`` (nothing is stored)."""
    from storage.codecs import chunk_digest

    if chunk_digest(data) != digest:
        raise InvalidInput(f"chunk {digest}: its bytes do not match the digest; refused")


# -- manifests -------------------------------------------------------------------------------


def version_manifest(repo: Repository, ref: str) -> dict[str, Any]:
    """Everything but the chunks needed to rebuild version ``ref`` of ``repo`` elsewhere."""
    graph = repo.graph
    with graph.session():
        version = repo.resolve(ref)
        params = graph.params_of(version.id)
        metrics = repo.metrics_of(version.id)
        files = graph.files_of(version.id)
        snaps = graph.snapshots(version.id)
        lineage = graph.lineage(version.id, direction="up")
    if not snaps:
        raise InvalidInput(f"version {version.id[:12]} has no committed weights to send")
    snapshots = []
    with storage_errors(f"reading version {version.id[:12]} from the archive"):
        for s in snaps:
            snapshots.append(
                {
                    "iteration": s.iteration,
                    "is_latest": s.is_latest,
                    "bundle": records.loads(repo.archive.export_snapshot(s.id), "bundle"),
                    "chunks": repo.archive.snapshot_chunks(s.id),
                }
            )
    props = version.props()
    return {
        "format": MANIFEST_FORMAT,
        "version": {k: props[k] for k in VERSION_KEYS},
        "params": params,
        "metrics": {k: {"steps": m.steps, "values": m.values} for k, m in metrics.items()},
        "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in files],
        "snapshots": snapshots,
        "lineage": lineage_dict(lineage.versions, lineage.edges, skip=version.id),
    }


def lineage_dict(
    versions: Mapping[str, ModelVersion], edges: Iterable[Any], skip: str = ""
) -> dict[str, Any]:
    """A lineage as JSON: the ancestors' record properties and the edges."""
    return {
        "versions": {
            vid: {k: getattr(v, k) for k in RECORD_KEYS}
            for vid, v in versions.items()
            if vid != skip
        },
        "edges": [
            {"derived": e.derived, "base": e.base, "op": e.op, "query": e.query, "at": e.at}
            for e in edges
        ],
    }


def manifest_chunks(manifest: Mapping[str, Any]) -> list[str]:
    """Every chunk digest a manifest's snapshots need, each once."""
    return list(dict.fromkeys(d for s in manifest["snapshots"] for d in s["chunks"]))


@dataclass
class Parsed:
    """A manifest, checked: what :func:`import_version` writes."""

    version: ModelVersion
    network: NetworkDef
    params: dict[str, Any]
    metrics: dict[str, tuple[list[int], list[float]]]
    files: list[vs.FileRecord]
    snapshots: list[dict[str, Any]]
    records: dict[str, ModelVersion] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)


def parse_manifest(manifest: Any) -> Parsed:
    """Check a manifest's shape and values (an untrusted client's or hub's)."""
    try:
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise InvalidInput(f"a manifest must be an object with format {MANIFEST_FORMAT}")
        v = manifest["version"]
        version = ModelVersion(
            **{k: v[k] for k in VERSION_KEYS if k in v and k not in ("tags",)},
            tags=[str(t) for t in v.get("tags") or []],
        )
        check_version_id(version.id)
        vs.check_name(version.name)
        network = vs.network_of(version)
        metrics = {
            str(k): ([int(s) for s in m["steps"]], [float(x) for x in m["values"]])
            for k, m in dict(manifest.get("metrics") or {}).items()
        }
        files = [
            vs.FileRecord(str(f["path"]), str(f["digest"]), int(f["size"]))
            for f in manifest.get("files") or []
        ]
        snapshots = []
        for s in manifest["snapshots"]:
            bundle = s["bundle"]
            if not isinstance(bundle, dict) or not isinstance(bundle.get("manifest"), dict):
                raise InvalidInput("a snapshot's bundle must be an object")
            snapshots.append(
                {
                    "iteration": int(s["iteration"]),
                    "is_latest": bool(s.get("is_latest", True)),
                    "bundle": bundle,
                    "chunks": [check_digest(d) for d in s["chunks"]],
                }
            )
        if not snapshots:
            raise InvalidInput("a manifest needs at least one snapshot")
        lineage = manifest.get("lineage") or {}
        records = {}
        for vid, r in dict(lineage.get("versions") or {}).items():
            check_version_id(vid)
            props: dict[str, Any] = {k: str(r.get(k) or "") for k in RECORD_KEYS if k != "id"}
            records[vid] = ModelVersion(id=vid, **props)
        edges = []
        for e in lineage.get("edges") or []:
            edge = {k: str(e.get(k) or "") for k in ("derived", "base", "op", "query", "at")}
            check_version_id(edge["derived"])
            check_version_id(edge["base"])
            edges.append(edge)
        params = dict(manifest.get("params") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"malformed manifest ({type(exc).__name__}: {exc})") from exc
    return Parsed(version, network, params, metrics, files, snapshots, records, edges)


# -- rebuilding a version ------------------------------------------------------------------


def _snapshot_info(snapshot_id: str, bundle: Mapping[str, Any]) -> Any:
    """A :class:`storage.SnapshotInfo` of an imported bundle (for the graph's tensor nodes)."""
    from storage import SnapshotInfo, TensorInfo

    records = bundle["records"]
    tensors = {}
    for name, digest in bundle["manifest"]["tensors"].items():
        r = records.get(digest)
        if r is None:
            raise InvalidInput(f"snapshot bundle lacks the record of tensor {name!r}")
        tensors[name] = TensorInfo(
            name=name,
            digest=digest,
            shape=tuple(r["shape"]),
            dtype=r["dtype"],
            raw_bytes=int(r.get("raw", 0)),
            stored_bytes=0,
            new_bytes=0,
            base=None,
            op=None,
            scheme=r.get("scheme"),
        )
    return SnapshotInfo(snapshot_id, tensors)


def import_snapshots(repo: Repository, version_id: str, parsed: Parsed) -> list[tuple[Any, int]]:
    """Import each snapshot bundle under ``<version_id>/<iteration>`` (verified by decoding);
    every chunk must already be in the archive. Returns ``(info, iteration)`` pairs."""
    out = []
    for s in parsed.snapshots:
        sid = vs.snapshot_id(version_id, s["iteration"])
        bundle = {**s["bundle"], "snapshot": sid}
        with storage_errors(f"importing snapshot {sid}"):
            repo.archive.import_snapshot(json.dumps(bundle).encode())
        out.append((_snapshot_info(sid, bundle), s["iteration"]))
    return out


def version_batch(
    version: ModelVersion,
    parsed: Parsed,
    infos: list[tuple[Any, int]],
    *,
    model: str,
    existing: set[str],
    promote: bool = False,
) -> WriteBatch:
    """One graph transaction: ``version`` (of ``model``) with its network, snapshots, tensors,
    metadata, and its lineage; ancestors not in ``existing`` become provenance records.
    ``promote``: ``version`` exists as such a record already (it gains its weights now)."""
    owners = {
        name: layer_of(name, parsed.network.names) or ""
        for info, _ in infos
        for name in info.tensors
    }
    batch = WriteBatch().add(vs.model_of(model)).add(version, new=not promote)
    batch.relate("VERSION_OF", version, ("Model", model), new=True)
    vs.network_batch(batch, version, parsed.network)
    latest = max(it for _, it in infos)
    for info, iteration in infos:
        vs.snapshot_batch(batch, version, info, owners, iteration, is_latest=iteration == latest)
    vs.metadata_batch(batch, version, parsed.params, parsed.metrics, parsed.files, new=True)
    for vid, record in parsed.records.items():
        if vid not in existing and vid != version.id:
            batch.add(record)
    for e in parsed.edges:
        at = e["at"] or now_iso()
        batch.derive(Derivation(e["derived"], e["base"], e["op"], e["query"], at))
    return batch
