"""The Flask app itself (no gunicorn): the OpenAPI document, the docs page, the one error
format for every kind of failure, and search paging and filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from provdb.hub import Hub
from provdb.models.network import Layer, NetworkDef
from provdb.repository import Repository
from provdb.server import create_app


@pytest.fixture
def hub_app(tmp_path: Path):
    hub = Hub.init(tmp_path / "hub", max_upload_bytes=1 << 20)
    hub.accounts.add_user("alice")
    token = hub.accounts.create_token("alice", "write")["token"]
    app = create_app(tmp_path / "hub")
    app.testing = True
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def test_openapi_document_and_docs(hub_app) -> None:
    client, _ = hub_app
    spec = client.get("/openapi.json").get_json()
    assert spec["info"]["title"] == "ModelHub"
    paths = set(spec["paths"])
    assert {
        "/api/models",
        "/api/models/{owner}/{name}/have",
        "/api/models/{owner}/{name}/chunks",
        "/api/models/{owner}/{name}/versions",
        "/api/models/{owner}/{name}/versions/{ref}",
        "/api/models/{owner}/{name}/versions/{ref}/chunks",
        "/api/whoami",
    } <= paths
    assert "BearerAuth" in spec["components"]["securitySchemes"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert b"openapi.json" in docs.data


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/nowhere", {}, 404, "not_found"),
        ("DELETE", "/api/models", {}, 405, "invalid_input"),
        (
            "POST",
            "/api/models/alice/m/have",
            {"data": "{not json", "auth": True},
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/api/models/alice/m/have",
            {"json": {"digests": ["xyz"]}, "auth": True},
            400,
            "invalid_input",
        ),
        ("POST", "/api/models/alice/m/have", {"json": {}, "auth": True}, 400, "invalid_input"),
        (
            "POST",
            "/api/models/alice/m/chunks",
            {"data": b"0" * (2 << 20), "auth": True},
            413,
            "too_large",
        ),
        ("GET", "/api/models?per_page=1000", {}, 400, "invalid_input"),
        ("GET", "/api/models?where=m.nmae%20%3D%3D", {}, 400, "syntax_error"),
        ("GET", "/api/whoami", {"headers": {"Authorization": "Basic abc"}}, 401, "unauthorized"),
        ("GET", "/api/models/alice/m/versions/..", {}, 404, "not_found"),
    ],
)
def test_every_failure_has_one_json_shape(hub_app, method, path, kwargs, status, code) -> None:
    client, auth = hub_app
    kwargs = dict(kwargs)
    headers = kwargs.pop("headers", {})
    if kwargs.pop("auth", False):
        headers.update(auth)
    if "data" in kwargs and isinstance(kwargs["data"], str):
        headers["Content-Type"] = "application/json"
    r = client.open(path, method=method, headers=headers, **kwargs)
    assert r.status_code == status, r.data
    body = r.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def _publish(hub: Hub, tmp_path: Path, name: str, lr: float, acc: float, tags: list[str]) -> str:
    """Publish a tiny version straight through the facade (no HTTP)."""
    from provdb.hub.transfer import manifest_chunks, version_manifest

    net = NetworkDef((Layer("fc", "FC", "", {"in_features": 4, "out_features": 2}),), ())
    w = {"fc.weight": np.full((2, 4), lr, np.float32), "fc.bias": np.zeros(2, np.float32)}
    with Repository.init(tmp_path / name) as repo:
        vid = repo.commit(name, net, w, params={"lr": lr}, metrics={"acc": ([1], [acc])}).version.id
        manifest = version_manifest(repo, vid)
        chunks = [(d, repo.archive.get_chunk(d)) for d in manifest_chunks(manifest)]
    alice = hub.accounts.authenticate(hub.accounts.create_token("alice", "write")["token"])
    from provdb.hub.transfer import frame

    hub.put_chunks(alice, "alice", name, b"".join(frame(chunks)))
    hub.publish(alice, "alice", name, manifest, tags=tags)
    return vid


def test_search_filters_and_pages(tmp_path: Path) -> None:
    hub = Hub.init(tmp_path / "hub")
    hub.accounts.add_user("alice")
    ids = {
        name: _publish(hub, tmp_path, name, lr, acc, tags)
        for name, lr, acc, tags in [
            ("bert-small", 0.1, 0.7, ["nlp"]),
            ("bert-large", 0.01, 0.9, ["nlp", "big"]),
            ("resnet", 0.1, 0.8, ["vision"]),
        ]
    }

    def names(**kw) -> list[str]:
        return sorted(r["name"] for r in hub.search(None, **kw)["results"])

    assert names(text="bert") == ["bert-large", "bert-small"]
    assert names(tags=["nlp", "big"]) == ["bert-large"]
    assert names(owner="alice") == ["bert-large", "bert-small", "resnet"]
    assert names(owner="bob") == []
    assert names(params={"lr": 0.1}) == ["bert-small", "resnet"]
    assert names(where='m.name like "bert%" and m["acc"] > 0.8') == ["bert-large"]
    page1 = hub.search(None, per_page=2)
    page2 = hub.search(None, per_page=2, page=2)
    assert page1["total"] == 3
    assert len(page1["results"]) == 2
    assert len(page2["results"]) == 1
    seen = {r["id"] for r in page1["results"] + page2["results"]}
    assert seen == set(ids.values())
    hub.close()
