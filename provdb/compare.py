"""``describe`` and ``diff``: one version in full, and several side by side.

The implementation of :meth:`Repository.describe` and :meth:`Repository.diff`; both return
typed results (:class:`~provdb.results.Description`, :class:`~provdb.results.Diff`) that the
CLI renders and the server and the dashboard serve as ``to_dict()``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from provdb import versioning as vs
from provdb.errors import storage_errors
from provdb.results import (
    Description,
    Diff,
    DiffRow,
    FileRow,
    LayerRow,
    MetricSummary,
    Parent,
    SnapshotRow,
)

if TYPE_CHECKING:
    from provdb.repository import Repository


def describe(repo: Repository, ref: str) -> Description:
    """Everything about one version: network, hyper-parameters, metrics, files, snapshots,
    lineage (parents and children) and storage."""
    graph = repo.graph
    with graph.session():
        version = repo.resolve(ref)
        snaps = graph.snapshots(version.id)
        params = graph.params_of(version.id)
        metrics = repo.metrics_of(version.id)
        files = graph.files_of(version.id)
        lineage = graph.lineage(version.id, depth=1, direction="both")
        run = graph.runs_of([version.id]).get(version.id)
    net = vs.network_of(version) if version.network else None
    with storage_errors(f"version {version.id[:12]}"):
        sizes: dict[str, dict[str, Any]] = {
            s.id: dict(repo.archive.snapshot_stats(s.id)) for s in snaps
        }
        unique = repo.archive.unique_bytes() if snaps else {}
        for s in snaps:
            own = unique.get(s.id, 0)
            sizes[s.id]["stored"] = own
            sizes[s.id]["referenced"] = max(sizes[s.id].get("read_bytes", 0) - own, 0)
            sizes[s.id]["float_scheme"] = snapshot_scheme(repo, s.id)
    return Description(
        id=version.id,
        name=version.name,
        created_at=version.created_at,
        author=version.author,
        message=version.message,
        framework=version.framework,
        layers=[LayerRow(x.name, x.type, x.mode, x.attrs) for x in net.layers] if net else [],
        edges=[list(e) for e in net.edges] if net else [],
        params=params,
        metrics={
            name: MetricSummary(m.last, m.min, m.max, len(m.values), m.steps, m.values)
            for name, m in metrics.items()
        },
        files=[FileRow(f.path, f.digest, f.size) for f in files],
        snapshots=[
            SnapshotRow(
                s.id,
                s.iteration,
                s.is_latest,
                sizes[s.id].pop("raw", 0),
                sizes[s.id].pop("stored", 0),
                sizes[s.id],
            )
            for s in snaps
        ],
        parents=[Parent(e.base, e.op) for e in lineage.edges if e.derived == version.id],
        children=[Parent(e.derived, e.op) for e in lineage.edges if e.base == version.id],
        network_inferred=bool(net and net.meta.get("inferred")),
        run=run,
    )


def snapshot_scheme(repo: Repository, snapshot_id: str) -> str:
    """How a snapshot's float tensors are stored: ``lossless``, one scheme's name, or
    ``mixed``."""
    from provdb.lossy import scheme_label, summarise

    tensors = repo.archive.manifest(snapshot_id)["tensors"]
    records = {d: repo.archive.tensor_record(d) for d in set(tensors.values())}
    return summarise({n: scheme_label(records[d].scheme) for n, d in tensors.items()})


def diff(repo: Repository, refs: list[str], only_differences: bool = False) -> Diff:
    """Compare versions against the first: layers added/removed/changed, edges, hyper-
    parameters, final metrics and per-tensor weight change (relative L2 distance)."""
    with repo.graph.session():  # every graph read on one handle
        versions = [repo.resolve(r) for r in refs]
        params = [repo.graph.params_of(v.id) for v in versions]
        metrics = [repo.metrics_of(v.id) for v in versions]
        weights = [repo.weights(v.id) for v in versions]
    nets = [vs.network_of(v) for v in versions]
    sections = {
        "layers": _layer_diff(nets),
        "params": _table({k: [p.get(k) for p in params] for k in _keys(params)}),
        "metrics": _table({k: [_last(m.get(k)) for m in metrics] for k in _keys(metrics)}),
        "weights": _weight_diff(weights),
    }
    if only_differences:
        sections = {k: [r for r in rows if r.status != "same"] for k, rows in sections.items()}
    return Diff(
        versions=[{"id": v.id, "name": v.name} for v in versions],
        edges=_edge_diff(nets),
        **sections,
    )


def _keys(dicts: list[dict[str, Any]]) -> list[str]:
    return sorted({k for d in dicts for k in d})


def _last(metric: Any) -> float | None:
    return None if metric is None else metric.last


def _table(values: dict[str, list[Any]]) -> list[DiffRow]:
    rows = []
    for key, vals in values.items():
        same = all(json.dumps(v) == json.dumps(vals[0]) for v in vals)
        rows.append(DiffRow(key, "same" if same else "changed", vals))
    return rows


def _layer_diff(nets: list[Any]) -> list[DiffRow]:
    names = list(dict.fromkeys(n for net in nets for n in net.names))
    rows = []
    for name in names:
        defs = [net.layer(name).to_dict() if name in net.names else None for net in nets]
        base = defs[0]
        if base is None:
            status = "added"
        elif any(d is None for d in defs[1:]):
            status = "removed"
        elif any(d != base for d in defs[1:]):
            status = "changed"
        else:
            status = "same"
        rows.append(DiffRow(name, status, defs))
    return rows


def _edge_diff(nets: list[Any]) -> dict[str, list[list[str]]]:
    base = set(nets[0].edges)
    others = set().union(*(set(n.edges) for n in nets[1:])) if len(nets) > 1 else set()
    return {"added": sorted(map(list, others - base)), "removed": sorted(map(list, base - others))}


def _weight_diff(weights: list[dict[str, np.ndarray]]) -> list[DiffRow]:
    rows = []
    for name in _keys(weights):
        base = weights[0].get(name)
        changes = [_rel_l2(base, w.get(name)) for w in weights]
        known = [c for c in changes[1:] if c is not None]
        status = (
            "same"
            if known and all(c == 0.0 for c in known) and None not in changes[1:]
            else "changed"
        )
        rows.append(DiffRow(name, status, changes))
    return rows


def _rel_l2(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """‖b − a‖ / ‖a‖ in float64 (``None`` when either is missing or shapes differ)."""
    if a is None or b is None or a.shape != b.shape or not np.issubdtype(a.dtype, np.number):
        return None
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return 0.0
    norm = float(np.linalg.norm(a64))
    dist = float(np.linalg.norm(b64 - a64))
    return dist / norm if norm else dist
