"""DQL benchmark: compile time, and ``select`` latency on 1k and 10k versions × ~20 layers.

Two parts:

* **compile**: ``dql.compile(text, dialect=...)`` for the paper's four queries (Q4 resolves its
  saved ``"query3"``), both dialects — median / p95 over many iterations;
* **select**: a mix of selects run exactly as the executor runs them (``dql.compile`` then one
  ``store.run_read_page``: every row, or the first page + the total) and as the executor of
  commit 8e96f56 ran them (``before``), interleaved, on the embedded LadybugDB store and on
  Neo4j 5.26, once the graph holds each size of repository — p50 latency and client CPU.
  Every answer is checked against the list computed in Python from the generated data, so the
  benchmark also proves the queries right.

The repository is written straight through the graph layer (no weights, no archive: a select
only touches the graph): AlexNet-like 19–20 layer networks (:func:`provdb.models.zoo.alexnet`) with
MAX, AVG or no pooling after conv1/3/5 drawn at random, names from five families
(``alexnet_v…``, ``alexnet-origin-…``, ``alexnet-avgv1-…``, ``resnet-…``, ``vgg_…``),
``created_at`` spread over 2014–2026, hyper-parameters (``base_lr``, ``momentum``,
``optimizer``) and a ``loss`` series per version. Sizes grow one store incrementally (the 10k
repository is the 1k one plus 9k versions). The embedded store's timed loop runs inside one
``store.session()``; the cost of opening the database, which each ``dlv query`` pays once, is
reported on its own. Neo4j comes from ``$NEO4J_URI`` or a throw-away Maven-provisioned server
(:mod:`provdb.neo4j_server`, 2 GiB heap, 1 GiB page cache). Usage::

    .venv/bin/python bench/dql.py                     # 1,000 and 10,000 versions
    .venv/bin/python bench/dql.py --sizes 1000 --backends ladybug --reps 10
    .venv/bin/python bench/dql.py --explain           # also print Neo4j PROFILE summaries
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import os
import platform
import random
import re
import runpy
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# This file is named dql.py: drop its folder from the path so `import dql` is the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import dql  # noqa: E402
from dql.compiler import Compiler  # noqa: E402
from dql.cypher import Generator  # noqa: E402
from dql.parser import parse  # noqa: E402
from provdb.cli.query import PAGE  # noqa: E402
from provdb.entities import Model, ModelVersion  # noqa: E402
from provdb.graph import GraphStore, WriteBatch  # noqa: E402
from provdb.graph.neo4j_store import page_query  # noqa: E402
from provdb.models.network import NetworkDef  # noqa: E402
from provdb.models.zoo import alexnet  # noqa: E402
from provdb.query import DEFAULT_ORDER  # noqa: E402
from provdb.versioning import metadata_batch, network_batch  # noqa: E402

sys.path.append(str(_HERE))  # after `import dql`, so bench/dql.py cannot shadow it
from _common import fresh_store, neo4j_uri  # noqa: E402

FAMILIES = ("alexnet_v", "alexnet-origin-", "alexnet-avgv1-", "resnet-", "vgg_")
MODELS_PER_FAMILY = 50
POOL_CHOICES = ("MAX", "AVG", None)
LRS = (0.1, 0.01, 0.001)
_PAPER = _HERE.parent / "tests" / "dql" / "paper_queries.py"
PAPER_QUERIES: dict[str, str] = runpy.run_path(str(_PAPER))["PAPER_QUERIES"]
T0 = datetime(2014, 1, 1, tzinfo=UTC).timestamp()
T1 = datetime(2026, 12, 31, tzinfo=UTC).timestamp()
PER_TXN = 100


# -- the generated repository, as Python data ------------------------------------------------


@dataclass(frozen=True)
class Version:
    """What the benchmark knows about one generated version (to compute expected answers)."""

    id: str
    name: str
    created_at: str
    network: NetworkDef
    params: dict[str, object]
    loss: list[float] = field(default_factory=list)


_NETS: dict[tuple[str | None, ...], NetworkDef] = {}


def make_version(i: int) -> Version:
    """Version ``i``: deterministic in ``i`` alone, so sizes can grow one store."""
    rng = random.Random(i)
    family = FAMILIES[rng.randrange(len(FAMILIES))]
    pools = tuple(rng.choice(POOL_CHOICES) for _ in range(3))
    if pools not in _NETS:
        _NETS[pools] = alexnet(pools=list(pools))
    ts = datetime.fromtimestamp(rng.uniform(T0, T1), tz=UTC).replace(microsecond=0)
    steps = 10
    start, end = rng.uniform(1.5, 2.5), rng.uniform(0.05, 1.2)
    loss = [start + (end - start) * k / (steps - 1) for k in range(steps)]
    return Version(
        id=f"v{i:06d}",
        name=f"{family}{rng.randrange(MODELS_PER_FAMILY)}",
        created_at=ts.isoformat(),
        network=_NETS[pools],
        params={
            "base_lr": rng.choice(LRS),
            "momentum": 0.9,
            "optimizer": rng.choice(("sgd", "adam")),
        },
        loss=loss,
    )


def version_batch(v: Version, batch: WriteBatch) -> None:
    """The graph nodes and edges of one version (what a commit writes, minus snapshots)."""
    node = ModelVersion(
        id=v.id,
        name=v.name,
        created_at=v.created_at,
        author="bench",
        framework="pytorch",
        network=v.network.to_json(),
    )
    batch.add(Model(name=v.name, created_at=v.created_at), node)
    batch.relate("VERSION_OF", node, ("Model", v.name))
    network_batch(batch, node, v.network)
    metadata_batch(batch, node, v.params, {"loss": (list(range(len(v.loss))), v.loss)})


def load(store: GraphStore, versions: list[Version]) -> float:
    """Write ``versions``, ``PER_TXN`` per transaction; returns seconds."""
    hold = getattr(store, "hold", None)
    start = time.perf_counter()
    with hold() if hold else nullcontext():
        for lo in range(0, len(versions), PER_TXN):
            batch = WriteBatch()
            for v in versions[lo : lo + PER_TXN]:
                version_batch(v, batch)
            store.write(batch)
    return time.perf_counter() - start


# -- the selects and their expected answers, computed independently of dql -----------------


def like(pattern: str) -> Callable[[str], bool]:
    """SQL ``like`` (``%``, ``_``, backslash escapes) as a predicate, written here from scratch."""
    out, chars = [], iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        else:
            out.append({"%": ".*", "_": "."}.get(ch, re.escape(ch)))
    rx = re.compile("".join(out), re.S)
    return lambda s: rx.fullmatch(s) is not None


def next_has(v: Version, layers: Callable[[str], bool], typ: str, mode: str | None) -> bool:
    """Whether some layer whose name passes ``layers`` has a successor of ``typ``/``mode``."""
    net = v.network
    return any(
        net.layer(dst).type == typ and (mode is None or net.layer(dst).mode == mode)
        for src, dst in net.edges
        if layers(src)
    )


@dataclass(frozen=True)
class Query:
    """One benchmarked select: its DQL and how to compute its answer from the data."""

    key: str
    text: str
    expect: Callable[[list[Version]], list[str]]
    ordered: bool = False


def _ids(pred: Callable[[Version], bool]) -> Callable[[list[Version]], list[str]]:
    return lambda vs: sorted(v.id for v in vs if pred(v))


_ALEXNET = like("alexnet_%")
_ORIGIN = like("alexnet-origin%")

QUERIES = (
    Query(
        "Q1 (paper, verbatim)",
        PAPER_QUERIES["query1"],
        _ids(
            lambda v: (
                _ALEXNET(v.name)
                and v.created_at > "2015-11-22"
                and next_has(v, lambda n: n in ("conv1", "conv3", "conv5"), "Pool", "MAX")
            )
        ),
    ),
    Query(
        "name like only",
        'select m where m.name like "alexnet-origin%"',
        _ids(lambda v: _ORIGIN(v.name)),
    ),
    Query(
        "structural has only",
        'select m where m["conv*"].next has POOL("AVG")',
        _ids(lambda v: next_has(v, lambda n: fnmatch.fnmatchcase(n, "conv*"), "Pool", "AVG")),
    ),
    Query(
        "hyper-parameter + metric",
        'select m where m.params.base_lr = 0.01 and m.params.optimizer = "adam" '
        'and m["loss"] < 0.5',
        _ids(
            lambda v: (
                v.params["base_lr"] == 0.01 and v.params["optimizer"] == "adam" and v.loss[-1] < 0.5
            )
        ),
    ),
    Query(
        "order by loss limit 10",
        'select m where m.name like "alexnet%" and m.creation_time >= "2020-01-01" '
        'order by m["loss"] asc limit 10',
        lambda vs: [
            v.id
            for v in sorted(
                (v for v in vs if v.name.startswith("alexnet") and v.created_at >= "2020-01-01"),
                key=lambda v: v.loss[-1],
            )[:10]
        ],
        ordered=True,
    ),
    Query(
        "order by time desc limit 10",
        "select m where m.params.base_lr < 0.05 order by m.creation_time desc limit 10",
        lambda vs: [
            v.id
            for v in sorted(
                (v for v in vs if v.params["base_lr"] < 0.05),
                key=lambda v: v.created_at,
                reverse=True,
            )[:10]
        ],
        ordered=True,
    ),
)


# -- measuring -------------------------------------------------------------------------------


def p95(xs: list[float]) -> float:
    """The 95th percentile (nearest rank), robust for small samples."""
    ys = sorted(xs)
    return ys[min(len(ys) - 1, math.ceil(0.95 * len(ys)) - 1)]


def bench_compile(iters: int) -> list[dict]:
    """Median / p95 milliseconds of ``dql.compile`` per paper query and dialect."""
    rows = []
    for key, text in PAPER_QUERIES.items():
        for dialect in ("neo4j", "ladybug"):
            compiled = dql.compile(text, dialect=dialect, resolve=PAPER_QUERIES.get)
            times = []
            for _ in range(iters):
                t = time.perf_counter()
                dql.compile(text, dialect=dialect, resolve=PAPER_QUERIES.get)
                times.append(time.perf_counter() - t)
            rows.append(
                {
                    "query": key,
                    "kind": compiled.kind,
                    "dialect": dialect,
                    "p50_ms": statistics.median(times) * 1e3,
                    "p95_ms": p95(times) * 1e3,
                    "cypher_chars": len(_cypher_of(compiled)),
                }
            )
    return rows


def _cypher_of(compiled: dql.CompiledQuery) -> str:
    """The query's Cypher; for evaluate, that of the query it ranges over."""
    if not compiled.cypher and isinstance(compiled.source, dql.CompiledQuery):
        return compiled.source.cypher
    return compiled.cypher


