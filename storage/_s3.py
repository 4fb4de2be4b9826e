"""S3 store: the archive's key/value map on any S3-compatible object store (AWS, SeaweedFS, MinIO).

Layout under ``s3://BUCKET/PREFIX/``:

=======================  ========================================================================
object                   content
=======================  ========================================================================
``blobs/<digest>``       one value larger than ``inline_limit``, named by the BLAKE3 digest of its
                         bytes (40 hex). An archive chunk's key *is* that digest, so each chunk is
                         one immutable object ``blobs/<chunk digest>``: safe to cache forever,
                         written once however many keys or commits name it.
``log/<generation>``     one commit (zstd JSON): the keys it put (a blob digest, or the value
                         inline when small) and the keys it deleted. Generation 1, 2, … (12
                         digits); created with ``If-None-Match: *``, so exactly one writer wins
                         each generation.
``index/<generation>``   a checkpoint: the whole key → entry map after that commit (every
                         ``checkpoint_every`` commits), so a new reader replays only the log
                         after it.
=======================  ========================================================================

Consistency. A write transaction uploads its blobs first, then creates the next ``log/`` object:
that single PUT is the commit. Until it exists nothing of the transaction is visible; after it
everything is. A reader's transaction sees the state at the newest generation when it began
(in-process the state is cached; each transaction asks only for the next log object) and keeps
seeing it: objects are never overwritten and blobs are never deleted by a commit, so a commit
made meanwhile cannot change what an open transaction reads. Writers are optimistic: when
another process claimed the generation first (HTTP 412), the transaction is replayed on the new
state unless a key it read (or a prefix it listed) changed meanwhile, in which case it fails with
:class:`~storage.errors.ConflictError` and nothing is written. Blobs of deleted keys stay until
:meth:`S3Store.sweep`. This relies on S3's strong read-after-write consistency (AWS since 2020,
SeaweedFS, MinIO).

Errors: an unreachable endpoint, refused credentials or a missing bucket raise
:class:`~storage.errors.StorageError` with code ``"unavailable"`` and a one-line message.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from bisect import bisect_left
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import blake3
import zstandard

from storage.abc import Store, Txn, Value, check_key, check_value
from storage.errors import (
    ConflictError,
    CorruptionError,
    InvalidInputError,
    ReadOnlyError,
    StorageError,
)

#: Values up to this many bytes live inline in the commit log and index, not as objects.
INLINE_LIMIT = 1024
#: A checkpoint (``index/<generation>``) is written after every this many commits.
CHECKPOINT_EVERY = 64
#: Blobs uploaded concurrently by one commit, and blobs fetched concurrently by ``get_many``.
UPLOAD_THREADS = 16
#: ``get_many`` fetches at most this many blobs ahead of its consumer (memory: as many values).
READ_AHEAD = 32
#: Blobs up to this size are kept in memory once fetched (they are immutable: always valid) …
CACHE_BLOB_LIMIT = 64 << 10
#: … up to this many bytes in all (least recently used first out).
CACHE_BYTES = 32 << 20
_FORMAT = 1
_GEN_DIGITS = 12
_INLINE = "="  # entry prefix of an inline value; a blob entry is its 40-hex digest


@dataclass(frozen=True)
class S3Location:
    """Where an S3 store lives: parsed from ``s3://BUCKET/PREFIX?endpoint=URL&region=R``."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    def url(self) -> str:
        """The location as a URL again (what a repository's config records)."""
        query = "&".join(
            f"{k}={v}" for k, v in (("endpoint", self.endpoint), ("region", self.region)) if v
        )
        path = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return path + (f"?{query}" if query else "")


def is_s3_url(location: object) -> bool:
    """Whether ``location`` is an ``s3://`` URL (rather than a local path)."""
    return isinstance(location, str) and location.startswith("s3://")


