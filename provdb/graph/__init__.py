"""Provenance graph backends, selected by URI.

``neo4j://``, ``bolt://`` (and their ``+s``/``+ssc`` forms) open a :class:`Neo4jStore`; a
filesystem path (or ``ladybug://PATH``) opens the embedded :class:`LadybugStore`.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from provdb.graph.base import GraphStore, Statement, WriteBatch
from provdb.graph.dialect import LADYBUG, NEO4J, Dialect

__all__ = [
    "LADYBUG",
    "NEO4J",
    "Dialect",
    "GraphStore",
    "Statement",
    "WriteBatch",
    "is_server_uri",
    "open_store",
]


#: URI schemes of a Neo4j server (here, so telling one apart does not load the driver).
SERVER_SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")


def is_server_uri(uri: str) -> bool:
    """Whether ``uri`` names a Neo4j server (rather than an embedded database path)."""
    return urlsplit(str(uri)).scheme in SERVER_SCHEMES


def open_store(uri: str | os.PathLike[str], *, read_only: bool = False) -> GraphStore:
    """Open the graph store ``uri`` names (it is not set up; call ``setup()`` to create)."""
    text = os.fspath(uri)
    if is_server_uri(text):
        from provdb.graph.neo4j_store import Neo4jStore

        return Neo4jStore(text)
    from provdb.graph.ladybug_store import LadybugStore

    if text.startswith("ladybug://"):
        text = text[len("ladybug://") :]
    return LadybugStore(text, read_only=read_only)
