"""Read-only routes the dashboard draws a hub with (``dlv dashboard --hub URL``).

Each returns the ``to_dict()`` of the facade's typed result (:mod:`provdb.results`), computed by
:mod:`provdb.hub.browse` on the hub's repository and limited to what the caller's token may
see; errors leave through the app's one handler like every other route.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, request

from provdb.hub import browse

bp = APIBlueprint("browse", __name__, tag="browse")
SECURED = "BearerAuth"


def _hub() -> Any:
    return current_app.extensions["dlv_hub"]


@bp.get("/api/lineage")
@bp.doc(summary="Every visible published version with its parents (dlv list)", security=SECURED)
def lineage() -> dict[str, Any]:
    rows = browse.lineage(_hub(), g.principal)
    return {"versions": [r.to_dict() for r in rows]}


@bp.get("/api/versions/<ref>")
@bp.doc(summary="A published version in full (dlv desc), by id or prefix", security=SECURED)
def describe(ref: str) -> dict[str, Any]:
    return browse.describe(_hub(), g.principal, ref).to_dict()


@bp.get("/api/versions/<ref>/planes")
@bp.doc(summary="Raw and stored bytes per byte plane of each snapshot", security=SECURED)
def planes(ref: str) -> dict[str, Any]:
    found = browse.planes(_hub(), g.principal, ref)
    return {"snapshots": {sid: [p.to_dict() for p in ps] for sid, ps in found.items()}}


@bp.get("/api/diff")
@bp.doc(summary="Published versions compared against the first (dlv diff; ?v=A&v=B)",
        security=SECURED)  # fmt: skip
def diff() -> dict[str, Any]:
    return browse.diff(_hub(), g.principal, request.args.getlist("v")).to_dict()
