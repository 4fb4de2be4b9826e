"""The README's main job, on the embedded default (no server needed).

1. train a small CNN on scikit-learn's digits with the SDK (a checkpoint every 100 steps);
2. fine-tune it twice: all layers at a lower rate, and with the conv layers frozen;
3. export the fine-tune to ONNX and commit the ONNX file with dlv;
4. show dlv list, lineage, desc, diff, stats and eval.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import provdb
from provdb.models import learner, zoo
from provdb.models.importers import to_onnx

DLV = str(Path(sys.executable).with_name("dlv"))
#: Wide enough that weights (~0.7 MB) dominate per-chunk metadata in `dlv stats`.
CHANNELS = (32, 64)


def dlv(repo: Path, *args: str) -> str:
    """Run one dlv command like a terminal session; returns its stdout."""
    print(f"\n$ dlv {' '.join(args)}", flush=True)
    out = subprocess.run(
        [DLV, "--repo", str(repo), *args], check=True, text=True, stdout=subprocess.PIPE
    ).stdout
    print(out, end="", flush=True)
    return out.strip()


def train(repo: Path, name: str, config: learner.TrainConfig, parent: str | None = None) -> str:
    """Train with the SDK: parameters, metric curves and checkpoints land in the repository."""
    net = zoo.digits_cnn(channels=CHANNELS)
    with provdb.start_run(repo, name=name, parent=parent, network=net) as run:
        run.log_params(config.to_dict())
        run.log_dataset(config.input_data)
        run.log_file(__file__)
        start = None if parent is None else run.repo.weights(parent)
        result = learner.train(
            net,
            start,
            config,
            on_metric=run.log_metric,
            on_checkpoint=lambda step, t: run.log_checkpoint(t, step),
        )
        version = run.commit(f"{name}: test accuracy {result.final['accuracy']:.3f}")
    print(
        f"trained {name}: accuracy {result.final['accuracy']:.3f} "
        f"in {result.seconds:.1f} s → {version.id[:12]}",
        flush=True,
    )
    return version.id


def main(target: str) -> None:
    """Recreate the demo repository at ``target`` and walk through it."""
    repo = Path(target).resolve()
    if (repo / ".dlv").exists():
        shutil.rmtree(repo / ".dlv")
    repo.mkdir(parents=True, exist_ok=True)
    print(f"$ dlv init {repo}", flush=True)
    subprocess.run([DLV, "init", str(repo)], check=True)

    base_cfg = learner.TrainConfig(iterations=400, checkpoint_every=100, eval_every=100)
    base = train(repo, "digits-cnn", base_cfg)
    ft = train(repo, "digits-cnn-ft", base_cfg.replace(base_lr=0.01, iterations=200), base)
    frozen_cfg = base_cfg.replace(base_lr=0.02, iterations=200, lr_mult={"conv*": 0.0})
    frozen = train(repo, "digits-cnn-frozen", frozen_cfg, base)

    onnx_file = repo / "digits-cnn-ft.onnx"
    with provdb.Repository.open(repo) as r:
        to_onnx(r.network(ft), r.weights(ft), onnx_file)
    onnx_id = dlv(
        repo,
        "commit",
        str(onnx_file),
        "--name",
        "digits-cnn-onnx",
        "--parent",
        ft,
        "-m",
        "re-imported from ONNX",
    )

    dlv(repo, "list")
    dlv(repo, "lineage", onnx_id)
    dlv(repo, "desc", frozen[:12])
    dlv(repo, "diff", base[:12], ft[:12], frozen[:12], "--only-differences")
    dlv(repo, "stats")
    dlv(repo, "eval", onnx_id[:12], "--data", "builtin:digits")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-repo")
