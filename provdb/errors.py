"""The one error hierarchy of provdb, with one code vocabulary.

Every error the library raises on purpose is a :class:`ProvDBError` whose ``code`` is one of
:data:`CODES`. Each code maps to exactly one HTTP status (the server) and one exit status (the
CLI) in :data:`CODES`; shells call :func:`http_status` / :func:`exit_status` and never keep a
table of their own. Errors of the leaf libraries (``storage``, ``dql``) are translated once,
where provdb calls them, by :func:`from_storage` and :func:`from_dql`.

Codes are lower-case snake case and stable: scripts and API clients may rely on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dql.errors import DQLError
    from storage import StorageError


@dataclass(frozen=True)
class Code:
    """One error code: what it means, its HTTP status and its CLI exit status."""

    name: str
    http: int
    exit: int
    meaning: str


#: Every code, its HTTP status and its exit status (1: the request failed; 69: a backend is
#: unavailable, 75: busy — retry later, 77: permission denied; 2 is click's usage error).
CODES: dict[str, Code] = {
    c.name: c
    for c in (
        Code("invalid_input", 400, 1, "input the library refuses: a bad name, file or value"),
        Code("syntax_error", 400, 1, "a query that does not parse (with line, column, snippet)"),
        Code("unauthorized", 401, 77, "no credentials, or a token that is unknown or revoked"),
        Code("forbidden", 403, 77, "credentials that may not do this"),
        Code("not_found", 404, 1, "a version, model, snapshot, user or repository that is absent"),
        Code("already_exists", 409, 1, "creating something that is already there"),
        Code("conflict", 409, 1, "a concurrent change, or state that forbids the operation"),
        Code("too_large", 413, 1, "an upload or value over the configured limit"),
        Code("training_diverged", 422, 1, "a training run produced non-finite loss"),
        Code("rate_limited", 429, 75, "too many requests; retry later"),
        Code("disk_full", 507, 1, "no room left on the disk (or in the archive's map)"),
        Code("corrupt", 500, 1, "stored data failed verification (checksum, digest, format)"),
        Code("internal", 500, 1, "a bug: the library did something it should not"),
        Code("unavailable", 503, 69, "Neo4j, the object store or a hub cannot be reached"),
        Code("locked", 503, 75, "another process holds the lock for longer than the timeout"),
    )
}


class ProvDBError(Exception):
    """Base of every provdb error; ``code`` is one of :data:`CODES`.

    ``details`` are JSON-friendly extras (a syntax error's line and column, the candidates of
    an ambiguous reference); they appear in :meth:`to_dict` next to ``code`` and ``message``.
    """

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            if code not in CODES:
                raise ValueError(f"unknown error code {code!r}")
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "message", **details}`` — what the server puts under ``"error"``."""
        return {"code": self.code, "message": self.message, **self.details}

    @property
    def http_status(self) -> int:
        """The HTTP status for this error's code."""
        return http_status(self.code)

    @property
    def exit_status(self) -> int:
        """The CLI exit status for this error's code."""
        return exit_status(self.code)


class InvalidInput(ProvDBError):
    """Input the library refuses: a bad name, a malformed file, a wrong shape."""

    code = "invalid_input"


class QuerySyntaxError(InvalidInput):
    """A query that does not parse or compile; ``details`` has ``line``, ``col``, ``snippet``."""

    code = "syntax_error"

    @property
    def line(self) -> int:
        """1-based line of the offending text (0 if unknown)."""
        return int(self.details.get("line", 0))

    @property
    def col(self) -> int:
        """1-based column of the offending text (0 if unknown)."""
        return int(self.details.get("col", 0))


class Unauthorized(ProvDBError):
    """Missing, unknown, expired or revoked credentials."""

    code = "unauthorized"


class Forbidden(ProvDBError):
    """Valid credentials that may not do this (a read token writing, another's namespace)."""

    code = "forbidden"


class NotFound(ProvDBError):
    """A version, model, snapshot, run, user or repository that does not exist."""

    code = "not_found"


class AlreadyExists(ProvDBError):
    """Creating something that is already there."""

    code = "already_exists"


class Conflict(ProvDBError):
    """A concurrent change, or state that forbids the operation (e.g. a file in the way)."""

    code = "conflict"


class TooLarge(ProvDBError):
    """An upload or value over the configured limit."""

    code = "too_large"


class TrainingDiverged(ProvDBError):
    """A training run whose loss became NaN or infinite."""

    code = "training_diverged"


class RateLimited(ProvDBError):
    """Too many requests; retry later."""

    code = "rate_limited"


class DiskFull(ProvDBError):
    """No room left on the disk, or in the archive's memory map; nothing was written."""

    code = "disk_full"


class CorruptData(ProvDBError):
    """Stored data that fails verification: a repository, an archive record, a chunk."""

    code = "corrupt"


class Unavailable(ProvDBError):
    """A backend that cannot be reached: Neo4j, an object store, a hub."""

    code = "unavailable"


class Locked(Unavailable):
    """Another process holds a lock for longer than the configured timeout."""

    code = "locked"


def http_status(code: str) -> int:
    """The HTTP status of an error code (500 for a code that is not in :data:`CODES`)."""
    entry = CODES.get(code)
    return entry.http if entry else 500


def exit_status(code: str) -> int:
    """The CLI exit status of an error code (1 for a code that is not in :data:`CODES`)."""
    entry = CODES.get(code)
    return entry.exit if entry else 1


_STORAGE_CODES: dict[str, type[ProvDBError]] = {
    "not_found": NotFound,
    "corrupt": CorruptData,
    "invalid_input": InvalidInput,
    "read_only": Conflict,
    "conflict": Conflict,
    "disk_full": DiskFull,
    "map_full": DiskFull,
    "unavailable": Unavailable,  # the S3 store: unreachable, credentials refused, no bucket
}


def from_storage(exc: StorageError, context: str = "archive") -> ProvDBError:
    """Translate an archive error (``storage.StorageError``) into the provdb hierarchy."""
    cls = _STORAGE_CODES.get(getattr(exc, "code", ""), ProvDBError)
    return cls(f"{context}: {exc}" if context else str(exc))


@contextmanager
def storage_errors(context: str = "archive") -> Iterator[None]:
    """Translate archive errors raised in the block (see :func:`from_storage`)."""
    from storage import StorageError

    try:
        yield
    except StorageError as exc:
        raise from_storage(exc, context) from exc


def from_dql(exc: DQLError) -> ProvDBError:
    """Translate a DQL error (syntax, unsupported construct, unknown saved query) into a
    :class:`QuerySyntaxError` keeping its position and caret snippet in ``details``."""
    details: dict[str, Any] = {
        "dql_code": exc.code,
        "line": exc.line,
        "col": exc.col,
        "start": exc.start,
        "end": exc.end,
        "snippet": exc.snippet,
    }
    return QuerySyntaxError(str(exc), **details)