def parse_url(url: str) -> S3Location:
    """Parse ``s3://BUCKET[/PREFIX][?endpoint=URL][&region=NAME]``.

    Without ``endpoint`` the usual AWS variables decide (``AWS_ENDPOINT_URL``, else AWS itself).
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidInputError(f"not an S3 URL (s3://BUCKET/PREFIX?endpoint=URL): {url!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"endpoint", "region"}
    if unknown:
        raise InvalidInputError(f"unknown S3 URL option {sorted(unknown)[0]!r} in {url!r}")
    endpoint = query.get("endpoint", [None])[-1] or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise InvalidInputError(f"the S3 endpoint must be an http(s) URL, got {endpoint!r}")
    return S3Location(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint=endpoint,
        region=query.get("region", [None])[-1] or None,
    )


@dataclass(frozen=True)
class _State:
    """The store's contents at one generation: key → entry (inline value or blob digest)."""

    gen: int
    entries: dict[str, str]
    _sorted: list[list[str]] = field(default_factory=list, compare=False, repr=False)

    def sorted_keys(self) -> list[str]:
        """All keys in byte order (computed once per state)."""
        if not self._sorted:
            self._sorted.append(sorted(self.entries, key=str.encode))
        return self._sorted[0]

    def apply(self, record: dict[str, Any]) -> _State:
        """The state after one commit record."""
        entries = dict(self.entries)
        for key in record["del"]:
            entries.pop(key, None)
        entries.update(record["put"])
        return _State(record["gen"], entries)


class _S3Txn(Txn):
    def __init__(self, store: S3Store, base: _State, write: bool) -> None:
        self._store = store
        self.base = base
        self.write = write
        self.overlay: dict[str, bytes | None] = {}  # None: deleted
        self.reads: set[str] = set()
        self.listed: list[str] = []

    def get(self, key: str) -> Value | None:
        # docstring inherited
        check_key(key)
        if key in self.overlay:
            return self.overlay[key]
        self.reads.add(key)
        entry = self.base.entries.get(key)
        return None if entry is None else self._store._value(key, entry)

    def get_many(self, keys: Sequence[str]) -> Iterator[Value | None]:
        # docstring inherited: blobs are fetched on the store's pool, READ_AHEAD at most ahead
        ahead: deque[Future[Value | None]] = deque()
        pending = iter(keys)
        try:
            for key in pending:
                ahead.append(self._submit(key))
                if len(ahead) >= READ_AHEAD:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:  # the consumer stopped early (or a GET failed): drop what is still queued
            for future in ahead:
                future.cancel()

    def _submit(self, key: str) -> Future[Value | None]:
        """A future of :meth:`get` (resolved against the index here, fetched on the pool)."""
        check_key(key)
        done: Future[Value | None] = Future()
        if key in self.overlay:
            done.set_result(self.overlay[key])
            return done
        self.reads.add(key)
        entry = self.base.entries.get(key)
        if entry is None or entry.startswith(_INLINE):
            done.set_result(None if entry is None else self._store._value(key, entry))
            return done
        return self._store._executor().submit(self._store._value, key, entry)

    def exists(self, key: str) -> bool:
        # docstring inherited: answered from the index, no object is fetched
        check_key(key)
        if key in self.overlay:
            return self.overlay[key] is not None
        self.reads.add(key)
        return key in self.base.entries

    def put(self, key: str, value: Value) -> None:
        # docstring inherited
        self._check_write()
        self.overlay[check_key(key)] = bytes(check_value(value))

    def delete(self, key: str) -> bool:
        # docstring inherited
        self._check_write()
        existed = self.exists(key)
        self.overlay[key] = None
        return existed

    def keys(self, prefix: str = "") -> Iterator[str]:
        # docstring inherited
        self.listed.append(prefix)
        merged = set(_with_prefix(self.base, prefix))
        for key, value in self.overlay.items():
            if key.startswith(prefix):
                (merged.add if value is not None else merged.discard)(key)
        yield from sorted(merged, key=str.encode)

    def _check_write(self) -> None:
        if not self.write:
            raise ReadOnlyError("cannot write in a read transaction")


def _with_prefix(state: _State, prefix: str) -> list[str]:
    """The keys of ``state`` starting with ``prefix``, in byte order."""
    ordered = state.sorted_keys()
    raw = prefix.encode()
    start = bisect_left(ordered, raw, key=str.encode) if prefix else 0
    out = []
    for key in ordered[start:]:
        if not key.encode().startswith(raw):
            break
        out.append(key)
    return out


