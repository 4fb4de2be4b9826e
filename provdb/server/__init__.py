"""The ModelHub HTTP service: an APIFlask app over :class:`provdb.hub.Hub`.

``create_app(hub_dir)`` builds the app; every route parses its request, makes one
:class:`~provdb.hub.Hub` call and returns JSON (or a framed chunk stream). Every failure —
a library :class:`~provdb.errors.ProvDBError`, a werkzeug HTTP error such as 404 or 413, a
request that fails validation — leaves through one handler as
``{"error": {"code", "message"}}`` with the code's HTTP status. The OpenAPI document is served
at ``/openapi.json`` and rendered at ``/docs``. Production serving is gunicorn
(``dlv serve``, :mod:`provdb.server.gunicorn`); the app opens the hub's archive and graph
lazily, in each worker after the fork.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from apiflask import APIFlask, HTTPError, Schema, fields, validators
from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from provdb.errors import ProvDBError, Unauthorized
from provdb.hub import Hub, transfer
from provdb.server import browse, hf

CHUNKS_MIMETYPE = "application/x-dlv-chunks"
log = logging.getLogger("provdb.server")

_HTTP_CODES = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "invalid_input",
    409: "conflict",
    413: "too_large",
    415: "invalid_input",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


class Digests(Schema):
    digests = fields.List(fields.String(), required=True, metadata={"description": "chunk digests"})


class Publish(Schema):
    manifest = fields.Dict(required=True, metadata={"description": "the version's manifest"})
    private = fields.Boolean(load_default=False)
    tags = fields.List(fields.String(), load_default=list)


#: Query arguments of our own search; a listing with none of them is HF's ``list_models``.
DLV_SEARCH_ARGS = {"q", "owner", "tag", "param", "where", "page", "per_page"}


class SearchQuery(Schema):
    q = fields.String(load_default=None, metadata={"description": "text in names and tags"})
    owner = fields.String(load_default=None)
    tag = fields.List(fields.String(), load_default=list)
    param = fields.List(
        fields.String(), load_default=list, metadata={"description": "KEY=VALUE (JSON value)"}
    )
    where = fields.String(
        load_default=None, metadata={"description": "a DQL select condition on m"}
    )
    page = fields.Integer(load_default=1, validate=validators.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validators.Range(min=1, max=100))
    search = fields.String(
        load_default=None, metadata={"description": "HF list_models: text in the repo id"}
    )
    author = fields.String(load_default=None, metadata={"description": "HF list_models: owner"})
    limit = fields.Integer(load_default=None, metadata={"description": "HF list_models: page size"})
    cursor = fields.Integer(load_default=None, metadata={"description": "HF list_models: offset"})


def error_response(code: str, message: str, status: int, **details: Any) -> tuple[Any, int]:
    """The one error body."""
    return {"error": {"code": code, "message": message, **details}}, status


def create_app(hub_dir: str | os.PathLike[str] | None = None) -> APIFlask:
    """The hub's WSGI app for the hub folder ``hub_dir`` (default ``$DLV_HUB_DIR``)."""
    hub = Hub.open(hub_dir or os.environ.get("DLV_HUB_DIR") or ".")
    app = APIFlask(__name__, title="ModelHub", version="1")
    app.config.update(
        MAX_CONTENT_LENGTH=hub.max_upload_bytes,
        VALIDATION_ERROR_STATUS_CODE=400,
        SECURITY_SCHEMES={"BearerAuth": {"type": "http", "scheme": "bearer"}},
        DESCRIPTION=(
            "Publish, search and pull model versions with their lineage. Publishing is "
            "have/want: only the chunks the hub lacks are uploaded. Errors are "
            '`{"error": {"code", "message"}}`.'
        ),
    )
    app.extensions["dlv_hub"] = hub

    @app.before_request
    def _principal() -> None:
        if request.endpoint == "health":  # liveness probes are never limited
            g.principal = None
            return
        try:
            g.principal = hub.authenticate(request.headers.get("Authorization"))
        except Unauthorized:
            hub.limit(None, request.remote_addr)  # refused tokens count against the address
            raise
        hub.limit(g.principal, request.remote_addr)

    @app.errorhandler(ProvDBError)
    def _library_error(exc: ProvDBError) -> tuple[Any, int, dict[str, str]]:
        if exc.http_status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        body: dict[str, Any] = {"error": exc.to_dict()}
        if "url" in exc.details:  # HF's create_repo reads an existing repo's url on a 409
            body["url"] = exc.details["url"]
        headers = hf.error_headers(exc)
        if "retry_after" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after"])
        return body, exc.http_status, headers

    def _http(status: int, message: str) -> tuple[Any, int]:
        if status == 413:
            message = f"request body over the hub's limit of {hub.max_upload_bytes} bytes"
        return error_response(_HTTP_CODES.get(status, "internal"), message, status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Any, int]:
        return _http(exc.code or 500, exc.description or exc.name)

    @app.error_processor
    def _apiflask_error(exc: HTTPError) -> tuple[Any, int]:
        detail = f": {json.dumps(exc.detail)}" if exc.detail else ""
        return _http(exc.status_code, f"{exc.message}{detail}")

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> tuple[Any, int]:
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        log.exception("unhandled error")
        return error_response("internal", f"internal error ({type(exc).__name__})", 500)

    secured = "BearerAuth"
    app.register_blueprint(hf.bp)
    app.register_blueprint(browse.bp)  # read-only views for the dashboard

    @app.get("/api/health")
    @app.doc(tags=["hub"], summary="Liveness")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/whoami")
    @app.doc(
        tags=["accounts"], summary="The token's user, scope and organisations", security=secured
    )
    def whoami() -> dict[str, Any]:
        return hub.whoami(g.principal)

    @app.get("/api/models")
    @app.input(SearchQuery, location="query")
    @app.doc(tags=["models"], summary="Search published versions (paged)", security=secured)
    def search(query_data: dict[str, Any]) -> Any:
        if not DLV_SEARCH_ARGS & set(request.args):  # huggingface_hub's list_models
            return hf.list_models()
        return hub.search(
            g.principal,
            query_data["q"],
            owner=query_data["owner"],
            tags=query_data["tag"],
            params=_params(query_data["param"]),
            where=query_data["where"],
            page=query_data["page"],
            per_page=query_data["per_page"],
        )

    @app.get("/api/models/<owner>/<name>")
    @app.doc(
        tags=["models"],
        summary="A model and its published versions (also HF model_info's fields)",
        security=secured,
    )
    def model(owner: str, name: str) -> dict[str, Any]:
        out = hub.model(g.principal, owner, name)
        return {**out, **hf.model_info(owner, name)}

    @app.post("/api/models/<owner>/<name>/have")
    @app.input(Digests, location="json")
    @app.doc(tags=["publish"], summary="Which chunk digests the hub lacks", security=secured)
    def have(owner: str, name: str, json_data: dict[str, Any]) -> dict[str, Any]:
        return hub.have(g.principal, owner, name, json_data["digests"])

    @app.post("/api/models/<owner>/<name>/chunks")
    @app.doc(
        tags=["publish"],
        summary="Upload chunks (framed stream), each verified against its digest",
        description=f"Body `{CHUNKS_MIMETYPE}`: per chunk, its 40 hex digits, an 8-byte "
        "big-endian length and the stored bytes.",
        security=secured,
    )
    def put_chunks(owner: str, name: str) -> dict[str, Any]:
        return hub.put_chunks(g.principal, owner, name, request.get_data(cache=False))

    @app.post("/api/models/<owner>/<name>/versions")
    @app.input(Publish, location="json")
    @app.doc(
        tags=["publish"], summary="Commit a version's manifest (makes it visible)", security=secured
    )
    def publish(owner: str, name: str, json_data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        out = hub.publish(
            g.principal,
            owner,
            name,
            json_data["manifest"],
            private=json_data["private"],
            tags=json_data["tags"],
        )
        return out, 201 if out["created"] else 200

    @app.get("/api/models/<owner>/<name>/versions/<ref>")
    @app.doc(
        tags=["pull"],
        summary="A version's manifest and lineage ('latest' or an id)",
        security=secured,
    )
    def version(owner: str, name: str, ref: str) -> dict[str, Any]:
        return hub.version(g.principal, owner, name, ref)

    @app.post("/api/models/<owner>/<name>/versions/<ref>/chunks")
    @app.input(Digests, location="json")
    @app.doc(tags=["pull"], summary="Download a version's chunks (framed stream)", security=secured)
    def chunks(owner: str, name: str, ref: str, json_data: dict[str, Any]) -> Response:
        found = hub.chunks(g.principal, owner, name, ref, json_data["digests"])
        return Response(transfer.frame(found), mimetype=CHUNKS_MIMETYPE)

    return app


def _params(items: list[str]) -> dict[str, Any]:
    from provdb.errors import InvalidInput

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"expected KEY=VALUE, got {item[:60]!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
