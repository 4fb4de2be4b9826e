"""A hub holding a small family, published in-process: a public base and a private fine-tune.

Shared by the API tests of the dashboard's routes (tests/provdb/server) and the dashboard's
browser test over a real gunicorn hub (tests/dashboard).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from provdb.hub import Hub, transfer
from provdb.models.network import Layer, NetworkDef
from provdb.repository import Repository


@dataclass
class HubFamily:
    """The hub folder, the users' tokens and the two published version ids."""

    root: Path
    tokens: dict[str, str]
    base: str
    finetune: str

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}


def _net() -> NetworkDef:
    return NetworkDef(
        (
            Layer("fc1", "FC", "", {"in_features": 16, "out_features": 32}),
            Layer("relu", "ReLU"),
            Layer("fc2", "FC", "", {"in_features": 32, "out_features": 4}),
        ),
        (("fc1", "relu"), ("relu", "fc2")),
    )


def _publish(hub: Hub, token: str, repo: Repository, ref: str, target: str, private: bool) -> None:
    """What ``dlv publish`` does, without HTTP: have/want, the missing chunks, the commit."""
    owner, name = target.split("/")
    who = hub.accounts.authenticate(token)
    manifest = transfer.version_manifest(repo, ref)
    missing = hub.have(who, owner, name, transfer.manifest_chunks(manifest))["missing"]
    if missing:
        body = b"".join(transfer.frame([(d, repo.archive.get_chunk(d)) for d in missing]))
        hub.put_chunks(who, owner, name, body)
    hub.publish(who, owner, name, manifest, private=private)


def build(root: Path) -> HubFamily:
    """A hub in ``root/hub`` with users alice and bob: ``alice/mlp`` (public, the base) and
    ``alice/mlp-private`` (private, its fine-tune, fc2 changed)."""
    rng = np.random.default_rng(7)
    w = {
        "fc1.weight": rng.standard_normal((32, 16)).astype(np.float32),
        "fc1.bias": np.zeros(32, np.float32),
        "fc2.weight": rng.standard_normal((4, 32)).astype(np.float32),
        "fc2.bias": np.zeros(4, np.float32),
    }
    tuned = {**w, "fc2.weight": w["fc2.weight"] + np.float32(0.05)}
    hub = Hub.init(root / "hub")
    for user in ("alice", "bob"):
        hub.accounts.add_user(user)
    tokens = {u: hub.accounts.create_token(u, "write")["token"] for u in ("alice", "bob")}
    with Repository.init(root / "work") as repo:
        base = repo.commit("mlp", _net(), w, params={"lr": 0.1},
                           metrics={"accuracy": ([1, 2], [0.7, 0.8])}).version.id  # fmt: skip
        ft = repo.commit("mlp-ft", _net(), tuned, parent=base, op="finetune",
                         params={"lr": 0.01},
                         metrics={"accuracy": ([1, 2], [0.8, 0.9])}).version.id  # fmt: skip
        _publish(hub, tokens["alice"], repo, base, "alice/mlp", private=False)
        _publish(hub, tokens["alice"], repo, ft, "alice/mlp-private", private=True)
    hub.close()
    return HubFamily(root / "hub", tokens, base, ft)
