"""The pages: component trees built from the facade's typed results.

Every string a user or a repository supplied is passed as a component's text (Dash escapes
it); nothing here builds markup from data.
"""

from __future__ import annotations

import json
from typing import Any

import dash_cytoscape as cyto
import plotly.graph_objects as go
from dash import dcc, html

from dashboard import elements, styles
from provdb.errors import ProvDBError, QuerySyntaxError
from provdb.results import Description, Diff, DiffRow, PlaneBytes, RepoInfo, VersionRow

OPS = list(styles.OP_COLOURS)


# -- small parts -------------------------------------------------------------------------------


def size(n: int | None) -> str:
    """Bytes as B/KB/MB/GB."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def text(value: Any) -> str:
    """A value as short readable text (JSON for containers)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def table(head: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> html.Table:
    """An HTML table; cells may be strings or components."""
    body = [
        html.Tr(
            [html.Td(c if not isinstance(c, (str, int, float)) else str(c)) for c in row],
            className=(classes[i] if classes else None),
        )
        for i, row in enumerate(rows)
    ]
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)],
                      className="grid")  # fmt: skip


def clip(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters (with an ellipsis)."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def version_link(vid: str, label: str | None = None) -> dcc.Link:
    """A link to a version's card."""
    return dcc.Link(label or vid[:12], href=f"/version/{vid}")


def legend(items: dict[str, str], kind: str = "swatch", title: str = "") -> html.Div:
    """Coloured swatches (nodes) or lines (edges) with their names."""
    parts: list[Any] = [html.B(title)] if title else []
    parts += [
        html.Span([html.Span(className=kind, style={"background": colour}), name])
        for name, colour in items.items()
    ]
    return html.Div(parts, className="legend")


def error_page(exc: BaseException) -> html.Div:
    """A readable page for a failure (never a traceback)."""
    code = exc.code if isinstance(exc, ProvDBError) else "internal"
    message = exc.message if isinstance(exc, ProvDBError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ProvDBError) and exc.details.get("hub"):
        return _hub_error_page(code, message, str(exc.details["hub"]))
    no_repo = "not a dlv repository" in message
    hints = {
        "not_found": "Start the dashboard inside a repository or give --repo PATH "
        "(create one with `dlv init`)."
        if no_repo
        else "Check the id or name: the lineage lists every version.",
        "unavailable": "The repository's graph cannot be reached. Start Neo4j (or check the "
        "URI in .dlv/config.json), then reload this page.",
        "locked": "Another process holds the embedded graph; reload in a moment.",
        "corrupt": "The repository's files cannot be read.",
    }
    title = {
        "not_found": "No repository here" if no_repo else "Not found",
        "unavailable": "Graph unreachable",
        "locked": "Repository busy",
        "corrupt": "Repository unreadable",
    }.get(code, "Something went wrong")
    return html.Div(
        [
            html.H2(title),
            html.Pre(message, className="message", style={"whiteSpace": "pre-wrap"}),
            html.P(hints.get(code, ""), className="hint"),
            dcc.Link("Back to the lineage", href="/lineage"),
        ],
        className=f"error code-{code}",
        id="error-page",
    )


def _hub_error_page(code: str, message: str, url: str) -> html.Div:
    """A readable page for a hub's failure (or a hub that does not answer)."""
    title, hint = {
        "unavailable": ("Hub unreachable", f"Check the URL given to --hub ({url}) and that the "
                        "hub is running (`dlv serve`), then reload this page."),
        "not_found": ("Not found", "Check the id: the lineage lists every version you may see. "
                      "Versions in a private namespace show only with its owner's token "
                      "(--token or DLV_HUB_TOKEN)."),
        "unauthorized": ("Token refused", "The hub does not know the token given with --token "
                         "or DLV_HUB_TOKEN (revoked or expired?); restart the dashboard with "
                         "a valid one, or none for public models only."),
        "rate_limited": ("Hub busy", "The hub asks for fewer requests; reload in a moment."),
        "invalid_input": ("Invalid request", "Over a hub, a version is named by its id (or a "
                          "prefix of 4+ hex digits), as the lineage links it."),
    }.get(code, ("Something went wrong", ""))  # fmt: skip
    return html.Div(
        [
            html.H2(title),
            html.Pre(message, className="message", style={"whiteSpace": "pre-wrap"}),
            html.P(hint, className="hint"),
            dcc.Link("Back to the lineage", href="/lineage"),
        ],
        className=f"error code-{code}",
        id="error-page",
    )


def empty_page(info: RepoInfo) -> html.Div:
    """The lineage of a repository (or a hub) with no versions."""
    if info.backend == "hub":
        return html.Div(
            [
                html.H2("No versions yet"),
                html.P(f"The hub at {info.root} holds no published version you may see."),
                html.P(
                    "Publish one with `dlv publish VERSION OWNER/NAME`; a private "
                    "namespace shows only with its owner's token (--token or "
                    "DLV_HUB_TOKEN).",
                    className="hint",
                ),  # fmt: skip
            ],
            className="error",
            id="empty-page",
        )
    return html.Div(
        [
            html.H2("No versions yet"),
            html.P(f"The repository at {info.root} holds no model versions."),
            html.P(
                "Commit one with `dlv commit MODEL_FILE --name NAME`, or train with the SDK "
                "(provdb.start_run); this page shows it on reload.",
                className="hint",
            ),
        ],
        className="error",
        id="empty-page",
    )


# -- lineage -----------------------------------------------------------------------------------


def lineage_page(
    info: RepoInfo,
    rows: list[VersionRow],
    drawn: tuple[list[dict[str, Any]], list[dict[str, Any]], html.Div],
    layout: str = "preset",
) -> html.Div:
    """Filters, the DAG (``drawn``: its elements, stylesheet and legend, redrawn by a
    callback when a filter changes), hover summary and the compare picker."""
    els, stylesheet, legend_div = drawn
    models = sorted({r.name for r in rows})
    return html.Div(
        [
            html.Div(
                [
                    dcc.Input(
                        id="filter-name",
                        placeholder="filter by name or glob",
                        debounce=True,
                        type="text",
                        style={"width": "220px", "padding": "6px"},
                    ),  # fmt: skip
                    dcc.Dropdown(
                        models,
                        id="filter-model",
                        multi=True,
                        placeholder="models",
                        style={"minWidth": "220px"},
                    ),  # fmt: skip
                    dcc.Dropdown(
                        OPS,
                        id="filter-op",
                        multi=True,
                        placeholder="ops",
                        style={"minWidth": "180px"},
                    ),  # fmt: skip
                    dcc.Dropdown(
                        version_options(rows),
                        id="compare-pick",
                        multi=True,
                        placeholder="versions to compare (type a name or id)",
                        style={"minWidth": "320px"},
                    ),  # fmt: skip
                    html.Button("Compare", id="compare-go"),
                    html.Span(
                        f"{info.versions} versions · {info.models} models · {info.backend}",
                        className="hint",
                    ),  # fmt: skip
                ],
                className="controls",
            ),
            html.Div(legend_div, id="lineage-legend"),
            html.Div(
                "Hover a version for its summary; click to open it; click a dashed "
                "chain to expand it.",
                id="hover-summary",
                className="summary",
            ),  # fmt: skip
            cyto.Cytoscape(
                id="lineage-graph",
                elements=els,
                layout={
                    "name": layout,
                    "fit": True,
                    "padding": 30,
                    **({"directed": True} if layout == "breadthfirst" else {}),
                },
                stylesheet=stylesheet,
                style={
                    "width": "100%",
                    "height": "72vh",
                    "border": "1px solid #ddd",
                    "boxSizing": "border-box",
                },
                minZoom=0.05,
                maxZoom=3,
                wheelSensitivity=0.3,
                boxSelectionEnabled=False,
                autoungrabify=True,
            ),
        ]
    )


#: The compare picker lists this many versions at a time: the dropdown indexes every option
#: for its search as it mounts (about 0.5 s for 1,000 versions), so the rest are searched on
#: the server as the user types (:func:`version_options`).
PICK_LIMIT = 50


def version_options(
    rows: list[VersionRow], search: str = "", picked: list[str] | None = None
) -> list[dict[str, str]]:
    """The compare picker's options: the newest :data:`PICK_LIMIT` versions whose name
    contains ``search`` or whose id starts with it, and the ``picked`` ones."""
    term = search.strip().lower()
    keep = set(picked or ())
    found = [r for r in rows if r.id in keep]
    for r in rows:
        if len(found) >= PICK_LIMIT + len(keep):
            break
        if r.id not in keep and (term in r.name.lower() or r.id.startswith(term)):
            found.append(r)
    return [{"label": f"{r.name} · {r.id[:8]}", "value": r.id} for r in found]


def lineage_legend(graph: elements.LineageGraph) -> html.Div:
    """Model and op legends for the drawn lineage."""
    models = dict(list(graph.models.items())[:24])
    more = len(graph.models) - len(models)
    shown = f"{graph.versions} versions shown" + (
        f", {graph.chains} chain{'s' if graph.chains > 1 else ''} collapsed" if graph.chains else ""
    )
    return html.Div(
        [
            legend(models, "swatch", "models"),
            html.Span(f"+{more} more models", className="hint") if more > 0 else None,
            legend(graph.ops, "line", "ops"),
            html.Span(shown, className="hint", id="lineage-count"),
        ]
    )


def hover_summary(data: dict[str, Any], row: VersionRow | None = None) -> list[Any]:
    """The hover line for a drawn node (``data``: its Cytoscape data) — a chain's size, or
    the version's summary from ``row`` (looked up by id: the nodes carry only their label)."""
    if data.get("chain"):
        return [html.B(data.get("name", "")),
                f" — {data.get('size', 0)} versions in a linear chain; "
                "click to expand"]  # fmt: skip
    if row is None:
        return [html.B(data.get("label", "")), f" {data.get('id', '')[:12]}"]
    parts = [html.B(row.name), f" {row.id[:12]} · {row.created_at[:19]} · {row.author}"]
    if row.parents:
        parts.append(" · " + ", ".join(f"{p.op} of {p.id[:12]}" for p in row.parents))
    if row.run:
        parts.append(f" · run {row.run.status}")
    if row.message:
        parts += [html.Br(), row.message]
    return parts


# -- version card ------------------------------------------------------------------------------


def network_graph(gid: str, els: list[dict[str, Any]], n_layers: int) -> cyto.Cytoscape:
    """A network graph drawn with preset positions."""
    height = max(320, min(1500, 62 * n_layers + 60))
    return cyto.Cytoscape(
        id=gid,
        elements=els,
        layout={"name": "preset", "fit": True, "padding": 20},
        stylesheet=styles.network_stylesheet(),
        style={
            "width": "100%",
            "height": f"{height}px",
            "border": "1px solid #ddd",
            "boxSizing": "border-box",
        },
        userZoomingEnabled=True,
        minZoom=0.1,
    )


def metric_figure(series: dict[str, tuple[list[int], list[float]]], title: str) -> go.Figure:
    """One line per series (steps on x)."""
    fig = go.Figure()
    for name, (steps, values) in series.items():
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=name))
    fig.update_layout(title=title, height=260, margin={"l": 40, "r": 10, "t": 36, "b": 30},
                      xaxis_title="step", legend={"orientation": "h"})  # fmt: skip
    return fig


