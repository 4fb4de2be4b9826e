"""Errors raised by the provdb library.

One base type, :class:`ProvDBError`, with a stable ``code``. The CLI turns any ``ProvDBError``
into a one-line message and a non-zero exit; the server maps ``code`` to an HTTP status.
"""

from __future__ import annotations

from typing import Any


class ProvDBError(Exception):
    """Base error of the provdb package; ``code`` is stable and machine-readable."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-friendly dict (``error_code``, ``message`` and details)."""
        return {"error_code": self.code, "message": self.message, **self.details}


class NotFound(ProvDBError):
    """A version, model, run or repository that does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(ProvDBError):
    """Creating something that is already there."""

    code = "ALREADY_EXISTS"


class InvalidInput(ProvDBError):
    """Input the library refuses: a bad name, a malformed file, a wrong shape."""

    code = "INVALID_INPUT"


class RepositoryError(ProvDBError):
    """A missing, corrupt or unreadable repository."""

    code = "REPOSITORY_ERROR"


class GraphError(ProvDBError):
    """The graph backend failed (connection refused, lock held too long, query error)."""

    code = "GRAPH_ERROR"


CODE_TO_HTTP_STATUS: dict[str, int] = {
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "INVALID_INPUT": 400,
    "REPOSITORY_ERROR": 500,
    "GRAPH_ERROR": 503,
    "INTERNAL_ERROR": 500,
}
