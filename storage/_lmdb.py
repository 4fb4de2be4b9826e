"""LMDB store: one environment per archive directory, one write transaction at a time.

Pitfalls handled here (see research/storage-anchors.md §5):

* the map grows on demand before a write transaction (``reserve``) and adopts a size grown by
  another process (``MapResizedError``);
* an environment is never used across ``fork()``: a child process gets a clear error and must
  open its own;
* values returned inside a transaction are zero-copy ``memoryview``s valid only until the
  transaction ends or writes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb

from storage.abc import Store, Txn, Value, check_key, check_value
from storage.errors import CorruptionError, InvalidInputError, ReadOnlyError, StorageError

DEFAULT_MAP_SIZE = 1 << 30
_HEADROOM = 64 << 20
_PAD = 256 << 10


class _LMDBTxn(Txn):
    def __init__(self, txn: lmdb.Transaction, write: bool, limit: int) -> None:
        self._txn = txn
        self.write = write
        self._limit = limit  # no value can be longer than the file

    def get(self, key: str) -> Value | None:
        # docstring inherited
        raw = check_key(key).encode()
        try:
            value = self._txn.get(raw)
        except lmdb.Error as exc:
            raise _damaged(exc) from exc
        if value is not None and len(value) > self._limit:
            raise CorruptionError(f"LMDB value of {key!r} is longer than the file: corrupt")
        return value

    def put(self, key: str, value: Value) -> None:
        # docstring inherited
        if not self.write:
            raise ReadOnlyError("cannot write in a read transaction")
        try:
            self._txn.put(check_key(key).encode(), check_value(value))
        except lmdb.MapFullError as exc:
            raise StorageError(
                "LMDB map full; open a write transaction with a larger reserve", code="map_full"
            ) from exc

    def delete(self, key: str) -> bool:
        # docstring inherited
        if not self.write:
            raise ReadOnlyError("cannot write in a read transaction")
        return self._txn.delete(check_key(key).encode())

    def keys(self, prefix: str = "") -> Iterator[str]:
        # docstring inherited
        raw = prefix.encode()
        try:
            with self._txn.cursor() as cur:
                if not cur.set_range(raw):
                    return
                for key in cur.iternext(keys=True, values=False):
                    key = bytes(key)
                    if not key.startswith(raw):
                        return
                    yield key.decode()
        except lmdb.Error as exc:
            raise _damaged(exc) from exc
        except UnicodeDecodeError as exc:
            raise CorruptionError(f"LMDB key under {prefix!r} is not UTF-8: corrupt") from exc


def _damaged(exc: lmdb.Error) -> StorageError:
    """An LMDB failure while reading: a damaged file, or another environment error."""
    if isinstance(exc, lmdb.CorruptedError | lmdb.PageNotFoundError | lmdb.InvalidError):
        return CorruptionError(f"LMDB file is damaged: {exc}")
    return StorageError(f"LMDB error: {exc}")


def disk_bytes(path: Path) -> int:
    """Bytes ``path`` occupies on disk (allocated blocks: the store's file is sparse past its
    last page), 0 when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return 0
    blocks = getattr(st, "st_blocks", None)
    return int(blocks) * 512 if blocks is not None else st.st_size


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: A failed commit with less free space than this on the file system is reported as "disk full".
DISK_FULL_BELOW = 1 << 20


