"""Read-only views of a hub's published versions, for the dashboard (``dlv dashboard --hub``).

The same facade calls a local repository answers — :meth:`Repository.list_versions`,
:meth:`~Repository.describe`, :meth:`~Repository.snapshot_planes`, :meth:`~Repository.diff` —
run on the hub's own repository and return the same typed results, limited to the versions the
caller may see: a version in a private namespace is absent without its owner's token (it looks
exactly like a version that does not exist), and so are the lineage records a publish brought
along but nobody published. Edges to versions the caller may not see are dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from provdb.errors import InvalidInput, NotFound
from provdb.hub.names import check_ref
from provdb.results import Description, Diff, PlaneBytes, VersionRow

if TYPE_CHECKING:
    from provdb.hub.accounts import Principal
    from provdb.hub.service import Hub

#: Most versions one diff may compare.
MAX_DIFF = 8


def _visible(hub: Hub, principal: Principal | None) -> set[str]:
    return set(hub.accounts.visible(principal))


def _resolve(ref: str, visible: set[str]) -> str:
    """The visible version ``ref`` names: its id or a unique id prefix (4+ characters)."""
    check_ref(ref)
    if ref in visible:
        return ref
    matches = [v for v in visible if len(ref) >= 4 and v.startswith(ref)]
    if len(matches) > 1:
        raise InvalidInput(f"version prefix {ref!r} is ambiguous on this hub")
    if not matches:
        raise NotFound(f"no published version {ref!r}")
    return matches[0]


def lineage(hub: Hub, principal: Principal | None) -> list[VersionRow]:
    """Every published version the caller may see, newest first, with its parents among them."""
    visible = _visible(hub, principal)
    if not visible:
        return []
    rows = hub.repo.list_versions()
    return [
        replace(r, parents=[p for p in r.parents if p.id in visible])
        for r in rows
        if r.id in visible
    ]


def describe(hub: Hub, principal: Principal | None, ref: str) -> Description:
    """One published version in full (``dlv desc``), parents and children limited to what the
    caller may see."""
    visible = _visible(hub, principal)
    d = hub.repo.describe(_resolve(ref, visible))
    return replace(
        d,
        parents=[p for p in d.parents if p.id in visible],
        children=[c for c in d.children if c.id in visible],
    )


def planes(hub: Hub, principal: Principal | None, ref: str) -> dict[str, list[PlaneBytes]]:
    """Raw and stored bytes per byte plane of each snapshot of one published version."""
    vid = _resolve(ref, _visible(hub, principal))
    repo = hub.repo
    with repo.graph.session():
        snaps = [s.id for s in repo.graph.snapshots(vid)]
    return {sid: repo.snapshot_planes(sid) for sid in snaps}


def diff(hub: Hub, principal: Principal | None, refs: list[str]) -> Diff:
    """Published versions compared against the first (``dlv diff``)."""
    if not 2 <= len(refs) <= MAX_DIFF:
        raise InvalidInput(f"a diff compares 2 to {MAX_DIFF} versions")
    visible = _visible(hub, principal)
    return hub.repo.diff([_resolve(r, visible) for r in refs])
