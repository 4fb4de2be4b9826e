"""Browser fixtures: one headless Chromium (Debian's, via /usr/bin/chromedriver) for the whole
session and the dashboard served from a thread, over a repository built once per session."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"


def _need_browser() -> None:
    """Skip without a browser, except under ``CI``, where the browser tests must run."""
    missing = [n for n in ("chromium", "chromedriver") if not shutil.which(n)]
    for module in ("selenium", "dash_cytoscape"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        message = f"missing {', '.join(missing)} (scripts/bootstrap installs them)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


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


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The demo-logic repository (see repo_builder.py)."""
    from repo_builder import build

    return build(tmp_path_factory.mktemp("dash") / "repo")


@pytest.fixture(scope="session")
def serve() -> Iterator[Callable[[str | None], str]]:
    """``serve(repo_path)`` → the URL of a dashboard over that repository."""
    from dashboard.app import create_app

    running: list[Served] = []

    def start(path: str | None) -> str:
        served = Served(create_app(path))
        running.append(served)
        return served.url

    yield start
    for served in running:
        served.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for every test."""
    _need_browser()
    from dash.testing.browser import Browser

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Browser("chrome", headless=True, percy_run=False, wait_timeout=15) as b:
        b.driver.set_window_size(1400, 1000)
        yield b


@pytest.fixture(scope="session")
def url(built, serve) -> str:  # type: ignore[no-untyped-def]
    """The dashboard over the built repository."""
    return serve(str(built.root))


def write_config(root: Path, graph: str) -> None:
    """A repository config pointing at ``graph`` without touching it (``init`` would)."""
    (root / ".dlv" / "archive").mkdir(parents=True)
    config = {"format": 1, "id": "0" * 32, "created_at": "2026-01-01T00:00:00+00:00",
              "graph": graph, "archive": "archive"}  # fmt: skip
    (root / ".dlv" / "config.json").write_text(json.dumps(config))
