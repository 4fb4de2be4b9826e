"""Where the dashboard's data comes from: a repository folder, or a hub's API.

A source's :meth:`read` hands a *reader* to a function: an object offering the facade's read
calls (``info``, ``list_versions``, ``describe``, ``snapshot_planes``, ``diff``) and returning
the facade's typed results (:mod:`provdb.results`), so the pages never know which source they
draw.

- :class:`RepoSource`: :class:`provdb.Repository` opened read-only per request (the embedded
  graph's write lock is never taken, so a training job can keep committing), every read of a
  page on one graph handle. Only a DQL statement the user chose to commit opens it for writing.
- :class:`HubSource`: a hub's read-only routes (``/api/lineage``, ``/api/versions/<id>``,
  ``/api/diff``: :mod:`provdb.server.browse`), whose JSON is each result's ``to_dict()``,
  rebuilt with ``from_dict``. It sees what its token may see; DQL and commits are not offered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from provdb.errors import ProvDBError
from provdb.repository import Repository
from provdb.results import Description, Diff, PlaneBytes, RepoInfo, VersionRow

T = TypeVar("T")

#: Seconds one hub request may take (a diff reads both versions' weights on the hub).
HUB_TIMEOUT = 60.0


class Reader(Protocol):
    """The facade's read calls the pages use (:class:`provdb.Repository` is one)."""

    def info(self) -> RepoInfo: ...
    def list_versions(self) -> list[VersionRow]: ...
    def describe(self, ref: str) -> Description: ...
    def snapshot_planes(self, snapshot_id: str) -> list[PlaneBytes]: ...
    def diff(self, refs: list[str]) -> Diff: ...


class Source(Protocol):
    """What the app reads through; ``queries``: whether the DQL console runs here."""

    queries: bool

    def read(self, fn: Callable[[Any], T]) -> T: ...


class RepoSource:
    """Facade calls on the repository at ``path`` (``None``: found from the current folder
    or ``$DLV_REPO``, like ``dlv``)."""

    queries = True

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
        """``fn(repo)`` on a read-only repository, its graph reads on one handle."""
        with self.open() as repo, repo.graph.session():
            return fn(repo)


class HubSource:
    """Facade calls answered by the hub at ``url``, as ``token``'s user (``None``:
    anonymous, public namespaces only). Read-only: no DQL console, no commits."""

    queries = False

    def __init__(self, url: str, token: str | None = None) -> None:
        from provdb.hub.client import HubClient

        HubClient(url).close()  # refuses a URL that is not http(s) now, not on every page
        self.url = url.rstrip("/")
        self.token = token

    def read(self, fn: Callable[[HubReader], T]) -> T:
        """``fn(reader)`` over one HTTP session (closed after it)."""
        reader = HubReader(self.url, self.token)
        try:
            return fn(reader)
        finally:
            reader.close()


class HubReader:
    """The :class:`Reader` calls over a hub's API (one page's worth: it keeps the lineage
    and each version's byte planes it fetched)."""

    def __init__(self, url: str, token: str | None) -> None:
        from provdb.hub.client import HubClient

        self.url = url
        self.client = HubClient(url, token, timeout=HUB_TIMEOUT)
        self._rows: list[VersionRow] | None = None
        self._snapshot_of: dict[str, str] = {}  # snapshot id → version id
        self._planes: dict[str, dict[str, list[PlaneBytes]]] = {}  # version id → planes

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    def _get(self, path: str, **params: Any) -> Any:
        """The JSON of ``GET path``; a failure is the hub's own error, marked as the hub's
        (``details["hub"]``) so the error page can say which hub."""
        try:
            return self.client.request("GET", path, params=params or None).json()
        except ProvDBError as exc:
            exc.details.setdefault("hub", self.url)
            raise

    def list_versions(self) -> list[VersionRow]:
        """The published versions this token may see, newest first, with their parents."""
        if self._rows is None:
            body = self._get("/api/lineage")
            self._rows = [VersionRow.from_dict(r) for r in body["versions"]]
        return self._rows

    def info(self) -> RepoInfo:
        """The hub as the lineage page's summary line shows it."""
        rows = self.list_versions()
        return RepoInfo(root=self.url, id="", backend="hub", graph=self.url, archive="",
                        versions=len(rows), models=len({r.name for r in rows}))  # fmt: skip

    def describe(self, ref: str) -> Description:
        """One published version in full."""
        d = Description.from_dict(self._get(f"/api/versions/{quote(ref, safe='')}"))
        self._snapshot_of.update({s.id: d.id for s in d.snapshots})
        return d

    def snapshot_planes(self, snapshot_id: str) -> list[PlaneBytes]:
        """Bytes per byte plane of a snapshot of a version :meth:`describe` returned."""
        vid = self._snapshot_of[snapshot_id]
        if vid not in self._planes:
            body = self._get(f"/api/versions/{vid}/planes")["snapshots"]
            self._planes[vid] = {
                sid: [PlaneBytes.from_dict(p) for p in ps] for sid, ps in body.items()
            }
        return self._planes[vid].get(snapshot_id, [])

    def diff(self, refs: list[str]) -> Diff:
        """Published versions compared against the first."""
        return Diff.from_dict(self._get("/api/diff", v=refs))
