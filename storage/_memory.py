"""In-memory store: the test double of :class:`storage.abc.Store`."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager

from storage.abc import Store, Txn, Value, check_key, check_value
from storage.errors import ReadOnlyError, StorageError

_DELETED = object()


class _MemoryTxn(Txn):
    def __init__(self, data: dict[str, bytes], write: bool) -> None:
        self._data = data
        self._overlay: dict[str, object] = {}
        self.write = write

    def get(self, key: str) -> Value | None:
        # docstring inherited
        check_key(key)
        if key in self._overlay:
            value = self._overlay[key]
            return None if value is _DELETED else value  # type: ignore[return-value]
        return self._data.get(key)

    def put(self, key: str, value: Value) -> None:
        # docstring inherited
        self._check_write()
        self._overlay[check_key(key)] = bytes(check_value(value))

    def delete(self, key: str) -> bool:
        # docstring inherited
        self._check_write()
        existed = self.get(key) is not None
        self._overlay[key] = _DELETED
        return existed

    def keys(self, prefix: str = "") -> Iterator[str]:
        # docstring inherited
        merged = {k for k in self._data if k.startswith(prefix)}
        for key, value in self._overlay.items():
            if key.startswith(prefix):
                (merged.discard if value is _DELETED else merged.add)(key)
        ordered = sorted(merged, key=str.encode)
        start = bisect_left([k.encode() for k in ordered], prefix.encode())
        yield from ordered[start:]

    def _check_write(self) -> None:
        if not self.write:
            raise ReadOnlyError("cannot write in a read transaction")

    def commit(self) -> None:
        for key, value in self._overlay.items():
            if value is _DELETED:
                self._data.pop(key, None)
            else:
                self._data[key] = value  # type: ignore[assignment]


class MemoryStore(Store):
    """A dict-backed store with the same transaction semantics as the LMDB store (writes become
    visible atomically at commit; one writer at a time)."""

    def __init__(self, *, read_only: bool = False) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.read_only = read_only

    @contextmanager
    def begin(self, *, write: bool = False, reserve: int = 0) -> Iterator[Txn]:
        # docstring inherited
        if self._closed:
            raise StorageError("store is closed", code="closed")
        if not write:
            yield _MemoryTxn(self._data, write=False)
            return
        self._check_writable()
        with self._lock:
            txn = _MemoryTxn(self._data, write=True)
            yield txn
            txn.commit()

    def close(self) -> None:
        # docstring inherited
        self._closed = True