class S3Store(Store):
    """A :class:`~storage.abc.Store` in an S3 bucket under a key prefix (see the module doc).

    Parameters
    ----------
    bucket, prefix:
        Where the objects live; the bucket must exist.
    endpoint_url, region:
        The S3 endpoint (default: ``AWS_ENDPOINT_URL``, else AWS) and region (default:
        ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else ``us-east-1``). Credentials come from the
        usual AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles …).
    read_only:
        Refuse write transactions.
    inline_limit, checkpoint_every:
        See :data:`INLINE_LIMIT` and :data:`CHECKPOINT_EVERY`.
    client:
        A ready boto3 S3 client (then ``endpoint_url`` and ``region`` are ignored).

    ``requests`` counts the requests made, by operation and object kind (``"GET blobs"``,
    ``"PUT log"`` …): tests use it to check that a plane-only read fetches only those planes.
    """

    supports_multiprocess = True
    persistent = True
    batch_reads = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        read_only: bool = False,
        inline_limit: int = INLINE_LIMIT,
        checkpoint_every: int = CHECKPOINT_EVERY,
        client: Any = None,
    ) -> None:
        self.location = S3Location(bucket, prefix.strip("/"), endpoint_url, region)
        self.read_only = read_only
        self.inline_limit = inline_limit
        self.checkpoint_every = max(1, checkpoint_every)
        self.requests: Counter[str] = Counter()
        self._root = f"{self.location.prefix}/" if self.location.prefix else ""
        self._client = client if client is not None else _client(endpoint_url, region)
        self._endpoint = str(self._client.meta.endpoint_url)
        self._lock = threading.Lock()  # guards the cached state and the pool
        self._count_lock = threading.Lock()  # guards ``requests``
        self._writer = threading.Lock()  # one write transaction at a time in this process
        self._state: _State | None = None
        self._cache: OrderedDict[str, bytes] = OrderedDict()  # small blobs: records, manifests
        self._cached = 0
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._call("HEAD", "bucket", self._client.head_bucket, Bucket=bucket)

    @classmethod
    def from_url(cls, url: str, *, read_only: bool = False, **options: Any) -> S3Store:
        """Open the store at ``s3://BUCKET/PREFIX?endpoint=URL&region=R``."""
        loc = parse_url(url)
        return cls(
            loc.bucket,
            loc.prefix,
            endpoint_url=loc.endpoint,
            region=loc.region,
            read_only=read_only,
            **options,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.location.url()!r})"

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def begin(self, *, write: bool = False, reserve: int = 0) -> Iterator[Txn]:
        # docstring inherited
        self._check_open()
        if not write:
            yield _S3Txn(self, self._refresh(), write=False)
            return
        self._check_writable()
        with self._writer:
            txn = _S3Txn(self, self._refresh(), write=True)
            yield txn
            self._commit(txn)

    def _commit(self, txn: _S3Txn) -> None:
        """Upload the transaction's blobs, then create the next log object (the commit)."""
        if not txn.overlay:
            return
        puts: dict[str, str] = {}
        blobs: dict[str, bytes] = {}
        for key, value in txn.overlay.items():
            if value is None:
                continue
            if len(value) <= self.inline_limit:
                puts[key] = _INLINE + base64.b64encode(value).decode()
            else:
                digest = blake3.blake3(value).hexdigest()[:40]
                puts[key] = digest
                blobs[digest] = value  # even if stored: a fresh PUT keeps it safe from sweep
        deletes = sorted(k for k, v in txn.overlay.items() if v is None)
        self._upload(blobs)
        base = txn.base
        while True:
            record: dict[str, Any] = {"format": _FORMAT, "gen": base.gen + 1}
            record |= {"time": time.time(), "put": puts, "del": deletes}
            if self._create(self._log_key(record["gen"]), _encode(record)):
                break
            newer = self._refresh()  # another process committed this generation first
            _check_unchanged(txn, base, newer, puts)
            base = newer
        state = base.apply(record)
        with self._lock:
            if self._state is None or self._state.gen < state.gen:
                self._state = state
        if state.gen % self.checkpoint_every == 0:
            self._checkpoint(state)

    def _upload(self, blobs: dict[str, bytes]) -> None:
        def put(item: tuple[str, bytes]) -> None:
            digest, value = item
            self._call(
                "PUT", "blobs", self._client.put_object, Bucket=self._bucket,
                Key=f"{self._root}blobs/{digest}", Body=value,
            )  # fmt: skip

        if len(blobs) < 2:
            for item in blobs.items():
                put(item)
            return
        list(self._executor().map(put, blobs.items()))

    def _executor(self) -> ThreadPoolExecutor:
        """The pool that uploads a commit's blobs and fetches ``get_many``'s (created once)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="s3")
            return self._pool

    def _checkpoint(self, state: _State) -> None:
        """Write ``index/<generation>``; a failure only costs readers a longer log replay."""
        body = _encode({"format": _FORMAT, "gen": state.gen, "entries": state.entries})
        try:
            self._call(
                "PUT", "index", self._client.put_object, Bucket=self._bucket,
                Key=f"{self._root}index/{state.gen:0{_GEN_DIGITS}d}", Body=body,
            )  # fmt: skip
        except StorageError:
            pass

    # -- reading the state ------------------------------------------------------------------

    def _refresh(self) -> _State:
        """The newest state: the cached one (or the newest checkpoint) plus the log after it."""
        with self._lock:
            state = self._state if self._state is not None else self._load_checkpoint()
            while (record := self._get_record(self._log_key(state.gen + 1))) is not None:
                state = state.apply(record)
            self._state = state
            return state

    def _load_checkpoint(self) -> _State:
        prefix = f"{self._root}index/"
        newest: str | None = None
        token: dict[str, str] = {}
        while True:
            page = self._call(
                "LIST", "index", self._client.list_objects_v2, Bucket=self._bucket,
                Prefix=prefix, **token,
            )  # fmt: skip
            keys = [o["Key"] for o in page.get("Contents", [])]
            newest = max([*keys, newest or ""]) or None
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        if newest is None:
            return _State(0, {})
        record = self._get_record(newest)
        if record is None:
            raise CorruptionError(f"{self._where(newest)}: checkpoint vanished while opening")
        return _State(int(record["gen"]), dict(record["entries"]))

    def _get_record(self, key: str) -> dict[str, Any] | None:
        kind = key[len(self._root) :].split("/", 1)[0]
        body = self._get(key, kind)
        if body is None:
            return None
        try:
            record = json.loads(zstandard.ZstdDecompressor().decompress(body))
            if record.get("format") != _FORMAT:
                raise ValueError(f"format {record.get('format')!r}")
            return record  # type: ignore[no-any-return]
        except (zstandard.ZstdError, ValueError, AttributeError) as exc:
            raise CorruptionError(f"{self._where(key)}: unreadable commit record: {exc}") from exc

    def _value(self, key: str, entry: str) -> bytes:
        """The value an index entry names (inline, or fetched from its blob)."""
        if entry.startswith(_INLINE):
            return base64.b64decode(entry[1:])
        with self._lock:
            body = self._cache.get(entry)
            if body is not None:
                self._cache.move_to_end(entry)
                return body
        body = self._get(f"{self._root}blobs/{entry}", "blobs")
        if body is None:
            raise CorruptionError(f"{self._where('blobs/' + entry)}: blob of {key!r} is missing")
        if len(body) <= CACHE_BLOB_LIMIT:
            with self._lock:
                if entry not in self._cache:
                    self._cache[entry] = body
                    self._cached += len(body)
                while self._cached > CACHE_BYTES:
                    self._cached -= len(self._cache.popitem(last=False)[1])
        return body

    # -- S3 calls ---------------------------------------------------------------------------

    @property
    def _bucket(self) -> str:
        return self.location.bucket

    def _log_key(self, gen: int) -> str:
        return f"{self._root}log/{gen:0{_GEN_DIGITS}d}"

    def _where(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def _get(self, key: str, kind: str) -> bytes | None:
        """An object's bytes, or ``None`` when there is no such object."""
        try:
            reply = self._call("GET", kind, self._client.get_object, Bucket=self._bucket, Key=key)
            return reply["Body"].read()  # type: ignore[no-any-return]
        except _NoSuchKey:
            return None

    def _create(self, key: str, body: bytes) -> bool:
        """Create ``key`` unless it exists (``If-None-Match: *``); return whether it was."""
        try:
            self._call(
                "PUT", key[len(self._root) :].split("/", 1)[0], self._client.put_object,
                Bucket=self._bucket, Key=key, Body=body, IfNoneMatch="*",
            )  # fmt: skip
            return True
        except _PreconditionFailed:
            return False

    def _call(self, op: str, kind: str, fn: Any, **kwargs: Any) -> Any:
        """One S3 request, counted, with its errors translated."""
        from botocore.exceptions import BotoCoreError, ClientError

        with self._count_lock:  # calls come from the pool's threads too
            self.requests[f"{op} {kind}"] += 1
        where = self._where(kwargs.get("Key", self._root))
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404") and op == "GET":
                raise _NoSuchKey from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise _PreconditionFailed from None
            if code == "404" and kind == "bucket":
                code = "NoSuchBucket"
            raise _translate(exc, self._endpoint, where, code) from exc
        except BotoCoreError as exc:
            raise _translate(exc, self._endpoint, where, "") from exc

    # -- housekeeping -----------------------------------------------------------------------

    def sweep(self, *, grace_s: float = 3600.0) -> int:
        """Delete blobs no key names any more and that are older than ``grace_s`` seconds
        (younger ones may belong to a commit in flight or be read by an open transaction);
        return how many were deleted."""
        self._check_writable()
        live = set(self._refresh().entries.values())
        cutoff = time.time() - grace_s
        doomed: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call(
                "LIST", "blobs", self._client.list_objects_v2, Bucket=self._bucket,
                Prefix=f"{self._root}blobs/", **token,
            )  # fmt: skip
            for obj in page.get("Contents", []):
                digest = obj["Key"].rsplit("/", 1)[-1]
                if digest not in live and obj["LastModified"].timestamp() < cutoff:
                    doomed.append(obj["Key"])
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        for key in doomed:
            self._call("DELETE", "blobs", self._client.delete_object, Bucket=self._bucket, Key=key)
        return len(doomed)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed", code="closed")

    def close(self) -> None:
        # docstring inherited
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._closed = True


