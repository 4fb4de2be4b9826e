"""SDK overhead: logging a checkpoint of a ~100 MB model, and 10,000 metric points.

Side by side in the same run: ``torch.save`` and ``safetensors`` of the same state dict (what
a script does without us). Two checkpoints are logged: the first materialises every tensor,
the second (after a small dense update) is delta-encoded against the first. Usage::

    .venv/bin/python bench/sdk.py [--mb 100]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    """Run and write bench/results/sdk.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sdk.md"))
    args = ap.parse_args()
    net, module = mlp(args.mb)
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    raw = sum(a.nbytes for a in state.values())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        provdb.Repository.init(tmp_path / "repo").close()
        with provdb.start_run(tmp_path / "repo", name="bench", network=net) as run:
            t_first = time.perf_counter()
            run.log_checkpoint(state, step=1)
            t_first = time.perf_counter() - t_first
            rng = np.random.default_rng(0)
            updated = {
                k: v + rng.normal(0, 1e-4, v.shape).astype(v.dtype) for k, v in state.items()
            }
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
    rows += [
        ("log_checkpoint, first (materialised)", t_first, raw),
        ("log_checkpoint, second (delta vs first)", t_second, raw),
        ("torch.save (full copy)", t_torch, raw),
        ("safetensors save_file (full copy)", t_st, raw),
    ]
    table = "| operation | seconds | MB/s |\n|---|---:|---:|\n" + "".join(
        f"| {name} | {sec:.2f} | {size / sec / 1e6:.0f} |\n" for name, sec, size in rows
    )
    text = (
        "# SDK overhead\n\n"
        f"`python bench/sdk.py --mb {args.mb:g}` on {platform.machine()}, {os.cpu_count()} "
        f"cores; embedded graph (LadybugDB); model: {raw / 1e6:.0f} MB float32 "
        f"({len(state)} tensors).\n\n{table}\n"
        f"10,000 metric points with `run.log_metric` (buffered, flushed every 1,000): "
        f"{t_metrics:.2f} s ({t_metrics / 10_000 * 1e6:.0f} µs per point).\n\n"
        f"Archive after both checkpoints: {stored / 1e6:.0f} MB stored for "
        f"{2 * raw / 1e6:.0f} MB logged ({100 * stored / (2 * raw):.0f}%).\n"
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