def version_page(d: Description, planes: dict[str, list[PlaneBytes]] | None = None) -> html.Div:
    """Everything about one version (``planes``: each snapshot's bytes per byte plane)."""
    planes = planes or {}
    n_planes = max((len(p) for p in planes.values()), default=0)
    layer_types = {x.type: styles.LAYER_COLOURS.get(x.type, styles.OTHER_LAYER) for x in d.layers}
    parents = [html.Span([f"{p.op} of ", version_link(p.id), " "]) for p in d.parents]
    children = [html.Span([version_link(c.id), f" ({c.op}) "]) for c in d.children]
    compare = (
        [
            dcc.Link(
                "compare with parent",
                href=f"/compare?v={d.parents[0].id}&v={d.id}",
                id="compare-parent",
            )
        ]  # fmt: skip
        if d.parents
        else []
    )
    run = (
        table(
            ["run", d.run.id],
            [
                ["status", d.run.status],
                ["started", d.run.started_at[:19]],
                ["ended", d.run.ended_at[:19]],
                ["agent", d.run.agent],
                ["command", clip(d.run.command, 160)],
            ],
        )  # fmt: skip
        if d.run
        else html.P("No run: a plain commit.", className="hint")
    )
    snaps = table(
        ["snapshot", "iteration", "latest", "raw", "stored", "chain depth", "read bytes",
         *[f"plane {p} stored / raw" for p in range(n_planes)]],
        [
            [s.id, s.iteration, "yes" if s.latest else "", size(s.raw), size(s.stored),
             text(s.extra.get("chain_depth")), size(s.extra.get("read_bytes")),
             *[f"{size(b.stored)} / {size(b.raw)}" for b in planes.get(s.id, [])]]
            for s in d.snapshots
        ],
    )  # fmt: skip
    metric_graphs = [
        dcc.Graph(figure=metric_figure({name: (m.steps, m.values)}, name),
                  className="card", config={"displayModeBar": False})
        for name, m in sorted(d.metrics.items())
    ]  # fmt: skip
    return html.Div(
        [
            html.H2([d.name, " ", html.Small(d.id, className="hint")], id="version-title"),
            html.P(f"{d.created_at[:19]} · {d.author} · {d.framework or 'no framework'}"
                   + (" · network inferred from tensor names" if d.network_inferred else "")),
            html.P(d.message) if d.message else None,
            html.P(["parents: ", *parents] if parents else ["a root version"]),
            html.P(["children: ", *children]) if children else None,
            html.P(compare),
            html.Div(
                [
                    html.Div([html.H3(f"Network ({len(d.layers)} layers)"),
                              legend(layer_types, "swatch", "layer types"),
                              network_graph("version-network", elements.network(d),
                                            len(d.layers))], className="card"),
                    html.Div(
                        [
                            html.H3("Hyper-parameters"),
                            table(["name", "value"],
                                  [[k, text(v)] for k, v in sorted(d.params.items())])
                            if d.params else html.P("none", className="hint"),
                            html.H3("Run and agent"),
                            run,
                            html.H3("Files"),
                            table(["path", "size", "sha-256"],
                                  [[f.path, size(f.size), f.digest[:16]] for f in d.files])
                            if d.files else html.P("none", className="hint"),
                        ],
                        className="card",
                    ),
                ],
                className="cards",
            ),
            html.H3("Metrics"),
            html.Div(metric_graphs, className="cards") if metric_graphs
            else html.P("none recorded", className="hint"),
            html.H3("Snapshots and storage"),
            snaps,
        ],
        id="version-card",
    )  # fmt: skip