class _BeforeNeo4j(Generator):
    """The Neo4j generator as of commit 8e96f56 (no layer-first ``has``), for the A/B."""

    LAYER_FIRST = False


#: The timed variants, interleaved in one loop: how a select ran before this change, and how
#: the executor runs it now (every row, or the first page + total).
VARIANTS = ("before", "full", "page")


def compile_variant(text: str, dialect: str, variant: str) -> dql.CompiledQuery:
    """The query as ``variant`` compiles it (``before``: the old Neo4j generator)."""
    if variant == "before" and dialect == "neo4j":
        return Compiler(text, _BeforeNeo4j, None).compile(parse(text))
    return dql.compile(text, dialect=dialect)


def run_select(store: GraphStore, text: str, variant: str = "full") -> tuple[list[dict], int]:
    """A select as ``variant`` runs it; returns (rows, total).

    ``before``: the executor of commit 8e96f56, one ``run_read`` of every row, sorted in
    Python; ``full`` / ``page``: today's executor (:func:`provdb.query._select`),
    ``run_read_page`` with no limit or with :data:`PAGE` rows.
    """
    compiled = compile_variant(text, store.dialect.name, variant)
    if variant == "before":
        rows = store.run_read(compiled.cypher, compiled.params)
        if not compiled.ordered:
            rows.sort(key=lambda r: (str(r.get("created_at")), str(r.get("id"))))
        return rows, len(rows)
    cypher = compiled.cypher if compiled.ordered else compiled.cypher + "\n" + DEFAULT_ORDER
    limit = PAGE if variant == "page" else None
    return store.run_read_page(cypher, compiled.params, compiled.columns, limit)


