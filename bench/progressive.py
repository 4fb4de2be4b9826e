"""Progressive evaluation benchmark → ``bench/results/progressive.md``.

Three networks trained here on scikit-learn's digits (offline): the demo's digits CNN, an MLP
and a deeper AlexNet-shaped CNN (5 conv + 3 FC). Each is stored in a PAS archive the way the
demo's lineage stores it (an earlier checkpoint materialised, the evaluated one as an XOR delta
against it) and in fp32 and bf16. For each: the cumulative fraction of test inputs certified
and the bytes read per plane count, time versus a full evaluation (read every plane, one
PyTorch forward pass), and whether every answer equals the full evaluation's.

Run: ``PYTHONPATH=. python -m bench.progressive [--out bench/results/progressive.md]`` (as a
module: ``bench/storage.py`` would shadow the ``storage`` package).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import torch

from provdb.models import learner, zoo
from provdb.models.network import Layer, NetworkDef
from provdb.models.progressive import (
    ArchiveReader,
    ProgressiveResult,
    full_precision_predict,
    progressive_evaluate,
)
from storage import Archive, MemoryStore

#: ModelHub ICDE'17 Fig. 6d as read off the figure (modelhub-papers §8.7): % certified and % of
#: the data read, with 1 and 2 high bytes.
PAPER = {
    "LeNet top-1": ("87.7% @ ~6%", "≈100% @ ~38–40%"),
    "AlexNet top-5": ("95.7% @ ~6%", "99.5% @ ~38–40%"),
    "VGG-16 top-5": ("94.2% @ ~6%", "99.5% @ ~38–40%"),
}


def mlp() -> NetworkDef:
    """``64 → 128 → 64 → 10`` with ReLUs."""
    sizes = [64, 128, 64, 10]
    layers = [Layer("data", "Input", "", {"shape": [64]})]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:]), start=1):
        layers.append(Layer(f"fc{i}", "FC", "", {"in_features": a, "out_features": b}))
        if i < len(sizes) - 1:
            layers.append(Layer(f"relu{i}", "ReLU"))
    return NetworkDef(tuple(layers), tuple((a.name, b.name) for a, b in zip(layers, layers[1:])))


@dataclass
class Workload:
    name: str
    net: NetworkDef
    config: learner.TrainConfig


WORKLOADS: list[Callable[[], Workload]] = [
    lambda: Workload(
        "digits CNN (demo, 32/64 ch)",
        zoo.digits_cnn(channels=(32, 64)),
        learner.TrainConfig(iterations=400, checkpoint_every=100, eval_every=0, log_every=0),
    ),
    lambda: Workload(
        "MLP 64-128-64-10",
        mlp(),
        learner.TrainConfig(iterations=600, checkpoint_every=100, eval_every=0, log_every=0),
    ),
    lambda: Workload(
        "deeper CNN (AlexNet-shaped, 5 conv + 3 FC)",
        zoo.alexnet("MAX", channels=(32, 64, 64, 64, 64), hidden=128, lrn=False),
        learner.TrainConfig(
            iterations=800, base_lr=0.02, checkpoint_every=100, eval_every=0, log_every=0
        ),
    ),
]


def _cast(tensors: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    if dtype == "fp32":
        return tensors
    return {
        k: v.astype(ml_dtypes.bfloat16) if v.dtype.kind == "f" else v for k, v in tensors.items()
    }


def _full_eval(archive: Archive, sid: str, net: NetworkDef, x: np.ndarray, k: int) -> tuple:
    started = time.perf_counter()
    tensors = archive.read_snapshot(sid)
    tensors = {
        n: t.astype(np.float32) if t.dtype.name == "bfloat16" else t for n, t in tensors.items()
    }
    pred = full_precision_predict(net, tensors, x, top_k=k)
    return pred, time.perf_counter() - started


def _run(w: Workload, data: learner.Dataset) -> list[dict]:
    ckpts: dict[int, dict[str, np.ndarray]] = {}
    result = learner.train(w.net, None, w.config, on_checkpoint=lambda s, t: ckpts.update({s: t}))
    steps = sorted(ckpts)
    x = data.x_test
    rows = []
    for dtype in ("fp32", "bf16"):
        archive = Archive(MemoryStore())
        archive.write_snapshot("ckpt/prev", _cast(ckpts[steps[-2]], dtype))
        archive.write_snapshot("ckpt/last", _cast(ckpts[steps[-1]], dtype), bases=["ckpt/prev"])
        reader = ArchiveReader(archive, "ckpt/last")
        stored = archive.snapshot_stats("ckpt/last")["stored"]
        for k in (1, 5):
            full_pred, full_s = min(
                (_full_eval(archive, "ckpt/last", w.net, x, k) for _ in range(3)),
                key=lambda r: r[1],
            )
            prog: ProgressiveResult = min(
                (progressive_evaluate(w.net, reader, x, top_k=k) for _ in range(3)),
                key=lambda r: r.seconds,
            )
            rows.append(
                {
                    "model": w.name,
                    "accuracy": result.final["accuracy"],
                    "dtype": dtype,
                    "top": k,
                    "steps": prog.steps,
                    "full_bytes": reader.full_bytes,
                    "own_stored": stored,
                    "identical": bool((prog.predictions == full_pred).all()),
                    "seconds": prog.seconds,
                    "full_seconds": full_s,
                    "fallback": prog.fallback,
                    "n": prog.n,
                }
            )
    return rows


def _pct(a: float) -> str:
    return f"{100 * a:.1f}%"


def _table(rows: list[dict]) -> list[str]:
    out = [
        "| model | weights | query | certified @1 plane | @2 | @3 | bytes read @1 / @2 / @3 "
        "(% of full read) | total read | time progressive / full | identical |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steps = r["steps"]
        full = r["full_bytes"]
        cert = [_pct(s.fraction) for s in steps[:3]] + ["—"] * (3 - len(steps[:3]))
        if len(steps) == 2:
            cert[1] += " (exact)"
        by = " / ".join(_pct(s.bytes_read / full) for s in steps[:3])
        total = steps[-1].bytes_read
        out.append(
            f"| {r['model']} (acc {r['accuracy']:.3f}) | {r['dtype']} | top-{r['top']} | "
            f"{' | '.join(cert)} | {by} | {_pct(total / full)} ({total:,} of {full:,} B) | "
            f"{r['seconds'] * 1e3:.0f} ms / {r['full_seconds'] * 1e3:.0f} ms | "
            f"{'yes' if r['identical'] else '**NO**'} |"
        )
    return out


def _goals(cnn: dict) -> list[str]:
    """The issue's goals on the digits CNN (fp32, top-1), met or not, and why."""
    steps, full = cnn["steps"], cnn["full_bytes"]
    one, two = steps[0].fraction, steps[1].fraction
    total = steps[-1].bytes_read / full
    return [
        "## Goals (digits CNN, fp32, top-1)",
        "",
        f"* ≥ 90% certified from 1 plane: **not met** ({_pct(one)}). Plane 1 of a float32 holds "
        "the sign and 7 of the 8 exponent bits, so every weight is only known within a factor "
        "of 4 (midpoint ± 60%); our interval bound certifies nothing from that. We cannot "
        "reproduce the paper's 87.7% (its byte layout or bound is not described in enough "
        "detail to tell).",
        f"* ≥ 99.5% from ≤ 2 planes: **not met** ({_pct(two)}). Two planes bound each weight "
        "within ±0.4%; the interval (IBP) pass loses the correlation between layers (with only "
        "conv1 uncertain and every other layer exact it already drops to 98.4%, measured "
        "separately), so inputs "
        "with small margins stay uncertified. Tighter bounds need linear relaxation (CROWN "
        "style) over weight perturbations; the deeper CNN shows the same effect much stronger.",
        "* 100% identical answers: **met** wherever the table's `identical` column says yes "
        "(checked against a full evaluation on every input).",
        f"* total read ≤ 25% of the full model's stored bytes: **not met** ({_pct(total)}): "
        "any input left after 2 planes needs plane 3 of every tensor; even if everything "
        "were certified at 2 planes, planes 1–2 are "
        f"{_pct(steps[1].bytes_read / full)} of the stored bytes (plane 1 compresses well, "
        "plane 2 hardly).",
        "* time: progressive evaluation is slower than a full evaluation on these small, "
        "locally stored models (the interval pass costs 3 matrix products per layer plus "
        "Python overhead, and each plane count re-reads the planes above it through the "
        "archive's API); it pays off only when reading weights is the bottleneck (remote, "
        "large).",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/progressive.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = learner.load_dataset("builtin:digits")
    rows = []
    for make in WORKLOADS:
        w = make()
        print(f"running {w.name} …", flush=True)
        rows += _run(w, data)
    lines = [
        "# Progressive evaluation benchmark",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, numpy "
        f"{np.__version__}, torch {torch.__version__}; 1 torch thread; test split of "
        f"`builtin:digits` ({rows[0]['n']} inputs); best of 3 runs. Generated by "
        "`python -m bench.progressive`.",
        "",
        "Each model is stored as in a lineage: its previous checkpoint materialised, the "
        "evaluated checkpoint as an XOR delta against it. *Bytes read* are stored (compressed) "
        "chunk bytes of the planes read, through the delta chain (`ArchiveReader.bytes_read`); "
        "*full read* is reading every plane the same way. Certified fractions are cumulative; "
        "the last plane count is always 100% (full precision). bf16 has 2 planes, so its "
        "second plane is the exact fallback.",
        "",
        *_table(rows),
        "",
        "Paper (ModelHub ICDE'17 Fig. 6d, read off the figure; certified @ data read):",
        "",
        "| model / query | 1 high byte | 2 high bytes |",
        "|---|---|---|",
        *[f"| {m} | {a} | {b} |" for m, (a, b) in PAPER.items()],
        "",
        *_goals(rows[0]),
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
