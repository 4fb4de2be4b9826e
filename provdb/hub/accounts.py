"""The hub's accounts: users, organisations, tokens, namespaces and published versions.

One small SQLite database (``hub.sqlite`` in the hub folder, WAL mode, so every gunicorn
worker reads it concurrently and writers wait on ``busy_timeout``). Tokens are
``dlvh_<43 base62 characters><6-character CRC-32>``: 256 random bits, a prefix that leak scanners
can grep for and a checksum that rejects typos without a database look-up. Only their SHA-256
is stored (a slow hash adds latency and no security for high-entropy secrets); the plain token
is returned once, by :meth:`Accounts.create_token`.

A version is *visible* exactly when its row in ``versions`` exists: the hub writes that row
last, after the archive and the graph hold everything the version needs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from provdb.errors import AlreadyExists, Forbidden, InvalidInput, NotFound, Unauthorized
from provdb.hub.names import check_owner

TOKEN_PREFIX = "dlvh_"
SCOPES = ("read", "write")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = 43  # base62 digits for 256 bits
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, is_admin INTEGER NOT NULL DEFAULT 0,
    is_org INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    org TEXT NOT NULL REFERENCES users(name), user TEXT NOT NULL REFERENCES users(name),
    PRIMARY KEY (org, user));
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name), hash TEXT NOT NULL UNIQUE,
    display TEXT NOT NULL, scope TEXT NOT NULL, created_at TEXT NOT NULL,
    expires_at TEXT, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS repos (
    owner TEXT NOT NULL, name TEXT NOT NULL, private INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (owner, name));
CREATE TABLE IF NOT EXISTS versions (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, published_at TEXT NOT NULL,
    publisher TEXT NOT NULL, FOREIGN KEY (owner, name) REFERENCES repos(owner, name));
CREATE INDEX IF NOT EXISTS versions_repo ON versions (owner, name, published_at);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _b62(zlib.crc32(body.encode()), 6)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    """Whether ``token`` has the hub's prefix, length and a matching checksum."""
    if not token.startswith(TOKEN_PREFIX) or len(token) != len(TOKEN_PREFIX) + _BODY + 6:
        return False
    body = token[len(TOKEN_PREFIX) : -6]
    return all(c in _B62 for c in token[len(TOKEN_PREFIX) :]) and _checksum(body) == token[-6:]


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user, with the scope of the token it presented."""

    user: str
    scope: str
    is_admin: bool
    orgs: frozenset[str]
    token_id: str

    @property
    def can_write(self) -> bool:
        """Whether the token has the ``write`` scope."""
        return self.scope == "write"

    def owns(self, owner: str) -> bool:
        """Whether the user may publish into ``owner``'s namespace (theirs, an org they are a
        member of, or any, for an admin)."""
        return self.is_admin or owner == self.user or owner in self.orgs

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``/api/whoami``)."""
        return {
            "name": self.user,
            "scope": self.scope,
            "admin": self.is_admin,
            "orgs": sorted(self.orgs),
            "token": self.token_id,
        }


