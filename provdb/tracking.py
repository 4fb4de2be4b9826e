"""The SDK a training script calls: ``with provdb.start_run(...) as run:``.

A run is a PROV activity: ``(:Run)`` associated with the agent who started it, ``USED`` the
data sets and the parent version, and generating one model version whose snapshots are the
checkpoints it logs. Parameters and metrics are buffered and written in batches (at every
checkpoint, at :meth:`~ActiveRun.flush`, at commit and at exit, and while logging about once a
second). If the block raises, the run is marked ``FAILED`` and everything logged so far is kept.

Metric series are append-only: every ``flush_every`` points, the points logged since the last
take become one packed block per series (:mod:`provdb.metrics`), written to the archive under
the run's ``(:Metric)`` node id, and the node's summary (``last``/``min``/``max``, what DQL
filters on) is updated in the graph, so a write costs the same however long the series is.
Taken blocks wait, packed, for the run's next write; a metric-only write happens at most every
``METRIC_WRITE_INTERVAL`` seconds (its graph transaction has a fixed cost), and ``log_metric``
waits for the writer when ``UNWRITTEN_POINTS`` are waiting, so memory stays bounded. At commit
the version gets its own summary nodes and a copy of the run's blocks.

Checkpoints are written in the background: :meth:`ActiveRun.log_checkpoint` copies the weights
(a detached CPU numpy copy of each tensor) and hands the archive write and its graph transaction
to one worker thread through a bounded queue (``checkpoint_queue`` snapshots; at most that many
plus the one being written plus the one being copied are in memory), so it blocks only when
training outruns the disk. Every graph write of the run goes through the same worker, in the
order it was logged, so each checkpoint still deltas against the previous one and each is one
archive write plus one graph transaction (a killed process leaves a consistent repository).
:meth:`~ActiveRun.flush`, :meth:`~ActiveRun.commit`, :meth:`~ActiveRun.end` and the end of the
``with`` block wait for the queue to drain. A failure in the worker is kept and raised by the
next ``log_checkpoint``/``flush``/``commit`` and at the end of the block, and the run is marked
``FAILED`` with what was written kept. ``checkpoint_queue=0`` writes synchronously.

While a run writes in the background, do not hold ``repo.graph.session()`` open in the training
thread: the embedded graph's held handle is per store, not per thread.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from provdb import metrics as metric_blocks
from provdb import versioning as vs
from provdb.entities import Agent, Dataset, Metric, ModelVersion, Run, Snapshot, now_iso
from provdb.errors import InvalidInput, storage_errors
from provdb.graph import WriteBatch
from provdb.lossy import check_scheme
from provdb.models._common import as_numpy
from provdb.models.network import NetworkDef
from provdb.repository import Repository

FLUSH_EVERY = 1000
CHECKPOINT_QUEUE = 2
#: Metric points taken from the buffers but not written yet beyond which ``log_metric`` waits
#: for the background writer (bounds memory when logging outruns the disk; packed, a point
#: takes about 9 bytes).
UNWRITTEN_POINTS = 1_000_000
#: The shortest time between two metric-only writes (seconds): each is a graph transaction
#: for the summaries, which costs tens of milliseconds however few points it carries.
METRIC_WRITE_INTERVAL = 1.0


class _Series:
    """A metric series being logged: the points not taken yet, and a summary of those taken
    (how many, how many blocks, last/min/max)."""

    __slots__ = ("name", "steps", "values", "count", "seq", "last", "low", "high")

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[int] = []
        self.values: list[float] = []
        self.count = 0  # points already taken into blocks
        self.seq = 0  # blocks taken
        self.last: float | None = None
        self.low: float | None = None
        self.high: float | None = None

    def take(self, run_id: str) -> tuple[Metric, _Block] | None:
        """The points not taken yet as the next block of the run's series, with the run's
        updated summary node; ``None`` when there are none."""
        if not self.steps:
            return None
        summary_id = f"{run_id}/{self.name}"
        block = (summary_id, self.seq, metric_blocks.pack(self.steps, self.values))
        finite = [v for v in self.values if not math.isnan(v)]
        if finite:
            low, high = min(finite), max(finite)
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
        self.last = self.values[-1]
        self.count += len(self.steps)
        self.seq += 1
        self.steps, self.values = [], []
        return self.summary(run_id), block

    def summary(self, owner_id: str) -> Metric:
        """The summary node of this series for ``owner_id`` (its points are in blocks)."""
        return Metric(
            id=f"{owner_id}/{self.name}",
            name=self.name,
            last=self.last,
            min=self.low,
            max=self.high,
        )


#: A packed block of a series for the archive: (series id = its metric node's id, seq, data).
_Block = tuple[str, int, bytes]
#: Metadata taken from the buffers for one write: parameters, (summary, block) per series
#: that has new points, files.
_Meta = tuple[dict[str, Any], list[tuple[Metric, _Block]], list[vs.FileRecord]]


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
        checkpoint_queue: int = CHECKPOINT_QUEUE,
        float_scheme: str | None = None,
    ) -> None:
        self.repo = repo
        self.float_scheme = check_scheme(float_scheme)
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
        self._metrics: dict[str, _Series] = {}
        self._files: list[vs.FileRecord] = []
        # what changed since the last flush: only that is written again
        self._dirty_params: set[str] = set()
        self._unwritten_files: list[vs.FileRecord] = []
        self._pending = 0
        # metadata taken from the buffers, in log order, until a transaction wrote it: the
        # worker writes all of it at once, so flushes that pile up while it is busy become
        # one transaction; what a failure left here is written at the end of the run
        self._outbox: list[_Meta] = []
        self._outbox_points = 0
        self._outbox_changed = threading.Condition()
        self._drain_queued = False
        self._last_drain = time.monotonic()
        # written by the worker only (the caller never reads it while the run is open)
        self._last_snapshot: Snapshot | None = None
        if checkpoint_queue < 0:
            raise InvalidInput(f"checkpoint_queue must be >= 0, not {checkpoint_queue}")
        self._queue: queue.Queue[Callable[[], None] | None] | None = (
            queue.Queue(maxsize=checkpoint_queue) if checkpoint_queue else None
        )
        self._worker: threading.Thread | None = None
        self._failure: Exception | None = None  # the worker's first error, re-raised later
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
        """Append a point to a metric series (buffered; ``step`` defaults to the point's
        index in the series)."""
        series = self._metrics.get(name)
        if series is None:
            series = self._metrics.setdefault(str(name), _Series(str(name)))
        series.steps.append(int(step) if step is not None else series.count + len(series.steps))
        series.values.append(float(value))
        self._pending += 1
        if self._pending >= self.flush_every:
            self._flush_soon(now=False)

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
        batch = WriteBatch().add(ds).relate("USED", self.run, ds)
        self._submit(lambda: self.repo.graph.write(batch))

    def log_checkpoint(self, model: Any, step: int, *, float_scheme: str | None = None) -> str:
        """Store a snapshot of the run's version (an ``nn.Module``, a state dict or a dict of
        numpy arrays); returns the snapshot id. Consecutive checkpoints are delta-encoded.
        ``float_scheme`` (``fp16``, ``bf16``, ``fixed16``, ``q8``, ``lossless``) overrides the
        run's ``start_run(float_scheme=…)`` for this checkpoint.

        The weights are copied now and written by the background worker; this blocks only
        while the queue is full, and raises an earlier checkpoint's failure."""
        self._raise_failure()
        scheme = check_scheme(float_scheme) if float_scheme else self.float_scheme
        net, tensors = self._network_and_tensors(model, copy=self._queue is not None)
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
        version = self.version
        assert version is not None
        self._post(self._take_buffered())  # written with the checkpoint, in log order
        self._submit(
            lambda: self._write_checkpoint(version, net, tensors, owners, step, first, scheme)
        )
        return vs.snapshot_id(version.id, step)

    def _write_checkpoint(
        self,
        version: ModelVersion,
        net: NetworkDef,
        tensors: dict[str, np.ndarray],
        owners: dict[str, str],
        step: int,
        first: bool,
        float_scheme: str = "lossless",
    ) -> None:
        """One archive write and one graph transaction (run by the worker, in order)."""
        last = self._last_snapshot
        bases = (
            [last.id]
            if last
            else ([vs.latest_snapshot(self.repo.graph, self.parent.id).id] if self.parent else [])
        )
        batch = WriteBatch()
        if first:
            base_id = self.parent.id if self.parent else None
            vs.version_batch(batch, version, net, run=self.run, base_id=base_id, op="finetune")
        elif last is not None:
            batch.add(Snapshot(**{**last.props(), "is_latest": False}))
        with self.repo.writing():
            info = self.repo.write_snapshot(
                vs.snapshot_id(version.id, step),
                tensors,
                bases=bases,
                series=last is not None,  # a later checkpoint of this run
                float_scheme=float_scheme,
            )
            snap = vs.snapshot_batch(batch, version, info, owners, step)
            batch.relate("WAS_GENERATED_BY", snap, self.run, new=True)
            taken, blocks = self._outbox_batch(batch)
            self._write(batch, blocks)
        self._written(taken)
        self._last_snapshot = snap

    def _network_and_tensors(
        self, model: Any, copy: bool = False
    ) -> tuple[NetworkDef, dict[str, np.ndarray]]:
        """The network and numpy tensors of ``model``; with ``copy`` the arrays own their
        memory, so later optimizer steps cannot change what is written."""
        if hasattr(model, "state_dict") and callable(model.state_dict):
            from provdb.models.importers import from_torch

            net, tensors = from_torch(model)  # detached CPU copies already
            return self.network or net, tensors
        if not isinstance(model, Mapping):
            raise InvalidInput(f"log_checkpoint takes a model or a state dict, not {type(model)}")
        tensors = {k: _owned(v) if copy else as_numpy(v) for k, v in model.items()}
        found = self.network or (vs.network_of(self.parent) if self.parent else None)
        if found is None:
            raise InvalidInput("a state dict needs start_run(network=…) or a parent version")
        return found, tensors

    # -- the worker ---------------------------------------------------------------------------

    def _submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the worker, after everything submitted before it (now, when
        synchronous); blocks while the queue is full."""
        self._raise_failure()
        if self._queue is None:
            job()
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="provdb-checkpoints")
            self._worker.daemon = True  # a script that never ends its run still exits
            self._worker.start()
        self._queue.put(job)

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._failure is None:  # after a failure, later writes would build on it
                    job()
            except Exception as exc:  # noqa: BLE001 - kept and re-raised in the caller
                self._failure = exc
            finally:
                self._queue.task_done()

    def _drain(self) -> None:
        """Wait until every submitted write is done (or skipped after a failure)."""
        if self._queue is not None and self._worker is not None:
            self._queue.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _stop(self) -> None:
        if self._queue is not None and self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def wait(self) -> None:
        """Block until every checkpoint logged so far is written; raises a worker failure."""
        self._drain()
        self._raise_failure()

    # -- writing ------------------------------------------------------------------------------

    def _take_buffered(self) -> _Meta:
        """The parameters, new metric points (a block per series) and files logged since the
        last flush, taken out of the buffers in the caller (so the worker never reads state
        the caller mutates)."""
        params = {k: self._params[k] for k in self._dirty_params}
        metrics = [c for c in (s.take(self.run.id) for s in self._metrics.values()) if c]
        meta: _Meta = (params, metrics, self._unwritten_files)
        self._dirty_params, self._unwritten_files = set(), []
        self._pending = 0
        return meta

    def _post(self, meta: _Meta) -> None:
        """Queue taken metadata for the next graph transaction of the run."""
        with self._outbox_changed:
            self._outbox.append(meta)
            self._outbox_points += _points(meta)

    def _outbox_batch(self, batch: WriteBatch) -> tuple[int, list[_Block]]:
        """Add every queued metadata to ``batch``, in log order: how many were added (remove
        them with :meth:`_written` once written) and the series blocks they carry."""
        with self._outbox_changed:
            taken = list(self._outbox)
        blocks = []
        for params, metrics, files in taken:
            vs.metadata_batch(batch, self.run, params, None, files)
            for summary, block in metrics:
                batch.add(summary).relate("HAS_METRIC", self.run, summary)
                blocks.append(block)
        return len(taken), blocks

    def _write(self, batch: WriteBatch, blocks: list[_Block]) -> None:
        """Series blocks to the archive, then ``batch`` to the graph (a crash in between
        leaves points the summaries do not count yet, never a summary without points)."""
        if blocks:
            with storage_errors(f"metrics of run {self.run.id[:12]}"):
                self.repo.archive.put_series(blocks)
        self.repo.graph.write(batch)

    def _written(self, taken: int) -> None:
        """The first ``taken`` queued metadata are in the graph."""
        with self._outbox_changed:
            self._outbox_points -= sum(_points(m) for m in self._outbox[:taken])
            del self._outbox[:taken]
            self._outbox_changed.notify_all()

    def _write_outbox(self) -> None:
        """Write everything queued in one transaction (run by the worker)."""
        with self._outbox_changed:
            self._drain_queued = False  # what is posted from now on needs another run
        batch = WriteBatch()
        taken, blocks = self._outbox_batch(batch)
        self._write(batch, blocks)
        self._written(taken)

    def _flush_soon(self, now: bool = True) -> None:
        """Take buffered metadata and write it on the worker, after the checkpoints queued
        before it (after a worker failure it stays buffered: the end of the run writes it).
        Unless ``now``, the write waits for ``METRIC_WRITE_INTERVAL`` since the last one or
        half of ``UNWRITTEN_POINTS`` (what is taken is written by the next write of the run);
        waits while more than ``UNWRITTEN_POINTS`` metric points are taken but not written."""
        if self._failure is not None:
            return
        self._post(self._take_buffered())
        due = (
            now
            or time.monotonic() - self._last_drain >= METRIC_WRITE_INTERVAL
            or self._outbox_points >= UNWRITTEN_POINTS // 2
        )
        with self._outbox_changed:
            submit = due and not self._drain_queued
            self._drain_queued = self._drain_queued or submit
        if submit:
            self._last_drain = time.monotonic()
            self._submit(self._write_outbox)
        with self._outbox_changed:
            while (
                self._outbox_points > UNWRITTEN_POINTS
                and self._failure is None
                and self._worker is not None
                and self._worker.is_alive()
            ):
                self._outbox_changed.wait(0.1)

    def flush(self) -> None:
        """Write buffered parameters, metrics and files now (one transaction), after every
        checkpoint logged before; raises a worker failure."""
        self._flush_soon()
        self.wait()

    def commit(self, message: str = "") -> ModelVersion:
        """Make the run's latest checkpoint a committed version, with the run's parameters,
        metrics and files; returns the version. Waits for queued checkpoints."""
        if self.version is None:
            raise InvalidInput("nothing to commit: log_checkpoint() was never called")
        self.wait()
        self.version = ModelVersion(
            **{**self.version.props(), "message": message or self.version.message}
        )
        batch = WriteBatch().add(self.version)
        self._post(self._take_buffered())
        taken, blocks = self._outbox_batch(batch)
        vs.metadata_batch(batch, self.version, self._params, None, self._files)
        with storage_errors(f"metrics of run {self.run.id[:12]}"):
            self.repo.archive.put_series(blocks)
            for series in self._metrics.values():  # the version keeps its own copy
                summary = series.summary(self.version.id)
                batch.add(summary).relate("HAS_METRIC", self.version, summary)
                self.repo.archive.copy_series(f"{self.run.id}/{series.name}", summary.id)
        self.repo.graph.write(batch)
        self._written(taken)
        self.committed = True
        return self.version

    def end(self, status: str = "FINISHED") -> None:
        """Flush and mark the run ended with ``status`` (FINISHED or FAILED), after queued
        checkpoints; if one failed, the run is marked FAILED and the failure raised."""
        self._finish(status)
        self._raise_failure()

    def _finish(self, status: str) -> None:
        self._drain()
        failed = self._failure is not None
        self.run = Run(
            **{**self.run.props(), "status": "FAILED" if failed else status, "ended_at": now_iso()}
        )
        batch = WriteBatch().add(self.run)
        # all that is unwritten: what a failed or skipped write carried, then the rest
        self._post(self._take_buffered())
        taken, blocks = self._outbox_batch(batch)
        self._write(batch, blocks)
        self._written(taken)

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
            self._drain()
            ok = exc_type is None and self._failure is None
            if ok and not self.committed and self.version is not None:
                self.commit()
            self._finish("FINISHED" if ok else "FAILED")
            if exc_type is None:
                self._raise_failure()
        finally:
            self._stop()
            if self._own_repo:
                self.repo.close()


def _points(meta: _Meta) -> int:
    """How many metric points ``meta`` carries."""
    return sum(metric_blocks.points_in(data) for _, (_, _, data) in meta[1])


def _owned(value: Any) -> np.ndarray:
    """A numpy array that owns its memory (torch tensors: a detached CPU copy)."""
    array = as_numpy(value)
    if type(value).__module__.startswith("torch"):
        return array  # as_numpy copied it
    return np.array(array, copy=True)


def start_run(
    repo: str | os.PathLike[str] | Repository = ".",
    name: str | None = None,
    parent: str | None = None,
    *,
    network: NetworkDef | None = None,
    flush_every: int = FLUSH_EVERY,
    checkpoint_queue: int = CHECKPOINT_QUEUE,
    float_scheme: str | None = None,
) -> ActiveRun:
    """Start recording a run in ``repo`` (a path or an open :class:`Repository`).

    ``name`` names the version the run produces (default: ``run-<time>``); ``parent`` is the
    version it starts from (recorded as ``USED`` and ``DERIVED_FROM {op: finetune}``);
    ``network`` is needed only when checkpoints are state dicts and there is no parent;
    ``checkpoint_queue`` is how many checkpoints may wait for the background writer
    (``0``: ``log_checkpoint`` writes before it returns); ``float_scheme`` stores the
    checkpoints' float tensors lossily (``fp16``, ``bf16``, ``fixed16``, ``q8``; default
    ``lossless``, bit-exact).
    """
    own = not isinstance(repo, Repository)
    opened = repo if isinstance(repo, Repository) else Repository.open(repo)
    return ActiveRun(
        opened,
        name or f"run-{now_iso()[:19]}",
        parent,
        network,
        flush_every,
        own_repo=own,
        checkpoint_queue=checkpoint_queue,
        float_scheme=float_scheme,
    )
