"""Error types of the parameter archive.

Every error raised on purpose by :mod:`storage` derives from :class:`StorageError`, which carries
a short machine-readable ``code``. Specific errors also inherit the matching builtin so callers can
catch either (``NotFoundError`` is a ``LookupError``, ``InvalidInputError`` a ``ValueError``).
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by the archive.

    Attributes
    ----------
    code:
        Stable machine-readable code, e.g. ``"not_found"`` or ``"corrupt"``.
    """

    code: str = "storage_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFoundError(StorageError, LookupError):
    """A snapshot, tensor or chunk that was asked for does not exist."""

    code = "not_found"


class CorruptionError(StorageError):
    """Stored bytes do not match their digest; the message names the tensor and chunk."""

    code = "corrupt"


class InvalidInputError(StorageError, ValueError):
    """An argument is malformed: wrong type, bad name, unsupported dtype, unknown option."""

    code = "invalid_input"


class ReadOnlyError(StorageError, PermissionError):
    """A write was attempted on a store opened read-only."""

    code = "read_only"


class ConflictError(StorageError):
    """The request conflicts with what is stored (e.g. a snapshot id reused with other data)."""

    code = "conflict"


__all__ = [
    "ConflictError",
    "CorruptionError",
    "InvalidInputError",
    "NotFoundError",
    "ReadOnlyError",
    "StorageError",
]
