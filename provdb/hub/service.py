"""The hub: accounts, namespaces and published versions over one dlv repository.

A hub folder holds ``hub.json`` (its settings), ``hub.sqlite`` (accounts, tokens, namespaces,
which version is published where: :mod:`provdb.hub.accounts`) and a normal dlv repository
(``.dlv/``: the archive and, by default, the embedded graph; ``--graph`` puts the graph on
Neo4j). :class:`Hub` is the server's facade: each route makes one call here.

Publishing is have/want. The client asks which chunk digests the hub lacks (:meth:`Hub.have`),
uploads those (:meth:`Hub.put_chunks`, each verified against its digest, stored idempotently)
and sends the manifest (:meth:`Hub.publish`). The manifest commit imports the snapshots
(refused unless every chunk is there; each tensor decoded and checked), writes the version and
its lineage in one graph transaction, and finally makes it visible with its row in
``hub.sqlite``. Commits are funnelled through one file lock, so gunicorn workers on the
embedded graph never race for its single-writer lock; an interrupted publish leaves only
unreferenced chunks, and re-running it skips the chunks already there.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provdb.entities import ModelVersion
from provdb.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    Locked,
    NotFound,
    ProvDBError,
    RateLimited,
    TooLarge,
    Unauthorized,
    storage_errors,
)
from provdb.hub import transfer
from provdb.hub.accounts import Accounts, Principal, can_read
from provdb.hub.names import check_digest, check_name, check_owner, check_ref, check_tags
from provdb.hub.ratelimit import Limits, RateLimiter
from provdb.repository import Repository

if TYPE_CHECKING:
    from provdb.hub.hf import HFRepos

HUB_CONFIG = "hub.json"
ACCOUNTS_DB = "hub.sqlite"
LOCK_FILE = "hub.lock"
HUB_FORMAT = 1
#: Largest request body (a batch of chunks, a manifest) by default: 32 MiB.
DEFAULT_MAX_UPLOAD = 32 << 20
#: Most chunk digests one have/want or download request may name.
MAX_DIGESTS = 100_000
MAX_PER_PAGE = 100
#: Published versions whose chunk sets a worker keeps (a few MB of digests at most).
VERSION_CHUNKS_CACHE = 64


class Hub:
    """The hub rooted at ``root`` (open with :meth:`open`, create with :meth:`init`)."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.config = config
        self.accounts = Accounts(root / ACCOUNTS_DB)
        limits = Limits.from_config(config.get("rate_limit"), os.environ.get("DLV_HUB_RATE_LIMIT"))
        self.limiter = RateLimiter(root, limits)
        self._repo: Repository | None = None
        self._pid = os.getpid()
        #: Per process: the chunk digests of each published version (immutable once published).
        self._version_chunks: dict[str, frozenset[str]] = {}

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str],
        graph: str | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
        store: str | None = None,
    ) -> Hub:
        """Create a hub in ``path``: its repository (graph embedded, or Neo4j ``graph``; chunks
        in LMDB, or in the S3 bucket ``store`` = ``s3://BUCKET/PREFIX?endpoint=URL``), the
        accounts database and ``hub.json``."""
        root = Path(path).resolve()
        if (root / HUB_CONFIG).exists():
            raise AlreadyExists(f"{root} is already a hub")
        if max_upload_bytes < 1 << 20:
            raise InvalidInput("the upload limit must be at least 1 MiB")
        root.mkdir(parents=True, exist_ok=True)
        with Repository.init(root, graph=graph, archive=store) as repo:
            repo.archive.stats()  # create the archive now, so read-only readers find it
        Accounts.create(root / ACCOUNTS_DB)
        config = {"format": HUB_FORMAT, "max_upload_bytes": int(max_upload_bytes)}
        tmp = root / (HUB_CONFIG + ".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(root / HUB_CONFIG)
        return cls(root, config)

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".") -> Hub:
        """Open the hub in ``path``."""
        root = Path(path).resolve()
        try:
            config = json.loads((root / HUB_CONFIG).read_text())
        except FileNotFoundError:
            raise NotFound(f"{root} is not a hub; create one with `dlv hub init DIR`") from None
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {root / HUB_CONFIG}: {exc}") from exc
        env = os.environ.get("DLV_HUB_MAX_UPLOAD")
        if env:
            config["max_upload_bytes"] = int(env)
        return cls(root, config)

    @property
    def max_upload_bytes(self) -> int:
        """Largest request body the hub accepts."""
        return int(self.config.get("max_upload_bytes", DEFAULT_MAX_UPLOAD))

    @property
    def hf(self) -> HFRepos:
        """The Hugging Face Hub protocol over this hub's versions (:mod:`provdb.hub.hf`)."""
        from provdb.hub.hf import HFRepos

        return HFRepos(self)

    @property
    def repo(self) -> Repository:
        """The hub's repository, opened once per process (after gunicorn's fork)."""
        if self._repo is None or self._pid != os.getpid():
            self._repo = Repository.open(self.root)
            self._pid = os.getpid()
        return self._repo

    def close(self) -> None:
        """Close the repository."""
        if self._repo is not None and self._pid == os.getpid():
            self._repo.close()
        self._repo = None

    # -- who is asking ----------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer`` header (``None`` when absent)."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use `Authorization: Bearer <token>`")
        return self.accounts.authenticate(token.strip())

    def limit(self, principal: Principal | None, address: str | None) -> None:
        """Take one request from the caller's bucket (its token's, else its IP address's);
        :class:`RateLimited` with ``retry_after`` seconds when it is empty."""
        anonymous = principal is None
        key = f"token:{principal.token_id}" if principal else f"ip:{address or '?'}"
        wait = self.limiter.take(key, anonymous)
        if wait is not None:
            who = f"address {address}" if anonymous else "token"
            raise RateLimited(
                f"too many requests from this {who}; retry in {wait:.0f} s",
                retry_after=int(wait),
            )

    def whoami(self, principal: Principal | None) -> dict[str, Any]:
        """The caller (401 without a token)."""
        if principal is None:
            raise Unauthorized("no token: send `Authorization: Bearer <token>`")
        return principal.to_dict()

    def _readable(self, principal: Principal | None, owner: str, name: str) -> dict[str, Any]:
        check_owner(owner)
        check_name(name, "model name")
        repo = self.accounts.repo(owner, name)
        if repo is None or not can_read(principal, repo):
            raise NotFound(f"no model {owner}/{name}")  # private looks exactly like absent
        return repo

    def _writable(self, principal: Principal | None, owner: str, name: str) -> None:
        check_owner(owner)
        check_name(name, "model name")
        if principal is None:
            raise Unauthorized("publishing needs a token with the write scope")
        if not principal.can_write:
            raise Forbidden("this token is read-only; publishing needs the write scope")
        if not principal.owns(owner):
            repo = self.accounts.repo(owner, name)
            if repo is not None and not can_read(principal, repo):
                raise NotFound(f"no model {owner}/{name}")
            raise Forbidden(f"{principal.user} may not publish into {owner}/")

    # -- publishing -------------------------------------------------------------------------

    def have(
        self, principal: Principal | None, owner: str, name: str, digests: Any
    ) -> dict[str, Any]:
        """Which of ``digests`` the hub lacks (the client uploads only those)."""
        self._writable(principal, owner, name)
        wanted = _digests(digests)
        with storage_errors("have/want"):
            missing = self.repo.archive.missing_chunks(wanted)
        return {
            "missing": missing,
            "present": len(wanted) - len(missing),
            "max_upload_bytes": self.max_upload_bytes,
        }

    def put_chunks(
        self, principal: Principal | None, owner: str, name: str, body: bytes
    ) -> dict[str, int]:
        """Store a framed batch of chunks: every one is checked against its digest before any
        is stored (a mismatch refuses the whole batch)."""
        self._writable(principal, owner, name)
        if len(body) > self.max_upload_bytes:
            raise TooLarge(f"upload of {len(body)} bytes is over the {self.max_upload_bytes} limit")
        chunks = transfer.unframe(body, limit=MAX_DIGESTS)
        for digest, data in chunks:
            transfer.check_chunk(digest, data)  # a mismatch is the client's error (400)
        with storage_errors("storing chunks"):
            new = self.repo.archive.put_chunks(chunks)
        stored = sum(new)
        nbytes = sum(len(data) for (_, data), fresh in zip(chunks, new) if fresh)
        return {"stored": stored, "skipped": len(chunks) - stored, "bytes": nbytes}

    def publish(
        self,
        principal: Principal | None,
        owner: str,
        name: str,
        manifest: Any,
        *,
        private: bool = False,
        tags: Any = None,
    ) -> dict[str, Any]:
        """The final manifest commit: after it the version is visible, before it nothing is."""
        self._writable(principal, owner, name)
        assert principal is not None
        tag_list = check_tags(tags)
        parsed = transfer.parse_manifest(manifest)
        vid = parsed.version.id
        model = f"{owner}/{name}"
        with self._write_lock():
            home = self.accounts.version_home(vid)
            if home is not None:
                if home != (owner, name):
                    raise Forbidden(f"version {vid[:12]} is already published as {'/'.join(home)}")
                return self._published(owner, name, vid, created=False)
            repo = self.repo
            ids = [vid, *parsed.records, *(e["base"] for e in parsed.edges)]
            with repo.graph.session():
                existing = {v.id for v in repo.graph.get_many(ModelVersion, ids)}
                done = vid in existing and bool(_snapshot_ids(repo, vid))
            if not done:
                missing = repo.archive.missing_chunks(
                    transfer.manifest_chunks({"snapshots": parsed.snapshots})
                )
                if missing:
                    raise ProvDBError(
                        f"{len(missing)} chunks are not on the hub yet (first {missing[0]}); "
                        "upload them, then commit again",
                        code="conflict",
                        missing=len(missing),
                    )
                self.accounts.ensure_repo(owner, name, private, tag_list)
                infos = transfer.import_snapshots(repo, vid, parsed)
                version = ModelVersion(
                    **{
                        **parsed.version.props(),
                        "tags": sorted(set(parsed.version.tags) | set(tag_list)),
                    }
                )
                batch = transfer.version_batch(
                    version, parsed, infos, model=model, existing=existing, promote=vid in existing
                )
                repo.graph.write(batch)
            else:
                self.accounts.ensure_repo(owner, name, private, tag_list)
            self.accounts.add_version(vid, owner, name, principal.user)
        return self._published(owner, name, vid, created=True)

    def _published(self, owner: str, name: str, vid: str, created: bool) -> dict[str, Any]:
        return {"repo": f"{owner}/{name}", "id": vid, "created": created}

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One publisher commits at a time, across every worker process of this hub."""
        timeout = float(os.environ.get("PROVDB_LOCK_TIMEOUT") or 30.0)
        deadline = time.monotonic() + timeout
        with open(self.root / LOCK_FILE, "a+b") as fh:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise Locked(
                            f"the hub is busy committing (waited {timeout:.0f} s)"
                        ) from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading ----------------------------------------------------------------------------

    def model(self, principal: Principal | None, owner: str, name: str) -> dict[str, Any]:
        """A namespace and its published versions, newest first."""
        repo = self._readable(principal, owner, name)
        rows = self.accounts.versions(owner, name)
        with self.repo.graph.session():
            found = {
                v.id: v for v in self.repo.graph.get_many(ModelVersion, [r["id"] for r in rows])
            }
        versions = []
        for r in rows:
            v = found.get(r["id"])
            if v is not None:
                versions.append(
                    {
                        "id": v.id,
                        "name": v.name,
                        "created_at": v.created_at,
                        "message": v.message,
                        "author": v.author,
                        **r,
                    }
                )
        return {**repo, "repo": f"{owner}/{name}", "versions": versions}

    def _version_id(self, owner: str, name: str, ref: str) -> str:
        check_ref(ref)
        ids = [r["id"] for r in self.accounts.versions(owner, name)]
        if ref == "latest":
            if not ids:
                raise NotFound(f"{owner}/{name} has no versions")
            return ids[0]
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) > 1:
            raise InvalidInput(f"version prefix {ref!r} is ambiguous in {owner}/{name}")
        if not matches:
            raise NotFound(f"no version {ref!r} in {owner}/{name}")
        return matches[0]

    def version(
        self, principal: Principal | None, owner: str, name: str, ref: str = "latest"
    ) -> dict[str, Any]:
        """A published version's manifest (what a pull needs), its lineage limited to what
        the caller may see."""
        self._readable(principal, owner, name)
        vid = self._version_id(owner, name, ref)
        manifest = transfer.version_manifest(self.repo, vid)
        lineage = manifest["lineage"]
        homes = {vid: (owner, name)}
        hidden = set()
        for other in lineage["versions"]:
            home = self.accounts.version_home(other)
            if home is None:
                continue
            repo = self.accounts.repo(*home)
            if repo is None or not can_read(principal, repo):
                hidden.add(other)
            else:
                homes[other] = home
        lineage["versions"] = {
            k: {**v, "repo": "/".join(homes[k]) if k in homes else None}
            for k, v in lineage["versions"].items()
            if k not in hidden
        }
        lineage["edges"] = [
            e for e in lineage["edges"] if e["derived"] not in hidden and e["base"] not in hidden
        ]
        manifest["repo"] = f"{owner}/{name}"
        return manifest

    def chunks(
        self, principal: Principal | None, owner: str, name: str, version_id: str, digests: Any
    ) -> list[tuple[str, bytes]]:
        """Stored chunks of one published version (only chunks that version needs)."""
        self._readable(principal, owner, name)
        vid = self._version_id(owner, name, version_id)
        wanted = _digests(digests)
        with storage_errors("reading chunks"):
            allowed = self._chunks_of(vid)
            stray = [d for d in wanted if d not in allowed]
            if stray:
                raise NotFound(f"chunk {stray[0]} is not part of version {vid[:12]}")
            return list(zip(wanted, self.repo.archive.get_chunks(wanted)))

    def _chunks_of(self, vid: str) -> frozenset[str]:
        """Every chunk a published version needs, computed once per process: a published
        version's snapshots never change, and a pull asks for its chunks in many requests
        (each would otherwise open the graph and walk every snapshot's delta chains)."""
        found = self._version_chunks.get(vid)
        if found is None:
            archive = self.repo.archive
            with self.repo.graph.session():
                sids = _snapshot_ids(self.repo, vid)
            found = frozenset(d for sid in sids for d in archive.snapshot_chunks(sid))
            if len(self._version_chunks) >= VERSION_CHUNKS_CACHE:
                self._version_chunks.pop(next(iter(self._version_chunks)))
            self._version_chunks[vid] = found
        return found

    def search(
        self,
        principal: Principal | None,
        text: str | None = None,
        *,
        owner: str | None = None,
        tags: Any = None,
        params: dict[str, Any] | None = None,
        where: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> dict[str, Any]:
        """Published versions the caller may see, newest first, filtered by text (owner/name,
        version name, message, tags), owner, tags, hyper-parameters (exact) and a DQL
        ``select`` condition on ``m`` run on the hub's graph; paged."""
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"page must be ≥ 1 and per_page within 1..{MAX_PER_PAGE}")
        wanted_tags = set(check_tags(tags))
        visible = self.accounts.visible(principal)
        ids = [
            vid
            for vid, r in visible.items()
            if (owner is None or r["owner"] == owner) and wanted_tags <= set(r["tags"])
        ]
        graph = self.repo.graph
        if where:
            ids = self._where(where, ids)
        rows = []
        if ids:
            with graph.session():
                found = graph.get_many(ModelVersion, ids)
                prows = graph.run_read(
                    "MATCH (v:ModelVersion)-[:HAS_PARAM]->(h:Hyperparameter) WHERE v.id IN $ids "
                    "RETURN v.id AS id, h.name AS name, h.value AS value",
                    {"ids": ids},
                )
                mrows = graph.run_read(
                    "MATCH (v:ModelVersion)-[:HAS_METRIC]->(m:Metric) WHERE v.id IN $ids "
                    "RETURN v.id AS id, m.name AS name, m.last AS last",
                    {"ids": ids},
                )
            vparams: dict[str, dict[str, Any]] = {}
            for r in prows:
                vparams.setdefault(r["id"], {})[r["name"]] = json.loads(r["value"])
            vmetrics: dict[str, dict[str, Any]] = {}
            for r in mrows:
                vmetrics.setdefault(r["id"], {})[r["name"]] = r["last"]
            needle = (text or "").lower()
            for v in found:
                repo = visible[v.id]
                ps = vparams.get(v.id, {})
                if params and any(ps.get(k) != want for k, want in params.items()):
                    continue
                haystack = " ".join(
                    [f"{repo['owner']}/{repo['name']}", v.name, v.message, *repo["tags"], *v.tags]
                ).lower()
                if needle and needle not in haystack:
                    continue
                rows.append(
                    {
                        "repo": f"{repo['owner']}/{repo['name']}",
                        "owner": repo["owner"],
                        "model": repo["name"],
                        "private": repo["private"],
                        "tags": sorted(set(repo["tags"]) | set(v.tags)),
                        "id": v.id,
                        "name": v.name,
                        "message": v.message,
                        "author": v.author,
                        "created_at": v.created_at,
                        "published_at": repo["published_at"],
                        "params": ps,
                        "metrics": vmetrics.get(v.id, {}),
                    }
                )
        rows.sort(key=lambda r: (r["published_at"], r["id"]), reverse=True)
        start = (page - 1) * per_page
        return {
            "total": len(rows),
            "page": page,
            "per_page": per_page,
            "results": rows[start : start + per_page],
        }

    def _where(self, condition: str, ids: list[str]) -> list[str]:
        """The ``ids`` whose versions match the DQL condition ``select m where CONDITION``."""
        from provdb.query import compile_query

        if len(condition) > 4000 or "\x00" in condition:
            raise InvalidInput("the condition is too long or holds NUL")
        compiled = compile_query(self.repo, f"select m where {condition}")
        if compiled.kind != "select":
            raise InvalidInput("search conditions are DQL select conditions")
        hits = {r["id"] for r in self.repo.graph.run_read(compiled.cypher, compiled.params)}
        return [i for i in ids if i in hits]


def _digests(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidInput("expected a JSON list of chunk digests")
    if len(value) > MAX_DIGESTS:
        raise InvalidInput(f"at most {MAX_DIGESTS} digests per request")
    return [check_digest(d) for d in value]


def _snapshot_ids(repo: Repository, version_id: str) -> list[str]:
    return [s.id for s in repo.graph.snapshots(version_id)]
