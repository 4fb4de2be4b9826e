"""The dashboard's read-only hub routes: the facade's typed results as JSON, limited to what the
caller's token may see (a private namespace is absent without its owner's token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hub_family import HubFamily, build

from provdb.results import Description, Diff, VersionRow
from provdb.server import create_app


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> HubFamily:
    return build(tmp_path_factory.mktemp("browse"))


@pytest.fixture(scope="module")
def client(family: HubFamily) -> Any:
    app = create_app(family.root)
    app.testing = True
    return app.test_client()


def _get(client: Any, family: HubFamily, path: str, who: str | None) -> Any:
    return client.get(path, headers=family.headers(who))


def test_lineage_is_the_visible_versions_with_their_edges(client, family) -> None:
    mine = _get(client, family, "/api/lineage", "alice")
    assert mine.status_code == 200
    rows = {r["id"]: VersionRow.from_dict(r) for r in mine.get_json()["versions"]}
    assert set(rows) == {family.base, family.finetune}
    assert [(p.id, p.op) for p in rows[family.finetune].parents] == [(family.base, "finetune")]
    assert rows[family.base].name == "mlp"
    for who in (None, "bob"):  # the private fine-tune (and its edge) is not there
        rows = _get(client, family, "/api/lineage", who).get_json()["versions"]
        assert [r["id"] for r in rows] == [family.base]


def test_describe_is_desc_and_hides_private_children(client, family) -> None:
    d = Description.from_dict(
        _get(client, family, f"/api/versions/{family.finetune}", "alice").get_json()
    )
    assert (d.id, d.name) == (family.finetune, "mlp-ft")
    assert [(p.id, p.op) for p in d.parents] == [(family.base, "finetune")]
    assert [x.name for x in d.layers] == ["fc1", "relu", "fc2"]
    assert d.params == {"lr": 0.01}
    assert d.metrics["accuracy"].values == [0.8, 0.9]
    assert d.snapshots
    assert d.snapshots[0].raw > 0
    prefix = _get(client, family, f"/api/versions/{family.finetune[:8]}", "alice")
    assert prefix.get_json()["id"] == family.finetune
    base = _get(client, family, f"/api/versions/{family.base}", "alice").get_json()
    assert [c["id"] for c in base["children"]] == [family.finetune]
    anon = _get(client, family, f"/api/versions/{family.base}", None).get_json()
    assert anon["children"] == []


@pytest.mark.parametrize("who", [None, "bob"])
def test_private_versions_are_absent_without_the_owners_token(client, family, who) -> None:
    absent = "0" * 32
    for path in (f"/api/versions/{family.finetune}", f"/api/versions/{family.finetune}/planes",
                 f"/api/diff?v={family.base}&v={family.finetune}"):  # fmt: skip
        r = _get(client, family, path, who)
        assert r.status_code == 404, path
        assert r.get_json()["error"]["code"] == "not_found"
        # exactly what a version that does not exist answers
        other = _get(client, family, path.replace(family.finetune, absent), who).get_json()
        assert (
            r.get_json()["error"]["message"].replace(family.finetune, absent)
            == other["error"]["message"]
        )


def test_diff_is_dlv_diff(client, family) -> None:
    r = _get(client, family, f"/api/diff?v={family.base}&v={family.finetune}", "alice")
    diff = Diff.from_dict(r.get_json())
    assert [v["id"] for v in diff.versions] == [family.base, family.finetune]
    assert {x.name: x.status for x in diff.layers} == {"fc1": "same", "relu": "same",
                                                       "fc2": "same"}  # fmt: skip
    weights = {x.name: x for x in diff.weights}
    assert weights["fc1.weight"].values[1] == 0.0
    assert weights["fc2.weight"].status == "changed"
    assert weights["fc2.weight"].values[1] > 0
    assert [x.values for x in diff.params] == [[0.1, 0.01]]


def test_planes_and_bad_requests(client, family) -> None:
    r = _get(client, family, f"/api/versions/{family.base}/planes", None).get_json()
    (planes,) = r["snapshots"].values()
    assert [p["plane"] for p in planes] == [0, 1, 2, 3]
    assert sum(p["raw"] for p in planes) > 0
    for path, code in (("/api/diff?v=" + family.base, "invalid_input"),
                       ("/api/versions/not-hex", "invalid_input"),
                       ("/api/versions/" + "0" * 32, "not_found")):  # fmt: skip
        body = _get(client, family, path, "alice").get_json()
        assert body["error"]["code"] == code, path


def test_typed_results_survive_json(tmp_path: Path) -> None:
    """``from_dict(to_dict())`` rebuilds the same result (what the dashboard relies on)."""
    import json

    from provdb.repository import Repository

    fam = build(tmp_path)
    with Repository.open(tmp_path / "work", read_only=True) as repo:
        d = repo.describe(fam.finetune)
        diff = repo.diff([fam.base, fam.finetune])
        rows = repo.list_versions()
    assert Description.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert Diff.from_dict(json.loads(json.dumps(diff.to_dict()))) == diff
    assert [VersionRow.from_dict(json.loads(json.dumps(r.to_dict()))) for r in rows] == rows


def test_routes_are_in_the_openapi_document(client) -> None:
    paths = set(client.get("/openapi.json").get_json()["paths"])
    assert {"/api/lineage", "/api/versions/{ref}", "/api/versions/{ref}/planes",
            "/api/diff"} <= paths  # fmt: skip
