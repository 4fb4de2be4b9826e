"""Saved queries (``.dlv/queries.json``) and compiling DQL for a repository's dialect."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import dql
from dql.errors import DQLError
from provdb.errors import InvalidInput, from_dql

if TYPE_CHECKING:
    from provdb.repository import Repository

#: File (inside ``.dlv/``) holding the saved queries, ``{name: text}``.
QUERIES_FILE = "queries.json"


# -- saved queries -----------------------------------------------------------------------------


def _queries_path(repo: Repository) -> Path:
    return repo.dlv_dir / QUERIES_FILE


def saved_queries(repo: Repository) -> dict[str, str]:
    """The repository's saved queries, ``{name: DQL text}`` (empty if none)."""
    path = _queries_path(repo)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read saved queries {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidInput(f"{path} must map query names to DQL text")
    return data


def save_query(repo: Repository, name: str, text: str) -> None:
    """Save ``text`` under ``name`` (replacing one of that name) after checking it compiles."""
    if not isinstance(name, str) or not name.strip() or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"invalid query name {name!r}")
    compile_query(repo, text)
    queries = saved_queries(repo)
    queries[name] = text
    path = _queries_path(repo)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(queries, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def compile_query(repo: Repository, text: str) -> dql.CompiledQuery:
    """Compile ``text`` for the repository's dialect, resolving its saved queries."""
    queries = saved_queries(repo)
    try:
        return dql.compile(text, dialect=repo.graph.dialect.name, resolve=queries.get)
    except DQLError as exc:
        raise from_dql(exc) from exc
