"""``dlv`` loads only what a command needs (issue 16, item 9): importing the CLI and running
``dlv list`` must not import PyTorch, ONNX, the Neo4j driver, numpy or the archive's codecs
(they cost seconds at every command). Checked on ``sys.modules`` in a fresh interpreter, not
by timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import provdb
from provdb.models.network import Layer, NetworkDef

#: Top-level packages ``import provdb.cli`` and ``dlv list`` must leave unloaded.
HEAVY = {
    "torch",
    "onnx",
    "onnxruntime",
    "neo4j",
    "safetensors",
    "ml_dtypes",
    "numpy",
    "storage",
    "lmdb",
    "dql",
    "flask",
    "apiflask",
    "dash",
}

PROBE = """
import json, sys
from provdb.cli import cli
if sys.argv[1:]:
    try:
        cli.main(sys.argv[1:], standalone_mode=False, obj={})
    except SystemExit:
        pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def loaded_by(*args: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after ``import provdb.cli`` (and running
    ``dlv ARGS``, when given) in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_nothing_heavy() -> None:
    assert loaded_by() & HEAVY == set()


def test_dlv_list_loads_nothing_heavy(tmp_path: Path) -> None:
    net = NetworkDef(
        (Layer("data", "Input", "", {"shape": [4]}), Layer("fc", "FC", "", {})), (("data", "fc"),)
    )
    provdb.Repository.init(tmp_path / "repo").close()
    with provdb.start_run(tmp_path / "repo", name="small", network=net) as run:
        run.log_checkpoint({"fc.weight": np.ones((4, 4), np.float32)}, step=1)
        run.log_metric("loss", 0.5)
    modules = loaded_by("--repo", str(tmp_path / "repo"), "list")
    assert "ladybug" in modules  # it did read the graph
    assert modules & HEAVY == set()


def test_the_lazy_commands_still_load() -> None:
    assert {"torch", "dql"} & loaded_by("query", "--help") == {"dql"}
