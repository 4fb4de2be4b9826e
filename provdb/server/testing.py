"""A real gunicorn hub on a free loopback port, for tests and benchmarks.

``HubServer(hub_dir).start()`` runs ``python -m provdb.server.gunicorn`` as a child process
(its own process group, so :meth:`HubServer.stop` ends the master and its workers and nothing
else) and waits until ``/api/health`` answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from provdb.errors import Unavailable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubServer:
    """gunicorn serving ``hub_dir`` with ``workers`` sync workers."""

    def __init__(
        self,
        hub_dir: str | os.PathLike[str],
        workers: int = 2,
        port: int | None = None,
        log: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.hub_dir = Path(hub_dir)
        self.workers = workers
        self.port = port or free_port()
        self.log = Path(log) if log else self.hub_dir / "gunicorn.log"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HubServer:
        """Start gunicorn and wait until it answers."""
        import requests

        cmd = [
            sys.executable,
            "-m",
            "provdb.server.gunicorn",
            str(self.hub_dir),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            try:
                if requests.get(self.url + "/api/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise Unavailable(f"gunicorn did not answer within {timeout:.0f} s; see {self.log}")

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM to gunicorn's process group), SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self) -> HubServer:
        """Stop and start again on the same port and folder."""
        self.stop()
        return self.start()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
