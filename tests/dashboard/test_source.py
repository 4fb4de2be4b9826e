"""The dashboard reads a repository while another process holds its graph for writing."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from dashboard.source import RepoSource

HOLD = """
import sys, time
from provdb.repository import Repository
with Repository.open(sys.argv[1]) as repo, repo.graph.session(write=True):
    print("held", flush=True)
    sys.stdin.readline()  # until the test is done reading
"""


def test_reads_while_a_training_job_holds_the_write_handle(built: Any) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(built.root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        rows = RepoSource(str(built.root)).read(lambda r: r.list_versions())
        assert {r.name for r in rows} >= {"digits-cnn", "alexnet-avgv1-a-construct"}
        assert holder.poll() is None  # the writer still holds it
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
