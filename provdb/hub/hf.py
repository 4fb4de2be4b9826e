"""The Hugging Face Hub protocol over the hub's published versions.

Every hub namespace ``OWNER/NAME`` is also an HF model repository. Its revisions are its
published versions: ``main`` is the newest, and each version has a stable 40-hex commit id
(:func:`commit_id`; the 32-hex version id is accepted too). A revision holds

- ``model.safetensors``: the weights, materialised from the archive (bit-exact, the same bytes
  ``dlv checkout`` writes) into a per-version cache file the first time it is asked for; with
  ``planes=k`` the top-``k``-byte-planes approximation, materialised from only those planes;
- ``config.json`` (the hyper-parameters), ``network.json`` (the network definition) and a
  generated model card ``README.md`` (YAML ``base_model`` from the lineage, metrics).

A revision created by an HF upload (:meth:`HFRepos.commit`) serves what was uploaded: its
regular files verbatim, and ``model.safetensors`` rebuilt from the archive under the uploaded
header, so it is byte-identical to the upload and its sha256 is the uploaded LFS oid. Uploads
go through the git-LFS batch API (basic transfer): an object is stored in ``hf/lfs/<oid>`` until
a commit turns it into a version; once the version rebuilds it byte-exactly the staged copy is
dropped and ``hf/objects/<oid>`` names the version, so the bytes live only in the archive and a
re-upload of the same file is answered "already present" (no ``actions``).

ETags are content hashes (sha256 for LFS files, the git blob sha1 for small ones).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provdb import versioning as vs
from provdb.entities import ModelVersion
from provdb.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    ProvDBError,
    Unauthorized,
    storage_errors,
)
from provdb.hub.accounts import Principal, can_read
from provdb.hub.names import check_name, check_owner

if TYPE_CHECKING:
    from provdb.hub.service import Hub

HF_DIR = "hf"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
NETWORK = "network.json"
CARD = "README.md"
#: Files an HF commit may add (a revision is one model: its weights and their metadata).
UPLOADABLE = (WEIGHTS, CONFIG, NETWORK, CARD)
#: Largest LFS object one PUT may carry (HF's own per-file limit is 50 GB).
MAX_LFS_BYTES = 50 << 30
#: How long a signed LFS upload URL stays valid.
UPLOAD_URL_SECONDS = 3600
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_VERSION_RE = re.compile(r"[0-9a-f]{32}")
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def commit_id(version_id: str) -> str:
    """The stable 40-hex HF commit id of a version."""
    return hashlib.sha1(b"dlv-version:" + version_id.encode()).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what HF uses as the oid and ETag of small files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hf_date(iso: str) -> str:
    """An ISO timestamp in the one format the HF client parses (``…T…:…:….mmmZ``)."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


#: What is absent → HF's ``X-Error-Code``.
HF_CODES = {"repo": "RepoNotFound", "revision": "RevisionNotFound", "entry": "EntryNotFound"}


def hf_not_found(kind: str, message: str) -> NotFound:
    """A :class:`NotFound` naming what is absent (``repo``, ``revision`` or ``entry``); its
    ``hf_code`` detail is what the server sends as ``X-Error-Code``."""
    return NotFound(message, hf_code=HF_CODES[kind])


@dataclass(frozen=True)
class RepoFile:
    """One file of a revision: its size and content hashes, and its bytes (small files) or
    the path of its materialised copy (weights)."""

    path: str
    size: int
    sha256: str
    lfs: bool
    content: bytes | None = None
    local: Path | None = None
    bytes_read: int | None = None

    @property
    def etag(self) -> str:
        """The HF ETag: sha256 for LFS files, the git blob sha1 otherwise."""
        return self.sha256 if self.lfs else self.oid

    @property
    def oid(self) -> str:
        """The git oid: the blob of the file, or of its LFS pointer."""
        if self.lfs:
            return git_blob_sha1(_LFS_POINTER.format(oid=self.sha256, size=self.size).encode())
        assert self.content is not None
        return git_blob_sha1(self.content)

    def tree_entry(self) -> dict[str, Any]:
        """The ``/tree`` entry (and, with ``rfilename``, the ``siblings`` one)."""
        out: dict[str, Any] = {
            "type": "file",
            "path": self.path,
            "size": self.size,
            "oid": self.oid,
        }
        if self.lfs:
            pointer = _LFS_POINTER.format(oid=self.sha256, size=self.size)
            out["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(pointer)}
        return out

    def sibling(self) -> dict[str, Any]:
        """The ``siblings`` entry of ``model_info``."""
        entry = self.tree_entry()
        out: dict[str, Any] = {"rfilename": self.path, "size": self.size, "blobId": self.oid}
        if self.lfs:
            out["lfs"] = {**entry["lfs"], "sha256": self.sha256}
        return out


@dataclass(frozen=True)
class Revision:
    """A resolved revision: the repository, the version and its commit id."""

    owner: str
    name: str
    version: ModelVersion
    sha: str
    published_at: str
    private: bool
    tags: list[str]

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.name}"