class _NoSuchKey(Exception):
    pass


class _PreconditionFailed(Exception):
    pass


def _check_unchanged(txn: _S3Txn, base: _State, newer: _State, puts: dict[str, str]) -> None:
    """Refuse to replay ``txn`` on ``newer`` when what it read differs there from ``base``
    (a key another writer set to exactly what ``txn`` puts there is no conflict: two uploads
    of one chunk)."""
    for key in txn.reads:
        now = newer.entries.get(key)
        if base.entries.get(key) != now and (now is None or puts.get(key) != now):
            raise ConflictError(
                f"another writer changed {key!r} during this transaction; nothing was "
                "written, retry"
            )
    for prefix in txn.listed:
        if _with_prefix(base, prefix) != _with_prefix(newer, prefix):
            raise ConflictError(
                f"another writer changed the keys under {prefix!r} during this transaction; "
                "nothing was written, retry"
            )


def _encode(record: dict[str, Any]) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(json.dumps(record).encode())


def _client(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 S3 client: path-style addressing (works with every S3-compatible server),
    short connect timeout and few retries, so an unreachable endpoint fails in seconds."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise StorageError(
            "the S3 store needs boto3: pip install 'provdb[s3]'", code="unavailable"
        ) from exc
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = Config(
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=UPLOAD_THREADS * 2,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config
    )


def _translate(exc: Exception, endpoint: str, where: str, code: str) -> StorageError:
    """A boto3/botocore error as one line in our hierarchy (code ``unavailable`` when the
    object store cannot be used at all)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            code="unavailable",
        )
    if isinstance(exc, ConnectionError | HTTPClientError):
        return StorageError(
            f"object store unreachable at {endpoint} ({type(exc).__name__}) while accessing "
            f"{where}",
            code="unavailable",
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        bucket = where.removeprefix("s3://").split("/", 1)[0]
        if code == "NoSuchBucket":
            return StorageError(
                f"bucket {bucket!r} does not exist at {endpoint}; create it first",
                code="unavailable",
            )
        if status in (401, 403) or code in (
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ):
            return StorageError(
                f"the object store at {endpoint} refused the credentials for {where} ({code}); "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                code="unavailable",
            )
        if status is not None and int(status) >= 500:
            return StorageError(
                f"object store error at {endpoint} for {where}: {code} {error.get('Message')}",
                code="unavailable",
            )
        return StorageError(f"S3 error for {where}: {code} {error.get('Message', '')}".strip())
    return StorageError(f"S3 error for {where}: {exc}")
