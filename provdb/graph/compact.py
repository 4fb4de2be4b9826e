"""Compacting the embedded graph: rewrite ``graph.lbdb`` with live pages only.

LadybugDB rewrites a node group's column chunk in a new place whenever a commit makes it
grow, and a freed place is too small for the next, larger, rewrite: the file grows by the
size of the largest growing column at every commit, so it grows quadratically while the
live data grows linearly (PP-OCR cls, 60 commits: 47.7 MB of file, 16.7 MB of live column
pages). LadybugDB's ``EXPORT DATABASE`` refuses relationship tables with several node pairs
(``USED``, ``HAS_PARAM``, …), so the graph is copied here, schema-driven: every node and
relationship into a fresh database in one transaction, checked by counts, fsynced and
renamed over the original (crash-safe: the original stays until the copy is complete).
"""

from __future__ import annotations

import os
from pathlib import Path

from provdb.errors import CorruptData
from provdb.graph.base import GraphStore, Statement, _write_nodes, _write_rels
from provdb.graph.schema import NODES, RELS


def _disk(path: Path) -> int:
    from storage import disk_bytes

    return disk_bytes(path) + disk_bytes(path.with_name(path.name + ".wal"))


def _counts(store: GraphStore) -> dict[str, int]:
    out = {label: store.count(label) for label in NODES}
    for rel, (pairs, _) in RELS.items():
        for a, b in pairs:
            rows = store.run_read(f"MATCH (:{a})-[r:{rel}]->(:{b}) RETURN count(r) AS n")
            out[f"{a}-{rel}-{b}"] = int(rows[0]["n"])
    return out


def copy_graph(src: GraphStore, dst: GraphStore) -> None:
    """Copy every node and relationship of ``src`` into the empty, set-up ``dst`` in one
    transaction (properties exactly as stored, nulls included)."""
    statements: list[Statement] = []
    for label, (key, props) in NODES.items():
        cols = ", ".join(f"n.`{p}` AS `{p}`" for p in props)
        rows = src.run_read(f"MATCH (n:{label}) RETURN {cols} ORDER BY n.`{key}`")
        if rows:
            statements.append(_write_nodes(dst.dialect, label, rows, new=True))
    for rel, (pairs, props) in RELS.items():
        extra = "".join(f", r.`{p}` AS `{p}`" for p in props)
        for a, b in pairs:
            rows = src.run_read(
                f"MATCH (a:{a})-[r:{rel}]->(b:{b}) "
                f"RETURN a.`{NODES[a][0]}` AS src, b.`{NODES[b][0]}` AS dst{extra}"
            )
            if rows:
                statements.append(_write_rels(dst.dialect, rel, a, b, rows, new=True))
    if statements:
        dst.run_write(statements)


def compact_embedded(path: Path) -> tuple[int, int]:
    """Rewrite the embedded graph at ``path`` without its dead pages; returns its bytes on
    disk (database and WAL) before and after. The caller holds the repository's exclusive
    write lock; this also holds LadybugDB's write handle while copying, so no writer
    changes the graph meanwhile."""
    from provdb.graph.ladybug_store import LadybugStore
    from storage import fsync_path

    before = _disk(path)
    tmp = path.with_name(path.name + ".compact")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)  # from a crash during an earlier compaction
    src, dst = LadybugStore(path), LadybugStore(tmp)
    with src.hold(write=True), dst.hold(write=True):
        want = _counts(src)
        dst.setup()
        copy_graph(src, dst)
        got = _counts(dst)
    # both closed (checkpointed): only now may the copy replace the original
    if got != want or tmp.with_name(tmp.name + ".wal").exists():
        tmp.unlink(missing_ok=True)
        raise CorruptData(f"graph compaction copied {got} instead of {want}; kept the original")
    wal = path.with_name(path.name + ".wal")
    if wal.exists() and wal.stat().st_size:  # it would be replayed onto the copy
        tmp.unlink(missing_ok=True)
        raise CorruptData(f"{wal} was not checkpointed; graph compaction kept the original")
    fsync_path(tmp)
    os.replace(tmp, path)
    wal.unlink(missing_ok=True)
    fsync_path(path.parent)
    return before, _disk(path)
