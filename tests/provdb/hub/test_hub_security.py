"""Refusals and reliability against the session's gunicorn hub: tokens, scopes, namespaces,
names, limits, digests, concurrent and interrupted publishes, restarts."""

from __future__ import annotations

import json
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from hubkit import MAX_UPLOAD, HubFixture, dlv, dlv_process, make_family, out_json, same

from provdb.hub.transfer import frame
from provdb.repository import Repository


@pytest.fixture
def family(tmp_path: Path, request: pytest.FixtureRequest):
    """A model family whose chunks no other test sent (seeded by the test's name)."""
    return make_family(tmp_path / "work", seed=zlib.crc32(request.node.name.encode()))


def _api(hub: HubFixture, method: str, path: str, who: str | None = None, **kw):
    return requests.request(method, hub.url + path, headers=hub.headers(who), timeout=60, **kw)


def _error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def _manifest_body(family) -> dict:
    from provdb.hub.transfer import version_manifest

    with Repository.open(family.root) as repo:
        return {"manifest": version_manifest(repo, family.base)}


def test_no_token_cannot_publish_and_nothing_is_stored(hub: HubFixture, family) -> None:
    before = hub.chunk_count()
    result = dlv("publish", family.base, "alice/anon", repo=family.root, hub=hub, ok=False)
    assert result.exit_code == 77
    assert "publishing needs a token" in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    _error(
        _api(hub, "POST", "/api/models/alice/anon/versions", json=_manifest_body(family)),
        401,
        "unauthorized",
    )
    _error(_api(hub, "GET", "/api/whoami"), 401, "unauthorized")
    assert hub.chunk_count() == before
    _error(_api(hub, "GET", "/api/models/alice/anon"), 404, "not_found")


def test_revoked_and_expired_tokens_are_refused(hub: HubFixture, family) -> None:
    from provdb.hub import Hub

    accounts = Hub.open(hub.root).accounts
    revoked = accounts.create_token("alice", "write")
    accounts.revoke_token(revoked["id"])
    expired = accounts.create_token("alice", "write", expires_days=0)
    for token in (revoked["token"], expired["token"], "dlvh_" + "x" * 49, "not-a-token"):
        r = requests.get(hub.url + "/api/whoami", headers={"Authorization": f"Bearer {token}"})
        _error(r, 401, "unauthorized")
    before = hub.chunk_count()
    result = dlv(
        "publish",
        family.base,
        "alice/revoked",
        repo=family.root,
        hub=hub,
        ok=False,
        env={"DLV_HUB_TOKEN": revoked["token"], "DLV_HUB_URL": hub.url},
    )
    assert result.exit_code == 77
    assert "revoked" in result.stderr
    assert hub.chunk_count() == before
    # the CLI revokes by id as well, and lists tokens without their secret
    fresh = accounts.create_token("bob", "read")
    dlv("hub", "--hub", str(hub.root), "token", "revoke", fresh["id"])
    listed = json.loads(dlv("hub", "--hub", str(hub.root), "token", "list", "bob", "--json").stdout)
    assert all(fresh["token"] not in json.dumps(t) for t in listed)
    assert [t["revoked_at"] is not None for t in listed if t["id"] == fresh["id"]] == [True]


def test_read_token_cannot_write(hub: HubFixture, family) -> None:
    before = hub.chunk_count()
    result = dlv(
        "publish", family.base, "alice/ro", repo=family.root, hub=hub, token="alice-read", ok=False
    )
    assert result.exit_code == 77
    assert "read-only" in result.stderr
    with Repository.open(family.root) as repo:
        digest = repo.archive.snapshot_chunks(f"{family.base}/0")[0]
        data = repo.archive.get_chunk(digest)
    body = b"".join(frame([(digest, data)]))
    _error(
        _api(hub, "POST", "/api/models/alice/ro/chunks", "alice-read", data=body), 403, "forbidden"
    )
    assert hub.chunk_count() == before


def test_someone_elses_namespace_is_refused_org_members_may_publish(
    hub: HubFixture, family
) -> None:
    before = hub.chunk_count()
    result = dlv(
        "publish", family.base, "alice/stolen", repo=family.root, hub=hub, token="bob", ok=False
    )
    assert result.exit_code == 77
    assert "may not publish into alice/" in result.stderr
    _error(
        _api(hub, "POST", "/api/models/team/x/have", "bob", json={"digests": []}), 403, "forbidden"
    )
    assert hub.chunk_count() == before
    out = out_json(
        dlv(
            "publish",
            family.base,
            "team/shared",
            "--json",
            repo=family.root,
            hub=hub,
            token="alice",
        )
    )
    assert out["created"]
    # a version lives in one namespace
    again = dlv(
        "publish",
        family.base,
        "alice/elsewhere",
        repo=family.root,
        hub=hub,
        token="alice",
        ok=False,
    )
    assert again.exit_code == 77
    assert "already published as team/shared" in again.stderr


