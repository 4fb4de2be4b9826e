"""Helpers the benchmarks share: where Neo4j comes from, and an empty store per backend."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from provdb.graph import GraphStore, open_store


@contextmanager
def neo4j_uri() -> Iterator[str]:
    """``$NEO4J_URI``, or a throw-away Maven-provisioned server (2 GB heap, 1 GB page cache)."""
    if os.environ.get("NEO4J_URI"):
        yield os.environ["NEO4J_URI"]
        return
    from provdb.neo4j_server import temporary_server

    with temporary_server(heap_max="2g", pagecache="1g") as server:
        yield server.uri


@contextmanager
def fresh_store(backend: str, uri: str | None) -> Iterator[GraphStore]:
    """An empty, set-up store of ``backend`` (``ladybug`` in a temporary folder, or ``neo4j``
    at ``uri``, cleared)."""
    if backend == "neo4j":
        with open_store(uri) as store:
            store.setup()
            store.clear()
            yield store
        return
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "g.lbdb") as store:
        store.setup()
        yield store