class Accounts:
    """The hub database at ``path`` (created with :meth:`create`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path) -> Accounts:
        """Create the database and its tables."""
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        finally:
            db.close()
        return cls(path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One connection per call (cheap; safe across gunicorn's forked workers): a
        transaction committed at the end of the block, rolled back on error."""
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # -- users and organisations ------------------------------------------------------------

    def add_user(self, name: str, *, admin: bool = False, org: bool = False) -> dict[str, Any]:
        """Add a user (or, with ``org``, an organisation)."""
        check_owner(name)
        with self._db() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f"user or organisation {name!r} exists")
            db.execute(
                "INSERT INTO users (name, is_admin, is_org, created_at) VALUES (?, ?, ?, ?)",
                (name, int(admin), int(org), _now()),
            )
        return {"name": name, "admin": admin, "org": org}

    def add_member(self, org: str, user: str) -> None:
        """Make ``user`` a member of organisation ``org`` (members publish into it)."""
        with self._db() as db:
            row = db.execute("SELECT is_org FROM users WHERE name = ?", (org,)).fetchone()
            if row is None or not row["is_org"]:
                raise NotFound(f"no organisation {org!r}")
            self._user_row(db, user)
            db.execute("INSERT OR IGNORE INTO members (org, user) VALUES (?, ?)", (org, user))

    def users(self) -> list[dict[str, Any]]:
        """Every user and organisation, with members."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM users ORDER BY name").fetchall()
            members = db.execute("SELECT org, user FROM members ORDER BY user").fetchall()
        out = []
        for r in rows:
            entry = {"name": r["name"], "admin": bool(r["is_admin"]), "org": bool(r["is_org"])}
            if r["is_org"]:
                entry["members"] = [m["user"] for m in members if m["org"] == r["name"]]
            out.append(entry)
        return out

    def exists(self, owner: str) -> bool:
        """Whether a user or organisation ``owner`` exists."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM users WHERE name = ?", (owner,)).fetchone() is not None

    @staticmethod
    def _user_row(db: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no user {name!r}")
        return row

    # -- tokens -----------------------------------------------------------------------------

    def create_token(
        self, user: str, scope: str = "read", expires_days: float | None = None
    ) -> dict[str, Any]:
        """A new token for ``user``; the plain token is in the result and nowhere else."""
        if scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {SCOPES}, not {scope!r}")
        body = _b62(secrets.randbits(256), _BODY)
        token = TOKEN_PREFIX + body + _checksum(body)
        token_id = secrets.token_hex(6)
        expires = None
        if expires_days is not None:
            expires = (datetime.now(UTC) + timedelta(days=expires_days)).isoformat()
        with self._db() as db:
            row = self._user_row(db, user)
            if row["is_org"]:
                raise InvalidInput(f"{user!r} is an organisation; tokens belong to users")
            db.execute(
                "INSERT INTO tokens (id, user, hash, display, scope, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, user, hash_token(token), token[:12] + "…", scope, _now(), expires),
            )
        return {"id": token_id, "user": user, "scope": scope, "expires_at": expires, "token": token}

    def revoke_token(self, token_or_id: str) -> dict[str, Any]:
        """Revoke a token given by its id or its plain text."""
        key = hash_token(token_or_id) if token_or_id.startswith(TOKEN_PREFIX) else None
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM tokens WHERE id = ? OR hash = ?", (token_or_id, key)
            ).fetchone()
            if row is None:
                raise NotFound("no such token")
            db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (_now(), row["id"]))
        return {"id": row["id"], "user": row["user"], "revoked": True}

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        """Tokens (never their secret), optionally of one user."""
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM tokens WHERE ? IS NULL OR user = ? ORDER BY created_at", (user, user)
            ).fetchall()
        keys = ("id", "user", "display", "scope", "created_at", "expires_at", "revoked_at")
        return [{k: r[k] for k in keys} for r in rows]

    def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for; :class:`Unauthorized` if it is malformed,
        unknown, expired or revoked (one message for all: nothing to learn from it)."""
        refused = Unauthorized("invalid, expired or revoked token")
        if not well_formed(token):
            raise refused
        with self._db() as db:
            row = db.execute(
                "SELECT t.*, u.is_admin FROM tokens t JOIN users u ON u.name = t.user "
                "WHERE t.hash = ?",
                (hash_token(token),),
            ).fetchone()
            if row is None or row["revoked_at"] is not None:
                raise refused
            if row["expires_at"] is not None and row["expires_at"] <= _now():
                raise refused
            orgs = db.execute("SELECT org FROM members WHERE user = ?", (row["user"],)).fetchall()
        return Principal(
            row["user"],
            row["scope"],
            bool(row["is_admin"]),
            frozenset(o[0] for o in orgs),
            row["id"],
        )

    # -- namespaces and versions ------------------------------------------------------------

    def repo(self, owner: str, name: str) -> dict[str, Any] | None:
        """A namespace's row, or ``None``."""
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM repos WHERE owner = ? AND name = ?", (owner, name)
            ).fetchone()
        return _repo_dict(row) if row else None

    def ensure_repo(self, owner: str, name: str, private: bool, tags: list[str]) -> dict[str, Any]:
        """Create the namespace if needed; merge ``tags``; ``private`` only sets it on creation
        or makes a public repository private (never the reverse, silently)."""
        with self._db() as db:
            if not db.execute("SELECT 1 FROM users WHERE name = ?", (owner,)).fetchone():
                raise NotFound(f"no user or organisation {owner!r}")
            row = db.execute(
                "SELECT * FROM repos WHERE owner = ? AND name = ?", (owner, name)
            ).fetchone()
            now = _now()
            if row is None:
                db.execute(
                    "INSERT INTO repos (owner, name, private, tags, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (owner, name, int(private), json.dumps(sorted(set(tags))), now, now),
                )
            else:
                merged = sorted(set(json.loads(row["tags"])) | set(tags))
                db.execute(
                    "UPDATE repos SET tags = ?, private = ?, updated_at = ? "
                    "WHERE owner = ? AND name = ?",
                    (json.dumps(merged), int(private or row["private"]), now, owner, name),
                )
            row = db.execute(
                "SELECT * FROM repos WHERE owner = ? AND name = ?", (owner, name)
            ).fetchone()
        return _repo_dict(row)

    def add_version(self, version_id: str, owner: str, name: str, publisher: str) -> bool:
        """Make a version visible in ``owner/name`` (the publish's last step); ``False`` if it
        already was. A version lives in one namespace: another one is refused."""
        with self._db() as db:
            row = db.execute(
                "SELECT owner, name FROM versions WHERE id = ?", (version_id,)
            ).fetchone()
            if row is not None:
                if (row["owner"], row["name"]) != (owner, name):
                    raise Forbidden(
                        f"version {version_id[:12]} is already published in another namespace"
                    )
                return False
            db.execute(
                "INSERT INTO versions (id, owner, name, published_at, publisher) "
                "VALUES (?, ?, ?, ?, ?)",
                (version_id, owner, name, _now(), publisher),
            )
            db.execute(
                "UPDATE repos SET updated_at = ? WHERE owner = ? AND name = ?",
                (_now(), owner, name),
            )
        return True

    def version_home(self, version_id: str) -> tuple[str, str] | None:
        """``(owner, name)`` of a published version, or ``None``."""
        with self._db() as db:
            row = db.execute(
                "SELECT owner, name FROM versions WHERE id = ?", (version_id,)
            ).fetchone()
        return (row["owner"], row["name"]) if row else None

    def versions(self, owner: str, name: str) -> list[dict[str, Any]]:
        """A namespace's published versions, newest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT id, published_at, publisher FROM versions WHERE owner = ? AND name = ? "
                "ORDER BY published_at DESC",
                (owner, name),
            ).fetchall()
        return [dict(r) for r in rows]

    def visible(self, principal: Principal | None) -> dict[str, dict[str, Any]]:
        """Every published version ``principal`` may see: ``{id: {owner, name, ...repo}}``."""
        with self._db() as db:
            rows = db.execute(
                "SELECT v.id, v.published_at, r.* FROM versions v "
                "JOIN repos r ON r.owner = v.owner AND r.name = v.name"
            ).fetchall()
        out = {}
        for r in rows:
            repo = _repo_dict(r)
            if can_read(principal, repo):
                out[r["id"]] = {**repo, "published_at": r["published_at"]}
        return out


def can_read(principal: Principal | None, repo: dict[str, Any]) -> bool:
    """Public repositories are readable by anyone; private ones by their owners."""
    return not repo["private"] or (principal is not None and principal.owns(repo["owner"]))


def _repo_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "owner": row["owner"],
        "name": row["name"],
        "private": bool(row["private"]),
        "tags": json.loads(row["tags"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