def bench_selects(
    store: GraphStore, backend: str, versions: list[Version], reps: int, warmup: int
) -> list[dict]:
    """p50 wall and client-CPU time of every query and variant, and a correctness check."""
    expected = {q.key: q.expect(versions) for q in QUERIES}
    order = {v.id: (v.created_at, v.id) for v in versions}
    session = getattr(store, "session", None)
    keys = [(q, v) for q in QUERIES for v in VARIANTS]
    wall: dict[tuple[str, str], list[float]] = {(q.key, v): [] for q, v in keys}
    cpu: dict[tuple[str, str], list[float]] = {(q.key, v): [] for q, v in keys}
    ok: dict[str, bool] = {}
    rows_back: dict[str, int] = {}
    with session() if session else nullcontext():
        for q in QUERIES:
            want = expected[q.key] if q.ordered else sorted(expected[q.key], key=order.get)
            checks = []
            for variant in VARIANTS:
                for _ in range(warmup):
                    got, total = run_select(store, q.text, variant)
                ids = [r["id"] for r in got]
                # every row (page: the first PAGE) in the query's order or by (created_at,
                # id), and the total
                checks.append(ids == (want[:PAGE] if variant == "page" else want))
                checks.append(total == len(want))
            ok[q.key] = all(checks)
            rows_back[q.key] = len(want)
            if not ok[q.key]:
                print(f"MISMATCH {backend} {q.key}: {checks}", file=sys.stderr)
        floor: list[float] = []
        for _ in range(reps):  # interleaved, so background noise hits every variant alike
            for q, variant in keys:
                t, c = time.perf_counter(), time.process_time()
                run_select(store, q.text, variant)
                cpu[q.key, variant].append(time.process_time() - c)
                wall[q.key, variant].append(time.perf_counter() - t)
            t = time.perf_counter()
            store.run_read("RETURN 1 AS x")
            floor.append(time.perf_counter() - t)
    server = server_times(store, reps) if store.dialect.name == "neo4j" else {}
    base = {
        "backend": backend,
        "versions": len(versions),
        "layers": sum(len(v.network) for v in versions),
    }
    out = [{**base, "query": "round-trip floor (`RETURN 1`)", "rows": 1, "ok": True,
            "floor_ms": statistics.median(floor) * 1e3}]  # fmt: skip
    for q in QUERIES:
        row = {**base, "query": q.key, "rows": rows_back[q.key], "ok": ok[q.key]}
        for variant in VARIANTS:
            row[f"{variant}_ms"] = statistics.median(wall[q.key, variant]) * 1e3
            row[f"{variant}_p95_ms"] = p95(wall[q.key, variant]) * 1e3
            row[f"{variant}_cpu_ms"] = statistics.median(cpu[q.key, variant]) * 1e3
            row[f"{variant}_server_ms"] = server.get((q.key, variant))
        out.append(row)
    return out


