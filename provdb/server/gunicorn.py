"""Serve a hub with gunicorn (what ``dlv serve`` runs; never Flask's development server).

Workers are gunicorn's ``sync`` workers: one request at a time per process, so the
per-process archive and graph handles are never shared between threads. The app is created
in each worker after the fork (no ``preload_app``), as LMDB requires. ``python -m
provdb.server.gunicorn DIR --port N [--rate-limit R/B]`` is the same as ``dlv serve``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from provdb.hub import Hub
from provdb.hub.ratelimit import Limits

#: Request timeout (seconds): large enough for a batch of chunks on a slow link.
DEFAULT_TIMEOUT = 120


class HubApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn running :func:`provdb.server.create_app` for one hub folder."""

    def __init__(self, hub_dir: str, options: dict[str, Any]) -> None:
        self.hub_dir = hub_dir
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from provdb.server import create_app

        return create_app(self.hub_dir)


def serve(
    hub_dir: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 2,
    timeout: int = DEFAULT_TIMEOUT,
    access_log: str | None = "-",
    rate_limit: str | None = None,
) -> None:
    """Run gunicorn in the foreground until it is stopped (SIGTERM/SIGINT: graceful).
    ``rate_limit`` (``off`` or ``RATE/BURST[,ANON_RATE/ANON_BURST]``) overrides ``hub.json``'s
    limits for this run (:mod:`provdb.hub.ratelimit`)."""
    hub = Hub.open(hub_dir)  # fail here, not in every worker, if the folder is not a hub
    if rate_limit is not None:
        Limits.from_config(hub.config.get("rate_limit"), rate_limit)  # refuse a bad value here
        os.environ["DLV_HUB_RATE_LIMIT"] = rate_limit  # read by each worker's Hub.open
    os.environ["DLV_HUB_DIR"] = str(hub.root)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "sync",
        "timeout": timeout,
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": access_log,
        "errorlog": "-",
        "preload_app": False,
        "proc_name": f"dlv-hub:{port}",
        "control_socket_disable": True,  # gunicorn ≥ 27: one shared socket path per user
    }
    HubApplication(str(hub.root), options).run()


def main(argv: list[str] | None = None) -> None:
    """``python -m provdb.server.gunicorn DIR [--host H] [--port P] [--workers N]``."""
    parser = argparse.ArgumentParser(prog="python -m provdb.server.gunicorn")
    parser.add_argument("hub_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate-limit", default=None)
    args = parser.parse_args(argv)
    serve(args.hub_dir, args.host, args.port, args.workers, rate_limit=args.rate_limit)


if __name__ == "__main__":
    main()