def test_private_models_are_invisible_to_others(hub: HubFixture, family) -> None:
    dlv(
        "publish",
        family.finetune,
        "alice/secret",
        "--private",
        repo=family.root,
        hub=hub,
        token="alice",
    )
    assert _api(hub, "GET", "/api/models/alice/secret", "alice").ok
    for who in (None, "bob"):
        _error(_api(hub, "GET", "/api/models/alice/secret", who), 404, "not_found")
        _error(_api(hub, "GET", "/api/models/alice/secret/versions/latest", who), 404, "not_found")
        found = _api(hub, "GET", "/api/models", who, params={"q": "secret"}).json()
        assert found["total"] == 0
    # bob writing there learns nothing either
    _error(
        _api(hub, "POST", "/api/models/alice/secret/have", "bob", json={"digests": []}),
        404,
        "not_found",
    )
    mine = _api(hub, "GET", "/api/models", "alice", params={"q": "secret"}).json()
    assert [r["id"] for r in mine["results"]] == [family.finetune]
    # the private fine-tune's base (published nowhere) is only a provenance record
    pulled = _api(hub, "GET", "/api/models/alice/secret/versions/latest", "alice").json()
    assert pulled["lineage"]["versions"][family.base]["repo"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/api/models/alice/a..b",
        "/api/models/alice/%2e%2e",
        "/api/models/al%00ice/x",
        "/api/models/alice/x%0Ay",
        "/api/models/alice/x%2Fy",
        "/api/models/alice/" + "x" * 97,
        "/api/models/" + "a" * 65 + "/x",
        "/api/models/alice/x.git",
    ],
)
def test_bad_names_are_refused(hub: HubFixture, path: str) -> None:
    for method, suffix, body in (("GET", "", None), ("POST", "/have", {"digests": []})):
        r = _api(hub, method, path + suffix, "alice", json=body)
        assert r.status_code in (400, 404), r.text
        assert r.json()["error"]["code"] in ("invalid_input", "not_found")
    r = _api(hub, "POST", path + "/have", "alice", json={"digests": []})
    if "%2F" not in path:  # an encoded '/' is a path separator to WSGI: no such route
        _error(r, 400, "invalid_input")


def test_bad_names_from_the_cli(hub: HubFixture, family) -> None:
    for target in ("alice/..", "alice/a/b", "alice/x\x01", "../etc"):
        result = dlv(
            "publish", family.base, target, repo=family.root, hub=hub, token="alice", ok=False
        )
        assert result.exit_code == 1
        assert "error:" in result.stderr


def test_upload_over_the_limit_gets_413(hub: HubFixture) -> None:
    body = b"\0" * (MAX_UPLOAD + 1)
    r = _api(hub, "POST", "/api/models/alice/big/chunks", "alice", data=body)
    msg = _error(r, 413, "too_large")
    assert str(MAX_UPLOAD) in msg


def test_a_chunk_that_does_not_match_its_digest_is_refused(hub: HubFixture, tmp_path: Path):
    family = make_family(tmp_path / "fresh", seed=1234)  # chunks no other test sent
    with Repository.open(family.root) as repo:
        digests = repo.archive.snapshot_chunks(f"{family.base}/0")
        good = repo.archive.get_chunk(digests[0])
    bad = bytearray(good)
    bad[-1] ^= 1
    before = hub.chunk_count()
    for body in (
        frame([(digests[1], good)]),  # someone else's bytes
        frame([(digests[0], bytes(bad))]),  # flipped bit
        frame([(digests[0], good), (digests[1], bytes(bad))]),  # one bad in a batch
    ):
        r = _api(hub, "POST", "/api/models/alice/digests/chunks", "alice", data=b"".join(body))
        assert "do not match the digest" in _error(r, 400, "invalid_input")
    _error(
        _api(hub, "POST", "/api/models/alice/digests/chunks", "alice", data=b"short"),
        400,
        "invalid_input",
    )
    assert hub.chunk_count() == before
    # a manifest whose chunks never arrived is refused, nothing becomes visible
    r = _api(
        hub, "POST", "/api/models/alice/digests/versions", "alice", json=_manifest_body(family)
    )
    assert "not on the hub" in _error(r, 409, "conflict")
    _error(_api(hub, "GET", "/api/models/alice/digests", "alice"), 404, "not_found")


