"""The repository's write guard: ``gc`` never deletes what an in-flight commit wrote.

A commit writes its weights to the archive first and its graph transaction second (crash
safety, DESIGN §4); ``gc`` deletes archive snapshots the graph does not name. Between the two
writes a commit's snapshot is known to the archive only. So every writer holds a *shared*
lock on ``.dlv/write.lock`` from before its archive write until its graph transaction ends,
and ``gc``/``archive`` take it *exclusively*: gc waits for in-flight commits and new commits
wait for gc. ``flock`` locks are released by the kernel when a process dies, so a killed
commit never blocks gc.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from provdb.errors import Locked

#: How long gc waits for in-flight commits, and a commit for a running gc (seconds);
#: ``PROVDB_LOCK_TIMEOUT`` overrides.
DEFAULT_TIMEOUT_S = 300.0


@contextmanager
def write_guard(dlv_dir: Path, *, exclusive: bool, timeout: float | None = None) -> Iterator[None]:
    """Hold the repository's write lock, shared (writers) or exclusive (gc, re-planning)."""
    limit = timeout if timeout is not None else _timeout()
    path = dlv_dir / "write.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, limit, exclusive)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, mode: int, limit: float, exclusive: bool) -> None:
    deadline = time.monotonic() + limit
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                what = "a commit is in progress" if exclusive else "dlv gc or dlv archive runs"
                raise Locked(f"{what} (waited {limit:.0f} s); try again") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _timeout() -> float:
    value = os.environ.get("PROVDB_LOCK_TIMEOUT")
    return float(value) if value else DEFAULT_TIMEOUT_S