def server_times(store: GraphStore, reps: int) -> dict[tuple[str, str], float]:
    """Neo4j's own p50 milliseconds per query and variant (result available + consumed)."""
    driver = store._driver  # noqa: SLF001 - benchmark introspection only
    out: dict[tuple[str, str], list[float]] = {(q.key, v): [] for q in QUERIES for v in VARIANTS}
    for _ in range(reps):
        for q in QUERIES:
            for variant in VARIANTS:
                cypher, params = _neo4j_statement(q.text, variant)
                _, summary, _ = driver.execute_query(cypher, params)
                out[q.key, variant].append(
                    summary.result_available_after + summary.result_consumed_after
                )
    return {k: statistics.median(v) for k, v in out.items()}


def _neo4j_statement(text: str, variant: str) -> tuple[str, dict]:
    """The one statement ``variant`` sends to Neo4j."""
    compiled = compile_variant(text, "neo4j", variant)
    if variant == "before":
        return compiled.cypher, compiled.params
    cypher = compiled.cypher if compiled.ordered else compiled.cypher + "\n" + DEFAULT_ORDER
    limit = PAGE if variant == "page" else None
    return page_query(cypher, compiled.params, compiled.columns, limit)


def open_cost(store: GraphStore, samples: int = 7) -> float | None:
    """Median milliseconds to open and close the embedded database read-only (once per CLI)."""
    if not hasattr(store, "session") or store.dialect.name != "ladybug":
        return None
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        with store.session():
            store.run_read("RETURN 1 AS x")
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def profile(store: GraphStore) -> None:
    """Print Neo4j's PROFILE summary (operators, rows, db hits) for every benchmarked query."""
    driver = store._driver  # noqa: SLF001 - benchmark introspection only
    for q in QUERIES:
        for variant in VARIANTS:
            cypher, params = _neo4j_statement(q.text, variant)
            _, summary, _ = driver.execute_query("PROFILE " + cypher, params)
            print(f"\n== PROFILE {q.key} ({variant})\n{cypher}")
            print(f"db hits: {_dbhits(summary.profile)}")
            _print_plan(summary.profile)


