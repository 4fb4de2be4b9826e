"""Where the dashboard's data comes from: a repository folder, opened read-only per request.

Each read opens :class:`provdb.Repository` read-only (the embedded graph's write lock is never
taken, so a training job can keep committing) and calls one typed facade method. Only a DQL
statement the user chose to commit opens the repository for writing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from provdb.repository import Repository

T = TypeVar("T")


class RepoSource:
    """Facade calls on the repository at ``path`` (``None``: found from the current folder
    or ``$DLV_REPO``, like ``dlv``)."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    @contextmanager
    def open(self, *, write: bool = False) -> Iterator[Repository]:
        """The repository, read-only unless ``write``; closed after the block."""
        repo = Repository.open(self.path, read_only=not write)
        try:
            yield repo
        finally:
            repo.close()

    def read(self, fn: Callable[[Repository], T]) -> T:
        """``fn(repo)`` on a read-only repository."""
        with self.open() as repo:
            return fn(repo)
