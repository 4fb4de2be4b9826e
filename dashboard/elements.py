"""Pure functions from the facade's typed results to Cytoscape elements (no Dash imports).

Every position is computed here (:mod:`dashboard.layout`) and drawn with the ``preset``
layout, so the browser never lays a graph out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboard import styles
from dashboard.layout import collapse_chains, positions
from provdb.results import Description, Diff, VersionRow

Element = dict[str, Any]


@dataclass(frozen=True)
class Filters:
    """What the lineage shows: a name pattern (substring, or a glob with ``*?[``), models
    and ops (empty: all)."""

    name: str = ""
    models: frozenset[str] = frozenset()
    ops: frozenset[str] = frozenset()

    def keeps(self, row: VersionRow) -> bool:
        """Whether ``row`` passes the name and model filters."""
        if self.models and row.name not in self.models:
            return False
        pattern = self.name.strip().lower()
        if not pattern:
            return True
        if any(c in pattern for c in "*?["):
            return fnmatch.fnmatchcase(row.name.lower(), pattern)
        return pattern in row.name.lower() or row.id.startswith(pattern)


@dataclass
class LineageGraph:
    """The lineage as Cytoscape elements with what the legend needs."""

    elements: list[Element]
    models: dict[str, str] = field(default_factory=dict)  # model → colour
    ops: dict[str, str] = field(default_factory=dict)  # op → colour
    versions: int = 0
    chains: int = 0


def model_colours(names: Iterable[str]) -> dict[str, str]:
    """A stable colour per model name (sorted, cycling through the palette)."""
    palette = styles.MODEL_COLOURS
    return {n: palette[i % len(palette)] for i, n in enumerate(sorted(set(names)))}


def model_classes(names: Iterable[str]) -> dict[str, str]:
    """The stylesheet class of each model's colour (``c0``…, as :func:`model_colours`)."""
    count = len(styles.MODEL_COLOURS)
    return {n: f"c{i % count}" for i, n in enumerate(sorted(set(names)))}


def op_colour(op: str) -> str:
    """The edge colour of a derivation op."""
    return styles.OP_COLOURS.get(op, styles.OTHER_OP)


def lineage(
    rows: Sequence[VersionRow],
    filters: Filters = Filters(),
    expanded: Iterable[str] = (),
    chain_min: int = 4,
) -> LineageGraph:
    """The derivation DAG of ``rows`` (newest first, as ``list_versions`` returns them).

    Long linear chains collapse into one node (id ``chain:<first hidden id>``) unless its id
    is in ``expanded``.
    """
    colours = model_colours(r.name for r in rows)
    kept = [r for r in reversed(rows) if filters.keeps(r)]  # oldest first: stable layout
    ids = {r.id for r in kept}
    edges = [
        (p.id, r.id, p.op)
        for r in kept
        for p in r.parents
        if p.id in ids and (not filters.ops or p.op in filters.ops)
    ]
    order = [r.id for r in kept]
    pairs = [(a, b) for a, b, _ in edges]
    open_ = set(expanded)
    model = {r.id: r.name for r in kept}
    chains = [c for c in collapse_chains(order, pairs, group=model) if c.id not in open_]
    hidden = {m: c for c in chains for m in c.members}
    by_id = {r.id: r for r in kept}

    nodes = [i for i in order if i not in hidden]
    first = {c.members[0]: c.id for c in chains}
    order_drawn = []
    for i in order:  # the chain node takes its first member's place in the order
        if i in first:
            order_drawn.append(first[i])
        elif i not in hidden:
            order_drawn.append(i)
    drawn_edges: dict[tuple[str, str], str] = {}
    for a, b, op in edges:
        a2 = hidden[a].id if a in hidden else a
        b2 = hidden[b].id if b in hidden else b
        if a2 != b2:
            drawn_edges.setdefault((a2, b2), op)
    xy = positions(order_drawn, list(drawn_edges))
    small = len(order_drawn) + len(drawn_edges) <= styles.LABEL_LIMIT

    elements: list[Element] = []
    classes = model_classes(colours)
    for vid in nodes:
        r = by_id[vid]
        elements.append(_version_node(r, classes[r.name], xy[vid], small))
    for c in chains:
        head = by_id[c.members[0]]
        x, y = xy[c.id]
        elements.append(
            {
                "data": {
                    "id": c.id,
                    "label": f"{head.name}\n⋯ {len(c.members)} versions",
                    "chain": True,
                    "size": len(c.members),
                    "name": head.name,
                },
                "position": {"x": round(x), "y": round(y)},
                "classes": f"chain {classes[head.name]}",
            }
        )
    used_ops: dict[str, str] = {}
    for (a, b), op in drawn_edges.items():
        used_ops[op] = op_colour(op)
        # the stylesheet colours edges by op (no per-edge style data)
        elements.append({"data": {"id": f"{a}->{b}", "source": a, "target": b, "op": op}})
    shown_models = {by_id[i].name for i in order}
    return LineageGraph(
        elements,
        {m: c for m, c in colours.items() if m in shown_models},
        dict(sorted(used_ops.items())),
        versions=len(kept),
        chains=len(chains),
    )


def _version_node(r: VersionRow, colour: str, xy: tuple[float, float], small: bool) -> Element:
    """Only what drawing needs: the hover summary is looked up by id when hovered
    (:func:`dashboard.views.hover_summary`), and the colour is a stylesheet class."""
    label = f"{r.name}\n{r.id[:8]}" if small else r.name
    return {
        "data": {"id": r.id, "label": label},
        "position": {"x": round(xy[0]), "y": round(xy[1])},
        "classes": colour,
    }


def layer_label(name: str, type_: str, mode: str) -> str:
    """``conv1`` over ``Conv`` (with the mode where there is one: ``Pool MAX``)."""
    return f"{name}\n{type_} {mode}".rstrip()


def network(desc: Description) -> list[Element]:
    """A version's network graph: one node per layer, coloured by layer type."""
    nodes = [x.name for x in desc.layers]
    pairs = [(a, b) for a, b in desc.edges]
    xy = positions(nodes, pairs, gap=180.0, layer_gap=56.0)
    out: list[Element] = []
    for x in desc.layers:
        px, py = xy[x.name]
        colour = styles.LAYER_COLOURS.get(x.type, styles.OTHER_LAYER)
        out.append(
            {
                "data": {"id": x.name, "label": layer_label(x.name, x.type, x.mode),
                         "colour": colour, "type": x.type},
                "position": {"x": px, "y": py},
            }
        )  # fmt: skip
    out += [{"data": {"id": f"{a}->{b}", "source": a, "target": b}} for a, b in pairs]
    return out


def network_diff(descs: Sequence[Description], diff: Diff) -> list[Element]:
    """The union of the compared versions' networks, each layer coloured by its diff
    status against the first version (``added``, ``removed``, ``changed``, ``same``) and
    each edge marked ``added``/``removed``."""
    status = {row.name: row.status for row in diff.layers}
    layer_of: dict[str, Any] = {}
    for d in descs:
        for x in d.layers:
            layer_of.setdefault(x.name, x)
    edges: list[tuple[str, str]] = []
    for d in descs:
        for a, b in d.edges:
            if (a, b) not in edges:
                edges.append((a, b))
    added = {tuple(e) for e in diff.edges.get("added", [])}
    removed = {tuple(e) for e in diff.edges.get("removed", [])}
    names = [row.name for row in diff.layers]
    xy = positions(names, edges, gap=180.0, layer_gap=56.0)
    out: list[Element] = []
    for name in names:
        x, st = layer_of[name], status[name]
        px, py = xy[name]
        out.append(
            {
                "data": {"id": name, "label": layer_label(x.name, x.type, x.mode),
                         "colour": styles.STATUS_COLOURS[st], "status": st},
                "position": {"x": px, "y": py},
                "classes": st,
            }
        )  # fmt: skip
    for a, b in edges:
        cls = "added" if (a, b) in added else "removed" if (a, b) in removed else ""
        out.append({"data": {"id": f"{a}->{b}", "source": a, "target": b}, "classes": cls})
    return out
