"""W3C PROV export of a segment, with the maintained ``prov`` package (PROV-JSON, PROV-N,
PROV-XML).

The mapping (``docs/provenance.md``): versions, snapshots, data sets and files are
``prov:Entity``; runs ``prov:Activity``; agents ``prov:Agent``. ``USED`` (and a run's
``HAS_FILE``) is ``used``; ``WAS_GENERATED_BY`` is ``wasGeneratedBy``; ``WAS_ASSOCIATED_WITH``
is ``wasAssociatedWith``; ``DERIVED_FROM`` is ``wasDerivedFrom`` with ``dlv:op``;
``SNAPSHOT_OF`` is ``specializationOf``; a version's ``HAS_FILE`` is ``wasInfluencedBy``.
Identifiers are ``dlv:<kind>-<key>`` with the key made a valid PROV-N local name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from provdb.errors import InvalidInput
from provdb.results import Result

if TYPE_CHECKING:
    from prov.model import ProvDocument

    from provdb.provenance import Segment, SegmentVertex

#: The namespace of ProvDB's identifiers and attributes.
NAMESPACE = ("dlv", "https://provdb.dev/ns/dlv#")
FORMATS = ("json", "provn", "xml")
_LOCAL = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class ProvExport(Result):
    """A version's provenance in one PROV serialization, and what it holds."""

    version: str
    format: str
    entities: int
    activities: int
    agents: int
    relations: int
    text: str


def identifier(v: SegmentVertex) -> str:
    """``dlv:<kind>-<key>``; characters PROV-N forbids in a local name become ``_``."""
    return f"dlv:{v.kind}-{_LOCAL.sub('_', v.id)}"


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def document(seg: Segment) -> ProvDocument:
    """The segment as a PROV document."""
    from prov.model import ProvDocument

    doc = ProvDocument()
    doc.add_namespace(*NAMESPACE)
    ids = {}
    counts = {"entity": 0, "activity": 0, "agent": 0}
    for v in seg.vertices:
        ident = ids[v.ref] = identifier(v)
        attrs: dict[str, Any] = {"prov:label": v.name or v.id, "dlv:kind": v.kind}
        attrs.update({f"dlv:{k}": str(val) for k, val in sorted(v.props.items()) if k != "kind"})
        if v.params:
            attrs["dlv:params"] = ",".join(v.params)
        if v.kind == "run":
            doc.activity(ident, _time(v.props.get("started_at")), _time(v.props.get("ended_at")),
                         attrs)  # fmt: skip
            counts["activity"] += 1
        elif v.kind == "agent":
            attrs["prov:type"] = "prov:Person" if v.props.get("kind") == "person" else "prov:Agent"
            doc.agent(ident, attrs)
            counts["agent"] += 1
        else:
            doc.entity(ident, attrs)
            counts["entity"] += 1
    created = {v.ref: _time(v.props.get("created_at")) for v in seg.vertices}
    for e in seg.edges:
        a, b = ids.get(e.src), ids.get(e.dst)
        if a is None or b is None:
            continue
        if e.kind == "USED" or (e.kind == "HAS_FILE" and e.src.startswith("run:")):
            doc.used(a, b)
        elif e.kind == "WAS_GENERATED_BY":
            doc.wasGeneratedBy(a, b, created.get(e.src))
        elif e.kind == "WAS_ASSOCIATED_WITH":
            doc.wasAssociatedWith(a, b)
        elif e.kind == "DERIVED_FROM":
            doc.wasDerivedFrom(a, b, other_attributes={"dlv:op": e.op or "commit"})
        elif e.kind == "SNAPSHOT_OF":
            doc.specializationOf(a, b)
        elif e.kind == "HAS_FILE":
            doc.wasInfluencedBy(a, b)
    return doc


def export(seg: Segment, version: str, fmt: str = "json") -> ProvExport:
    """Serialize the segment as PROV in ``fmt`` (``json``, ``provn`` or ``xml``)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown PROV format {fmt[:20]!r}; one of {', '.join(FORMATS)}")
    doc = document(seg)
    text = doc.get_provn() if fmt == "provn" else doc.serialize(format=fmt, indent=2)
    kinds = [v.kind for v in seg.vertices]
    return ProvExport(
        version=version,
        format=fmt,
        entities=sum(k not in ("run", "agent") for k in kinds),
        activities=kinds.count("run"),
        agents=kinds.count("agent"),
        relations=len(list(doc.get_records())) - len(kinds),
        text=str(text or ""),
    )
