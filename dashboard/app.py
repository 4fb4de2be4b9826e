"""The Dash app: one router callback turns the URL into a page, small callbacks do the rest.

Pages (each a bookmarkable URL): ``/lineage`` (also ``/``), ``/version/<ref>``,
``/compare?v=<ref>&v=<ref>…``, ``/query?q=<DQL>``. Every facade failure becomes a readable page
(:func:`dashboard.views.error_page`), never a traceback. The pages read through a source
(:mod:`dashboard.source`): a repository, or a hub's API (read-only: no DQL console).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import dash
from dash import Input, Output, State, dcc, html, no_update

from dashboard import elements, styles, views
from dashboard.source import HubSource, RepoSource, Source
from provdb.errors import ProvDBError

log = logging.getLogger(__name__)

#: DQL statements that commit: the console shows their dry run and asks first.
WRITING_KINDS = ("slice", "construct", "evaluate")


def create_app(
    repo: str | None = None,
    *,
    hub: str | None = None,
    token: str | None = None,
    source: Any = None,
    layout: str = "preset",
) -> dash.Dash:
    """The dashboard over the repository at ``repo`` (``None``: found from the current
    folder or ``$DLV_REPO``), or over the hub at ``hub`` as ``token``'s user.

    ``source`` replaces both with any :class:`~dashboard.source.Source` (the benchmark's
    synthetic lineage); ``layout`` other than ``preset``
    (``dagre``, ``breadthfirst``) leaves the lineage layout to the browser, for comparison.
    """
    source = source or (HubSource(hub, token) if hub else RepoSource(repo))
    if layout == "dagre":
        import dash_cytoscape as cyto

        cyto.load_extra_layouts()
    app = dash.Dash(__name__, title="ProvDB", suppress_callback_exceptions=True,
                    update_title="")  # fmt: skip
    style = "{%css%}<style>" + styles.CSS + "</style>"
    app.index_string = app.index_string.replace("{%css%}", style)
    app.layout = html.Div(
        [
            dcc.Location(id="url", refresh=False),
            dcc.Store(id="expanded", data=[]),
            html.Header(
                [
                    html.Span("ProvDB", className="brand"),
                    dcc.Link("Lineage", href="/lineage"),
                    dcc.Link("DQL console", href="/query"),
                ]
            ),
            html.Main(id="page"),
        ]
    )
    _register(app, source, layout)
    return app


def _safe(render: Any) -> Any:
    """``render()``, or the error page for whatever it raised."""
    try:
        return render()
    except ProvDBError as exc:
        return views.error_page(exc)
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        log.exception("dashboard page failed")
        return views.error_page(exc)


def route(
    source: Source,
    pathname: str | None,
    search: str | None,
    layout: str = "preset",
    expanded: list[str] | None = None,
) -> Any:
    """The page for a URL (``expanded``: the lineage's opened chains)."""
    path = unquote(pathname or "/").rstrip("/") or "/"
    args = parse_qs((search or "").lstrip("?"))
    if path in ("/", "/lineage"):
        return lineage(source, layout, expanded or [])
    if path.startswith("/version/"):
        return version(source, path.removeprefix("/version/"))
    if path == "/compare":
        return compare(source, args.get("v", []))
    if path == "/query":
        return query(source, (args.get("q") or [""])[0])
    return html.Div([html.H2("No such page"), html.P(path),
                     dcc.Link("Back to the lineage", href="/lineage")],
                    className="error", id="error-page")  # fmt: skip


def lineage(source: Source, layout: str = "preset", expanded: list[str] | None = None) -> Any:
    """The lineage page (or the empty-repository page)."""

    def read(repo: Any) -> Any:
        return repo.info(), repo.list_versions()

    info, rows = source.read(read)
    if not rows:
        return views.empty_page(info)
    drawn = draw(rows, elements.Filters(), expanded or [], layout)
    return views.lineage_page(info, rows, drawn, layout)


def draw(
    rows: list[Any], filters: elements.Filters, expanded: Any, layout: str = "preset"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """The lineage's elements (positions from the server unless ``layout`` says otherwise),
    its stylesheet (labels only while small) and legend."""
    graph = elements.lineage(rows, filters, expanded or ())
    small = len(graph.elements) <= styles.LABEL_LIMIT
    if layout != "preset":  # the browser lays it out (benchmark baseline)
        for element in graph.elements:
            element.pop("position", None)
    return graph.elements, styles.lineage_stylesheet(small), views.lineage_legend(graph)


def version(source: Source, ref: str) -> Any:
    """The version card, with each snapshot's bytes per byte plane."""

    def read(repo: Any) -> Any:
        desc = repo.describe(ref)
        return desc, {s.id: repo.snapshot_planes(s.id) for s in desc.snapshots}

    return views.version_page(*source.read(read))


def compare(source: Source, refs: list[str]) -> Any:
    """The compare page for two or more versions."""
    if len(refs) < 2:
        return html.Div([html.H2("Compare"),
                         html.P("Pick two or more versions on the lineage page (or give "
                                "/compare?v=A&v=B)."),
                         dcc.Link("Back to the lineage", href="/lineage")],
                        className="error", id="error-page")  # fmt: skip

    def read(repo: Any) -> Any:
        return [repo.describe(r) for r in refs], repo.diff(refs)

    descs, diff = source.read(read)
    page = views.compare_page(descs, diff)
    names = [f"{v['name']} {v['id'][:8]}" for v in diff.versions]
    data = {"params": [p.to_dict() for p in diff.params], "names": names}
    store = dcc.Store(id="compare-data", data=data)
    return html.Div([page, store])


def query(source: Source, q: str) -> Any:
    """The console with ``q`` run: a select at once, a writing statement as a dry run (or,
    over a hub, the page saying DQL runs against a repository)."""
    if not getattr(source, "queries", True):
        return views.query_unavailable(getattr(source, "url", ""))
    page = views.query_page(q)
    if q.strip():
        page.children[-1].children = run_query(source, q, commit=False)
    return page


def run_query(source: Any, q: str, *, commit: bool) -> Any:
    """A statement's result (or its error); writes only with ``commit``."""
    if not getattr(source, "queries", True):
        return views.query_unavailable(getattr(source, "url", ""))
    try:
        if commit:
            with source.open(write=True) as repo:
                result = repo.query(q)
            return views.query_result(result, confirm=False)
        with source.open() as repo:
            result = repo.query(q, dry_run=True)
        return views.query_result(result, confirm=result.kind in WRITING_KINDS)
    except ProvDBError as exc:
        return views.query_error(exc)


def _register(app: dash.Dash, source: Source, layout: str) -> None:
    """The callbacks, each small."""

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"),
                  State("expanded", "data"))  # fmt: skip
    def _page(pathname: str | None, search: str | None, expanded: list[str] | None) -> Any:
        return _safe(lambda: route(source, pathname, search, layout, expanded))

    @app.callback(
        Output("lineage-graph", "elements"),
        Output("lineage-graph", "stylesheet"),
        Output("lineage-legend", "children"),
        Input("filter-name", "value"),
        Input("filter-model", "value"),
        Input("filter-op", "value"),
        Input("expanded", "data"),
        prevent_initial_call=True,
    )
    def _lineage(name: str | None, models: list[str] | None, ops: list[str] | None,
                 expanded: list[str] | None) -> Any:  # fmt: skip
        try:
            rows = source.read(lambda r: r.list_versions())
        except ProvDBError as exc:
            return [], no_update, views.error_page(exc)
        filters = elements.Filters(name or "", frozenset(models or ()), frozenset(ops or ()))
        return draw(rows, filters, expanded, layout)

    @app.callback(Output("hover-summary", "children"), Input("lineage-graph", "mouseoverNodeData"),
                  prevent_initial_call=True)  # fmt: skip
    def _hover(data: dict[str, Any] | None) -> Any:
        if not data:
            return no_update
        if data.get("chain"):
            return views.hover_summary(data)
        vid = data.get("id")
        try:
            rows = source.read(lambda r: r.list_versions())
        except ProvDBError as exc:
            return views.error_page(exc)
        return views.hover_summary(data, next((r for r in rows if r.id == vid), None))

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Output("expanded", "data"),
        Input("lineage-graph", "tapNodeData"),
        State("expanded", "data"),
        prevent_initial_call=True,
    )
    def _tap(data: dict[str, Any] | None, expanded: list[str] | None) -> Any:
        if not data:
            return no_update, no_update
        if data.get("chain"):
            return no_update, [*(expanded or []), data["id"]]
        return f"/version/{data['id']}", no_update

    @app.callback(Output("compare-pick", "options"), Input("compare-pick", "search_value"),
                  State("compare-pick", "value"), prevent_initial_call=True)  # fmt: skip
    def _pick(search: str | None, picked: list[str] | None) -> Any:
        if not search:
            return no_update
        try:
            rows = source.read(lambda r: r.list_versions())
        except ProvDBError:
            return no_update
        return views.version_options(rows, search, picked)

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Output("url", "search", allow_duplicate=True),
        Input("compare-go", "n_clicks"),
        State("compare-pick", "value"),
        prevent_initial_call=True,
    )
    def _compare(_: int | None, picked: list[str] | None) -> Any:
        if not picked or len(picked) < 2:
            return no_update, no_update
        return "/compare", "?" + urlencode([("v", v) for v in picked])

    @app.callback(Output("params-table", "children"), Input("only-diff", "value"),
                  State("compare-data", "data"))  # fmt: skip
    def _params(only: list[str] | None, data: dict[str, Any] | None) -> Any:
        if not data:
            return no_update
        return views.params_table(data["params"], data["names"], bool(only))

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input("dql-run", "n_clicks"),
        State("dql-text", "value"),
        prevent_initial_call=True,
    )
    def _run(_: int | None, q: str | None) -> Any:
        return "?" + urlencode({"q": q or ""})

    @app.callback(
        Output("dql-result", "children", allow_duplicate=True),
        Input("dql-commit", "n_clicks"),
        State("dql-text", "value"),
        prevent_initial_call=True,
    )
    def _commit(clicks: int | None, q: str | None) -> Any:
        if not clicks or not q:
            return no_update
        return run_query(source, q, commit=True)
