"""The facade: :class:`Repository`, the one API every shell calls.

A repository is a ``.dlv/`` folder holding its config, the parameter archive and (by default)
the embedded provenance graph. The CLI, the SDK, the hub server and the dashboard are thin
shells over this class: each operation is one method returning a typed result
(:mod:`provdb.results`) with ``to_dict()``, and every failure is a
:class:`~provdb.errors.ProvDBError`.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provdb import versioning as vs
from provdb.entities import ModelVersion, RepositoryMark, now_iso
from provdb.errors import (
    AlreadyExists,
    Conflict,
    CorruptData,
    InvalidInput,
    NotFound,
    from_storage,
    storage_errors,
)
from provdb.graph import GraphStore, WriteBatch, is_server_uri, open_store
from provdb.locks import write_guard
from provdb.lossy import check_scheme, schemes_for
from provdb.models.network import NetworkDef
from provdb.results import (
    CommitResult,
    Description,
    Diff,
    EvalResult,
    GCResult,
    Lineage,
    Parent,
    PlaneBytes,
    ReplanResult,
    RepoInfo,
    SnapshotCost,
    Stats,
    VersionRow,
    VersionStorage,
)

if TYPE_CHECKING:
    import numpy as np

    from provdb.entities import Metric
    from provdb.models.progressive import ProgressiveResult
    from provdb.prov_export import ProvExport
    from provdb.provenance import Reuse, Segment, Summary
    from provdb.query import QueryResult
    from storage import Archive, SnapshotInfo

DLV_DIR = ".dlv"
CONFIG_FILE = "config.json"
FORMAT = 1
#: The embedded graph's database file inside ``.dlv/``.
EMBEDDED_GRAPH = "graph.lbdb"
ARCHIVE_DIR = "archive"


class Repository:
    """A model repository rooted at ``root`` (the folder that holds ``.dlv/``)."""

    def __init__(self, root: Path, config: dict[str, Any], *, read_only: bool = False) -> None:
        self.root = root
        self.config = config
        #: Open the embedded graph read-only (a viewer beside a training job); writes fail.
        self.read_only = read_only
        self._graph: GraphStore | None = None
        self._archive: Archive | None = None

    # -- creation and discovery -------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        graph: str | None = None,
        archive: str | None = None,
    ) -> Repository:
        """Create a repository at ``path``; ``graph`` is a Neo4j URI (default: embedded),
        ``archive`` an ``s3://BUCKET/PREFIX?endpoint=URL`` for the weights (default: LMDB
        inside ``.dlv/``; credentials from the AWS variables)."""
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
            "archive": _archive_setting(archive),
        }
        repo = cls(root, config)
        if archive is not None:
            repo._claim_archive()  # fail before writing anything if the bucket is unusable
        repo.graph.setup()  # fail before writing anything if the graph is unreachable
        repo._claim_graph(new=True)
        if archive is None:
            (dlv / ARCHIVE_DIR).mkdir(parents=True, exist_ok=True)
        _write_json(dlv / CONFIG_FILE, config)
        return repo

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, read_only: bool = False
    ) -> Repository:
        """Open the repository at ``path`` or the nearest one above it (default: cwd);
        ``read_only`` never takes the embedded graph's write lock (writes then fail)."""
        start = Path(path or os.environ.get("DLV_REPO") or ".").resolve()
        for folder in (start, *start.parents):
            config_path = folder / DLV_DIR / CONFIG_FILE
            if config_path.is_file():
                return cls(folder, _read_config(config_path), read_only=read_only)
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
    def archive_location(self) -> str | Path:
        """Where the parameter archive lives: its ``s3://`` URL, or its LMDB folder."""
        from storage import is_s3_url

        setting = str(self.config.get("archive", ARCHIVE_DIR))
        return setting if is_s3_url(setting) else self.dlv_dir / setting

    @property
    def archive_path(self) -> Path:
        """The parameter archive's folder (LMDB archives only; see :attr:`archive_location`)."""
        location = self.archive_location
        if not isinstance(location, Path):
            raise InvalidInput(f"this repository's archive is not a folder but {location}")
        return location

    @property
    def graph(self) -> GraphStore:
        """The provenance graph (opened on first use)."""
        if self._graph is None:
            self._graph = open_store(self.graph_uri, read_only=self.read_only)
            if self.backend == "neo4j" and (self.dlv_dir / CONFIG_FILE).exists():
                self._claim_graph(new=False)
        return self._graph

    def _claim_graph(self, *, new: bool) -> None:
        """A Neo4j database holds one repository: refuse one that belongs to another (it would
        list that repository's versions and fail on checkout, its weights being elsewhere).
        An embedded graph lives inside ``.dlv/`` and is never shared."""
        if self.backend != "neo4j":
            return
        assert self._graph is not None
        marks = self._graph.get_many(RepositoryMark, self._graph.repository_ids())
        mine = self.config["id"]
        others = [m for m in marks if m.id != mine]
        if others:
            raise Conflict(
                f"the Neo4j database {self.graph_uri} belongs to another dlv repository "
                f"({others[0].id[:12]} at {others[0].root or '?'}); give each repository a "
                "database of its own (bolt://host:7687/DATABASE)"
            )
        if marks:
            return
        if new and self._graph.count("ModelVersion"):
            raise Conflict(
                f"the Neo4j database {self.graph_uri} already holds model versions of another "
                "repository; give this one a database of its own"
            )
        # a new repository, or one made before databases were claimed: claim it now
        self._graph.put(RepositoryMark(id=mine, root=str(self.root)))

    @property
    def archive(self) -> Archive:
        """The parameter archive (LMDB or S3; opened on first use, shared within the process)."""
        if self._archive is None:
            self._archive = _ARCHIVES.acquire(self.archive_location)
        return self._archive

    def _claim_archive(self) -> None:
        """An S3 prefix holds one repository's archive: refuse one that already has snapshots
        (its weights would be gc'd as unreferenced by this repository's graph)."""
        with storage_errors(f"cannot use the archive {self.archive_location}"):
            taken = self.archive.list_snapshots()
        if taken:
            raise Conflict(
                f"{self.archive_location} already holds an archive ({len(taken)} snapshots); "
                "give each repository a prefix of its own"
            )

    def close(self) -> None:
        """Close the graph store and the archive."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        if self._archive is not None:
            _ARCHIVES.release(self.archive_location)
            self._archive = None

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------

    def list_versions(self, name: str | None = None, limit: int | None = None) -> list[VersionRow]:
        """Versions newest first, each with its parents and the run that generated it (the
        runs of all listed versions in one read); ``name`` is a glob."""
        with self.graph.session():
            versions = self.graph.versions(name=name, limit=limit)
            ids = [v.id for v in versions]
            edges = self.graph.parents(ids) if versions else []
            runs = self.graph.runs_of(ids)
        parents: dict[str, list[Parent]] = {}
        for edge in edges:
            parents.setdefault(edge.derived, []).append(Parent(edge.base, edge.op))
        return [
            VersionRow(
                v.id,
                v.name,
                v.created_at,
                v.message,
                v.author,
                parents.get(v.id, []),
                runs.get(v.id),
            )
            for v in versions
        ]

    def info(self) -> RepoInfo:
        """Where the repository's parts live and how much it holds."""
        with self.graph.session():
            versions, models = self.graph.count("ModelVersion"), self.graph.count("Model")
        return RepoInfo(
            root=str(self.root),
            id=self.config["id"],
            backend=self.backend,
            graph=self.graph_uri,
            archive=str(self.archive_location),
            versions=versions,
            models=models,
        )

    def resolve(self, ref: str) -> ModelVersion:
        """A version by exact id, exact name (its newest version) or unique id prefix (≥ 4
        characters), in that order; an ambiguous prefix lists the candidates."""
        return vs.resolve(self.graph, ref)

    def network(self, ref: str) -> NetworkDef:
        """A version's network definition."""
        return vs.network_of(self.resolve(ref))

    def weights(self, ref: str, *, planes: int | None = None) -> dict[str, np.ndarray]:
        """A version's weights from its latest snapshot (bit-exact unless ``planes``)."""
        with self.graph.session():
            version = self.resolve(ref)
            snap = vs.latest_snapshot(self.graph, version.id)
        with storage_errors(f"version {version.id[:12]}"):
            return self.archive.read_snapshot(snap.id, planes=planes)

    def metrics_of(self, owner_id: str, label: str = "ModelVersion") -> dict[str, Metric]:
        """The whole metric series of a version (or a run, ``label="Run"``): the summary and
        inline points from the graph, the SDK's appended blocks from the archive."""
        from provdb.metrics import with_blocks

        metrics = self.graph.metrics_of(owner_id, label)
        with storage_errors(f"metrics of {owner_id[:12]}"):
            return with_blocks(self.archive, metrics)

    def describe(self, ref: str) -> Description:
        """Everything about one version: network, hyper-parameters, metrics, files,
        snapshots with their storage, parents and children."""
        from provdb import compare

        return compare.describe(self, ref)

    def snapshot_planes(self, snapshot_id: str) -> list[PlaneBytes]:
        """Raw and stored bytes per byte plane of one snapshot's own tensors (``dlv desc``
        lists snapshot ids)."""
        with storage_errors(f"snapshot {snapshot_id}"):
            planes = self.archive.snapshot_planes(snapshot_id)
        return [PlaneBytes(p, raw, stored) for p, (raw, stored) in enumerate(planes)]

    def diff(self, refs: list[str], only_differences: bool = False) -> Diff:
        """Versions compared against the first: layers, edges, hyper-parameters, final
        metrics and per-tensor weight change (relative L2)."""
        from provdb import compare

        if len(refs) < 2:
            raise InvalidInput("diff needs at least two versions")
        return compare.diff(self, refs, only_differences)

    def lineage(self, ref: str, depth: int | None = None, direction: str = "up") -> Lineage:
        """Ancestors (``up``), descendants (``down``) or both of a version; ``.tree()``."""
        return self.graph.lineage(self.resolve(ref).id, depth=depth, direction=direction)

    # -- provenance: segmentation, summarization, reuse, PROV export (docs/provenance.md) --

    def segment(
        self,
        sources: list[str],
        destinations: list[str],
        exclude: list[str] | tuple[str, ...] = (),
        hops: int = 0,
    ) -> Segment:
        """PgSeg: the versions, runs, snapshots, data sets, files and agents through which the
        ``destinations`` derive from the ``sources`` (balanced semantics); ``exclude``: vertex
        kinds, edge kinds or ``KEY=VALUE``; ``hops``: rings of context to add."""
        from provdb import provenance

        boundary = provenance.Boundary.parse(exclude, hops)
        with self.graph.session():
            src = [self.resolve(r).id for r in sources]
            dst = [self.resolve(r).id for r in destinations]
            return provenance.segment(self.graph, src, dst, boundary)

    def roots(self, ref: str) -> list[str]:
        """The ids of the versions ``ref`` derives from that derive from nothing (itself if
        it has no parents)."""
        lin = self.lineage(ref, direction="up")
        derived = {e.derived for e in lin.edges}
        return sorted(v for v in lin.versions if v not in derived)

    def summarize(
        self,
        pairs: list[tuple[str, str]] | None = None,
        query: str | None = None,
        aggregation: tuple[str, ...] | list[str] | None = None,
        k: int = 1,
        exclude: list[str] | tuple[str, ...] = (),
    ) -> Summary:
        """PgSum over segments given by ``(source, destination)`` pairs, or by a DQL select
        (each selected version back to its roots); see :func:`provdb.provenance.summarize`."""
        from provdb import provenance

        jobs = list(pairs or [])
        if query:
            result = self.query(query)
            if result.kind != "select":
                raise InvalidInput("summarize takes a DQL select, not a " + result.kind)
            for row in result.rows:
                jobs += [(root, str(row["id"])) for root in self.roots(str(row["id"]))]
        if not jobs:
            raise InvalidInput("nothing to summarize: give --from/--to pairs or a select")
        segments = [self.segment([a], [b], exclude) for a, b in jobs]
        agg = tuple(aggregation) if aggregation else provenance.DEFAULT_AGGREGATION
        return provenance.summarize(segments, agg, k)

    def uses(self, ref: str) -> Reuse:
        """Every later version whose latest weights reuse tensors of ``ref``'s latest snapshot
        bit for bit (same content digest), and the bytes each shares."""
        from provdb import provenance

        with self.graph.session():
            version = self.resolve(ref)
            snap = vs.latest_snapshot(self.graph, version.id)
            own = self.graph.tensors_of(snap.id)
            rows = self.graph.shared_tensors(snap.id)
        total = sum(provenance.tensor_bytes(t.shape, t.dtype) for t in own)
        return provenance.reuse(rows, version.id, version.name, version.created_at, snap.id, total)

    def derivatives(self, ref: str) -> Lineage:
        """Every version derived from ``ref`` at any depth (the dialect's bound), with the op
        of each derivation; ``.tree()`` draws them."""
        return self.lineage(ref, depth=None, direction="down")

    def prov(self, ref: str, fmt: str = "json") -> ProvExport:
        """``ref``'s provenance back to its roots as W3C PROV (``json``, ``provn``, ``xml``)."""
        from provdb.prov_export import export

        version = self.resolve(ref)
        seg = self.segment(self.roots(version.id), [version.id])
        return export(seg, version.id, fmt)

    def query(self, text: str, *, dry_run: bool = False, limit: int | None = None) -> QueryResult:
        """Compile and run one DQL statement (``select``, ``slice``, ``construct``,
        ``evaluate``); ``dry_run`` commits nothing; ``limit``: a select returns its first
        ``limit`` rows only (``result.total`` counts them all)."""
        from provdb.query import execute

        return execute(self, text, dry_run=dry_run, limit=limit)

    def save_query(self, name: str, text: str) -> None:
        """Save a DQL statement under ``name`` (after checking that it compiles)."""
        from provdb.query import save_query

        save_query(self, name, text)

    def saved_queries(self) -> dict[str, str]:
        """The saved DQL statements, ``{name: text}``."""
        from provdb.query import saved_queries

        return saved_queries(self)

    # -- writing ----------------------------------------------------------------------------

    def writing(self) -> AbstractContextManager[None]:
        """Hold the repository's shared write lock: what is written to the archive inside the
        block cannot be collected by a concurrent ``gc`` before the graph names it."""
        return write_guard(self.dlv_dir, exclusive=False)

    def write_snapshot(
        self,
        snapshot_id: str,
        tensors: dict[str, np.ndarray],
        bases: list[str],
        *,
        series: bool = False,
        float_scheme: str | None = None,
    ) -> SnapshotInfo:
        """Write a snapshot's tensors to the archive (call inside :meth:`writing`).

        ``bases`` are delta bases: with ``series`` the previous checkpoint of the same version
        (re-encoded as a reverse delta against this one), else a parent version's snapshot
        (this one becomes a forward delta against it; the parent's bytes stay as they are).
        ``float_scheme`` stores float tensors lossily (:mod:`provdb.lossy`; default lossless).
        """
        scheme = schemes_for(tensors, float_scheme)
        with storage_errors(f"snapshot {snapshot_id}"):
            return self.archive.write_snapshot(
                snapshot_id, tensors, bases=bases, series=series, scheme=scheme
            )

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
        float_scheme: str | None = None,
    ) -> CommitResult:
        """Commit a new version: weights to the archive, then one graph transaction.

        ``parent`` (a version reference) records ``DERIVED_FROM {op}`` and offers the parent's
        weights as delta bases, so unchanged layers cost no new bytes. ``float_scheme``
        (``fp16``, ``bf16``, ``fixed16``, ``q8``; default lossless) stores float tensors
        approximately, recorded per tensor in the archive.
        """
        vs.check_name(name)
        check_scheme(float_scheme)
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
        batch = WriteBatch()
        vs.version_batch(batch, version, network, base_id=base.id if base else None, op=op,
                         query=query)  # fmt: skip
        vs.metadata_batch(batch, version, params, metrics, files or [], new=True)
        with self.writing():
            info = self.write_snapshot(
                vs.snapshot_id(version.id, iteration), tensors, bases, float_scheme=float_scheme
            )
            vs.snapshot_batch(batch, version, info, owners, iteration)
            self.graph.write(batch)
        return CommitResult(version, info.snapshot_id, info.raw_bytes, info.new_bytes)

    def copy(self, ref: str, name: str, message: str = "") -> CommitResult:
        """A new version with the same network and weights (no new weight bytes)."""
        with self.graph.session():
            source = self.resolve(ref)
            weights = self.weights(source.id)
            params = self.graph.params_of(source.id)
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
    ) -> CommitResult:
        """Commit a model file (``.onnx``, ``.safetensors``, PyTorch checkpoint) and the staged
        files. Weights-only files take their network from ``network`` or the parent; with no
        file, the parent's weights are committed again (a metadata-only version). Weights
        committed on the parent's network must match the parent's tensors (names, shapes,
        dtypes)."""
        from provdb.models.files import read_model_file

        base = self.resolve(parent) if parent else None
        if path is None:
            if base is None:
                raise InvalidInput("give a model file, or --parent to commit the parent's weights")
            net, tensors, framework = network, self.weights(base.id), base.framework
        else:
            found = read_model_file(path)
            net, tensors, framework = found
            net = net or network
            if net is None and base is None:  # a plain weights file: infer its network
                net = found.infer_network()
            elif net is not None and found.metadata:
                net = net.replace(meta={**net.meta, "safetensors": {"metadata": found.metadata}})
        if net is None:
            assert base is not None
            from provdb.models.weights import map_state_dict

            net = vs.network_of(base)
            tensors, how = map_state_dict(net, tensors, reference=self.weights(base.id))
            self._check_like_parent(base, tensors)
            if how != "names":
                kwargs["message"] = kwargs.get("message") or f"tensor names mapped by {how}"
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

    def _check_like_parent(self, base: ModelVersion, tensors: dict[str, np.ndarray]) -> None:
        """Refuse weights that do not fit the parent's network: every tensor of the parent's
        latest snapshot present with the same shape and dtype, and nothing else."""
        with self.graph.session():
            snap = vs.latest_snapshot(self.graph, base.id)
            expected = {t.name: t for t in self.graph.tensors_of(snap.id)}
        vs.check_like(expected, tensors, f"{base.name} ({base.id[:12]})")

    def checkout(self, ref: str, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write a version's weights to ``.safetensors`` (bit-exact) or ``.onnx``; an
        existing file is replaced only with ``force``."""
        from provdb.models.files import write_model_file

        target = Path(path)
        if target.exists() and not force:
            raise AlreadyExists(f"{target} exists; give --force to overwrite it")
        if not target.parent.is_dir():
            raise InvalidInput(f"cannot write {target}: folder {target.parent} does not exist")
        version = self.resolve(ref)
        return write_model_file(target, vs.network_of(version), self.weights(version.id))

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

    def unstage(self, paths: list[str | os.PathLike[str]] | None = None) -> list[vs.FileRecord]:
        """Take files off the staged list (all of them when ``paths`` is ``None``); returns
        the records removed. A path that is not staged is an error and changes nothing."""
        staged = self.staged()
        if paths is None:
            self.clear_staged()
            return staged
        wanted = {Path(p).resolve(): str(p) for p in paths}
        removed = [r for r in staged if Path(r.path).resolve() in wanted]
        missing = set(wanted) - {Path(r.path).resolve() for r in removed}
        if missing:
            names = ", ".join(sorted(wanted[m] for m in missing))
            raise InvalidInput(f"not staged: {names} (dlv add stages files)")
        kept = [r for r in staged if r not in removed]
        _write_json(self._staged_path, [r.__dict__ for r in kept])
        return removed

    def clear_staged(self) -> None:
        """Forget the staged files."""
        self._staged_path.unlink(missing_ok=True)

    # -- storage --------------------------------------------------------------------------

    def stats(self) -> Stats:
        """Raw vs stored bytes: total, per byte plane, and per version (the bytes each added
        and how its floats are stored), and the archive's and the graph's bytes on disk."""
        from provdb.lossy import scheme_label, summarise
        from storage import disk_bytes

        with storage_errors():
            st = self.archive.stats()
            unique = self.archive.unique_bytes()
            manifests = {sid: self.archive.manifest(sid) for sid in st.per_snapshot}
        per_version: dict[str, list[Any]] = {}
        labels: dict[str, dict[str, str]] = {}
        costs = []
        for vid, name, snapshot in self.graph.committed_snapshots():
            sizes = st.per_snapshot.get(snapshot, {})
            row = per_version.setdefault(vid, [name, 0, 0, 0])
            row[1] += 1
            row[2] += sizes.get("raw", 0)
            row[3] += unique.get(snapshot, 0)
            depth, read = sizes.get("chain_depth", 0), sizes.get("read_bytes", 0)
            costs.append(SnapshotCost(snapshot, vid, depth, read))
            for tensor, digest in manifests.get(snapshot, {}).get("tensors", {}).items():
                record = st.per_tensor.get(digest, {})
                labels.setdefault(vid, {})[f"{snapshot}/{tensor}"] = scheme_label(
                    record.get("scheme")
                )
        return Stats(
            raw_bytes=st.raw_bytes,
            unique_raw_bytes=st.unique_raw_bytes,
            stored_bytes=st.stored_bytes,
            ratio=st.ratio,
            per_plane=list(st.per_plane),
            snapshots=st.n_snapshots,
            tensors=st.n_tensors,
            chunks=st.n_chunks,
            versions=[
                VersionStorage(vid, name, n, raw, unique, summarise(labels.get(vid, {})))
                for vid, (name, n, raw, unique) in per_version.items()
            ],
            per_snapshot=costs,
            chunk_bytes=st.chunk_bytes,
            archive_disk_bytes=(
                disk_bytes(self.archive_path / "data.mdb")
                if isinstance(self.archive_location, Path)
                else None
            ),
            graph_disk_bytes=self.graph_disk_bytes(),
        )

    def graph_disk_bytes(self) -> int | None:
        """Bytes the embedded graph's files (database and write-ahead log) occupy on disk;
        ``None`` for a Neo4j server (its store is not ours to measure)."""
        from storage import disk_bytes

        if self.backend != "ladybug":
            return None
        path = Path(self.graph_uri)
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        wal = path.with_name(path.name + ".wal")
        return sum(disk_bytes(p) for p in [*files, wal])

    def float_schemes(self, ref: str) -> dict[str, str]:
        """How each tensor of a version's latest snapshot is stored: ``lossless`` or the
        float scheme's name (``fp16``, ``bf16``, ``fixed16``, ``q8``)."""
        from provdb.lossy import scheme_label

        with self.graph.session():
            version = self.resolve(ref)
            snap = vs.latest_snapshot(self.graph, version.id)
        with storage_errors(f"version {version.id[:12]}"):
            tensors = self.archive.manifest(snap.id)["tensors"]
            return {
                name: scheme_label(self.archive.tensor_record(digest).scheme)
                for name, digest in tensors.items()
            }

    def replan(
        self, alpha: float, algorithm: str = "pas-mt", scheme: str = "independent"
    ) -> ReplanResult:
        """Re-optimise the archive under recreation budgets θ_i = α · C_r(SPT, s_i)."""
        with (
            write_guard(self.dlv_dir, exclusive=True),
            storage_errors("archive re-plan failed"),
        ):
            result = self.archive.replan(algorithm, alpha=alpha, scheme=scheme)
            stored = self.archive.stats().stored_bytes
        return ReplanResult(
            algorithm=algorithm,
            alpha=alpha,
            scheme=scheme,
            planned_storage_before=result.storage_before,
            planned_storage_after=result.result.storage,
            budget_violations=list(result.result.violations),
            rewritten=result.rewritten,
            gc=GCResult(**result.gc.__dict__),
            stats={"stored_bytes": stored},
        )

    def evaluate(self, ref: str, data: str, top_k: tuple[int, ...] = (1, 5)) -> EvalResult:
        """Accuracy/top-k/loss of a version on a data set (``builtin:digits`` or an ``.npz``
        with ``x_test``/``y_test``)."""
        from provdb.models import learner

        version = self.resolve(ref)
        dataset = learner.load_dataset(data, test_only=True)
        out = learner.evaluate(
            vs.network_of(version), self.weights(version.id), dataset, top_k=top_k
        )
        return EvalResult(
            n=int(out["n"]),
            loss=out["loss"],
            accuracy=out["accuracy"],
            top={k: out[f"top{k}"] for k in top_k},
        )

    def evaluate_progressive(self, ref: str, data: str, top: int = 1) -> ProgressiveResult:
        """Top-``top`` predictions read plane by plane: each input is answered from the
        fewest high-order byte planes whose interval forward pass certifies its answer (the
        answers equal the full-precision ones); see :mod:`provdb.models.progressive`."""
        from provdb.models import learner, progressive

        if top < 1:
            raise InvalidInput(f"--top must be at least 1, not {top}")
        dataset = learner.load_dataset(data, test_only=True)
        with self.graph.session():
            return progressive.evaluate_version(self, ref, dataset.x_test, top_k=top)

    def gc(self, *, compact: bool = False) -> GCResult:
        """Drop archive snapshots no committed graph snapshot names, then unreferenced
        chunks. Waits for in-flight commits (their weights are never collected). On S3 the
        objects of dropped chunks are deleted once they are an hour old (``S3Store.sweep``). With
        ``compact`` the archive's file and the embedded graph are then rewritten without
        their free pages (neither shrinks otherwise), under the same exclusive lock."""
        archive: tuple[int | None, int | None] = (None, None)
        graph: tuple[int | None, int | None] = (None, None)
        with write_guard(self.dlv_dir, exclusive=True), storage_errors():
            result = self.archive.gc(self.graph.live_snapshot_ids())
            sweep = getattr(self.archive.store, "sweep", None)
            if sweep is not None:
                sweep()
            if compact:
                archive = self.archive.compact()
            if compact and self.backend == "ladybug":
                from provdb.graph.compact import compact_embedded

                self.graph.close()
                graph = compact_embedded(Path(self.graph_uri))
        return GCResult(**result.__dict__, archive_bytes_before=archive[0],
                        archive_bytes_after=archive[1], graph_bytes_before=graph[0],
                        graph_bytes_after=graph[1])  # fmt: skip


class _ArchiveRegistry:
    """One open :class:`storage.Archive` per archive folder (or S3 URL) and process.

    LMDB allows a single environment per file in a process, so every :class:`Repository` on
    the same folder shares one, closed when the last of them closes. Keyed by pid as well: an
    environment must never be used across ``fork()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[int, str | Path], list[Any]] = {}

    def acquire(self, path: str | Path) -> Archive:
        from storage import Archive, StorageError

        key = _registry_key(path)
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                try:
                    entry = self._open[key] = [Archive.open(path), 0]
                except StorageError as exc:
                    raise from_storage(exc, f"cannot open the archive {path}") from exc
            entry[1] += 1
            return entry[0]

    def release(self, path: str | Path) -> None:
        key = _registry_key(path)
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del self._open[key]
                entry[0].close()


_ARCHIVES = _ArchiveRegistry()


def _registry_key(location: str | Path) -> tuple[int, str | Path]:
    return (os.getpid(), location if isinstance(location, str) else location.resolve())


def _archive_setting(archive: str | None) -> str:
    """The config's ``archive`` entry: the folder inside ``.dlv/``, or a checked S3 URL."""
    if archive is None:
        return ARCHIVE_DIR
    from storage import StorageError, parse_url

    try:
        return parse_url(archive).url()
    except StorageError as exc:
        raise InvalidInput(str(exc)) from exc


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
