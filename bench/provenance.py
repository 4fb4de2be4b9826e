"""Provenance benchmark: PgSeg segment and PgSum summary latency at 1k and 10k versions.

The graph is written straight through the graph layer the way the SDK records runs: every
version but a tree's root is a fine-tune of a parent (``DERIVED_FROM {op: finetune}``), made by
a run that ``USED`` the parent and one of five data sets, ``WAS_ASSOCIATED_WITH`` one of ten
agents, with three hyper-parameters, and two snapshots ``WAS_GENERATED_BY`` the run. Versions
come in trees of 50: the first 25 a chain, the rest branching off random earlier members (the
decoy siblings a segment must leave out). Sizes grow one store incrementally.

Measured (after warm-up, p50/p95 over ``--reps``):

* **segment**: ``provenance.segment`` from a version to the one 20 generations below it in the
  same tree (20 ``DERIVED_FROM`` hops, 40 run hops) — the answer is checked: 21 versions and
  20 runs on the path;
* **summary**: ``provenance.summarize`` over 10 such segments from 10 trees (segments
  included), and PgSum alone on the fetched segments.

Usage::

    .venv/bin/python bench/provenance.py                       # 1,000 and 10,000, both backends
    .venv/bin/python bench/provenance.py --sizes 1000 --backends ladybug --reps 5
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from provdb import provenance
from provdb.entities import Agent, Dataset, Hyperparameter, ModelVersion, Run, Snapshot
from provdb.graph import GraphStore, WriteBatch

sys.path.append(str(Path(__file__).resolve().parent))
from _common import fresh_store, neo4j_uri  # noqa: E402

TREE = 50
CHAIN = 25
HOPS = 20
BATCH = 500


def vid(i: int) -> str:
    return f"v{i:06d}"


def parent_of(i: int, rng: random.Random) -> int | None:
    pos = i % TREE
    if pos == 0:
        return None
    if pos < CHAIN:
        return i - 1
    return i - pos + rng.randrange(pos)


def write_versions(store: GraphStore, start: int, end: int, rng: random.Random) -> float:
    """Write versions ``start..end-1`` (batches of :data:`BATCH`); seconds taken."""
    began = time.perf_counter()
    for lo in range(start, end, BATCH):
        b = WriteBatch()
        if lo == 0:
            b.add(*(Dataset(id=f"d{k}", name=f"data-{k}", uri=f"data:{k}") for k in range(5)))
            b.add(*(Agent(name=f"agent-{k}", kind="person") for k in range(10)))
        for i in range(lo, min(end, lo + BATCH)):
            at = f"2026-01-01T00:00:00.{i:06d}+00:00"
            v = ModelVersion(id=vid(i), name=f"model-{i // TREE}", created_at=at)
            run = Run(id=f"r{i:06d}", name=v.name, status="FINISHED", started_at=at, ended_at=at)
            b.add(v, new=True).add(run, new=True)
            b.relate("WAS_GENERATED_BY", v, run, new=True)
            b.relate("WAS_ASSOCIATED_WITH", run, ("Agent", f"agent-{i % 10}"), new=True)
            b.relate("USED", run, ("Dataset", f"d{i % 5}"), new=True)
            for name in ("base_lr", "momentum", "iterations"):
                hp = Hyperparameter.of(run.id, name, rng.random())
                b.add(hp, new=True).relate("HAS_PARAM", run, hp, new=True)
            for it in (100, 200):
                latest = it == 200
                snap = Snapshot(id=f"{v.id}/{it}", iteration=it, is_latest=latest, committed=True)
                b.add(snap, new=True).relate("SNAPSHOT_OF", snap, v, new=True)
                b.relate("WAS_GENERATED_BY", snap, run, new=True)
            p = parent_of(i, rng)
            if p is not None:
                b.relate("USED", run, ("ModelVersion", vid(p)), new=True)
                b.relate("DERIVED_FROM", v, ("ModelVersion", vid(p)), new=True, op="finetune")
        store.write(b)
    return time.perf_counter() - began


def pair(tree: int) -> tuple[str, str]:
    """A source and the version 20 generations below it on the tree's chain."""
    start = tree * TREE + 2
    return vid(start), vid(start + HOPS)