class HFRepos:
    """The HF protocol's reads and writes over a :class:`~provdb.hub.service.Hub`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.dir = hub.root / HF_DIR

    # -- repositories and revisions ---------------------------------------------------------

    def _repo(self, principal: Principal | None, owner: str, name: str) -> dict[str, Any]:
        """The readable repository row; absent and private look alike (401 anonymously, as
        on HF, 404 with a token)."""
        try:
            check_owner(owner)
            check_name(name, "model name")
        except InvalidInput:
            raise hf_not_found("repo", f"no model {owner[:64]}/{name[:96]}") from None
        repo = self.hub.accounts.repo(owner, name)
        if repo is None or not can_read(principal, repo):
            if principal is None:
                raise Unauthorized(
                    f"no model {owner}/{name} (or it is private)", hf_code="RepoNotFound"
                )
            raise hf_not_found("repo", f"no model {owner}/{name}")
        return repo

    def revision(
        self, principal: Principal | None, owner: str, name: str, rev: str = "main"
    ) -> Revision:
        """``main``, a commit id or a version id of ``owner/name``."""
        repo = self._repo(principal, owner, name)
        rows = self.hub.accounts.versions(owner, name)
        row = None
        if rev == "main":
            row = rows[0] if rows else None
        elif _COMMIT_RE.fullmatch(rev):
            row = next((r for r in rows if commit_id(r["id"]) == rev), None)
        elif _VERSION_RE.fullmatch(rev):
            row = next((r for r in rows if r["id"] == rev), None)
        if row is None:
            raise hf_not_found("revision", f"{owner}/{name} has no revision {rev[:64]!r}")
        graph = self.hub.repo.graph
        with graph.session():
            found = graph.get_many(ModelVersion, [row["id"]])
        if not found:
            raise hf_not_found("revision", f"{owner}/{name}: version {row['id'][:12]} is gone")
        return Revision(
            owner,
            name,
            found[0],
            commit_id(row["id"]),
            row["published_at"],
            bool(repo["private"]),
            list(repo["tags"]),
        )

    # -- files ------------------------------------------------------------------------------

    def _upload_record(self, version_id: str) -> dict[str, Any] | None:
        path = self.dir / "versions" / f"{version_id}.json"
        if not path.is_file():
            return None
        return dict(json.loads(path.read_text()))

    def files(self, principal: Principal | None, rev: Revision) -> list[RepoFile]:
        """The revision's files, sorted by path (the weights are materialised if needed)."""
        vid = rev.version.id
        uploaded = self._upload_record(vid)
        small: dict[str, bytes] = {}
        if uploaded is not None:
            small = {p: base64.b64decode(c) for p, c in uploaded["files"].items()}
        graph = self.hub.repo.graph
        with graph.session():
            params = graph.params_of(vid)
        small.setdefault(CONFIG, (json.dumps(params, indent=2, sort_keys=True) + "\n").encode())
        small.setdefault(NETWORK, (rev.version.network or "{}").encode())
        small.setdefault(CARD, self.card(principal, rev).encode())
        out = [
            RepoFile(p, len(data), hashlib.sha256(data).hexdigest(), False, content=data)
            for p, data in small.items()
        ]
        out.append(self.weights(rev))
        return sorted(out, key=lambda f: f.path)

    def file(
        self, principal: Principal | None, rev: Revision, path: str, planes: int | None = None
    ) -> RepoFile:
        """One file of the revision (``planes`` only for the weights)."""
        if planes is not None:
            if path != WEIGHTS:
                raise InvalidInput(f"planes=k applies to {WEIGHTS} only")
            return self.weights(rev, planes)
        if path == WEIGHTS:
            return self.weights(rev)
        for f in self.files(principal, rev):
            if f.path == path:
                return f
        raise hf_not_found("entry", f"{rev.repo_id}@{rev.sha[:12]} has no file {path[:200]!r}")

    def weights(self, rev: Revision, planes: int | None = None) -> RepoFile:
        """``model.safetensors`` of a revision (top ``planes`` byte planes only, if given),
        from its cache file, materialised from the archive on first use."""
        if planes is not None and planes < 1:
            raise InvalidInput(f"planes must be ≥ 1, got {planes}")
        folder = self.dir / "cache" / rev.version.id
        full = _cached(folder, "model")
        if full is not None and (planes is None or planes >= full[1]["planes"]):
            return full[0]
        if planes is not None and (part := _cached(folder, f"model.planes-{planes}")):
            return part[0]
        return self._materialise(rev, planes)

    def _materialise(self, rev: Revision, planes: int | None) -> RepoFile:
        """Write the cache file: tensors read from the archive (``planes`` only), laid out as
        uploaded or as ``dlv checkout`` writes them; its sha256, size and the bytes read."""
        from provdb.models.progressive import ArchiveReader

        vid = rev.version.id
        repo = self.hub.repo
        with repo.graph.session():
            snap = vs.latest_snapshot(repo.graph, vid)
        with storage_errors(f"reading version {vid[:12]}"):
            reader = ArchiveReader(repo.archive, snap.id)
        total = reader.total_planes
        k = total if planes is None else min(planes, total)
        folder = self.dir / "cache" / vid
        stem = "model" if k == total else f"model.planes-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        with storage_errors(f"materialising version {vid[:12]}"):
            tensors = repo.archive.read_snapshot(snap.id, planes=None if k == total else k)
            nread = reader.bytes_read(k)
        uploaded = self._upload_record(vid)
        header = base64.b64decode(uploaded["header"]) if uploaded and uploaded["header"] else None
        target = folder / f"{stem}.safetensors"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.safetensors")
        os.close(fd)
        try:
            _write_weights(Path(tmp), rev.version, tensors, header)
            digest = _sha256_file(Path(tmp))
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        meta = {"sha256": digest, "size": target.stat().st_size, "bytes_read": nread}
        _write_atomic(folder / f"{stem}.json", json.dumps({**meta, "planes": total}).encode())
        if k == total:  # an upload of these exact bytes needs no transfer
            _write_atomic(self.dir / "objects" / digest, vid.encode())
        found = _cached(folder, stem)
        assert found is not None
        return found[0]

    def card(self, principal: Principal | None, rev: Revision) -> str:
        """The generated model card: YAML front matter (``base_model``, tags, library) and
        the version, its lineage (only what the caller may see), metrics and parameters."""
        vid = rev.version.id
        graph = self.hub.repo.graph
        with graph.session():
            lineage = graph.lineage(vid, direction="up")
            metrics = graph.metrics_of(vid)
            params = graph.params_of(vid)
        bases = self.base_models(principal, vid, lineage)
        tags = sorted(set(rev.tags) | set(rev.version.tags))
        front = {"library_name": "dlv", "tags": tags}
        if bases:
            front["base_model"] = bases[0] if len(bases) == 1 else bases
        import yaml

        lines = ["---", yaml.safe_dump(front, sort_keys=True).strip(), "---", ""]
        lines += [f"# {rev.repo_id}", ""]
        v = rev.version
        lines += [
            f"Version `{v.id}` (commit `{rev.sha}`), *{v.name}*, by {v.author or 'unknown'}, "
            f"created {v.created_at}, published {rev.published_at}.",
            "",
        ]
        if v.message:
            lines += [f"> {v.message}", ""]
        lines += ["## Lineage", ""]
        ancestors = [e for e in lineage.edges]
        if not ancestors:
            lines.append("No recorded ancestors.")
        for e in ancestors:
            base = lineage.versions.get(e.base)
            home = self._visible_home(principal, e.base)
            if home is None and self.hub.accounts.version_home(e.base) is not None:
                continue  # a private ancestor the caller may not see
            where = f" ([{home}]({home}))" if home else " (not published)"
            label = base.name if base else e.base[:12]
            lines.append(f"- `{e.derived[:12]}` ← **{e.op}** of `{e.base[:12]}` {label}{where}")
        lines += ["", "## Metrics", ""]
        if metrics:
            lines += ["| metric | last | steps |", "|---|---|---|"]
            lines += [f"| {k} | {m.last} | {len(m.steps)} |" for k, m in sorted(metrics.items())]
        else:
            lines.append("None recorded.")
        lines += ["", "## Hyper-parameters", ""]
        if params:
            lines += ["| name | value |", "|---|---|"]
            lines += [f"| {k} | `{json.dumps(val)}` |" for k, val in sorted(params.items())]
        else:
            lines.append("None recorded.")
        return "\n".join(lines) + "\n"

    def _visible_home(self, principal: Principal | None, version_id: str) -> str | None:
        home = self.hub.accounts.version_home(version_id)
        if home is None:
            return None
        repo = self.hub.accounts.repo(*home)
        return "/".join(home) if repo is not None and can_read(principal, repo) else None

    def base_models(self, principal: Principal | None, vid: str, lineage: Any) -> list[str]:
        """The visible hub repositories of the version's direct parents (other repos only)."""
        own = self.hub.accounts.version_home(vid)
        out = []
        for e in lineage.edges:
            if e.derived == vid:
                home = self._visible_home(principal, e.base)
                if home and (own is None or home != "/".join(own)) and home not in out:
                    out.append(home)
        return out

    # -- the JSON API -------------------------------------------------------------------------

    def model_info(self, principal: Principal | None, rev: Revision) -> dict[str, Any]:
        """What ``model_info`` / ``snapshot_download`` read."""
        files = self.files(principal, rev)
        graph = self.hub.repo.graph
        with graph.session():
            lineage = graph.lineage(rev.version.id, direction="up")
            snap = vs.latest_snapshot(graph, rev.version.id)
            tensors = graph.tensors_of(snap.id)
        bases = self.base_models(principal, rev.version.id, lineage)
        counts: dict[str, int] = {}
        for t in tensors:
            n = 1
            for d in t.shape:
                n *= int(d)
            key = _SAFETENSORS_DTYPE.get(t.dtype, t.dtype.upper())
            counts[key] = counts.get(key, 0) + n
        tags = sorted(set(rev.tags) | set(rev.version.tags) | {"dlv", "safetensors"})
        tags += [f"base_model:{b}" for b in bases]
        card: dict[str, Any] = {"library_name": "dlv", "tags": sorted(set(rev.tags))}
        if bases:
            card["base_model"] = bases[0] if len(bases) == 1 else bases
        return {
            "_id": rev.version.id,
            "id": rev.repo_id,
            "modelId": rev.repo_id,
            "author": rev.owner,
            "sha": rev.sha,
            "private": rev.private,
            "gated": False,
            "disabled": False,
            "library_name": "dlv",
            "tags": tags,
            "createdAt": hf_date(rev.version.created_at),
            "lastModified": hf_date(rev.published_at),
            "cardData": card,
            "baseModels": bases,
            "siblings": [f.sibling() for f in files],
            "safetensors": {"parameters": counts, "total": sum(counts.values())},
            "downloads": 0,
            "likes": 0,
        }

    def tree(
        self, principal: Principal | None, rev: Revision, folder: str = ""
    ) -> list[dict[str, Any]]:
        """The revision's files under ``folder`` (every file is at the top level)."""
        if folder.strip("/"):
            raise hf_not_found("entry", f"{rev.repo_id} has no folder {folder[:200]!r}")
        return [f.tree_entry() for f in self.files(principal, rev)]

    def list_models(
        self, principal: Principal | None, search: str | None, author: str | None
    ) -> list[dict[str, Any]]:
        """Repositories the caller may see, newest first, whose id contains ``search``."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for vid, r in self.hub.accounts.visible(principal).items():
            key = (r["owner"], r["name"])
            if key not in latest or r["published_at"] > latest[key]["published_at"]:
                latest[key] = {**r, "id": vid}
        needle = (search or "").lower()
        out = []
        for (owner, name), r in latest.items():
            repo_id = f"{owner}/{name}"
            if author and owner != author or needle and needle not in repo_id.lower():
                continue
            out.append(
                {
                    "_id": r["id"],
                    "id": repo_id,
                    "modelId": repo_id,
                    "author": owner,
                    "sha": commit_id(r["id"]),
                    "private": r["private"],
                    "tags": sorted(set(r["tags"]) | {"dlv"}),
                    "library_name": "dlv",
                    "createdAt": hf_date(r["created_at"]),
                    "lastModified": hf_date(r["published_at"]),
                    "downloads": 0,
                    "likes": 0,
                }
            )
        out.sort(key=lambda m: (m["lastModified"], m["id"]), reverse=True)
        return out

    def whoami(self, principal: Principal | None) -> dict[str, Any]:
        """``/api/whoami-v2``."""
        if principal is None:
            raise Unauthorized("Invalid credentials in Authorization header")
        role = "write" if principal.can_write else "read"
        return {
            "type": "user",
            "name": principal.user,
            "fullname": principal.user,
            "isPro": False,
            "orgs": [{"type": "org", "name": o} for o in sorted(principal.orgs)],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": principal.token_id, "role": role},
            },
        }

    def validate_card(self, content: Any) -> dict[str, Any]:
        """``/api/validate-yaml``: the card's front matter must parse as a YAML mapping."""
        if not isinstance(content, str):
            raise InvalidInput("expected content: the README.md text")
        _card_meta(content.encode("utf-8"))
        return {"errors": [], "warnings": []}

    # -- uploads ------------------------------------------------------------------------------

    def _writable(self, principal: Principal | None, owner: str, name: str) -> None:
        self.hub._writable(principal, owner, name)  # noqa: SLF001 (the hub's one write check)

    def create_repo(
        self, principal: Principal | None, owner: str | None, name: str, private: bool, url: str
    ) -> dict[str, Any]:
        """Create the namespace ``owner/name`` (``owner`` defaults to the caller); an
        existing one is :class:`AlreadyExists` carrying its ``url`` (HF's 409)."""
        if principal is None:
            raise Unauthorized("creating a repository needs a token with the write scope")
        owner = owner or principal.user
        self._writable(principal, owner, name)
        repo_url = f"{url}/{owner}/{name}"
        if self.hub.accounts.repo(owner, name) is not None:
            raise AlreadyExists(
                f"You already created this model repo: {owner}/{name}", url=repo_url
            )
        self.hub.accounts.ensure_repo(owner, name, private, [])
        return {"url": repo_url, "name": f"{owner}/{name}", "id": f"{owner}/{name}"}

    def preupload(
        self, principal: Principal | None, owner: str, name: str, rev: str, files: Any
    ) -> dict[str, Any]:
        """Each file's upload mode (LFS for weights) and its oid at ``rev`` (when it exists),
        so the client skips files that did not change."""
        self._writable(principal, owner, name)
        if not isinstance(files, list):
            raise InvalidInput("expected files: a list of {path, sample, size}")
        current: dict[str, str] = {}
        if self.hub.accounts.versions(owner, name):
            head = self.revision(principal, owner, name, rev)
            current = {f.path: (f.sha256 if f.lfs else f.oid) for f in self.files(principal, head)}
        out = []
        for f in files:
            path = str(f.get("path", "")) if isinstance(f, dict) else ""
            lfs = path.endswith(".safetensors")
            entry: dict[str, Any] = {
                "path": path,
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": False,
            }
            if path in current:
                entry["oid"] = current[path]
            out.append(entry)
        return {"files": out, "commitOid": None}

    def _staged(self, owner: str, name: str, oid: str) -> Path:
        """Where an upload to ``owner/name`` is kept until a commit uses it."""
        return self.dir / "lfs" / owner / name / oid

    def _object_path(
        self, principal: Principal | None, owner: str, name: str, oid: str
    ) -> Path | None:
        """The LFS object ``oid`` as a file, if the hub has it for this caller: uploaded to
        this repository, or the weights of a version the caller may read (so a digest alone
        never reveals or copies a private model)."""
        staged = self._staged(owner, name, oid)
        if staged.is_file():
            return staged
        index = self.dir / "objects" / oid
        if index.is_file():
            found = self._version_weights(index.read_text().strip(), principal)
            if found is not None and found.sha256 == oid:
                return found.local
        return None

    def batch(
        self, principal: Principal | None, owner: str, name: str, body: Any, url: str
    ) -> dict[str, Any]:
        """The git-LFS batch answer: upload actions only for objects the hub lacks."""
        self._writable(principal, owner, name)
        if not isinstance(body, dict) or body.get("operation") != "upload":
            raise InvalidInput("this hub's LFS batch endpoint takes operation 'upload'")
        objects = body.get("objects")
        if not isinstance(objects, list):
            raise InvalidInput("expected objects: a list of {oid, size}")
        out = []
        for o in objects:
            oid, size = _oid(o.get("oid")), int(o.get("size", -1))
            if size < 0 or size > MAX_LFS_BYTES:
                out.append({"oid": oid, "size": size, "error": {"code": 422, "message": "size"}})
            elif self._object_path(principal, owner, name, oid) is not None:
                out.append({"oid": oid, "size": size})
            else:
                href = f"{url}/api/lfs/{owner}/{name}/{oid}"
                signed = f"{href}?{self._sign(owner, name, oid, size)}"
                action = {"upload": {"href": signed}, "verify": {"href": href + "/verify"}}
                out.append({"oid": oid, "size": size, "authenticated": True, "actions": action})
        return {"transfer": "basic", "objects": out, "hash_algo": "sha256"}

    def _secret(self) -> bytes:
        """The hub's key for signing upload URLs (created once, readable by the hub only)."""
        path = self.dir / "upload.key"
        if not path.is_file():
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
        key = path.read_bytes()
        if len(key) != 32:  # another worker is writing it this instant
            time.sleep(0.05)
            key = path.read_bytes()
        return key

    def _signature(self, owner: str, name: str, oid: str, size: int, expires: int) -> str:
        msg = f"{owner}/{name}/{oid}/{size}/{expires}".encode()
        return hmac.new(self._secret(), msg, hashlib.sha256).hexdigest()

    def _sign(self, owner: str, name: str, oid: str, size: int) -> str:
        """The query string that authorises one PUT of ``oid`` (the HF client sends the
        upload without its token, as to a presigned S3 URL)."""
        expires = int(time.time()) + UPLOAD_URL_SECONDS
        sig = self._signature(owner, name, oid, size, expires)
        return f"size={size}&expires={expires}&sig={sig}"

    def put_object(
        self, owner: str, name: str, oid: str, query: dict[str, str], stream: Iterator[bytes]
    ) -> dict[str, Any]:
        """Store one LFS object sent to a signed upload URL; refused unless the signature is
        valid and unexpired and the bytes hash to ``oid`` with the signed size."""
        oid = _oid(oid)
        try:
            size, expires, sig = int(query["size"]), int(query["expires"]), str(query["sig"])
        except (KeyError, ValueError):
            raise Unauthorized(
                "an LFS upload needs the signed URL the batch endpoint gave"
            ) from None
        want = self._signature(owner, name, oid, size, expires)
        if not hmac.compare_digest(want, sig) or expires < time.time():
            raise Unauthorized("the upload URL's signature is invalid or expired")
        folder = self._staged(owner, name, oid).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        h, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for piece in stream:
                    h.update(piece)
                    size += len(piece)
                    if size > MAX_LFS_BYTES:
                        raise InvalidInput(f"an LFS object is at most {MAX_LFS_BYTES} bytes")
                    fh.write(piece)
            if h.hexdigest() != oid or size != int(query["size"]):
                raise InvalidInput(f"the uploaded bytes do not hash to {oid}; refused")
            os.replace(tmp, folder / oid)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return {"oid": oid, "size": size}

    def verify_object(
        self, principal: Principal | None, owner: str, name: str, oid: str, size: Any
    ) -> dict[str, Any]:
        """The LFS verify step: the object is there with that size."""
        self._writable(principal, owner, name)
        oid = _oid(oid)
        path = self._object_path(principal, owner, name, oid)
        if path is None or (size is not None and path.stat().st_size != int(size)):
            raise NotFound(f"LFS object {oid} is not on the hub (or has another size)")
        return {"oid": oid, "size": path.stat().st_size}

    def _version_weights(self, vid: str, principal: Principal | None) -> RepoFile | None:
        """The materialised weights of a published version the caller may read."""
        home = self.hub.accounts.version_home(vid)
        if home is None:
            return None
        repo = self.hub.accounts.repo(*home)
        if repo is None or not can_read(principal, repo):
            return None
        graph = self.hub.repo.graph
        with graph.session():
            found = graph.get_many(ModelVersion, [vid])
        if not found:
            return None
        rev = Revision(home[0], home[1], found[0], commit_id(vid), "", bool(repo["private"]), [])
        return self.weights(rev)

    def commit(
        self,
        principal: Principal | None,
        owner: str,
        name: str,
        rev: str,
        ndjson: bytes,
        url: str,
    ) -> dict[str, Any]:
        """An HF commit (``application/x-ndjson``) becomes a new published version of
        ``owner/name``: the revision's files with the commit's additions and deletions applied;
        weights from the uploaded ``model.safetensors`` (or the revision's), network from
        ``network.json`` (or inferred), hyper-parameters from ``config.json``, and lineage from
        the card's ``base_model`` (else the previous revision)."""
        self._writable(principal, owner, name)
        assert principal is not None
        header, added, lfs, deleted = _parse_commit(ndjson)
        head = None
        if self.hub.accounts.versions(owner, name):
            head = self.revision(principal, owner, name, rev)
        elif rev != "main":
            raise hf_not_found("revision", f"{owner}/{name} has no revision {rev[:64]!r}")
        small: dict[str, bytes] = {}
        head_header: str | None = None
        if head is not None:
            uploaded = self._upload_record(head.version.id)
            if uploaded is not None:
                small = {p: base64.b64decode(c) for p, c in uploaded["files"].items()}
                head_header = uploaded["header"]
        small.update(added)
        for path in deleted:
            small.pop(path, None)
        unknown = sorted((set(small) | set(lfs)) - set(UPLOADABLE))
        if unknown:
            raise InvalidInput(
                f"this hub keeps one model per revision ({', '.join(UPLOADABLE)}); "
                f"it cannot store {unknown[0]!r}"
            )
        if WEIGHTS in deleted:
            raise InvalidInput(f"a revision needs its {WEIGHTS}")
        repo = self.hub.repo
        network = None
        if NETWORK in small:
            from provdb.models.network import NetworkDef

            network = NetworkDef.from_json(small[NETWORK].decode("utf-8"))
        params = _config_params(small.get(CONFIG))
        base_ids = self._bases_of_card(principal, small.get(CARD))
        weights_oid = lfs.get(WEIGHTS)
        with self.hub._write_lock():  # noqa: SLF001 (one committer across workers)
            if weights_oid is not None:
                blob = self._object_path(principal, owner, name, weights_oid)
                if blob is None:
                    raise ProvDBError(
                        f"LFS object {weights_oid} of {WEIGHTS} is not on the hub; upload it first",
                        code="conflict",
                    )
                from provdb.models.files import ModelFile
                from provdb.models.safetensors import read_safetensors

                tensors, metadata = read_safetensors(blob)
                if network is None:
                    found = ModelFile(None, tensors, "safetensors", metadata)
                    network = found.infer_network() if head is None else vs.network_of(head.version)
                header_b64 = _header_if_contiguous(blob)
            elif head is not None:
                tensors = repo.weights(head.version.id)
                network = network or vs.network_of(head.version)
                header_b64 = head_header
            else:
                raise InvalidInput(f"the first commit of {owner}/{name} must add {WEIGHTS}")
            assert network is not None
            parent = base_ids[0] if base_ids else (head.version.id if head else None)
            op = "finetune" if base_ids else "commit"
            message = str(header.get("summary") or "") or f"upload to {owner}/{name}"
            result = repo.commit(
                f"{owner}/{name}",
                network,
                tensors,
                parent=parent,
                op=op,
                query=f"{url}/{owner}/{name}" if base_ids else "",
                message=message,
                author=principal.user,
                params=params,
                framework="safetensors",
            )
            vid = result.version.id
            record = {
                "header": header_b64,
                "files": {p: base64.b64encode(c).decode("ascii") for p, c in small.items()},
            }
            _write_atomic(self.dir / "versions" / f"{vid}.json", json.dumps(record).encode())
            self.hub.accounts.ensure_repo(owner, name, False, [])
            self.hub.accounts.add_version(vid, owner, name, principal.user)
        if weights_oid is not None:
            self._settle(principal, owner, name, vid, weights_oid)
        sha = commit_id(vid)
        return {
            "commitUrl": f"{url}/{owner}/{name}/commit/{sha}",
            "commitOid": sha,
            "pullRequestUrl": None,
            "success": True,
        }

    def _settle(
        self, principal: Principal | None, owner: str, name: str, vid: str, oid: str
    ) -> None:
        """Drop the staged object once the version rebuilds it byte-exactly."""
        built = self._version_weights(vid, principal)
        if built is not None and built.sha256 == oid:
            _write_atomic(self.dir / "objects" / oid, vid.encode())
            self._staged(owner, name, oid).unlink(missing_ok=True)

    def _bases_of_card(self, principal: Principal | None, card: bytes | None) -> list[str]:
        """Newest versions of the readable hub repositories a card's ``base_model`` names."""
        out = []
        for ref in _card_base_models(card):
            owner, _, name = ref.partition("/")
            try:
                rev = self.revision(principal, owner, name)
            except (NotFound, Unauthorized, InvalidInput):
                continue  # a model elsewhere (huggingface.co): kept in the card only
            out.append(rev.version.id)
        return out


