"""Every store backend passes the same conformance suite (S3: on a real SeaweedFS)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import LMDBStore, MemoryStore, ReadOnlyError, S3Store, StorageError
from storage.testing import StoreTests


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        with MemoryStore() as s:
            yield s


class TestLMDBStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LMDBStore]:
        with LMDBStore(tmp_path / "db", map_size=1 << 20) as s:
            yield s

    def test_map_grows_on_demand(self, store: LMDBStore) -> None:
        small = store.map_size
        value = b"x" * (8 << 20)
        with store.begin(write=True, reserve=2 * len(value)) as txn:
            txn.put("a", value)
            txn.put("b", value)
        assert store.map_size > small
        assert store.get("b") == value

    def test_read_only_refuses_writes(self, store: LMDBStore, tmp_path: Path) -> None:
        store.set("k", b"v")
        store.close()  # LMDB: never open the same environment twice in one process
        with LMDBStore(tmp_path / "db", read_only=True) as ro:
            assert ro.get("k") == b"v"
            with pytest.raises(ReadOnlyError, match="read-only"):
                ro.set("k", b"w")

    def test_missing_read_only_path(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match="no archive"):
            LMDBStore(tmp_path / "absent", read_only=True)


class TestS3Store(StoreTests):
    @pytest.fixture
    def store(self, seaweedfs, s3_bucket: str) -> Iterator[S3Store]:
        with S3Store(s3_bucket, "archive", client=seaweedfs.client()) as s:
            yield s


def _child_reads(path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with LMDBStore(path, read_only=True) as s:
        queue.put(s.get("shared"))


def test_reader_in_other_process(tmp_path: Path) -> None:
    with LMDBStore(tmp_path / "db") as s:
        s.set("shared", b"hello")
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child_reads, args=(str(tmp_path / "db"), queue))
        proc.start()
        proc.join(60)
        assert queue.get(timeout=5) == b"hello"
