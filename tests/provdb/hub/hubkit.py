"""Helpers for the hub tests: the session hub's handle, the CLI, a model family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner, Result

from provdb.cli import cli
from provdb.models.network import Layer, NetworkDef
from provdb.repository import Repository
from provdb.server.testing import HubServer

#: The session hub's upload limit: small, so the 413 test needs little memory.
MAX_UPLOAD = 4 << 20


@dataclass
class HubFixture:
    """The session's hub: its folder, server and users' tokens."""

    root: Path
    server: HubServer
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def chunk_count(self) -> int:
        """Chunks in the hub's archive (read from this process, read-only)."""
        from storage import Archive

        with Archive.open(self.root / ".dlv" / "archive", readonly=True) as ar:
            return ar.stats().n_chunks

    def missing(self, digests: list[str]) -> list[str]:
        """The digests the hub's archive lacks."""
        from storage import Archive

        with Archive.open(self.root / ".dlv" / "archive", readonly=True) as ar:
            return ar.missing_chunks(digests)


def dlv(
    *args: str,
    repo: Path | None = None,
    hub: HubFixture | None = None,
    token: str | None = None,
    ok: bool = True,
    env: dict[str, str] | None = None,
) -> Result:
    """Run the real ``dlv`` CLI in-process (CliRunner) against a repository and a hub."""
    full: dict[str, str | None] = {}
    if hub is not None:
        full["DLV_HUB_URL"] = hub.url
        full["DLV_HUB_TOKEN"] = hub.tokens[token] if token else ""
    full.update(env or {})
    argv = (["--repo", str(repo)] if repo else []) + list(args)
    result = CliRunner().invoke(cli, argv, obj={}, env=full)
    if ok:
        assert result.exit_code == 0, result.output + (result.stderr if result.stderr else "")
    return result


def dlv_process(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``dlv`` as its own process (for concurrency and kill tests)."""
    return subprocess.run(
        [sys.executable, "-c", "from provdb.cli import main; main()", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def out_json(result: Result) -> Any:
    return json.loads(result.stdout)


def mlp() -> NetworkDef:
    return NetworkDef(
        (
            Layer("fc1", "FC", "", {"in_features": 256, "out_features": 512}),
            Layer("relu", "ReLU"),
            Layer("fc2", "FC", "", {"in_features": 512, "out_features": 256}),
            Layer("relu2", "ReLU"),
            Layer("fc3", "FC", "", {"in_features": 256, "out_features": 10}),
        ),
        (("fc1", "relu"), ("relu", "fc2"), ("fc2", "relu2"), ("relu2", "fc3")),
    )


def mlp_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "fc1.weight": rng.standard_normal((512, 256)).astype(np.float32),
        "fc1.bias": rng.standard_normal(512).astype(np.float32),
        "fc2.weight": rng.standard_normal((256, 512)).astype(np.float32),
        "fc2.bias": rng.standard_normal(256).astype(np.float32),
        "fc3.weight": rng.standard_normal((10, 256)).astype(np.float32),
        "fc3.bias": np.zeros(10, np.float32),
    }


@dataclass
class Family:
    """A local repository with a base and a fine-tune that changed only ``fc3``."""

    root: Path
    base: str
    finetune: str
    weights: dict[str, np.ndarray]
    tuned: dict[str, np.ndarray]


def make_family(root: Path, seed: int = 0, name: str = "mlp") -> Family:
    """``name`` (base, lr 0.1, accuracy 0.8) and ``name-ft`` (fc3 changed; lr 0.01, 0.9)."""
    w = mlp_weights(seed)
    tuned = {**w, "fc3.weight": w["fc3.weight"] + np.float32(0.01)}
    with Repository.init(root) as repo:
        base = repo.commit(
            name, mlp(), w, params={"lr": 0.1}, metrics={"accuracy": ([1, 2], [0.7, 0.8])}
        )
        ft = repo.commit(
            f"{name}-ft",
            mlp(),
            tuned,
            parent=base.version.id,
            op="finetune",
            params={"lr": 0.01},
            metrics={"accuracy": ([1], [0.9])},
        )
    return Family(root, base.version.id, ft.version.id, w, tuned)


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a
    )