_SAFETENSORS_DTYPE = {
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
    "int64": "I64",
    "int32": "I32",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def _oid(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise InvalidInput(f"invalid LFS oid {str(value)[:70]!r}: expected 64 hex digits")
    return value


def _parse_commit(
    body: bytes,
) -> tuple[dict[str, Any], dict[str, bytes], dict[str, str], list[str]]:
    """``(header, regular files, lfs files {path: oid}, deleted paths)`` of an ndjson commit."""
    header: dict[str, Any] = {}
    added: dict[str, bytes] = {}
    lfs: dict[str, str] = {}
    deleted: list[str] = []
    try:
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = dict(value)
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise InvalidInput("regular files must be base64-encoded")
                added[_path(value["path"])] = base64.b64decode(value["content"], validate=True)
            elif key == "lfsFile":
                if value.get("algo", "sha256") != "sha256":
                    raise InvalidInput("LFS files must be sha256")
                lfs[_path(value["path"])] = _oid(value["oid"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(_path(value["path"]))
            else:
                raise InvalidInput(f"unsupported commit operation {str(key)[:40]!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"malformed commit ({type(exc).__name__}: {exc})") from exc
    return header, added, lfs, deleted


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 500:
        raise InvalidInput("a path must be a non-empty string of at most 500 characters")
    return value.strip("/")


def _config_params(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {}
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"{CONFIG} is not JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidInput(f"{CONFIG} must be a JSON object")
    return config


def _card_meta(card: bytes | None) -> dict[str, Any]:
    """A model card's YAML front matter (``{}`` without one)."""
    if not card:
        return {}
    text = card.decode("utf-8", errors="replace")
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, re.S)
    if not match:
        return {}
    import yaml

    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the model card's YAML front matter does not parse: {exc}") from exc
    if not isinstance(meta, dict):
        raise InvalidInput("the model card's YAML front matter must be a mapping")
    return meta


def _card_base_models(card: bytes | None) -> list[str]:
    """``base_model`` (one id or a list) from a model card's YAML front matter."""
    value = _card_meta(card).get("base_model")
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(v) for v in items if isinstance(v, str) and v.count("/") == 1]


def _header_if_contiguous(path: Path) -> str | None:
    """The uploaded safetensors header (base64), kept so the revision rebuilds the same bytes;
    ``None`` when its tensors do not tile the data section exactly."""
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        raw = fh.read(n)
    size = path.stat().st_size - 8 - n
    header = json.loads(raw)
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    pos = 0
    for begin, end in spans:
        if begin != pos:
            return None
        pos = end
    if pos != size:
        return None
    return base64.b64encode(struct.pack("<Q", n) + raw).decode("ascii")


def _write_weights(
    target: Path, version: ModelVersion, tensors: dict[str, Any], header: bytes | None
) -> None:
    """``model.safetensors``: under the uploaded header when there is one, else as ``dlv
    checkout`` writes it."""
    if header is None:
        from provdb.models.files import write_model_file

        write_model_file(target, vs.network_of(version), tensors)
        return
    (n,) = struct.unpack("<Q", header[:8])
    entries = json.loads(header[8 : 8 + n])
    order = sorted(
        (k for k in entries if k != "__metadata__"), key=lambda k: entries[k]["data_offsets"][0]
    )
    with target.open("wb") as fh:
        fh.write(header)
        for key in order:
            array = tensors[key]
            if array.dtype.byteorder == ">":
                array = array.astype(array.dtype.newbyteorder("<"))
            fh.write(array.tobytes())


def _cached(folder: Path, stem: str) -> tuple[RepoFile, dict[str, Any]] | None:
    """A materialised weights file and its metadata, if it is in the cache."""
    meta_path = folder / f"{stem}.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    found = RepoFile(
        WEIGHTS, int(meta["size"]), meta["sha256"], True, local=folder / f"{stem}.safetensors",
        bytes_read=int(meta["bytes_read"]),
    )  # fmt: skip
    return found, meta


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while piece := fh.read(1 << 20):
            h.update(piece)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