# -- compare -----------------------------------------------------------------------------------


def diff_rows_table(
    rows: list[DiffRow], names: list[str], fmt: Any = text, empty: str = "no differences"
) -> html.Table | html.P:
    """A diff section: one row per item, one column per version, coloured by status."""
    if not rows:
        return html.P(empty, className="hint")
    return table(
        ["name", "status", *names],
        [[r.name, r.status, *[fmt(v) for v in r.values]] for r in rows],
        [r.status for r in rows],
    )


def weight_figure(diff: Diff) -> go.Figure:
    """Per-tensor relative L2 change against the first version, one bar series each."""
    fig = go.Figure()
    names = [r.name for r in diff.weights]
    for i, v in enumerate(diff.versions[1:], start=1):
        ys = [r.values[i] for r in diff.weights]
        fig.add_trace(go.Bar(x=names, y=ys, name=f"{v['name']} {v['id'][:8]}",
                             text=["n/a" if y is None else f"{y:.3g}" for y in ys],
                             textposition="outside"))  # fmt: skip
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title="weight change ‖Δw‖ / ‖w‖ against the first version",
                      height=320, margin={"l": 50, "r": 10, "t": 40, "b": 90},
                      legend={"orientation": "h"}, barmode="group")  # fmt: skip
    return fig