def _dbhits(plan: dict) -> int:
    return plan.get("dbHits", 0) + sum(_dbhits(c) for c in plan.get("children", []))


def _print_plan(plan: dict, depth: int = 0) -> None:
    args = plan.get("args", {})
    detail = str(args.get("Details", ""))[:110]
    print(
        f"{'  ' * depth}{plan['operatorType']} rows={plan.get('rows')} "
        f"hits={plan.get('dbHits')} {detail}"
    )
    for child in plan.get("children", []):
        _print_plan(child, depth + 1)


# -- backends --------------------------------------------------------------------------------


def bench_backend(backend: str, sizes: list[int], uri: str | None, args) -> tuple[list, dict]:
    """Select rows for one backend, plus load times and the open cost."""
    rows, extra = [], {"load_s": {}, "open_ms": None}
    versions: list[Version] = []
    with fresh_store(backend, uri) as store:
        for n in sorted(sizes):
            new = [make_version(i) for i in range(len(versions), n)]
            extra["load_s"][n] = load(store, new)
            versions += new
            if backend == "neo4j":
                store.run_read("CALL db.awaitIndexes(300)")
            print(f"{backend}: {n:,} versions loaded in {extra['load_s'][n]:.1f} s", flush=True)
            rows += bench_selects(store, backend, versions, args.reps, args.warmup)
            for r in rows[-len(QUERIES) :]:
                print(r, flush=True)
            if args.explain and backend == "neo4j":
                profile(store)
        extra["open_ms"] = open_cost(store)
    return rows, extra


# -- report ----------------------------------------------------------------------------------


