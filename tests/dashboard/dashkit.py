"""Helpers for the dashboard tests (a module of its own: ``conftest`` is a name several test
folders use, so test modules import from here, not from it)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

#: Screenshots of every view (git ignores tests/artifacts/).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"


class Served:
    """A Dash app served by werkzeug from a daemon thread (stopped with :meth:`stop`)."""

    def __init__(self, app: object) -> None:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, app.server, threaded=True)  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


def write_config(root: Path, graph: str) -> None:
    """A repository config pointing at ``graph`` without touching it (``init`` would)."""
    (root / ".dlv" / "archive").mkdir(parents=True)
    config = {"format": 1, "id": "0" * 32, "created_at": "2026-01-01T00:00:00+00:00",
              "graph": graph, "archive": "archive"}  # fmt: skip
    (root / ".dlv" / "config.json").write_text(json.dumps(config))
