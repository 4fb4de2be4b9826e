"""How long a ``dlv`` command takes to start: ``import provdb.cli`` (``python -X importtime``,
cumulative) and the wall and CPU time of ``dlv --repo REPO list``, medians of ``--reps`` runs,
this checkout against another one (``--before``, e.g. ``git archive`` of an older commit),
interleaved so both see the same machine load. Usage::

    .venv/bin/python bench/cli_startup.py REPO --before /tmp/old-checkout [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DLV = str(Path(sys.executable).with_name("dlv"))
HERE = str(Path(__file__).resolve().parents[1])


def one(tree: str, repo: str) -> tuple[float, float, float]:
    """(import seconds, ``dlv list`` wall, ``dlv list`` CPU) with ``tree`` on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": tree}
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import provdb.cli"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    (line,) = [x for x in err.splitlines() if x.rstrip().endswith("| provdb.cli")]
    imported = int(line.split("|")[1]) / 1e6
    before, wall = os.times(), time.perf_counter()
    subprocess.run([DLV, "--repo", repo, "list"], env=env, check=True, capture_output=True)
    wall, after = time.perf_counter() - wall, os.times()
    cpu = after.children_user - before.children_user
    return imported, wall, cpu + after.children_system - before.children_system


def main() -> None:
    """Print the comparison as a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo")
    ap.add_argument("--before", required=True, help="the other checkout")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    trees = {"before": args.before, "after": HERE}
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in trees}
    for _ in range(args.reps):
        for k, tree in trees.items():
            runs[k].append(one(tree, args.repo))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| checkout | import provdb.cli s | dlv list wall s | dlv list CPU s |")
    print("|---|---:|---:|---:|")
    for k, rows in runs.items():
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        print(f"| {k} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} |")


if __name__ == "__main__":
    main()
