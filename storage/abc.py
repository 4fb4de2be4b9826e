"""The small store interface the archive is written against (zarr-python v3 style).

A :class:`Store` is a transactional key/value map with ``str`` keys and ``bytes`` values. Backends
implement :meth:`Store.begin` (returning a :class:`Txn`) and :meth:`Store.close`; everything else
is a convenience written on top of those primitives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Self

from storage.errors import InvalidInputError, ReadOnlyError

Value = bytes | memoryview


class Txn(ABC):
    """One transaction. Write transactions commit when their ``with`` block exits normally and
    abort (leaving the store unchanged) when it raises."""

    write: bool

    @abstractmethod
    def get(self, key: str) -> Value | None:
        """Return the value under ``key`` or ``None``.

        The result may be a ``memoryview`` into the store's memory map: it is valid only until the
        transaction ends or writes anything. Copy it with ``bytes()`` to keep it.
        """

    @abstractmethod
    def put(self, key: str, value: Value) -> None:
        """Store ``value`` under ``key`` (overwriting). Write transactions only."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed. Write transactions only."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Iterate over the keys that start with ``prefix``, in byte order."""

    def get_many(self, keys: Sequence[str]) -> Iterator[Value | None]:
        """:meth:`get` of each key, yielded in order (same values, same errors). Backends with
        slow round trips (:attr:`Store.batch_reads`) fetch a few values ahead concurrently;
        the default reads one after another."""
        for key in keys:
            yield self.get(key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is present."""
        return self.get(key) is not None

    def put_if_absent(self, key: str, value: Value) -> bool:
        """Store ``value`` unless ``key`` exists; return whether it was written."""
        if self.exists(key):
            return False
        self.put(key, value)
        return True


class Store(ABC):
    """Abstract transactional key/value store.

    Class attributes are capability flags callers may check:

    * ``supports_multiprocess`` — other processes may open the same store concurrently
      (readers never block; one writer at a time).
    * ``persistent`` — data survives :meth:`close`.
    * ``batch_reads`` — every value is a round trip (an object store): readers that know which
      keys they will need should ask for them with :meth:`Txn.get_many`.
    """

    supports_multiprocess: bool = False
    persistent: bool = False
    batch_reads: bool = False
    read_only: bool = False

    @abstractmethod
    def begin(self, *, write: bool = False, reserve: int = 0) -> AbstractContextManager[Txn]:
        """Open a transaction.

        Parameters
        ----------
        write:
            Open a write transaction (at most one at a time per store).
        reserve:
            Upper bound of the bytes the transaction will add; backends with a fixed map size
            grow it beforehand.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources. Idempotent."""

    # -- conveniences built on the primitives -------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Return a copy of the value under ``key`` or ``None``."""
        with self.begin() as txn:
            value = txn.get(key)
            return None if value is None else bytes(value)

    def set(self, key: str, value: Value) -> None:
        """Store one value in its own write transaction."""
        self._check_writable()
        with self.begin(write=True, reserve=len(value)) as txn:
            txn.put(key, value)

    def delete(self, key: str) -> bool:
        """Delete one key in its own write transaction; return whether it existed."""
        self._check_writable()
        with self.begin(write=True) as txn:
            return txn.delete(key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is present."""
        with self.begin() as txn:
            return txn.exists(key)

    def list_prefix(self, prefix: str = "") -> list[str]:
        """All keys starting with ``prefix``, sorted."""
        with self.begin() as txn:
            return list(txn.keys(prefix))

    def _check_writable(self) -> None:
        """Raise :class:`ReadOnlyError` if the store is read-only."""
        if self.read_only:
            raise ReadOnlyError("store was opened read-only and does not support writing")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_key(key: object) -> str:
    """Validate a store key: a non-empty ``str`` of at most 511 UTF-8 bytes."""
    if not isinstance(key, str):
        raise InvalidInputError(f"store keys must be str, got {type(key).__name__}")
    if not key or len(key.encode()) > 511:
        raise InvalidInputError(f"store key must be 1..511 UTF-8 bytes, got {len(key.encode())}")
    return key


def check_value(value: object) -> Value:
    """Validate a store value: ``bytes`` or a ``memoryview``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInputError(
            f"store values must be bytes or memoryview, got {type(value).__name__}"
        )
    return value if not isinstance(value, bytearray) else bytes(value)
