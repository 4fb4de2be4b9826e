"""The Hugging Face Hub protocol's routes (a plain blueprint: the media types, HEAD behaviour
and ndjson body are fixed by the ``huggingface_hub`` client, not by our OpenAPI schemas).

Each route parses its request and makes one :class:`provdb.hub.hf.HFRepos` call. Errors leave
through the app's one handler; :func:`error_headers` adds what the HF client reads:
``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``),
``X-Error-Message`` and, once the revision is known, ``X-Repo-Commit`` (404s too).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, g, request, send_file

from provdb.errors import ProvDBError
from provdb.hub.hf import MAX_LFS_BYTES, WEIGHTS, HFRepos, Revision

bp = Blueprint("hf", __name__)
#: Routes of the dlv API that HF clients call too (``model_info``, ``list_models``).
SHARED_ENDPOINTS = ("model", "search")
#: Entries per ``/tree`` page.
TREE_PAGE = 1000
LFS_JSON = "application/vnd.git-lfs+json"


def _hf() -> HFRepos:
    return HFRepos(current_app.extensions["dlv_hub"])


def _base_url() -> str:
    return request.host_url.rstrip("/")


def is_hf_request() -> bool:
    """Whether the current request is one the HF client makes."""
    return request.blueprint == "hf" or request.endpoint in SHARED_ENDPOINTS


def error_headers(exc: ProvDBError) -> dict[str, str]:
    """The HF error headers of ``exc`` on an HF request (``{}`` elsewhere)."""
    if not is_hf_request():
        return {}
    headers = {"X-Error-Message": exc.message.splitlines()[0][:500] if exc.message else exc.code}
    hf_code = exc.details.get("hf_code")
    if hf_code is None and exc.code == "unauthorized" and request.headers.get("Authorization"):
        headers["X-Error-Message"] = "Invalid credentials in Authorization header"  # HF's words
    elif hf_code is None and exc.code in ("not_found", "unauthorized") and "commit" not in g:
        hf_code = "RepoNotFound"
    if hf_code:
        headers["X-Error-Code"] = str(hf_code)
    if "commit" in g:
        headers["X-Repo-Commit"] = g.commit
    return headers


@bp.after_app_request
def _repo_commit(response: Response) -> Response:
    """``X-Repo-Commit`` on every response about a resolved revision."""
    if "commit" in g and is_hf_request():
        response.headers["X-Repo-Commit"] = g.commit
    return response


def resolve(owner: str, name: str, rev: str) -> Revision:
    """The revision, remembered for ``X-Repo-Commit``."""
    found = _hf().revision(g.principal, owner, name, rev)
    g.commit = found.sha
    return found


def model_info(owner: str, name: str, rev: str = "main") -> dict[str, Any]:
    """``model_info``'s fields; a repository without versions yet has no ``sha``."""
    hf = _hf()
    if not hf.hub.accounts.versions(owner, name):
        return {"id": f"{owner}/{name}", "modelId": f"{owner}/{name}", "sha": None, "siblings": []}
    return hf.model_info(g.principal, resolve(owner, name, rev))


def list_models() -> tuple[Any, int, dict[str, str]]:
    """``list_models``: repositories matching ``search``/``author``, paged by ``Link``."""
    found = _hf().list_models(g.principal, request.args.get("search"), request.args.get("author"))
    limit = _int_arg("limit", 1000, 1, 1000)
    cursor = _int_arg("cursor", 0, 0, 1 << 40)
    page = found[cursor : cursor + limit]
    headers = {}
    if cursor + limit < len(found):
        args = {**request.args.to_dict(), "cursor": str(cursor + limit)}
        headers["Link"] = f'<{_url_with(args)}>; rel="next"'
    return page, 200, headers


def _int_arg(key: str, default: int, lo: int, hi: int) -> int:
    from provdb.errors import InvalidInput

    raw = request.args.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{key} must be an integer") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"{key} must be within {lo}..{hi}")
    return value


def _url_with(args: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return f"{_base_url()}{request.path}?{urlencode(args)}"


@bp.get("/api/whoami-v2")
def whoami() -> dict[str, Any]:
    return _hf().whoami(g.principal)


@bp.post("/api/repos/create")
def create_repo() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True) or {}
    private = bool(body.get("private")) or body.get("visibility") == "private"
    if body.get("type") not in (None, "model"):
        from provdb.errors import InvalidInput

        raise InvalidInput("this hub holds models only")
    out = _hf().create_repo(
        g.principal, body.get("organization"), str(body.get("name") or ""), private, _base_url()
    )
    return out, 200


