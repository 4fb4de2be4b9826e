"""Conformance suite for :class:`storage.abc.Store` backends (zarr ``StoreTests`` style).

Subclass :class:`StoreTests` in a backend's test module and provide the ``store`` fixture::

    class TestMemoryStore(StoreTests):
        @pytest.fixture
        def store(self):
            with MemoryStore() as s:
                yield s
"""

from __future__ import annotations

import pytest

from storage.abc import Store
from storage.errors import InvalidInputError, ReadOnlyError


class StoreTests:
    """Behaviour every store backend must share. Requires a ``store`` fixture."""

    def test_get_missing_returns_none(self, store: Store) -> None:
        assert store.get("nope") is None
        assert not store.exists("nope")

    def test_set_get_roundtrip(self, store: Store) -> None:
        store.set("a/b", b"\x00\x01payload")
        assert store.get("a/b") == b"\x00\x01payload"
        assert store.exists("a/b")

    def test_empty_value(self, store: Store) -> None:
        store.set("empty", b"")
        assert store.get("empty") == b""

    def test_overwrite(self, store: Store) -> None:
        store.set("k", b"1")
        store.set("k", b"22")
        assert store.get("k") == b"22"

    def test_delete(self, store: Store) -> None:
        store.set("k", b"1")
        assert store.delete("k") is True
        assert store.delete("k") is False
        assert store.get("k") is None

    def test_list_prefix_sorted_and_filtered(self, store: Store) -> None:
        for key in ["c/2", "c/1", "s/x", "c0", "b"]:
            store.set(key, b"v")
        assert store.list_prefix("c/") == ["c/1", "c/2"]
        assert store.list_prefix("") == ["b", "c/1", "c/2", "c0", "s/x"]
        assert store.list_prefix("zzz") == []

    def test_get_many_matches_get_in_order(self, store: Store) -> None:
        big = bytes(range(256)) * 20  # over an inline limit: a separate object on S3
        with store.begin(write=True) as txn:
            for i in range(40):
                txn.put(f"k/{i}", big[: 100 * i])
        keys = [f"k/{i}" for i in reversed(range(40))] + ["nope", "k/3"]
        with store.begin(write=True) as txn:
            txn.put("k/5", b"new")  # a write transaction's own puts come first
            txn.delete("k/6")
            got = [None if v is None else bytes(v) for v in txn.get_many(keys)]
            assert got == [None if v is None else bytes(v) for v in map(txn.get, keys)]
        assert got[0] == big[:3900]
        assert got[33:35] == [None, b"new"]
        assert got[-3:] == [b"", None, big[:300]]

    def test_transaction_commits_atomically(self, store: Store) -> None:
        with store.begin(write=True) as txn:
            txn.put("x", b"1")
            txn.put("y", b"2")
            assert txn.get("x") is not None
        assert store.get("x") == b"1"
        assert store.get("y") == b"2"

    def test_transaction_aborts_on_error(self, store: Store) -> None:
        store.set("keep", b"old")

        def fail() -> None:
            with store.begin(write=True) as txn:
                txn.put("keep", b"new")
                txn.put("other", b"x")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            fail()
        assert store.get("keep") == b"old"
        assert store.get("other") is None

    def test_txn_sees_own_writes_and_deletes(self, store: Store) -> None:
        store.set("a", b"1")
        with store.begin(write=True) as txn:
            assert txn.delete("a") is True
            assert txn.get("a") is None
            txn.put("b", b"2")
            assert list(txn.keys()) == ["b"]

    def test_put_if_absent(self, store: Store) -> None:
        with store.begin(write=True) as txn:
            assert txn.put_if_absent("k", b"1") is True
            assert txn.put_if_absent("k", b"2") is False
        assert store.get("k") == b"1"

    def test_read_txn_refuses_writes(self, store: Store) -> None:
        with store.begin() as txn, pytest.raises(ReadOnlyError, match="read transaction"):
            txn.put("k", b"v")

    def test_bad_key_type(self, store: Store) -> None:
        with pytest.raises(InvalidInputError, match="must be str"):
            store.set(b"bytes-key", b"v")  # type: ignore[arg-type]

    def test_bad_value_type(self, store: Store) -> None:
        with pytest.raises(InvalidInputError, match="bytes or memoryview"):
            store.set("k", "text")  # type: ignore[arg-type]

    def test_key_too_long(self, store: Store) -> None:
        with pytest.raises(InvalidInputError, match="1..511"):
            store.set("k" * 600, b"v")

    def test_large_value(self, store: Store) -> None:
        value = bytes(range(256)) * (3 << 12)  # 3 MiB
        store.set("big", value)
        assert store.get("big") == value
