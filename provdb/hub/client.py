"""The repository side of the hub: credentials, publish (have/want), search and pull.

``dlv login`` stores the hub URL and token in ``credentials.json`` (mode 0600) under
``$DLV_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/dlv``, else ``~/.config/dlv``; ``DLV_HUB_URL`` and
``DLV_HUB_TOKEN`` override it. Every hub error response becomes the same
:class:`~provdb.errors.ProvDBError` code the hub sent, so the CLI prints it as one line.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provdb import versioning as vs
from provdb.entities import ModelVersion, now_iso
from provdb.errors import (
    CODES,
    InvalidInput,
    ProvDBError,
    RateLimited,
    Unavailable,
    storage_errors,
)
from provdb.hub import transfer

if TYPE_CHECKING:
    import requests

    from provdb.repository import Repository

CREDENTIALS = "credentials.json"
#: Upper bound of one upload batch (the hub's own limit may be lower).
BATCH_BYTES = 16 << 20
#: Chunks asked for per download request (``DLV_HUB_PULL_BATCH``).
PULL_BATCH = 32
#: Download requests in flight at once: the hub's workers serve them in parallel while this
#: process stores what already arrived.
PULL_PARALLEL = 4
#: Bytes of downloaded chunks stored per archive write transaction (``DLV_HUB_PULL_STORE_BYTES``;
#: one commit, one fsync each; what is stored survives an interrupted pull).
STORE_BYTES = 32 << 20
#: Retries of a request the hub answered 429 with ``Retry-After`` (``DLV_HUB_RETRIES``).
RETRIES = 3
#: Longest ``Retry-After`` the client waits for; a longer one fails at once (exit 75).
MAX_RETRY_WAIT = 60.0
#: Progress callback: (what, chunks done, bytes done).
Progress = Callable[[str, int, int], None]


def config_dir() -> Path:
    """Where ``dlv login`` keeps its credentials."""
    if os.environ.get("DLV_CONFIG_DIR"):
        return Path(os.environ["DLV_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dlv"


def save_credentials(url: str, token: str | None) -> Path:
    """Write ``credentials.json`` readable by its owner only (0600, from the first byte)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / CREDENTIALS
    tmp = folder / (CREDENTIALS + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "token": token}, fh)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def credentials() -> tuple[str, str | None]:
    """``(url, token)``: the environment first, then ``credentials.json``."""
    saved: dict[str, Any] = {}
    path = config_dir() / CREDENTIALS
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {path}: {exc}; run `dlv login` again") from exc
    url = os.environ.get("DLV_HUB_URL") or saved.get("url")
    token = os.environ.get("DLV_HUB_TOKEN") or saved.get("token")
    if not url:
        raise InvalidInput("no hub: run `dlv login URL` or set DLV_HUB_URL")
    return str(url), token


