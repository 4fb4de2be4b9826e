"""The README's main job: create a repository on the embedded default and show it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def dlv(*args: str, repo: Path) -> None:
    """Run one dlv command against ``repo`` and echo it like a terminal session."""
    print(f"$ dlv {' '.join(args)}", flush=True)
    subprocess.run(
        [str(Path(sys.executable).with_name("dlv")), "--repo", str(repo), *args], check=True
    )


def main(target: str) -> None:
    """Recreate the demo repository at ``target`` and walk through it."""
    repo = Path(target).resolve()
    if (repo / ".dlv").exists():
        shutil.rmtree(repo / ".dlv")
    repo.mkdir(parents=True, exist_ok=True)
    print(f"$ dlv init {repo}", flush=True)
    subprocess.run([str(Path(sys.executable).with_name("dlv")), "init", str(repo)], check=True)
    dlv("info", repo=repo)
    dlv("list", repo=repo)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-repo")
