"""Shared fixtures: every test that takes ``store`` or ``repo`` runs on LadybugDB and on Neo4j;
:func:`dlv` is the one in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from click.testing import CliRunner, Result

from provdb.graph import GraphStore, open_store
from provdb.repository import Repository


def neo4j_store_uri(uri: str, auth: tuple[str, str] | None) -> str:
    """The session's Neo4j URI with its credentials folded in (the form users pass to dlv)."""
    if not auth:
        return uri
    parts = urlsplit(uri)
    netloc = f"{quote(auth[0], safe='')}:{quote(auth[1], safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@pytest.fixture
def neo4j_graph_uri(request: pytest.FixtureRequest) -> str:
    """A URI of the session's Neo4j whose database was emptied for this test."""
    uri = neo4j_store_uri(
        request.getfixturevalue("neo4j_uri"), request.getfixturevalue("neo4j_auth")
    )
    with open_store(uri) as store:
        store.setup()
        store.clear()
    return uri


@pytest.fixture(params=["ladybug", "neo4j"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name; tests taking it run once per backend (ids show which)."""
    return request.param


@pytest.fixture
def graph_uri(backend: str, request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty graph on the current backend, as a URI/path ``open_store`` accepts."""
    if backend == "neo4j":
        return request.getfixturevalue("neo4j_graph_uri")
    return str(tmp_path / "graph.lbdb")


@pytest.fixture
def store(graph_uri: str) -> Iterator[GraphStore]:
    """An empty, set-up graph store on the current backend."""
    with open_store(graph_uri) as s:
        s.setup()
        yield s


def run_dlv(*args: str, ok: bool = True, input: str | None = None) -> Result:
    """Run ``dlv ARGS`` in-process; with ``ok`` (default) assert it exited 0."""
    from provdb.cli import cli

    result = CliRunner().invoke(cli, list(args), obj={}, input=input)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def dlv() -> Callable[..., Result]:
    """The one in-process CLI runner: ``dlv("--repo", path, "list", ok=False)``."""
    return run_dlv


@pytest.fixture
def repo(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    """A fresh repository at ``tmp_path/repo`` on the current backend."""
    graph = request.getfixturevalue("neo4j_graph_uri") if backend == "neo4j" else None
    with Repository.init(tmp_path / "repo", graph=graph) as r:
        yield r
