"""The S3 store on a real SeaweedFS (session fixture ``seaweedfs``): what the conformance suite
cannot see — objects per plane, commit visibility, concurrent writers, checkpoints, errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storage import (
    Archive,
    ConflictError,
    CorruptionError,
    InvalidInputError,
    NotFoundError,
    S3Store,
    StorageError,
    parse_url,
)
from storage.seaweedfs import SeaweedServer


class Spy:
    """A boto3 client that records the keys of every GET and PUT."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.gets: list[str] = []
        self.puts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kw: Any) -> Any:
        self.gets.append(kw["Key"])
        return self._client.get_object(**kw)

    def put_object(self, **kw: Any) -> Any:
        self.puts.append(kw["Key"])
        return self._client.put_object(**kw)


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((512, 256)).astype(np.float32),
        "v": rng.standard_normal(70_000).astype(np.float32),
    }


def test_url_parsing() -> None:
    loc = parse_url("s3://models/team/a?endpoint=http://127.0.0.1:9000&region=eu-west-1")
    assert (loc.bucket, loc.prefix, loc.endpoint, loc.region) == (
        "models",
        "team/a",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    assert parse_url(loc.url()) == loc
    assert parse_url("s3://models").prefix == ""
    with pytest.raises(InvalidInputError, match="not an S3 URL"):
        parse_url("http://models/x")
    with pytest.raises(InvalidInputError, match="unknown S3 URL option 'endpont'"):
        parse_url("s3://models/x?endpont=http://h")
    with pytest.raises(InvalidInputError, match="http"):
        parse_url("s3://models/x?endpoint=ftp://h")


def test_plane_read_fetches_only_that_planes_chunks(seaweedfs: SeaweedServer, s3_bucket: str):
    with Archive(S3Store(s3_bucket, "ar", client=seaweedfs.client())) as ar:
        ar.write_snapshot("s1", _weights())
        records = [ar.tensor_record(d) for d in ar.manifest("s1")["tensors"].values()]
    by_plane = [{d for r in records for d in r.planes[p]} for p in range(4)]
    assert all(by_plane), "every plane has chunks"

    spy = Spy(seaweedfs.client())
    with Archive(S3Store(s3_bucket, "ar", client=spy)) as ar:  # cold: nothing cached
        approx = ar.read_snapshot("s1", planes=1)
    fetched = {k.rsplit("/", 1)[1] for k in spy.gets if k.startswith("ar/blobs/")}
    chunks = set().union(*by_plane)
    assert fetched & chunks == by_plane[0], "exactly plane 0's chunk objects"
    assert approx["w"].shape == (512, 256)
    # a chunk is one immutable object named by its own digest
    names = {o["Key"] for o in seaweedfs.client().list_objects_v2(
        Bucket=s3_bucket, Prefix="ar/blobs/", MaxKeys=1000)["Contents"]}  # fmt: skip
    assert {f"ar/blobs/{d}" for d in chunks} <= names


def test_full_roundtrip_through_archive_url(
    seaweedfs: SeaweedServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the URL names the endpoint
    url = f"s3://{s3_bucket}/repo?endpoint={seaweedfs.endpoint}"
    w0, w1 = _weights(0), _weights(1)
    with Archive.open(url) as ar:
        ar.write_snapshot("a", w0)
        ar.write_snapshot("b", w1, bases=["a"])  # reverse delta: "a" re-encoded, chunks dropped
    with Archive.open(url, readonly=True) as ar:
        assert ar.list_snapshots() == ["a", "b"]
        for sid, w in (("a", w0), ("b", w1)):
            got = ar.read_snapshot(sid)
            assert all(got[k].tobytes() == w[k].tobytes() for k in w)
        assert ar.verify().ok
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint)  # or from the usual variable
    with Archive.open(f"s3://{s3_bucket}/repo", readonly=True) as ar:
        assert ar.list_snapshots() == ["a", "b"]


def test_open_read_txn_keeps_its_snapshot(seaweedfs: SeaweedServer, s3_bucket: str) -> None:
    a = S3Store(s3_bucket, "p", client=seaweedfs.client())
    b = S3Store(s3_bucket, "p", client=seaweedfs.client())  # another "process"
    big = b"x" * 5000
    a.set("k", big)
    with a.begin() as txn:
        with b.begin(write=True) as w:
            w.put("k", b"y" * 5000)
            w.put("new", b"1")
            w.delete("k2")
        assert txn.get("k") == big  # still the old generation
        assert txn.get("new") is None
    assert a.get("k") == b"y" * 5000  # a new transaction sees the commit
    assert a.get("new") == b"1"


def test_concurrent_writers_replay_or_conflict(seaweedfs: SeaweedServer, s3_bucket: str):
    a = S3Store(s3_bucket, "p", client=seaweedfs.client())
    b = S3Store(s3_bucket, "p", client=seaweedfs.client())
    a.set("seed", b"0")
    # blind writes on disjoint keys: b's commit takes the generation, a's is replayed after it
    with a.begin(write=True) as txn:
        txn.put("from-a", b"a")
        b.set("from-b", b"b")
    assert a.list_prefix("from") == ["from-a", "from-b"]

    # a read that another writer invalidated: refused, nothing written
    def read_then_write() -> None:
        with a.begin(write=True) as txn:
            txn.put("derived", bytes(txn.get("seed") or b"") + b"+1")
            b.set("seed", b"changed")

    with pytest.raises(ConflictError, match="'seed'"):
        read_then_write()
    assert b.get("derived") is None
    assert b.get("seed") == b"changed"


def test_new_reader_starts_from_a_checkpoint(seaweedfs: SeaweedServer, s3_bucket: str) -> None:
    with S3Store(s3_bucket, "c", client=seaweedfs.client(), checkpoint_every=4) as s:
        for i in range(10):
            s.set(f"k{i}", str(i).encode())
    spy = Spy(seaweedfs.client())
    with S3Store(s3_bucket, "c", client=spy) as s:
        assert s.list_prefix("k") == [f"k{i}" for i in range(10)]
        assert s.get("k9") == b"9"
    assert spy.gets[0] == "c/index/000000000008"
    assert [k for k in spy.gets if "/log/" in k] == [
        "c/log/000000000009",
        "c/log/000000000010",
        "c/log/000000000011",  # absent: the newest generation is 10
        "c/log/000000000011",  # the second transaction asks once more
    ]


def test_sweep_deletes_only_unreferenced_blobs(seaweedfs: SeaweedServer, s3_bucket: str):
    with S3Store(s3_bucket, "g", client=seaweedfs.client()) as s:
        s.set("keep", b"k" * 4000)
        s.set("drop", b"d" * 4000)
        s.delete("drop")
        assert s.sweep(grace_s=3600) == 0  # too young
        assert s.sweep(grace_s=-1) == 1
        assert s.get("keep") == b"k" * 4000


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_errors_are_one_line_and_unavailable(
    seaweedfs: SeaweedServer, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    def client(secret: str, endpoint: str = seaweedfs.endpoint) -> Any:
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=seaweedfs.access_key, aws_secret_access_key=secret,
        )  # fmt: skip

    with pytest.raises(StorageError) as missing:
        S3Store("no-such-bucket-here", client=seaweedfs.client())
    assert missing.value.code == "unavailable"
    assert "bucket 'no-such-bucket-here' does not exist" in _one_line(missing.value)

    with pytest.raises(StorageError) as auth:
        S3Store(s3_bucket, client=client("wrong-secret"))
    assert auth.value.code == "unavailable"
    assert "refused the credentials" in _one_line(auth.value)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    dead = SeaweedServer(tmp_path).ports["s3"]  # a free port nobody listens on
    with pytest.raises(StorageError) as down:
        S3Store.from_url(f"s3://{s3_bucket}/x?endpoint=http://127.0.0.1:{dead}")
    assert down.value.code == "unavailable"
    assert f"object store unreachable at http://127.0.0.1:{dead}" in _one_line(down.value)


def test_get_chunks_is_one_transaction(seaweedfs: SeaweedServer, s3_bucket: str) -> None:
    store = S3Store(s3_bucket, "gc", client=seaweedfs.client())
    with Archive(store) as ar:
        ar.write_snapshot("s", _weights())
        digests = ar.snapshot_chunks("s")
        store.requests.clear()
        chunks = ar.get_chunks(digests)
        assert [len(c) for c in chunks] == [len(ar.get_chunk(d)) for d in digests]
        assert store.requests["GET log"] == 1 + len(digests)  # one probe, then one per get_chunk
        with pytest.raises(NotFoundError, match="no chunk"):
            ar.get_chunks([digests[0], "0" * 40])


def test_two_writers_storing_one_chunk_do_not_conflict(seaweedfs: SeaweedServer, s3_bucket: str):
    a = S3Store(s3_bucket, "p", client=seaweedfs.client())
    b = S3Store(s3_bucket, "p", client=seaweedfs.client())
    chunk = bytes(range(256)) * 20
    with a.begin(write=True) as txn:
        assert txn.put_if_absent("c/x", chunk)
        b.set("c/x", chunk)  # the same content, committed first
    assert a.get("c/x") == chunk
    assert a.requests["PUT log"] == 2  # lost the race once, replayed


class SlowSpy(Spy):
    """A :class:`Spy` whose blob GETs take a while, recording how many ran at once."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self._lock = threading.Lock()
        self._running = 0
        self.most = 0

    def get_object(self, **kw: Any) -> Any:
        if "/blobs/" not in kw["Key"]:
            return super().get_object(**kw)
        with self._lock:
            self._running += 1
            self.most = max(self.most, self._running)
        try:
            time.sleep(0.02)
            return super().get_object(**kw)
        finally:
            with self._lock:
                self._running -= 1


def test_snapshot_read_fetches_chunks_concurrently(seaweedfs: SeaweedServer, s3_bucket: str):
    rng = np.random.default_rng(1)
    weights = {f"t{i}": rng.standard_normal((256, 256)).astype(np.float32) for i in range(6)}
    tuned = {k: v + np.float32(1e-3) for k, v in weights.items()}
    with Archive(S3Store(s3_bucket, "par", client=seaweedfs.client())) as ar:
        ar.write_snapshot("s1", weights)
        ar.write_snapshot("s2", tuned, bases=["s1"])  # "s1" becomes an XOR delta against "s2"
        assert ar.tensor_record(ar.manifest("s1")["tensors"]["t0"]).delta is not None
        chunks = ar.snapshot_chunks("s1")

    spy = SlowSpy(seaweedfs.client())
    with Archive(S3Store(s3_bucket, "par", client=spy)) as ar:  # cold: nothing cached
        out = ar.read_snapshot("s1")
        assert spy.most > 1, "chunk GETs overlapped"
        for name, value in weights.items():
            assert out[name].tobytes() == value.tobytes()
        fetched = [k.rsplit("/", 1)[1] for k in spy.gets if k.startswith("par/blobs/")]
        of_chunks = [d for d in fetched if d in set(chunks)]  # (tiny chunks are inline)
        assert len(of_chunks) > 12
        assert len(of_chunks) == len(set(of_chunks)), "each chunk fetched once"

        spy.most = 0
        assert [len(c) for c in ar.get_chunks(chunks)] == [len(ar.get_chunk(d)) for d in chunks]
        assert spy.most > 1, "get_chunks overlapped its GETs too"


def test_a_failed_get_in_a_batch_is_one_line(seaweedfs: SeaweedServer, s3_bucket: str):
    with Archive(S3Store(s3_bucket, "bad", client=seaweedfs.client())) as ar:
        ar.write_snapshot("s", _weights())
        chunks = ar.snapshot_chunks("s")
    client = seaweedfs.client()
    client.delete_object(Bucket=s3_bucket, Key=f"bad/blobs/{chunks[-1]}")
    with Archive(S3Store(s3_bucket, "bad", client=client)) as ar:
        with pytest.raises(CorruptionError, match="is missing") as info:
            ar.read_snapshot("s")
        assert "\n" not in str(info.value)