def compare_page(descs: list[Description], diff: Diff) -> html.Div:
    """Two or more versions side by side against the first."""
    names = [f"{v['name']} {v['id'][:8]}" for v in diff.versions]
    counts = {s: sum(r.status == s for r in diff.layers) for s in ("added", "removed", "changed")}
    metric_names = sorted({m for d in descs for m in d.metrics})
    curves = [
        dcc.Graph(
            figure=metric_figure(
                {f"{d.name} {d.id[:8]}": (d.metrics[m].steps, d.metrics[m].values)
                 for d in descs if m in d.metrics}, m),
            className="card", config={"displayModeBar": False})
        for m in metric_names
    ]  # fmt: skip
    return html.Div(
        [
            html.H2("Compare: " + " vs ".join(names)),
            html.P(["versions: ", *[html.Span([version_link(v["id"], n), " "])
                                    for v, n in zip(diff.versions, names)]]),  # fmt: skip
            html.P(f"{counts['added']} layers added, {counts['removed']} removed, "
                   f"{counts['changed']} changed against {names[0]}", id="diff-counts"),
            html.Div(
                [
                    html.Div(
                        [
                            html.H3("Network diff"),
                            legend({"added": styles.STATUS_COLOURS["added"],
                                    "removed": styles.STATUS_COLOURS["removed"],
                                    "changed": styles.STATUS_COLOURS["changed"],
                                    "same": styles.STATUS_COLOURS["same"]},
                                   "swatch", "layers"),
                            network_graph("compare-network",
                                          elements.network_diff(descs, diff), len(diff.layers)),
                        ],
                        className="card",
                    ),
                    html.Div(
                        [
                            html.H3("Hyper-parameters"),
                            dcc.Checklist([{"label": " only differences", "value": "diff"}],
                                          value=["diff"], id="only-diff"),
                            html.Div(id="params-table"),
                            html.H3("Final metrics"),
                            diff_rows_table(diff.metrics, names, empty="none recorded"),
                            html.H3("Layers"),
                            diff_rows_table([r for r in diff.layers if r.status != "same"],
                                            names, lambda v: "—" if v is None else "defined"),
                        ],
                        className="card",
                    ),
                ],
                className="cards",
            ),
            html.H3("Metric curves"),
            html.Div(curves, className="cards") if curves
            else html.P("none recorded", className="hint"),
            dcc.Graph(figure=weight_figure(diff), id="weight-bars",
                      config={"displayModeBar": False}) if diff.weights else None,
        ],
        id="compare-view",
    )  # fmt: skip


