"""Browser fixtures: one headless Chromium (Debian's, via /usr/bin/chromedriver) for the whole
session and the dashboard served from a thread, over a repository built once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from dashkit import ARTIFACTS, Served


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