class HubClient:
    """HTTP client of one hub."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        import requests

        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"a hub URL starts with http:// or https://, not {url[:40]!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_credentials(cls) -> HubClient:
        """The hub ``dlv login`` (or the environment) names."""
        return cls(*credentials())

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; an error response raises the hub's own error code."""
        import requests

        retries = int(os.environ.get("DLV_HUB_RETRIES") or RETRIES)
        for attempt in range(retries + 1):
            try:
                response = self.session.request(
                    method, self.url + path, timeout=self.timeout, **kwargs
                )
            except requests.RequestException as exc:
                raise Unavailable(f"cannot reach the hub at {self.url}: {exc}") from exc
            wait = _retry_after(response) if response.status_code == 429 else None
            if wait is None or attempt == retries or wait > MAX_RETRY_WAIT:
                break
            response.close()
            time.sleep(wait)  # the hub said when: a bounded wait, then the same request
        if response.status_code >= 400:
            raise _error(response)
        return response

    # -- API ----------------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """The token's user."""
        return dict(self.request("GET", "/api/whoami").json())

    def search(self, **params: Any) -> dict[str, Any]:
        """``GET /api/models`` with the given filters."""
        query = {k: v for k, v in params.items() if v not in (None, [], ())}
        return dict(self.request("GET", "/api/models", params=query).json())

    def model(self, owner: str, name: str) -> dict[str, Any]:
        """A model's namespace and its versions."""
        return dict(self.request("GET", f"/api/models/{owner}/{name}").json())

    def have(self, owner: str, name: str, digests: list[str]) -> dict[str, Any]:
        """Which digests the hub lacks."""
        body = {"digests": digests}
        return dict(self.request("POST", f"/api/models/{owner}/{name}/have", json=body).json())

    def put_chunks(self, owner: str, name: str, chunks: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Upload one framed batch."""
        body = b"".join(transfer.frame(chunks))
        headers = {"Content-Type": "application/x-dlv-chunks"}
        path = f"/api/models/{owner}/{name}/chunks"
        return dict(self.request("POST", path, data=body, headers=headers).json())

    def commit(
        self, owner: str, name: str, manifest: dict[str, Any], private: bool, tags: list[str]
    ) -> dict[str, Any]:
        """The final manifest commit."""
        body = {"manifest": manifest, "private": private, "tags": tags}
        return dict(self.request("POST", f"/api/models/{owner}/{name}/versions", json=body).json())

    def version(self, owner: str, name: str, ref: str) -> dict[str, Any]:
        """A version's manifest."""
        return dict(self.request("GET", f"/api/models/{owner}/{name}/versions/{ref}").json())

    def chunks(
        self, owner: str, name: str, version_id: str, digests: list[str]
    ) -> list[tuple[str, bytes]]:
        """Download chunks of one version."""
        path = f"/api/models/{owner}/{name}/versions/{version_id}/chunks"
        with self.request("POST", path, json={"digests": digests}, stream=True) as response:
            body = b"".join(response.iter_content(1 << 20))  # not requests' 10 KB reads
        return transfer.unframe(body)


@dataclass
class WeightsDownload:
    """What ``dlv pull --planes k`` fetched: the file, its size and the hub's bytes read."""

    repo: str
    id: str
    path: str
    planes: int | None
    bytes_received: int
    bytes_read: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def download_weights(
    client: HubClient,
    owner: str,
    name: str,
    ref: str | None,
    path: str | os.PathLike[str],
    planes: int | None = None,
) -> WeightsDownload:
    """Stream ``model.safetensors`` of ``owner/name@ref`` (the top ``planes`` byte planes
    only, if given) into ``path`` from the hub's HF ``resolve`` route."""
    vid = client.version(owner, name, ref or "latest")["version"]["id"]
    params = {"planes": planes} if planes is not None else None
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    response = client.request(
        "GET", f"/{owner}/{name}/resolve/{vid}/model.safetensors", params=params, stream=True
    )
    received = 0
    with response, tmp.open("wb") as fh:
        for piece in response.iter_content(1 << 20):
            fh.write(piece)
            received += len(piece)
    tmp.replace(target)
    read = response.headers.get("X-Dlv-Bytes-Read")
    return WeightsDownload(
        f"{owner}/{name}", vid, str(target), planes, received, int(read) if read else None
    )


def _retry_after(response: requests.Response) -> float | None:
    """The seconds of a ``Retry-After: N`` header (``None`` if absent or an HTTP date)."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _error(response: requests.Response) -> ProvDBError:
    try:
        err = response.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "internal", f"hub answered {response.status_code}: {response.text[:200]}"
    if code == "rate_limited" or response.status_code == 429:
        return RateLimited(f"hub: {message}")
    return ProvDBError(f"hub: {message}", code=code if code in CODES else "internal")


@dataclass
class Transfer:
    """What a publish or pull moved: chunks and bytes sent (or received) and skipped."""

    repo: str
    id: str
    chunks_total: int = 0
    chunks_moved: int = 0
    chunks_skipped: int = 0
    bytes_moved: int = 0
    bytes_skipped: int = 0
    created: bool = True
    local_id: str | None = None

    def to_dict(self, moved: str) -> dict[str, Any]:
        """JSON form; ``moved`` is ``sent`` or ``received``."""
        out: dict[str, Any] = {
            "repo": self.repo,
            "id": self.id,
            "created": self.created,
            "chunks": {
                "total": self.chunks_total,
                moved: self.chunks_moved,
                "skipped": self.chunks_skipped,
            },
            "bytes": {moved: self.bytes_moved, "skipped": self.bytes_skipped},
        }
        if self.local_id is not None:
            out["local_id"] = self.local_id
        return out


def _batches(
    digests: Iterable[str], read: Callable[[str], bytes], limit: int
) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    size = 0
    for d in digests:
        data = read(d)
        if batch and size + len(data) + 48 > limit:
            yield batch
            batch, size = [], 0
        batch.append((d, data))
        size += len(data) + 48
    if batch:
        yield batch


def publish(
    client: HubClient,
    repo: Repository,
    ref: str,
    owner: str,
    name: str,
    *,
    private: bool = False,
    tags: list[str] | None = None,
    progress: Progress | None = None,
) -> Transfer:
    """Publish version ``ref`` of ``repo`` as ``owner/name``: manifest, have/want, upload the
    missing chunks, commit. Re-running after an interruption resumes."""
    manifest = transfer.version_manifest(repo, ref)
    vid = manifest["version"]["id"]
    digests = transfer.manifest_chunks(manifest)
    answer = client.have(owner, name, digests)
    missing = list(answer["missing"])
    limit = max(1 << 20, min(BATCH_BYTES, int(answer["max_upload_bytes"]) - (1 << 16)))
    limit = int(os.environ.get("DLV_HUB_BATCH_BYTES") or limit)
    kill_after = int(os.environ.get("_DLV_HUB_KILL_AFTER_BATCHES") or 0)  # fault injection
    result = Transfer(f"{owner}/{name}", vid, chunks_total=len(digests))
    result.chunks_skipped = len(digests) - len(missing)
    missing_set = set(missing)
    with storage_errors("reading chunks to publish"):
        for n, batch in enumerate(_batches(missing, repo.archive.get_chunk, limit), 1):
            client.put_chunks(owner, name, batch)
            result.chunks_moved += len(batch)
            result.bytes_moved += sum(len(d) for _, d in batch)
            if progress:
                progress("upload", result.chunks_moved, result.bytes_moved)
            if kill_after and n >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        result.bytes_skipped = sum(
            len(repo.archive.get_chunk(d)) for d in digests if d not in missing_set
        )
    out = client.commit(owner, name, manifest, private, sorted(set(tags or [])))
    result.created = bool(out["created"])
    return result


def _download(
    client: HubClient,
    repo: Repository,
    owner: str,
    name: str,
    version_id: str,
    missing: list[str],
    result: Transfer,
    progress: Progress | None,
) -> None:
    """Fetch ``missing`` in batches, :data:`PULL_PARALLEL` requests in flight (a bounded
    window: at most twice that many batches are buffered), and store them in order in few
    write transactions; ``put_chunks`` checks every chunk against its digest, once."""
    size = int(os.environ.get("DLV_HUB_PULL_BATCH") or PULL_BATCH)
    store_bytes = int(os.environ.get("DLV_HUB_PULL_STORE_BYTES") or STORE_BYTES)
    kill_after = int(os.environ.get("_DLV_HUB_KILL_AFTER_BATCHES") or 0)  # fault injection
    batches = iter([missing[i : i + size] for i in range(0, len(missing), size)])
    pending: list[tuple[str, bytes]] = []
    stores = 0

    def store() -> None:
        nonlocal pending, stores
        with storage_errors("storing pulled chunks"):
            repo.archive.put_chunks(pending)
        pending, stores = [], stores + 1
        if kill_after and stores >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    with ThreadPoolExecutor(PULL_PARALLEL, thread_name_prefix="dlv-pull") as pool:
        window: deque[tuple[list[str], Future[list[tuple[str, bytes]]]]] = deque()

        def submit() -> None:
            want = next(batches, None)
            if want is not None:
                window.append((want, pool.submit(client.chunks, owner, name, version_id, want)))

        for _ in range(2 * PULL_PARALLEL):
            submit()
        try:
            while window:
                want, future = window.popleft()
                got = future.result()
                submit()
                if [d for d, _ in got] != want:
                    raise InvalidInput("the hub answered with other chunks than asked for")
                pending.extend(got)
                nbytes = sum(len(data) for _, data in got)
                result.bytes_moved += nbytes
                result.chunks_moved += len(got)
                if sum(len(data) for _, data in pending) >= store_bytes:
                    store()
                if progress:
                    progress("download", result.chunks_moved, result.bytes_moved)
            if pending:
                store()
        finally:
            for _, future in window:
                future.cancel()


def pull(
    client: HubClient,
    repo: Repository,
    owner: str,
    name: str,
    ref: str | None = None,
    *,
    progress: Progress | None = None,
) -> Transfer:
    """Rebuild ``owner/name@ref`` (default: the latest) in ``repo`` bit-exactly as a new
    version named ``owner/name``, fetching only the chunks the local archive lacks; its lineage
    is a ``DERIVED_FROM {op: "pull"}`` edge to the hub version, whose ancestors become
    provenance records."""
    manifest = client.version(owner, name, ref or "latest")
    parsed = transfer.parse_manifest(manifest)
    hub_version = parsed.version
    digests = transfer.manifest_chunks(manifest)
    with storage_errors("pulling chunks"):
        missing = repo.archive.missing_chunks(digests)
    result = Transfer(f"{owner}/{name}", hub_version.id, chunks_total=len(digests))
    result.chunks_skipped = len(digests) - len(missing)
    _download(client, repo, owner, name, hub_version.id, missing, result, progress)
    source = f"{client.url}/{owner}/{name}@{hub_version.id}"
    local = ModelVersion(
        id=vs.new_version_id(),
        name=f"{owner}/{name}",
        message=f"pulled from {source}",
        author=hub_version.author,
        framework=hub_version.framework,
        network=hub_version.network,
        tags=sorted(set(hub_version.tags) | {f"hub:{owner}/{name}"}),
    )
    infos = transfer.import_snapshots(repo, local.id, parsed)
    parsed.records[hub_version.id] = ModelVersion(
        **{k: getattr(hub_version, k) for k in transfer.RECORD_KEYS},
        tags=[f"hub:{owner}/{name}"],
    )
    parsed.edges.append(
        {
            "derived": local.id,
            "base": hub_version.id,
            "op": "pull",
            "query": source,
            "at": now_iso(),
        }
    )
    graph = repo.graph
    with graph.session():
        existing = {v.id for v in graph.get_many(ModelVersion, list(parsed.records))}
    graph.write(transfer.version_batch(local, parsed, infos, model=local.name, existing=existing))
    result.local_id = local.id
    return result