def params_table(
    diff_params: list[dict[str, Any]], names: list[str], only: bool
) -> html.Table | html.P:
    """The hyper-parameter section, optionally only the rows that differ."""
    rows = [DiffRow(**r) for r in diff_params if not only or r["status"] != "same"]
    return diff_rows_table(rows, names)


# -- DQL console -------------------------------------------------------------------------------


def query_page(q: str) -> html.Div:
    """The console: a statement box, Run, and the result area."""
    return html.Div(
        [
            html.H2("DQL console"),
            dcc.Textarea(
                id="dql-text",
                value=q,
                spellCheck=False,
                placeholder='select m where m.name like "alexnet%"',
                style={
                    "width": "100%",
                    "height": "120px",
                    "fontFamily": "monospace",
                    "fontSize": "13px",
                },
            ),  # fmt: skip
            html.Div(
                [
                    html.Button("Run", id="dql-run"),
                    html.Span(
                        "select runs at once; slice, construct and evaluate show a dry run "
                        "first and commit only when you confirm.",
                        className="hint",
                    ),
                ],
                className="controls",
            ),  # fmt: skip
            html.Div(id="dql-result"),
        ]
    )


def query_unavailable(hub: str) -> html.Div:
    """The console's page over a hub: DQL runs against a repository."""
    return html.Div(
        [
            html.H2("DQL runs against a repository"),
            html.P(f"This dashboard reads the hub at {hub} through its API, which serves "
                   "published versions, not DQL statements (and never commits)."),
            html.P("Pull the versions you want (`dlv pull OWNER/NAME`) and run `dlv dashboard` "
                   "in that repository, or search the hub with a DQL condition: "
                   "`dlv search --where 'm.name like \"mlp%\"'`.", className="hint"),
            dcc.Link("Back to the lineage", href="/lineage"),
        ],
        className="error",
        id="dql-unavailable",
    )  # fmt: skip


def query_error(exc: ProvDBError) -> html.Div:
    """A DQL error with its line, column and the caret snippet."""
    if isinstance(exc, QuerySyntaxError) and exc.line:
        where = f"line {exc.line}, column {exc.col}"
        return html.Div(
            [html.B(f"Syntax error at {where}"), html.Pre(exc.message, className="caret")],
            id="dql-error",
        )
    return html.Div([html.B("Error"), html.Pre(exc.message, className="caret")], id="dql-error")


def query_result(result: Any, confirm: bool) -> html.Div:
    """A query's rows as a table (ids link to cards), what it created, and its Cypher."""
    columns = list(result.columns) or sorted({k for r in result.rows for k in r})

    def cell(col: str, value: Any) -> Any:
        if col in ("id", "parent") and isinstance(value, str) and value:
            return version_link(value)
        return text(value)

    rows = [[cell(c, r.get(c)) for c in columns] for r in result.rows]
    parts: list[Any] = [
        html.P(f"{result.kind}: {len(result.rows)} rows" + (" (dry run: nothing committed)"
               if result.dry_run and result.kind != "select" else ""), id="dql-summary"),
        table(columns, rows) if rows else html.P("no rows", className="hint"),
    ]  # fmt: skip
    if result.created:
        parts.append(html.H4("would create" if result.dry_run else "created"))
        parts.append(table(
            ["name", "op", "from", "layers", "new version"],
            [[c.name, c.op, c.parent_name, str(len(c.network.names)),
              version_link(c.id) if c.id else "—"] for c in result.created]))  # fmt: skip
    if confirm:
        parts.append(html.Button("Commit these versions", id="dql-commit"))
    parts.append(html.Details([html.Summary("Cypher"), html.Pre(result.cypher, id="dql-cypher"),
                               html.Pre(text(result.params))]))  # fmt: skip
    return html.Div(parts, id="dql-table")