def time_it(fn, reps: int, warmup: int = 2) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return statistics.median(xs), xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def bench_size(store: GraphStore, backend: str, n: int, reps: int) -> dict:
    trees = n // TREE
    src, dst = pair(trees // 2)
    seg = provenance.segment(store, [src], [dst])
    on_path = [v for v in seg.vertices if v.role in ("source", "path", "destination")]
    versions = sum(v.kind == "version" for v in on_path)
    runs = sum(v.kind == "run" for v in on_path)
    assert (versions, runs) == (HOPS + 1, HOPS), (versions, runs)
    assert all(v.id <= dst for v in on_path if v.kind == "version")
    pairs = [pair(t) for t in range(0, trees, max(1, trees // 10))][:10]

    def summary() -> provenance.Summary:
        return provenance.summarize([provenance.segment(store, [a], [b]) for a, b in pairs])

    segs = [provenance.segment(store, [a], [b]) for a, b in pairs]
    result = summary()
    assert {n.frequency for n in result.nodes if n.kind == "run"} >= {len(pairs)}, result.nodes
    with store.session():
        trip_p50, _ = time_it(lambda: store.run_read("RETURN 1"), reps)
        seg_p50, seg_p95 = time_it(lambda: provenance.segment(store, [src], [dst]), reps)
        sum_p50, sum_p95 = time_it(summary, max(3, reps // 4))
    only_p50, _ = time_it(lambda: provenance.summarize(segs), reps)
    return {
        "backend": backend,
        "versions": n,
        "segment_vertices": len(seg.vertices),
        "round_trip_p50": trip_p50,
        "segment_p50": seg_p50,
        "segment_p95": seg_p95,
        "summary_segments": len(pairs),
        "summary_classes": len(result.nodes),
        "summary_p50": sum_p50,
        "summary_p95": sum_p95,
        "pgsum_only_p50": only_p50,
    }


def bench_backend(backend: str, sizes: list[int], uri: str | None, reps: int) -> list[dict]:
    rows = []
    rng = random.Random(7)
    with fresh_store(backend, uri) as store:
        done = 0
        for n in sorted(sizes):
            load = write_versions(store, done, n, rng)
            done = n
            if backend == "neo4j":
                store.run_read("CALL db.awaitIndexes(300)")
            print(f"{backend}: {n:,} versions loaded in {load:.1f} s", flush=True)
            row = bench_size(store, backend, n, reps)
            row["load_s"] = load
            print(row, flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| backend | versions | `RETURN 1` p50 (ms) | segment vertices | segment p50 / p95 (ms) | "
        "summary of 10 segments p50 / p95 (ms) | PgSum alone p50 (ms) | classes |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    return head + "".join(
        f"| {r['backend']} | {r['versions']:,} | {r['round_trip_p50']:.1f} | "
        f"{r['segment_vertices']} | "
        f"{r['segment_p50']:.1f} / {r['segment_p95']:.1f} | "
        f"{r['summary_p50']:.1f} / {r['summary_p95']:.1f} | {r['pgsum_only_p50']:.2f} | "
        f"{r['summary_classes']} |\n"
        for r in rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--backends", default="ladybug,neo4j")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "provenance.md"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict] = []
    for backend in args.backends.split(","):
        if backend == "neo4j":
            with neo4j_uri() as uri:
                rows += bench_backend(backend, sizes, uri, args.reps)
        else:
            rows += bench_backend(backend, sizes, None, args.reps)
    cmd = "bench/provenance.py " + " ".join(sys.argv[1:])
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    text = (
        "# Provenance benchmark: PgSeg and PgSum\n\n"
        f"`{cmd.strip()}` on {platform.node() or 'this machine'} "
        f"({platform.processor() or platform.machine()}, Python {platform.python_version()}), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load} at the end (a shared "
        "machine: `RETURN 1` is the bare round trip of that moment). Generated graph: see the "
        "docstring of "
        "`bench/provenance.py` (trees of 50 fine-tunes, a run per version with a data set, "
        "an agent, 3 hyper-parameters and 2 snapshots). Segment: a version to the one 20 "
        "generations below it (answer checked: 21 versions and 20 runs on the path). Summary: "
        "10 such segments from 10 trees, fetched and summarized.\n\n" + table(rows)
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