def compile_table(rows: list[dict]) -> str:
    head = (
        "| query | kind | dialect | compile p50 ms | compile p95 ms | Cypher chars (evaluate: "
        "its source's) |\n"
        "|---|---|---|---:|---:|---:|\n"
    )
    return head + "".join(
        f"| {r['query']} | {r['kind']} | {r['dialect']} | {r['p50_ms']:.2f} "
        f"| {r['p95_ms']:.2f} | {r['cypher_chars']} |\n"
        for r in rows
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def select_table(rows: list[dict]) -> str:
    head = (
        "| backend | versions | query | rows | correct | before p50 ms | before CPU ms "
        "| full p50 ms | full / before | full CPU ms | page p50 ms | page / before "
        "| page CPU ms | server p50 ms before / full / page |\n"
        "|---|---:|---|---:|:-:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        if "floor_ms" in r:
            lines.append(
                f"| {r['backend']} | {r['versions']:,} | {r['query']} | 1 | yes "
                f"| {r['floor_ms']:.1f} | | | | | | | | |\n"
            )
            continue
        servers = " / ".join(_ms(r[f"{v}_server_ms"]) for v in VARIANTS)
        lines.append(
            f"| {r['backend']} | {r['versions']:,} | {r['query']} | {r['rows']} "
            f"| {'yes' if r['ok'] else '**NO**'} | {r['before_ms']:.1f} "
            f"| {r['before_cpu_ms']:.1f} | {r['full_ms']:.1f} "
            f"| {r['full_ms'] / r['before_ms']:.2f} | {r['full_cpu_ms']:.1f} "
            f"| {r['page_ms']:.1f} | {r['page_ms'] / r['before_ms']:.2f} "
            f"| {r['page_cpu_ms']:.1f} | {servers if r['backend'] == 'neo4j' else '–'} |\n"
        )
    return head + "".join(lines)


def query_list() -> str:
    return "".join(f"- **{q.key}**: `{' '.join(q.text.split())}`\n" for q in QUERIES)


def main() -> None:
    """Run the benchmark and write bench/results/dql.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--backends", nargs="+", default=["ladybug", "neo4j"])
    ap.add_argument("--reps", type=int, default=30, help="timed runs per select and size")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per select and size")
    ap.add_argument("--compile-iters", type=int, default=500)
    ap.add_argument("--explain", action="store_true", help="print Neo4j PROFILE summaries")
    ap.add_argument("--notes", help="a Markdown file appended to the results as notes")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dql.md"))
    args = ap.parse_args()

    comp = bench_compile(args.compile_iters)
    print(compile_table(comp), flush=True)
    rows, extras = [], {}
    if "ladybug" in args.backends:
        r, extras["ladybug"] = bench_backend("ladybug", args.sizes, None, args)
        rows += r
    if "neo4j" in args.backends:
        with neo4j_uri() as uri:
            r, extras["neo4j"] = bench_backend("neo4j", args.sizes, uri, args)
            rows += r

    goal = [
        r for r in rows if r["backend"] == "neo4j" and r["versions"] >= 10000 and "page_ms" in r
    ]
    verdict = ""
    if goal:
        worst = max(goal, key=lambda r: r["page_ms"])
        q1 = next(r for r in goal if r["query"].startswith("Q1"))
        verdict = (
            f"\n**Goals** (issue #14, Neo4j, 10k versions): every select's first page "
            f"({PAGE} rows + total) p50 ≤ 50 ms — worst {worst['page_ms']:.1f} ms "
            f"({worst['query']}), {'met' if worst['page_ms'] <= 50 else 'NOT met'}; "
            f"paper query 1 full result p50 ≤ 100 ms — {q1['full_ms']:.1f} ms, "
            f"{'met' if q1['full_ms'] <= 100 else 'NOT met'}.\n"
        )
    loads = "".join(
        f"- {b}: "
        + ", then ".join(f"up to {n:,} versions in {s:.0f} s" for n, s in e["load_s"].items())
        + (
            f"; opening the database read-only costs {e['open_ms']:.0f} ms (median), once per "
            "`dlv query`"
            if e["open_ms"] is not None
            else ""
        )
        + "\n"
        for b, e in extras.items()
    )
    notes = Path(args.notes).read_text() if args.notes else ""
    text = (
        "# DQL benchmark\n\n"
        f"`python bench/dql.py --sizes {' '.join(map(str, args.sizes))}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"(shared machine: other benchmarks ran alongside, so read medians). Each select ran "
        f"{args.warmup} untimed + {args.reps} timed times per variant, all variants and "
        "queries interleaved in one loop. Latency is compile + one round trip: *before* is "
        "the executor of commit 8e96f56 (old Neo4j generator, `run_read` of every row, "
        "sorted in Python); *full* is today's executor with every row (`run_read_page`, no "
        f"limit) and *page* its first {PAGE} rows + the total, as `dlv query` shows them. "
        "CPU is the client process's CPU time (median). Every variant's answer is checked "
        "against the list computed in Python from the generated data, in order, and its "
        "total (*correct*).\n\n"
        f"## Compile (DQL → Cypher, {args.compile_iters} iterations each)\n\n"
        + compile_table(comp)
        + "\n## Select latency\n\n"
        + query_list()
        + "\n"
        + select_table(rows)
        + verdict
        + "\nLoading (100 versions per transaction, graph only; each size adds to the last):\n\n"
        + loads
        + (f"\n## Notes\n\n{notes}" if notes else "")
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