class LMDBStore(Store):
    """A :class:`~storage.abc.Store` on an LMDB environment in directory ``path``.

    Parameters
    ----------
    path:
        Directory holding ``data.mdb``/``lock.mdb``; created unless ``read_only``.
    read_only:
        Open without write access (readers in other processes never block the writer).
    map_size:
        Initial map size in bytes; the map grows automatically before large writes.
    sync:
        Flush to disk at every commit (durable). ``False`` keeps ACI but not D.
    """

    supports_multiprocess = True
    persistent = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
        sync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if map_size <= 0:
            raise InvalidInputError(f"map_size must be positive, got {map_size}")
        if not read_only:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not (self.path / "data.mdb").exists():
            raise StorageError(f"no archive at {str(self.path)!r}", code="not_found")
        self._sync = sync
        self._env = self._open_env(map_size)
        self._pid = os.getpid()
        self._closed = False

    def _open_env(self, map_size: int) -> lmdb.Environment:
        try:
            return lmdb.open(
                str(self.path),
                map_size=map_size,
                readonly=self.read_only,
                subdir=True,
                max_dbs=0,
                sync=self._sync,
                readahead=False,
                max_spare_txns=0,
                lock=True,
            )
        except lmdb.Error as exc:
            raise StorageError(f"cannot open LMDB at {str(self.path)!r}: {exc}") from exc

    @contextmanager
    def begin(self, *, write: bool = False, reserve: int = 0) -> Iterator[Txn]:
        # docstring inherited
        self._check_open()
        if write:
            self._check_writable()
            self._ensure_room(reserve)
        try:
            txn = self._env.begin(write=write, buffers=True)
        except lmdb.MapResizedError:
            self._env.set_mapsize(0)  # adopt the size another process grew the map to
            txn = self._env.begin(write=write, buffers=True)
        except lmdb.Error as exc:
            raise _damaged(exc) from exc
        try:
            yield _LMDBTxn(txn, write, self.map_size if write else self._file_bytes())
        except BaseException:
            txn.abort()
            raise
        try:
            txn.commit()
        except lmdb.MapFullError as exc:
            raise StorageError(
                f"LMDB map full at {self.map_size} bytes; pass a larger reserve", code="map_full"
            ) from exc
        except lmdb.Error as exc:
            raise self._write_failed(exc) from exc
        if write:
            self._pad()

    def _write_failed(self, exc: lmdb.Error) -> StorageError:
        """A failed commit: "disk full" when the file system has no room left (LMDB reports
        ENOSPC on a memory-mapped write as an I/O error), else the LMDB error. The commit was
        not applied: the archive is as it was before the transaction."""
        free = shutil.disk_usage(self.path).free
        if free < DISK_FULL_BELOW or "No space" in str(exc):
            return StorageError(
                f"disk full: {free} bytes free on the file system holding {self.path}; "
                "the write was not applied (free some space and retry)",
                code="disk_full",
            )
        return _damaged(exc)

    def _pad(self) -> None:
        """Keep ``_PAD`` zero bytes (sparse: no disk) behind the last page. LMDB 0.9 has no page
        checksums: a damaged page header can make a reader look up to 64 KiB past a page, and
        past the end of the file that is a SIGBUS instead of a corruption error."""
        data = self.path / "data.mdb"
        try:
            size = data.stat().st_size
            if size < self.used_bytes() + _PAD:
                os.truncate(data, self.used_bytes() + 2 * _PAD)
        except OSError:  # pragma: no cover - padding is best effort
            pass

    def compact(self) -> tuple[int, int]:
        """Replace ``data.mdb`` by a compacted copy (``mdb_env_copy2`` with compaction: live
        pages only); returns its bytes on disk before and after. Crash-safe: the copy is
        written and fsynced beside the original, then renamed over it (atomic), so a crash
        leaves the original or the complete copy, never neither. The caller must keep other
        writers out; readers in other processes keep reading the old file until they reopen."""
        self._check_open()
        self._check_writable()
        data = self.path / "data.mdb"
        before = disk_bytes(data)
        tmp = self.path / "compact.tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # left by a crash during an earlier compaction
        tmp.mkdir()
        try:
            self._env.copy(str(tmp), compact=True)
            fsync_path(tmp / "data.mdb")
            fsync_path(tmp)
        except lmdb.Error as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StorageError(f"cannot compact the LMDB at {str(self.path)!r}: {exc}") from exc
        map_size = self.map_size
        self._env.close()
        os.replace(tmp / "data.mdb", data)
        (self.path / "lock.mdb").unlink(missing_ok=True)  # a fresh lock file for the new data
        fsync_path(self.path)
        shutil.rmtree(tmp, ignore_errors=True)
        self._env = self._open_env(map_size)
        self._pad()
        return before, disk_bytes(data)

    @property
    def map_size(self) -> int:
        """Current map size in bytes."""
        return int(self._env.info()["map_size"])

    def used_bytes(self) -> int:
        """Bytes of the map in use (last page number times page size)."""
        info, stat = self._env.info(), self._env.stat()
        return int((info["last_pgno"] + 1) * stat["psize"])

    def _file_bytes(self) -> int:
        """Size of the data file (an upper bound for any value's length)."""
        try:
            return max((self.path / "data.mdb").stat().st_size, self.used_bytes())
        except OSError:
            return self.map_size

    def _ensure_room(self, reserve: int) -> None:
        need = self.used_bytes() + 2 * reserve + _HEADROOM
        size = self.map_size
        if need > size:
            while size < need:
                size *= 2
            self._env.set_mapsize(size)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed", code="closed")
        if os.getpid() != self._pid:
            raise StorageError(
                "LMDB environment opened in another process; reopen the archive after fork()",
                code="forked",
            )

    def close(self) -> None:
        # docstring inherited
        if not self._closed and os.getpid() == self._pid:
            self._env.close()
        self._closed = True
