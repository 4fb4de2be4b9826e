"""Graph-store fixtures: every test that takes ``store`` runs on LadybugDB and on Neo4j."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from provdb.graph import GraphStore, open_store


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
