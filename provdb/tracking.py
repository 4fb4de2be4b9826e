"""The SDK a training script calls: ``with provdb.start_run(...) as run:``.

A run is a PROV activity: ``(:Run)`` associated with the agent who started it, ``USED`` the
data sets and the parent version, and generating one model version whose snapshots are the
checkpoints it logs. Parameters and metrics are buffered and written in batches (at every
checkpoint, every ``flush_every`` metric points, at commit and at exit). If the block raises,
the run is marked ``FAILED`` and everything logged so far is kept.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from provdb import versioning as vs
from provdb.entities import Agent, Dataset, ModelVersion, Run, Snapshot, now_iso
from provdb.errors import InvalidInput
from provdb.graph import WriteBatch
from provdb.models._common import as_numpy
from provdb.models.network import NetworkDef
from provdb.repository import Repository

FLUSH_EVERY = 1000


class ActiveRun:
    """A training run being recorded; use :func:`start_run` to make one."""

    def __init__(
        self,
        repo: Repository,
        name: str,
        parent: str | None = None,
        network: NetworkDef | None = None,
        flush_every: int = FLUSH_EVERY,
        own_repo: bool = False,
    ) -> None:
        self.repo = repo
        self.name = vs.check_name(name)
        self.parent = repo.resolve(parent) if parent else None
        self.network = network
        self.flush_every = flush_every
        self.run = Run(
            id=uuid.uuid4().hex, name=name, status="RUNNING", command=shlex.join(sys.argv)
        )
        self.version: ModelVersion | None = None
        self.committed = False
        self._own_repo = own_repo
        self._params: dict[str, Any] = {}
        self._metrics: dict[str, tuple[list[int], list[float]]] = {}
        self._files: list[vs.FileRecord] = []
        # what changed since the last flush: only that is written again
        self._dirty_params: set[str] = set()
        self._dirty_metrics: set[str] = set()
        self._unwritten_files: list[vs.FileRecord] = []
        self._pending = 0
        self._last_snapshot: Snapshot | None = None
        self._start()

    @property
    def id(self) -> str:
        """The run's id."""
        return self.run.id

    def _start(self) -> None:
        agent = Agent(name=vs.default_author() or "unknown", kind="person")
        batch = WriteBatch().add(self.run, agent).relate("WAS_ASSOCIATED_WITH", self.run, agent)
        if self.parent is not None:
            batch.relate("USED", self.run, self.parent)
        self.repo.graph.write(batch)

    # -- logging ------------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record one hyper-parameter (any JSON value)."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyper-parameters (written with the next flush)."""
        self._params.update({str(k): v for k, v in params.items()})
        self._dirty_params.update(str(k) for k in params)
        self._pending += len(params)

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Append a point to a metric series (buffered)."""
        self._dirty_metrics.add(str(name))
        steps, values = self._metrics.setdefault(str(name), ([], []))
        steps.append(int(step) if step is not None else len(steps))
        values.append(float(value))
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Append a point to several metric series."""
        for name, value in metrics.items():
            self.log_metric(name, value, step)

    def log_file(self, path: str | os.PathLike[str]) -> None:
        """Record a file (script, config) by digest."""
        record = vs.FileRecord.of(path)
        self._files.append(record)
        self._unwritten_files.append(record)
        self._pending += 1

    def log_dataset(self, uri: str, name: str = "", digest: str = "") -> None:
        """Record that the run used a data set (e.g. ``builtin:digits``)."""
        key = hashlib.sha256(f"{uri}\0{digest}".encode()).hexdigest()[:32]
        ds = Dataset(id=key, name=name or uri, uri=uri, digest=digest)
        self.repo.graph.write(WriteBatch().add(ds).relate("USED", self.run, ds))

    def log_checkpoint(self, model: Any, step: int) -> str:
        """Store a snapshot of the run's version (an ``nn.Module``, a state dict or a dict of
        numpy arrays); returns the snapshot id. Consecutive checkpoints are delta-encoded."""
        net, tensors = self._network_and_tensors(model)
        owners = vs.check_tensors(net, tensors)
        first = self.version is None
        if first:
            self.version = ModelVersion(
                id=vs.new_version_id(),
                name=self.name,
                author=vs.default_author(),
                framework="pytorch",
                network=net.to_json(),
                message=f"run {self.run.id[:12]}",
            )
        assert self.version is not None
        bases = (
            [self._last_snapshot.id]
            if self._last_snapshot
            else ([vs.latest_snapshot(self.repo.graph, self.parent.id).id] if self.parent else [])
        )
        batch = WriteBatch()
        if first:
            base_id = self.parent.id if self.parent else None
            vs.version_batch(batch, self.version, net, run=self.run, base_id=base_id, op="finetune")
        elif self._last_snapshot is not None:
            batch.add(Snapshot(**{**self._last_snapshot.props(), "is_latest": False}))
        with self.repo.writing():
            info = self.repo.write_snapshot(
                vs.snapshot_id(self.version.id, step),
                tensors,
                bases=bases,
                series=self._last_snapshot is not None,  # a later checkpoint of this run
            )
            self._last_snapshot = vs.snapshot_batch(batch, self.version, info, owners, step)
            batch.relate("WAS_GENERATED_BY", self._last_snapshot, self.run, new=True)
            self._buffered(batch)
            self.repo.graph.write(batch)
        return info.snapshot_id

    def _network_and_tensors(self, model: Any) -> tuple[NetworkDef, dict[str, np.ndarray]]:
        if hasattr(model, "state_dict") and callable(model.state_dict):
            from provdb.models.importers import from_torch

            net, tensors = from_torch(model)
            return self.network or net, tensors
        if not isinstance(model, Mapping):
            raise InvalidInput(f"log_checkpoint takes a model or a state dict, not {type(model)}")
        tensors = {k: as_numpy(v) for k, v in model.items()}
        found = self.network or (vs.network_of(self.parent) if self.parent else None)
        if found is None:
            raise InvalidInput("a state dict needs start_run(network=…) or a parent version")
        return found, tensors

    # -- writing ------------------------------------------------------------------------------

    def _buffered(self, batch: WriteBatch) -> None:
        """Add the run's parameters, metric series and files changed since the last flush."""
        params = {k: self._params[k] for k in self._dirty_params}
        metrics = {k: self._metrics[k] for k in self._dirty_metrics}
        vs.metadata_batch(batch, self.run, params, metrics, self._unwritten_files)
        self._dirty_params, self._dirty_metrics, self._unwritten_files = set(), set(), []
        self._pending = 0

    def flush(self) -> None:
        """Write buffered parameters, metrics and files now (one transaction)."""
        batch = WriteBatch()
        self._buffered(batch)
        self.repo.graph.write(batch)

    def commit(self, message: str = "") -> ModelVersion:
        """Make the run's latest checkpoint a committed version, with the run's parameters,
        metrics and files; returns the version."""
        if self.version is None:
            raise InvalidInput("nothing to commit: log_checkpoint() was never called")
        self.version = ModelVersion(
            **{**self.version.props(), "message": message or self.version.message}
        )
        batch = WriteBatch().add(self.version)
        self._buffered(batch)
        vs.metadata_batch(batch, self.version, self._params, self._metrics, self._files)
        self.repo.graph.write(batch)
        self.committed = True
        return self.version

    def end(self, status: str = "FINISHED") -> None:
        """Flush and mark the run ended with ``status`` (FINISHED or FAILED)."""
        self.run = Run(**{**self.run.props(), "status": status, "ended_at": now_iso()})
        batch = WriteBatch().add(self.run)
        self._buffered(batch)
        self.repo.graph.write(batch)

    def tracker(self, model: Any, checkpoint_every: int = 100) -> Callable[..., None]:
        """A callback for a plain training loop: ``track(step, loss=…, acc=…)`` logs the
        metrics and checkpoints ``model`` every ``checkpoint_every`` steps."""

        def track(step: int, **metrics: float) -> None:
            self.log_metrics(metrics, step)
            if checkpoint_every and step % checkpoint_every == 0:
                self.log_checkpoint(model, step)

        return track

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None and not self.committed and self.version is not None:
                self.commit()
            self.end("FAILED" if exc_type is not None else "FINISHED")
        finally:
            if self._own_repo:
                self.repo.close()


def start_run(
    repo: str | os.PathLike[str] | Repository = ".",
    name: str | None = None,
    parent: str | None = None,
    *,
    network: NetworkDef | None = None,
    flush_every: int = FLUSH_EVERY,
) -> ActiveRun:
    """Start recording a run in ``repo`` (a path or an open :class:`Repository`).

    ``name`` names the version the run produces (default: ``run-<time>``); ``parent`` is the
    version it starts from (recorded as ``USED`` and ``DERIVED_FROM {op: finetune}``);
    ``network`` is needed only when checkpoints are state dicts and there is no parent.
    """
    own = not isinstance(repo, Repository)
    opened = repo if isinstance(repo, Repository) else Repository.open(repo)
    return ActiveRun(
        opened, name or f"run-{now_iso()[:19]}", parent, network, flush_every, own_repo=own
    )
