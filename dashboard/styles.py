"""Colours and Cytoscape stylesheets (constants only)."""

from __future__ import annotations

from typing import Any

#: Node fills for models (pastel, so the saturated op colours of edges stay distinct).
MODEL_COLOURS = [
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#d9d9d9",
]  # fmt: skip

#: Edge colours by derivation op.
OP_COLOURS = {
    "commit": "#555555",
    "finetune": "#1f77b4",
    "copy": "#17becf",
    "slice": "#9467bd",
    "construct": "#d62728",
    "evaluate": "#2ca02c",
    "pull": "#8c564b",
}
OTHER_OP = "#000000"

#: Layer fills by layer type (network graphs on the version card).
LAYER_COLOURS = {
    "Input": "#d9d9d9",
    "Conv": "#aec7e8",
    "Pool": "#98df8a",
    "ReLU": "#ffbb78",
    "FC": "#c5b0d5",
    "Flatten": "#dbdb8d",
    "LRN": "#9edae5",
    "Dropout": "#f7b6d2",
    "BatchNorm": "#c49c94",
}
OTHER_LAYER = "#eeeeee"

#: Layer fills by diff status (compare view).
STATUS_COLOURS = {
    "added": "#2ca02c",
    "removed": "#d62728",
    "changed": "#ff7f0e",
    "same": "#e8e8e8",
}

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

#: Above this many elements the lineage drops edge labels and node labels stay short.
LABEL_LIMIT = 400


def lineage_stylesheet(small: bool) -> list[dict[str, Any]]:
    """The lineage DAG: round nodes filled by model, arrows coloured (and labelled) by op."""
    node: dict[str, Any] = {
        "label": "data(label)",
        "background-color": OTHER_LAYER,
        "border-width": 1,
        "border-color": "#333",
        "shape": "round-rectangle",
        "width": 150,
        "height": 42,
        "font-size": 11,
        "text-valign": "center",
        "text-halign": "center",
        "font-family": FONT,
        # labels too small to read are not drawn at all (the big win at 1,000+ versions)
        "min-zoomed-font-size": 7,
    }
    if small:
        node.update({"text-wrap": "wrap", "text-max-width": 144,
                     "text-overflow-wrap": "anywhere"})  # fmt: skip
    else:  # the cheapest shapes to draw
        node.update({"shape": "rectangle", "border-width": 0})
    edge: dict[str, Any] = {
        "curve-style": "bezier" if small else "haystack",
        "target-arrow-shape": "triangle" if small else "none",
        "line-color": OTHER_OP,
        "target-arrow-color": OTHER_OP,
        "width": 2 if small else 1,
    }
    if small:
        edge.update(
            {
                "label": "data(op)",
                "font-size": 10,
                "color": OTHER_OP,
                "text-background-color": "#ffffff",
                "text-background-opacity": 0.9,
                "text-background-padding": 2,
                "font-family": FONT,
            }
        )
    # colours by class (models: c0…, see elements.model_classes) and by op, not per element
    models = [{"selector": f"node.c{i}", "style": {"background-color": colour}}
              for i, colour in enumerate(MODEL_COLOURS)]  # fmt: skip
    ops = [
        {"selector": f'edge[op = "{op}"]',
         "style": {"line-color": colour, "target-arrow-color": colour,
                   **({"color": colour} if small else {})}}
        for op, colour in OP_COLOURS.items()
    ]  # fmt: skip
    return [
        {"selector": "node", "style": node},
        *models,
        {
            "selector": "node.chain",
            "style": {"shape": "barrel", "border-style": "dashed", "border-width": 2},
        },
        {"selector": "node:selected", "style": {"border-width": 3, "border-color": "#000"}},
        {"selector": "edge", "style": edge},
        *ops,
    ]


def network_stylesheet() -> list[dict[str, Any]]:
    """A network graph: one box per layer, filled by ``data(colour)``."""
    return [
        {
            "selector": "node",
            "style": {
                "label": "data(label)",
                "background-color": "data(colour)",
                "border-width": 1,
                "border-color": "#555",
                "shape": "round-rectangle",
                "width": 150,
                "height": 36,
                "font-size": 12,
                "text-valign": "center",
                "text-halign": "center",
                "text-wrap": "wrap",
                "font-family": FONT,
            },
        },
        {"selector": "node.removed", "style": {"border-style": "dashed", "border-width": 2}},
        {
            "selector": "edge",
            "style": {
                "curve-style": "bezier",
                "target-arrow-shape": "triangle",
                "line-color": "#888",
                "target-arrow-color": "#888",
                "width": 1.5,
            },
        },
        {
            "selector": "edge.added",
            "style": {"line-color": "#2ca02c", "width": 3, "target-arrow-color": "#2ca02c"},
        },  # fmt: skip
        {
            "selector": "edge.removed",
            "style": {
                "line-color": "#d62728",
                "width": 3,
                "line-style": "dashed",
                "target-arrow-color": "#d62728",
            },
        },  # fmt: skip
    ]


CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0;
       color: #222; }
header { background: #263238; color: #fff; padding: 8px 16px; display: flex; gap: 18px;
         align-items: baseline; }
header a { color: #cfd8dc; text-decoration: none; } header a:hover { color: #fff; }
header .brand { font-weight: 600; color: #fff; }
main { padding: 12px 16px; }
table.grid { border-collapse: collapse; font-size: 13px; margin: 4px 0 12px; }
table.grid th, table.grid td { border: 1px solid #ddd; padding: 3px 8px; text-align: left;
                               vertical-align: top; }
table.grid th { background: #f3f5f6; }
tr.changed td { background: #fff4e5; } tr.added td { background: #eaf6ea; }
tr.removed td { background: #fdeaea; }
.controls { display: flex; gap: 10px; flex-wrap: wrap; align-items: center; margin-bottom: 8px; }
.legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: 12px; margin: 4px 0; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #555;
          margin-right: 4px; vertical-align: middle; }
.line { display: inline-block; width: 18px; height: 3px; margin-right: 4px;
        vertical-align: middle; }
.error { border: 1px solid #e0b4b4; background: #fff6f6; padding: 12px 16px; max-width: 900px; }
.hint { color: #555; }
.summary { font-size: 13px; min-height: 3em; color: #333; }
.cards { display: flex; gap: 16px; flex-wrap: wrap; }
.card { flex: 1 1 420px; min-width: 0; }
table.grid td { overflow-wrap: anywhere; }
table.grid td:first-child, table.grid th { white-space: nowrap; overflow-wrap: normal; }
.controls > div:has(> #filter-name) { flex: 0 0 auto; }
pre.caret { background: #f7f7f7; padding: 8px; border-left: 3px solid #d62728; }
"""
