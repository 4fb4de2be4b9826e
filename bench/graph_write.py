"""Graph-write benchmark: commit N model versions of ~50 layers through each backend.

For each backend (embedded LadybugDB, Neo4j 5.26) and each N it reports:

* ``commit``: one transaction per version (what ``dlv commit`` does) — versions/s;
* ``bulk``: 100 versions per transaction (imports, hub pulls) — versions/s;
* the p50/p95 latency of a lineage query (ancestors, unbounded depth) over 50 versions once the
  graph holds all N versions. Versions form 20 families; each derives from the previous one
  of its family, so lineage depth grows to N/20.

Neo4j comes from ``$NEO4J_URI`` or is started from the Maven jars
(:mod:`provdb.neo4j_server`). Usage::

    .venv/bin/python bench/graph_write.py            # N = 1,000 and 10,000
    .venv/bin/python bench/graph_write.py --sizes 200 --backends ladybug
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

from _common import fresh_store, neo4j_uri

from provdb.entities import Derivation, Hyperparameter, Layer, Model, ModelVersion
from provdb.graph import GraphStore, WriteBatch

LAYERS = 50
FAMILIES = 20
TYPES = ("Conv", "ReLU", "Pool", "BatchNorm", "FC")


def version_batch(i: int, batch: WriteBatch | None = None) -> WriteBatch:
    """Version ``i`` with LAYERS chained layers, three hyper-parameters and its parent edge."""
    batch = WriteBatch() if batch is None else batch
    vid, family = f"v{i:06d}", f"net-{i % FAMILIES}"
    version = ModelVersion(id=vid, name=family, created_at=f"2026-01-01T00:00:{i:06d}")
    layers = [
        Layer(
            id=f"{vid}/l{k}",
            name=f"l{k}",
            type=TYPES[k % len(TYPES)],
            mode="MAX" if k % 5 == 2 else "",
            ordinal=k,
            attrs='{"k": 3}',
        )
        for k in range(LAYERS)
    ]
    params = [Hyperparameter.of(vid, n, v) for n, v in (("lr", 0.01), ("bs", 64), ("opt", "sgd"))]
    # as a commit writes it: the model is merged, everything of the new version is created
    batch.add(Model(name=family)).add(version, *layers, *params, new=True)
    batch.relate("VERSION_OF", version, ("Model", family), new=True)
    for layer in layers:
        batch.relate("HAS_LAYER", version, layer, new=True)
    for a, b in zip(layers, layers[1:]):
        batch.relate("NEXT", a, b, new=True)
    for p in params:
        batch.relate("HAS_PARAM", version, p, new=True)
    if i >= FAMILIES:
        batch.derive(Derivation(vid, f"v{i - FAMILIES:06d}", op="finetune"), new=True)
    return batch


def write_all(store: GraphStore, n: int, per_txn: int) -> float:
    """Write versions 0..n-1, ``per_txn`` per transaction; returns seconds."""
    hold = getattr(store, "hold", None)
    start = time.perf_counter()
    with hold() if hold else nullcontext():
        for lo in range(0, n, per_txn):
            batch = WriteBatch()
            for i in range(lo, min(n, lo + per_txn)):
                version_batch(i, batch)
            store.write(batch)
    return time.perf_counter() - start


def lineage_latency(store: GraphStore, n: int, samples: int = 50) -> list[float]:
    """Seconds per lineage query for ``samples`` versions from the newest half."""
    rng = random.Random(0)
    ids = [f"v{rng.randrange(n // 2, n):06d}" for _ in range(samples)]
    out = []
    for vid in ids:
        t = time.perf_counter()
        store.lineage(vid)
        out.append(time.perf_counter() - t)
    return out


def bench_backend(backend: str, sizes: list[int], uri: str | None) -> list[dict]:
    """Rows of results for one backend."""
    rows = []
    for n in sizes:
        commit_n = min(n, 1000)
        with fresh_store(backend, uri) as store:
            t_commit = write_all(store, commit_n, per_txn=1)
        with fresh_store(backend, uri) as store:
            t_bulk = write_all(store, n, per_txn=100)
            lat = lineage_latency(store, n)
        rows.append(
            {
                "backend": backend,
                "versions": n,
                "layers": n * LAYERS,
                "commit_vps": commit_n / t_commit,
                "commit_n": commit_n,
                "bulk_vps": n / t_bulk,
                "lineage_p50_ms": statistics.median(lat) * 1e3,
                "lineage_p95_ms": statistics.quantiles(lat, n=20)[-1] * 1e3,
                "depth": n // FAMILIES,
            }
        )
        print(rows[-1], flush=True)
    return rows


NOTES = """
Notes:

* A commit's nodes and edges are all new, so they are written with `CREATE` (a `MERGE` of a
  new node cost ~6x more on LadybugDB); only the `Model` is merged.
* Embedded lineage latency includes opening the database read-only (~30-40 ms), which every
  `dlv` invocation pays once; the queries themselves take a few milliseconds.
* Lineage is unbounded here, i.e. clamped to the dialect's 100 hops; at 10k versions the
  chains are 500 deep, so the query walks 100 of them.
* The machine is shared (2 cores); compare backends within one run, not across runs.
"""


def table(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    head = (
        "| backend | versions | layers | commit: versions/s (1 txn each, first N≤1k) "
        "| bulk: versions/s (100/txn) | lineage p50 ms | lineage p95 ms | max depth |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    return head + "".join(
        f"| {r['backend']} | {r['versions']:,} | {r['layers']:,} | {r['commit_vps']:.0f} "
        f"(N={r['commit_n']:,}) | {r['bulk_vps']:.0f} | {r['lineage_p50_ms']:.1f} "
        f"| {r['lineage_p95_ms']:.1f} | {r['depth']} |\n"
        for r in rows
    )


def main() -> None:
    """Run the benchmark and write bench/results/graph_write.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--backends", nargs="+", default=["ladybug", "neo4j"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "graph_write.md"))
    args = ap.parse_args()
    rows = []
    if "ladybug" in args.backends:
        rows += bench_backend("ladybug", args.sizes, None)
    if "neo4j" in args.backends:
        with neo4j_uri() as uri:
            rows += bench_backend("neo4j", args.sizes, uri)
    text = (
        "# Graph write benchmark\n\n"
        f"`python bench/graph_write.py --sizes {' '.join(map(str, args.sizes))}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{LAYERS} layers, 3 hyper-parameters and one DERIVED_FROM edge per version.\n\n"
        + table(rows)
        + NOTES
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