def test_concurrent_publishes_of_the_same_base_store_one_copy(hub: HubFixture, tmp_path: Path):
    a = make_family(tmp_path / "a", seed=7)
    b = make_family(tmp_path / "b", seed=7)  # the same weights, other version ids
    env = {"DLV_HUB_URL": hub.url, "DLV_HUB_TOKEN": hub.tokens["alice"]}
    with Repository.open(a.root) as repo:
        needed = repo.archive.snapshot_chunks(f"{a.base}/0")
    lacking = len(hub.missing(needed))
    before = hub.chunk_count()
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda fam: dlv_process(
                    "publish", fam.base, "alice/concurrent", "--json", cwd=fam.root, env=env
                ),
                (a, b),
            )
        )
    for run in runs:
        assert run.returncode == 0, run.stderr
    sent = [json.loads(r.stdout) for r in runs]
    assert all(s["created"] for s in sent)
    assert lacking > 0
    assert hub.missing(needed) == []
    assert hub.chunk_count() - before == lacking  # one copy of the shared chunks
    versions = _api(hub, "GET", "/api/models/alice/concurrent", "alice").json()["versions"]
    assert {v["id"] for v in versions} == {a.base, b.base}


def test_killed_publish_resumes_without_duplicates(hub: HubFixture, family) -> None:
    env = {
        "DLV_HUB_URL": hub.url,
        "DLV_HUB_TOKEN": hub.tokens["alice"],
        "DLV_HUB_BATCH_BYTES": str(64 << 10),  # many small batches
        "_DLV_HUB_KILL_AFTER_BATCHES": "2",  # SIGKILL the client after two of them
    }
    before = hub.chunk_count()
    killed = dlv_process(
        "publish", family.finetune, "alice/resume", "--json", cwd=family.root, env=env
    )
    assert killed.returncode == -9, killed.stderr
    partial = hub.chunk_count() - before
    assert partial > 0
    _error(_api(hub, "GET", "/api/models/alice/resume", "alice"), 404, "not_found")
    env.pop("_DLV_HUB_KILL_AFTER_BATCHES")
    done = dlv_process(
        "publish", family.finetune, "alice/resume", "--json", cwd=family.root, env=env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["created"]
    assert out["chunks"]["skipped"] >= partial
    assert out["chunks"]["sent"] + out["chunks"]["skipped"] == out["chunks"]["total"]
    assert hub.chunk_count() - before == out["chunks"]["sent"] + partial  # nothing twice
    again = dlv_process(
        "publish", family.finetune, "alice/resume", "--json", cwd=family.root, env=env
    )
    assert json.loads(again.stdout)["created"] is False


def test_restart_loses_nothing(hub: HubFixture, family, tmp_path: Path) -> None:
    dlv("publish", family.finetune, "alice/durable", repo=family.root, hub=hub, token="alice")
    before = _api(hub, "GET", "/api/models/alice/durable", "alice").json()
    hub.server.restart()
    assert _api(hub, "GET", "/api/models/alice/durable", "alice").json() == before
    local = tmp_path / "pulled"
    dlv("init", str(local))
    out = out_json(dlv("pull", "alice/durable", "--json", repo=local, hub=hub, token="alice"))
    with Repository.open(local) as repo:
        assert same(repo.weights(out["local_id"]), family.tuned)


def test_killed_pull_resumes_and_is_bit_exact(hub: HubFixture, family, tmp_path: Path) -> None:
    env = {"DLV_HUB_URL": hub.url, "DLV_HUB_TOKEN": hub.tokens["alice"]}
    dlv("publish", family.finetune, "alice/pull-resume", repo=family.root, hub=hub, token="alice")
    dst = tmp_path / "dst"
    Repository.init(dst).close()
    small = {**env, "DLV_HUB_PULL_BATCH": "1", "DLV_HUB_PULL_STORE_BYTES": "1"}
    killed = dlv_process(
        "pull", "alice/pull-resume", "--json", cwd=dst,
        env={**small, "_DLV_HUB_KILL_AFTER_BATCHES": "2"},  # SIGKILL after two stored chunks
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    done = dlv_process("pull", "alice/pull-resume", "--json", cwd=dst, env=small)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["chunks"]["skipped"] == 2  # what the killed pull stored stays
    assert out["chunks"]["received"] == out["chunks"]["total"] - 2
    with Repository.open(dst) as repo:
        assert same(repo.weights(out["local_id"]), family.tuned)