@bp.get("/api/models/<owner>/<name>/revision/<path:rev>")
def revision(owner: str, name: str, rev: str) -> dict[str, Any]:
    return model_info(owner, name, rev)


@bp.get("/api/models/<owner>/<name>/tree/<rev>")
@bp.get("/api/models/<owner>/<name>/tree/<rev>/<path:folder>")
def tree(owner: str, name: str, rev: str, folder: str = "") -> tuple[Any, int, dict[str, str]]:
    found = resolve(owner, name, rev)
    entries = _hf().tree(g.principal, found, folder)
    limit = _int_arg("limit", TREE_PAGE, 1, TREE_PAGE)
    cursor = _int_arg("cursor", 0, 0, 1 << 40)
    headers = {}
    if cursor + limit < len(entries):
        args = {**request.args.to_dict(), "cursor": str(cursor + limit)}
        headers["Link"] = f'<{_url_with(args)}>; rel="next"'
    return entries[cursor : cursor + limit], 200, headers


@bp.get("/<owner>/<name>/resolve/<rev>/<path:filename>")
def resolve_file(owner: str, name: str, rev: str, filename: str) -> Response:
    """A file's bytes (HEAD: its headers only); ``Range`` gives 206; ``planes=k`` on the
    weights gives the top-k-planes approximation, ``X-Dlv-Bytes-Read`` what it read."""
    planes = request.args.get("planes")
    k = _int_arg("planes", 0, 1, 64) if planes is not None else None
    found = resolve(owner, name, rev)
    f = _hf().file(g.principal, found, filename, k)
    if f.local is not None:
        response = send_file(
            f.local, mimetype="application/octet-stream", conditional=True, etag=f.etag,
            download_name=WEIGHTS,
        )  # fmt: skip
    else:
        import io

        assert f.content is not None
        response = send_file(
            io.BytesIO(f.content), mimetype=_mimetype(f.path), conditional=True, etag=f.etag,
            download_name=f.path.rsplit("/", 1)[-1], last_modified=None,
        )  # fmt: skip
    response.headers["Accept-Ranges"] = "bytes"
    if f.lfs:
        response.headers["X-Linked-Size"] = str(f.size)
        response.headers["X-Linked-ETag"] = f'"{f.etag}"'
    if f.bytes_read is not None:
        response.headers["X-Dlv-Bytes-Read"] = str(f.bytes_read)
        response.headers["X-Dlv-Planes"] = str(k) if k else "all"
    return response


def _mimetype(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    if path.endswith(".md"):
        return "text/markdown; charset=utf-8"
    return "application/octet-stream"


@bp.post("/api/validate-yaml")
def validate_yaml() -> dict[str, Any]:
    body = request.get_json(silent=True) or {}
    return _hf().validate_card(body.get("content"))


@bp.post("/api/models/<owner>/<name>/preupload/<rev>")
def preupload(owner: str, name: str, rev: str) -> dict[str, Any]:
    body = request.get_json(silent=True) or {}
    return _hf().preupload(g.principal, owner, name, rev, body.get("files"))


@bp.post("/<owner>/<name>.git/info/lfs/objects/batch")
def lfs_batch(owner: str, name: str) -> Response:
    body = json.loads(request.get_data() or b"{}")
    out = _hf().batch(g.principal, owner, name, body, _base_url())
    return Response(json.dumps(out), mimetype=LFS_JSON)


@bp.put("/api/lfs/<owner>/<name>/<oid>")
def lfs_put(owner: str, name: str, oid: str) -> dict[str, Any]:
    request.max_content_length = MAX_LFS_BYTES
    stream = iter(lambda: request.stream.read(1 << 20), b"")
    return _hf().put_object(owner, name, oid, request.args.to_dict(), stream)


@bp.post("/api/lfs/<owner>/<name>/<oid>/verify")
def lfs_verify(owner: str, name: str, oid: str) -> dict[str, Any]:
    body = request.get_json(silent=True) or {}
    return _hf().verify_object(g.principal, owner, name, oid, body.get("size"))


@bp.post("/api/models/<owner>/<name>/commit/<rev>")
def commit(owner: str, name: str, rev: str) -> dict[str, Any]:
    return _hf().commit(g.principal, owner, name, rev, request.get_data(), _base_url())
