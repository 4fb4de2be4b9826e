"""The embedded backend: LadybugDB (a maintained fork of Kùzu), the zero-setup default.

LadybugDB lets one process open a database read-write while others open it read-only. So a
writer holds the read-write handle only for the length of a transaction and retries while
another process holds the lock; readers open read-only. :meth:`LadybugStore.hold` keeps one
handle open across many transactions for bulk work in a single process.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import ladybug

from provdb.errors import Conflict, Locked, NotFound, ProvDBError, Unavailable
from provdb.graph.base import GraphStore, Statement, checked
from provdb.graph.dialect import LADYBUG

#: How long a writer waits for another process's lock (seconds); env PROVDB_LOCK_TIMEOUT.
DEFAULT_LOCK_TIMEOUT = 30.0
_LOCK_RE = re.compile(r"Could not set lock|Lock is held", re.IGNORECASE)
_RECOVERY_RE = re.compile(r"recovery is pending", re.IGNORECASE)


class LadybugStore(GraphStore):
    """A provenance graph in an embedded LadybugDB database file at ``path``."""

    dialect = LADYBUG

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        lock_timeout: float | None = None,
        buffer_pool_mb: int = 256,
    ) -> None:
        self.path = Path(path)
        self.uri = str(self.path)
        self.read_only = read_only
        env_timeout = os.environ.get("PROVDB_LOCK_TIMEOUT")
        self.lock_timeout = (
            lock_timeout if lock_timeout is not None else float(env_timeout or DEFAULT_LOCK_TIMEOUT)
        )
        self._buffer_pool = buffer_pool_mb * 1024 * 1024
        # a held handle belongs to the thread that took it (an SDK run writes from a worker
        # thread while the training thread may hold a read session): other threads open their
        # own and wait on the database lock like another process would
        self._local = threading.local()

    @property
    def _held(self) -> tuple[ladybug.Database, ladybug.Connection] | None:
        """This thread's held handle, if any."""
        return getattr(self._local, "held", None)

    # -- handles ----------------------------------------------------------------------------

    def _open(self, write: bool) -> tuple[ladybug.Database, ladybug.Connection]:
        if write and self.read_only:
            raise Conflict(f"the graph at {self.path} is open read-only")
        if not write and not self.path.exists():
            raise NotFound(f"no embedded graph at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                db = ladybug.Database(
                    str(self.path), read_only=not write, buffer_pool_size=self._buffer_pool
                )
                conn = ladybug.Connection(db)
                conn.execute(f"CALL var_length_extend_max_depth={self.dialect.max_depth}")
                return db, conn
            except RuntimeError as exc:
                if not write and not self.read_only and _RECOVERY_RE.search(str(exc)):
                    # A writer died mid-checkpoint: a read-write open replays the WAL.
                    self._recover()
                    continue
                if not _LOCK_RE.search(str(exc)) and not _RECOVERY_RE.search(str(exc)):
                    raise Unavailable(
                        f"cannot open the embedded graph at {self.path}: {exc}"
                    ) from exc
                if time.monotonic() > deadline:
                    raise Locked(
                        f"the embedded graph at {self.path} is locked by another process "
                        f"(waited {self.lock_timeout:.0f} s): {str(exc).splitlines()[0]}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _recover(self) -> None:
        """Open read-write once so LadybugDB finishes recovery after a killed writer."""
        db, conn = self._open(write=True)
        conn.close()
        db.close()

    @contextmanager
    def _connection(self, write: bool) -> Iterator[ladybug.Connection]:
        if self._held is not None:
            if write and self._local.read_only:
                raise Conflict(f"the graph at {self.path} is held read-only by this session")
            yield self._held[1]
            return
        db, conn = self._open(write)
        try:
            yield conn
        finally:
            conn.close()
            db.close()

    @contextmanager
    def hold(self, write: bool = True) -> Iterator[LadybugStore]:
        """Keep one handle open for the block (bulk work); with ``write``, other writers wait."""
        if self._held is not None:
            yield self
            return
        self._local.read_only = self.read_only or not write
        held = self._local.held = self._open(write=not self._local.read_only)
        try:
            yield self
        finally:
            db, conn = held
            self._local.held = None
            conn.close()
            db.close()

    def session(self, write: bool = False) -> AbstractContextManager[LadybugStore]:
        """Several statements on one handle (opening one costs tens of milliseconds):
        read-only, or read-write with ``write`` (other writers wait for the block)."""
        return self.hold(write=write)

    # -- primitives -------------------------------------------------------------------------

    def setup(self) -> None:
        # docstring inherited
        with self._connection(write=True) as conn:
            for ddl in self.dialect.schema_statements():
                _execute(conn, ddl)

    def run_write(self, statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        # docstring inherited
        with self._connection(write=True) as conn:
            _execute(conn, "BEGIN TRANSACTION")
            try:
                out = [checked(s, _execute(conn, s.cypher, s.params)) for s in statements]
            except BaseException:
                _rollback(conn)
                raise
            _execute(conn, "COMMIT")
            return out

    def run_read(
        self, cypher: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        # docstring inherited
        with self._connection(write=False) as conn:
            return _execute(conn, cypher, params)

    def close(self) -> None:
        # docstring inherited
        if self._held is not None:
            db, conn = self._held
            self._local.held = None
            conn.close()
            db.close()


def _rollback(conn: ladybug.Connection) -> None:
    """Roll back, unless LadybugDB already did (it aborts the transaction on a runtime error)."""
    try:
        conn.execute("ROLLBACK")
    except RuntimeError as exc:
        if "No active transaction" not in str(exc):
            raise


def _execute(
    conn: ladybug.Connection, cypher: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    try:
        result = conn.execute(cypher, dict(params or {}))
    except RuntimeError as exc:
        raise ProvDBError(f"LadybugDB: {exc}") from exc
    if isinstance(result, list):  # several statements
        result = result[-1]
    cols = result.get_column_names()
    rows = [dict(zip(cols, map(_plain, row))) for row in result.get_all()]
    result.close()
    return rows


def _plain(value: Any) -> Any:
    """Node/relationship values as property dicts (internal ``_ID``/``_LABEL`` dropped)."""
    if isinstance(value, dict) and "_LABEL" in value:
        return {k: v for k, v in value.items() if not k.startswith("_")}
    return value
