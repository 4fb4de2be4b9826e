"""``evaluate``: train every candidate of a grid with the learner, keep the best."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dql
from dql.errors import ResolveError
from dql.plan import KeepThreshold, KeepTop
from provdb.errors import InvalidInput, TrainingDiverged, from_dql
from provdb.models.network import NetworkDef

if TYPE_CHECKING:
    from provdb.models.learner import TrainConfig, TrainResult
    from provdb.repository import Repository

from provdb.query.derive import derive_versions, parent_weights
from provdb.query.results import CreatedVersion, QueryResult, Tensors, run_rows

#: Metric series stored with evaluate's survivors under DQL's short names as well.
METRIC_ALIASES = {"loss": "test_loss", "accuracy": "test_accuracy"}


# -- evaluate ------------------------------------------------------------------------------


@dataclass
class _Subject:
    """A model evaluate trains: a version (or, in a dry run, a rewritten network)."""

    name: str
    version_id: str | None
    network: NetworkDef
    tensors: Tensors


@dataclass
class _Candidate:
    """One grid point for one subject, and how its training went."""

    key: str
    number: int
    subject: _Subject
    overrides: dict[str, Any]
    config: TrainConfig
    tensors: Tensors | None = None
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    trained: int = 0
    status: str = "kept"


EVALUATE_COLUMNS = ["candidate", "source", "overrides", "score", "trained", "status", "id", "name"]


def evaluate(repo: Repository, compiled: dql.CompiledQuery, dry_run: bool) -> QueryResult:
    source = compiled.source
    if isinstance(source, str):
        raise from_dql(_unresolved(compiled.dql, source))
    assert source is not None
    if source.kind == "evaluate":
        raise InvalidInput("evaluate cannot range over another evaluate (save its result first)")
    config_data, config_dir = load_config(compiled.config or "", repo)
    created: list[CreatedVersion] = []
    with repo.graph.session(write=not dry_run):
        subjects = _subjects(repo, source, dry_run, created)
    candidates = _candidates(subjects, compiled, config_data, config_dir)
    _train_and_prune(candidates, compiled.keep)
    rows = [_candidate_row(c, compiled.keep) for c in candidates]
    with repo.graph.session(write=not dry_run):
        for candidate, row in zip(candidates, rows):
            if candidate.status == "kept":
                version = _survivor(repo, candidate, compiled, commit=not dry_run)
                row["id"], row["name"] = version.id, version.name
                created.append(version)
    return QueryResult(
        "evaluate",
        list(EVALUATE_COLUMNS),
        rows,
        created,
        source.cypher,
        source.params,
        dry_run,
        compiled,
    )


def _unresolved(text: str, name: str) -> ResolveError:
    for quote in ('"', "'"):
        start = text.find(f"{quote}{name}{quote}")
        if start >= 0:
            return ResolveError(
                f"Unknown saved query {name!r}",
                query=text,
                start=start,
                end=start + len(name) + 2,
            )
    return ResolveError(f"Unknown saved query {name!r}")


def _subjects(
    repo: Repository, source: dql.CompiledQuery, dry_run: bool, created: list[CreatedVersion]
) -> list[_Subject]:
    if source.kind == "select":
        return [
            _Subject(
                row["name"], row["id"], repo.network(row["id"]), parent_weights(repo, row["id"])
            )
            for row in run_rows(repo, source)
        ]
    derived = derive_versions(repo, source, commit=not dry_run, with_tensors=True)
    created.extend(d.created for d in derived)
    return [
        _Subject(d.created.name, d.created.id, d.created.network, d.tensors or {}) for d in derived
    ]


def load_config(path: str, repo: Repository) -> tuple[dict[str, Any], Path]:
    """Read an evaluate config (JSON): relative paths are tried from the current folder, then
    from the repository's root. Returns the dict and the folder it came from."""
    candidates = [Path(path)] if os.path.isabs(path) else [Path.cwd() / path, repo.root / path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise InvalidInput(
            f"evaluate config {path!r} not found (tried {', '.join(str(p) for p in candidates)})"
        )
    try:
        data = json.loads(found.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"evaluate config {found} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"evaluate config {found} must be a JSON object")
    return data, found.parent


def _train_config(data: Mapping[str, Any], config_dir: Path) -> TrainConfig:
    """A TrainConfig; a relative ``input_data`` that exists next to the config is used there."""
    from provdb.models.learner import TrainConfig

    data = dict(data)
    spec = data.get("input_data")
    if isinstance(spec, str) and not spec.startswith("builtin:") and not os.path.isabs(spec):
        beside = config_dir / spec
        if not Path(spec).exists() and beside.exists():
            data["input_data"] = str(beside)
    return TrainConfig.from_dict(data)


def _candidates(
    subjects: Sequence[_Subject],
    compiled: dql.CompiledQuery,
    config: Mapping[str, Any],
    config_dir: Path,
) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    for subject in subjects:
        grid = dql.expand_grid(compiled.vary, subject.network.names) or [{}]
        for overrides in grid:
            number = len(candidates) + 1
            merged = dql.apply_overrides(config, overrides)
            candidates.append(
                _Candidate(
                    f"c{number:06d}", number, subject, overrides, _train_config(merged, config_dir)
                )
            )
    return candidates


def _checkpoints(keep: Sequence[Any], iterations: int) -> list[int]:
    points = {rule.iters for rule in keep if rule.iters is not None}
    return sorted(points | {max([iterations, *points])})


def _train_and_prune(candidates: list[_Candidate], keep: Sequence[Any]) -> None:
    """Train the candidates still kept to each checkpoint, applying the rules due there."""
    if not candidates:
        return
    iterations = candidates[0].config.iterations
    points = _checkpoints(keep, iterations)
    for point in points:
        alive = [c for c in candidates if c.status == "kept"]
        for candidate in alive:
            _train_to(candidate, point)
        _prune([c for c in alive if c.status == "kept"], keep, point, point == points[-1])


def _train_to(candidate: _Candidate, iterations: int) -> None:
    from provdb.models.learner import train

    steps = iterations - candidate.trained
    if steps <= 0:
        return
    start = candidate.tensors if candidate.tensors is not None else candidate.subject.tensors
    config = candidate.config.replace(iterations=steps)
    try:
        result: TrainResult = train(candidate.subject.network, start, config)
    except TrainingDiverged:
        candidate.status = f"diverged@{candidate.trained + steps}"
        return
    offset = candidate.trained
    for name, series in result.metrics.items():
        candidate.metrics.setdefault(name, []).extend((s + offset, v) for s, v in series)
    candidate.tensors, candidate.final = result.tensors, result.final
    candidate.trained = iterations


def _prune(alive: list[_Candidate], keep: Sequence[Any], point: int, last: bool) -> None:
    for rule in keep:
        due = rule.iters == point or (rule.iters is None and last)
        if not due:
            continue
        if isinstance(rule, KeepTop):
            scores = {c.key: _score(c, rule.metric, rule.field) for c in alive}
            best = set(rule.survivors({k: _nan(v) for k, v in scores.items()}))
            for c in alive:
                if c.key not in best:
                    c.status = f"pruned@{point}"
        elif isinstance(rule, KeepThreshold):
            for c in alive:
                if not rule.passes(_score(c, rule.metric, rule.field)):
                    c.status = f"pruned@{point}"
        alive = [c for c in alive if c.status == "kept"]


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _score(candidate: _Candidate, metric: str, which: str = "last") -> float | None:
    """A candidate's metric: its series ``metric`` or ``test_<metric>`` (last/min/max), else the
    final evaluation's value."""
    series = candidate.metrics.get(metric) or candidate.metrics.get(f"test_{metric}")
    if series:
        values = [v for _, v in series]
        return {"min": min, "max": max}.get(which, lambda vs: vs[-1])(values)
    value = candidate.final.get(metric)
    return None if value is None else float(value)


def _survivor(
    repo: Repository, candidate: _Candidate, compiled: dql.CompiledQuery, commit: bool
) -> CreatedVersion:
    subject = candidate.subject
    params = {**candidate.config.to_dict(), "iterations": candidate.trained}
    params["dql.overrides"] = candidate.overrides
    created = CreatedVersion(
        name=f"{subject.name}-eval-{candidate.number}",
        op="evaluate",
        parent=subject.version_id,
        parent_name=subject.name,
        network=subject.network,
        params=params,
    )
    if not commit:
        return created
    metrics = {
        name: ([s for s, _ in series], [v for _, v in series])
        for name, series in candidate.metrics.items()
    }
    for alias, name in METRIC_ALIASES.items():
        if name in metrics and alias not in metrics:
            metrics[alias] = metrics[name]
    result = repo.commit(
        created.name,
        subject.network,
        candidate.tensors or {},
        parent=subject.version_id,
        op="evaluate",
        query=compiled.dql,
        message=f"evaluate candidate {candidate.number} of {subject.name} by DQL",
        params=params,
        metrics=metrics,
        iteration=candidate.trained,
    )
    created.id, created.raw_bytes = result.version.id, result.raw_bytes
    created.new_bytes = result.new_bytes
    return created


def _candidate_row(candidate: _Candidate, keep: Sequence[Any]) -> dict[str, Any]:
    metric = keep[0].metric if keep else "loss"
    which = keep[0].field if keep else "last"
    return {
        "candidate": candidate.number,
        "source": candidate.subject.name,
        "overrides": candidate.overrides,
        "score": _score(candidate, metric, which),
        "metric": metric,
        "trained": candidate.trained,
        "status": candidate.status,
        "id": None,
        "name": None,
    }
