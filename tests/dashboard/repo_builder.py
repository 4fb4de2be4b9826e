"""A small repository built with the demo's logic (scripts/demo.py), for the dashboard tests.

The demo's SDK training (checkpoints, metric curves, a fine-tune), shrunk to a few steps; two
AlexNet-like versions so the paper's query 1 and query 3 (a ``construct``) have something to
match; and a linear chain of five commits that the lineage collapses.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from provdb.models import learner, zoo
from provdb.models.builder import build_module, module_tensors
from provdb.repository import Repository

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "dql"))
from paper_queries import Q1, Q3  # noqa: E402

__all__ = ["Q1", "Q3", "Built", "build"]

SMALL = {"channels": (2, 4, 4, 4, 4), "hidden": 16, "lrn": False}


def _demo():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("dlv_demo", ROOT / "scripts" / "demo.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.CHANNELS = (4, 8)  # the demo's network, narrower
    return module


@dataclass
class Built:
    """The versions the builder made (ids)."""

    root: Path
    ids: dict[str, str] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)


def build(root: Path) -> Built:
    """Build the test repository at ``root``."""
    demo = _demo()
    Repository.init(root).close()
    out = Built(root)
    cfg = learner.TrainConfig(iterations=20, checkpoint_every=10, eval_every=10, log_every=10)
    out.ids["digits-cnn"] = demo.train(root, "digits-cnn", cfg)
    out.ids["digits-cnn-ft"] = demo.train(root, "digits-cnn-ft", cfg.replace(base_lr=0.01),
                                          out.ids["digits-cnn"])  # fmt: skip
    with Repository.open(root) as repo:
        for i, (name, pools) in enumerate(
            [("alexnet_v1", ["MAX", "MAX", "MAX"]), ("alexnet-avgv1-a", ["AVG", "MAX", "AVG"])]
        ):
            net = zoo.alexnet(pools, **SMALL)
            torch.manual_seed(i)
            out.ids[name] = repo.commit(name, net, module_tensors(build_module(net)),
                                        author="ada").version.id  # fmt: skip
        constructed = repo.query(Q3)
        out.ids["alexnet-avgv1-a-construct"] = constructed.created[0].id or ""
        net = zoo.digits_cnn(channels=(2, 2))
        parent = out.ids["digits-cnn"]
        tensors = repo.weights(parent)
        net = repo.network(parent)
        for step in range(5):
            tensors = {k: v + 0.01 for k, v in tensors.items()}
            parent = repo.commit("digits-cnn-chain", net, tensors, parent=parent,
                                 message=f"checkpoint {step}").version.id  # fmt: skip
            out.chain.append(parent)
    return out
