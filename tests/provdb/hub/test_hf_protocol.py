"""The real ``huggingface_hub`` client against the session's gunicorn hub: downloads, the
cache, resumes, uploads, private models, and ``planes=k``."""

from __future__ import annotations

import os
import tempfile

# read when huggingface_hub is imported: no Xet, no telemetry, and no token or cache of the
# machine's user (a stored hf_ token would be sent to our hub and refused)
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="dlv-hf-home-")
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_ENDPOINT", None)
os.environ.pop("HF_HUB_OFFLINE", None)

import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from hubkit import Family, HubFixture, dlv, make_family, mlp, mlp_weights
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.numpy import load, save_file

from provdb.hub.hf import commit_id
from provdb.repository import Repository


@dataclass
class Published:
    hub: HubFixture
    family: Family
    checkout: bytes


@pytest.fixture(scope="module")
def published(hub: HubFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """``alice/hf-mlp`` (base), ``alice/hf-mlp-ft`` (its fine-tune) and the private
    ``alice/hf-hidden``, published with ``dlv publish``; the fine-tune's ``dlv checkout``."""
    root = tmp_path_factory.mktemp("hf")
    family = make_family(root / "local", seed=9101)
    with Repository.open(family.root) as repo:  # a version lives in one hub repository
        hidden = repo.commit("hidden", mlp(), mlp_weights(9102), parent=family.base).version.id
    for ref, target, extra in (
        (family.base, "alice/hf-mlp", ()),
        (family.finetune, "alice/hf-mlp-ft", ()),
        (hidden, "alice/hf-hidden", ("--private",)),
    ):
        dlv("publish", ref, target, *extra, repo=family.root, hub=hub, token="alice")
    out = root / "checkout.safetensors"
    dlv("checkout", family.finetune, "-o", str(out), repo=family.root)
    return Published(hub, family, out.read_bytes())


def _log_lines(hub: HubFixture, pattern: str) -> list[str]:
    time.sleep(0.2)  # gunicorn writes each access line when the response is done
    return [line for line in hub.server.log.read_text().splitlines() if re.search(pattern, line)]


def test_hf_hub_download_is_dlv_checkout(published: Published, tmp_path: Path) -> None:
    url = published.hub.url
    path = hf_hub_download("alice/hf-mlp-ft", "model.safetensors", endpoint=url, cache_dir=tmp_path)
    data = Path(path).read_bytes()
    assert data == published.checkout
    head = requests.head(f"{url}/alice/hf-mlp-ft/resolve/main/model.safetensors", timeout=30)
    assert head.status_code == 200
    assert head.headers["ETag"].strip('"') == hashlib.sha256(data).hexdigest()
    info = HfApi(endpoint=url).model_info("alice/hf-mlp-ft")
    assert head.headers["X-Repo-Commit"] == info.sha
    assert re.fullmatch(r"[0-9a-f]{40}", info.sha)
    assert Path(path).parent.name == info.sha  # the client's snapshots/<sha>/ folder
    assert "X-Xet-Hash" not in head.headers


def test_second_download_comes_from_the_client_cache(published: Published, tmp_path: Path) -> None:
    url, repo = published.hub.url, "alice/hf-mlp"
    first = hf_hub_download(repo, "model.safetensors", endpoint=url, cache_dir=tmp_path)
    gets = _log_lines(published.hub, r'"GET /alice/hf-mlp/resolve/')
    again = hf_hub_download(repo, "model.safetensors", endpoint=url, cache_dir=tmp_path)
    sha = HfApi(endpoint=url).model_info(repo).sha
    pinned = hf_hub_download(
        repo, "model.safetensors", revision=sha, endpoint=url, cache_dir=tmp_path
    )
    assert first == again == pinned
    assert _log_lines(published.hub, r'"GET /alice/hf-mlp/resolve/') == gets  # no new GET


def test_snapshot_download_model_info_and_tree(published: Published, tmp_path: Path) -> None:
    url = published.hub.url
    folder = Path(snapshot_download("alice/hf-mlp-ft", endpoint=url, cache_dir=tmp_path))
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["README.md", "config.json", "model.safetensors", "network.json"]
    assert (folder / "model.safetensors").read_bytes() == published.checkout
    assert json.loads((folder / "config.json").read_text()) == {"lr": 0.01}
    card = (folder / "README.md").read_text()
    assert "base_model: alice/hf-mlp\n" in card
    assert "| accuracy | 0.9 | 1 |" in card
    assert json.loads((folder / "network.json").read_text())["layers"]

    info = HfApi(endpoint=url).model_info("alice/hf-mlp-ft")
    assert info.id == "alice/hf-mlp-ft"
    assert info.card_data["base_model"] == "alice/hf-mlp"
    assert "base_model:alice/hf-mlp" in info.tags
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["model.safetensors"] == len(published.checkout)
    assert info.safetensors.total == sum(w.size for w in published.family.tuned.values())

    tree = f"{url}/api/models/alice/hf-mlp-ft/tree/main"
    page = requests.get(tree, params={"limit": 3}, timeout=30)
    assert len(page.json()) == 3
    assert page.headers["X-Repo-Commit"] == info.sha
    rest = requests.get(page.links["next"]["url"], timeout=30)
    assert [e["path"] for e in page.json() + rest.json()] == files
    assert "next" not in rest.links


def test_list_models_search(published: Published) -> None:
    api = HfApi(endpoint=published.hub.url)
    found = [m.id for m in api.list_models(search="hf-mlp")]
    assert sorted(found) == ["alice/hf-mlp", "alice/hf-mlp-ft"]
    assert [m.id for m in api.list_models(search="hf-mlp-f")] == ["alice/hf-mlp-ft"]
    paged = requests.get(f"{published.hub.url}/api/models?search=hf-mlp&limit=1", timeout=30)
    assert len(paged.json()) == 1
    assert 'rel="next"' in paged.headers["Link"]


def test_resumed_download_uses_range(published: Published, tmp_path: Path) -> None:
    url = published.hub.url
    resolve = f"{url}/alice/hf-mlp-ft/resolve/main/model.safetensors"
    part = requests.get(resolve, headers={"Range": "bytes=1000-"}, timeout=30)
    assert part.status_code == 206
    assert part.content == published.checkout[1000:]
    size = len(published.checkout)
    assert part.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    # resuming where a dropped connection stopped: the pieces join to the whole file
    head = requests.get(resolve, headers={"Range": "bytes=0-999"}, timeout=30)
    assert head.status_code == 206
    assert head.content + part.content == published.checkout
    beyond = requests.get(resolve, headers={"Range": f"bytes={size}-"}, timeout=30)
    assert beyond.status_code == 416


def test_errors_carry_hf_codes_and_the_commit(published: Published, tmp_path: Path) -> None:
    url = published.hub.url
    missing = requests.head(f"{url}/alice/hf-mlp/resolve/main/nope.bin", timeout=30)
    sha = HfApi(endpoint=url).model_info("alice/hf-mlp").sha
    assert missing.status_code == 404
    assert missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == sha
    body = requests.get(f"{url}/alice/hf-mlp/resolve/main/nope.bin", timeout=30).json()
    assert body["error"]["code"] == "not_found"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/hf-mlp", "nope.bin", endpoint=url, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            "alice/hf-mlp", "config.json", revision="f" * 40, endpoint=url, cache_dir=tmp_path
        )
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=url).model_info("alice/absent")


def test_private_model_needs_the_token(published: Published, tmp_path: Path) -> None:
    url, hub = published.hub.url, published.hub
    anon = requests.head(f"{url}/alice/hf-hidden/resolve/main/model.safetensors", timeout=30)
    assert anon.status_code == 401
    assert anon.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/hf-hidden", "config.json", endpoint=url, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):  # bob's token: 404, exactly like absent
        hf_hub_download(
            "alice/hf-hidden",
            "config.json",
            endpoint=url,
            cache_dir=tmp_path,
            token=hub.tokens["bob"],
        )
    assert "alice/hf-hidden" not in [m.id for m in HfApi(endpoint=url).list_models(search="hf-")]
    token = hub.tokens["alice-read"]
    path = hf_hub_download(
        "alice/hf-hidden", "model.safetensors", endpoint=url, cache_dir=tmp_path, token=token
    )
    assert load(Path(path).read_bytes()).keys() == published.family.weights.keys()
    mine = HfApi(endpoint=url, token=token).list_models(search="hf-hidden")
    assert [m.id for m in mine] == ["alice/hf-hidden"]

    # knowing the private file's sha256 is not having it: bob must upload the bytes
    data = Path(path).read_bytes()
    oid = hashlib.sha256(data).hexdigest()
    objects = [{"oid": oid, "size": len(data)}]
    batch = requests.post(
        f"{url}/bob/copy.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": objects},
        headers=hub.headers("bob"),
        timeout=30,
    )
    assert "actions" in batch.json()["objects"][0]
    line = {"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": oid}}
    claim = requests.post(
        f"{url}/api/models/bob/copy/commit/main",
        data=json.dumps(line) + "\n",
        headers={**hub.headers("bob"), "Content-Type": "application/x-ndjson"},
        timeout=30,
    )
    assert claim.status_code == 409

    bad = requests.get(
        f"{url}/api/models/alice/hf-mlp/revision/main",
        headers={"Authorization": "Bearer dlvh_not-a-token"},
        timeout=30,
    )
    assert bad.status_code == 401
    assert bad.headers["X-Error-Message"] == "Invalid credentials in Authorization header"


def test_upload_folder_twice_sends_the_bytes_once(published: Published, tmp_path: Path) -> None:
    hub, url = published.hub, published.hub.url
    api = HfApi(endpoint=url, token=hub.tokens["alice"])
    assert api.whoami()["name"] == "alice"
    repo_url = api.create_repo("alice/hf-upload", exist_ok=True)
    assert api.create_repo("alice/hf-upload", exist_ok=True) == repo_url  # the 409 path
    weights = {k: v.copy() for k, v in mlp_weights(9103).items()}
    weights["fc3.weight"] += np.float32(0.25)
    folder = tmp_path / "model"
    folder.mkdir()
    save_file(weights, str(folder / "model.safetensors"))  # the safetensors library's layout
    (folder / "config.json").write_text(json.dumps({"lr": 0.003, "epochs": 2}))
    (folder / "README.md").write_text("---\nbase_model: alice/hf-mlp\n---\n# tuned\n")

    puts = r'"PUT /api/lfs/alice/hf-upload/'
    first = api.upload_folder(repo_id="alice/hf-upload", folder_path=folder)
    assert len(_log_lines(hub, puts)) == 1
    second = api.upload_folder(repo_id="alice/hf-upload", folder_path=folder)
    assert len(_log_lines(hub, puts)) == 1  # the batch answer had no actions: no bytes sent
    assert second.oid == first.oid

    got = hf_hub_download("alice/hf-upload", "model.safetensors", endpoint=url, cache_dir=tmp_path)
    assert Path(got).read_bytes() == (folder / "model.safetensors").read_bytes()
    staged = [p for p in (hub.root / "hf" / "lfs").rglob("*") if p.is_file()]
    assert staged == []  # the bytes live in the archive only
    info = api.model_info("alice/hf-upload")
    assert info.sha == first.oid
    assert info.card_data["base_model"] == "alice/hf-mlp"

    # a hub version like any other: lineage to the base, hyper-parameters from config.json
    version = requests.get(f"{url}/api/models/alice/hf-upload/versions/latest", timeout=30).json()
    assert commit_id(version["version"]["id"]) == first.oid
    assert version["params"] == {"lr": 0.003, "epochs": 2}
    bases = {e["base"]: e["op"] for e in version["lineage"]["edges"]}
    base = requests.get(f"{url}/api/models/alice/hf-mlp/versions/latest", timeout=30).json()
    assert bases == {base["version"]["id"]: "finetune"}

    # a changed file makes a new revision; an unchanged one is not re-sent
    (folder / "config.json").write_text(json.dumps({"lr": 0.001, "epochs": 2}))
    third = api.upload_folder(repo_id="alice/hf-upload", folder_path=folder)
    assert third.oid != first.oid
    assert len(_log_lines(hub, puts)) == 1


def test_upload_refused_without_write_token(published: Published, tmp_path: Path) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    (tmp_path / "model.safetensors").write_bytes(b"x" * 16)
    api = HfApi(endpoint=published.hub.url, token=published.hub.tokens["alice-read"])
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_folder(repo_id="alice/hf-mlp", folder_path=tmp_path)
    assert err.value.response.status_code == 403
    put = requests.put(
        f"{published.hub.url}/api/lfs/alice/hf-mlp/{'a' * 64}", data=b"x", timeout=30
    )
    assert put.status_code == 401  # an upload URL must carry the batch answer's signature


def test_planes_give_an_approximation_reading_fewer_bytes(
    published: Published, tmp_path: Path
) -> None:
    resolve = f"{published.hub.url}/alice/hf-mlp-ft/resolve/main/model.safetensors"
    full = requests.get(resolve, timeout=30)
    exact = load(full.content)
    read = {0: int(full.headers["X-Dlv-Bytes-Read"])}
    errors = {}
    for k in (1, 2):
        got = requests.get(resolve, params={"planes": k}, timeout=30)
        assert got.status_code == 200
        assert got.headers["X-Dlv-Planes"] == str(k)
        read[k] = int(got.headers["X-Dlv-Bytes-Read"])
        approx = load(got.content)
        assert approx.keys() == exact.keys()
        w, a = exact["fc1.weight"], approx["fc1.weight"]
        assert w.tobytes() != a.tobytes()
        assert np.array_equal(np.sign(a), np.sign(w))
        assert np.all(np.abs(a) <= np.abs(w))  # low bytes zeroed: truncated toward zero
        errors[k] = float(np.max(np.abs(a - w) / np.maximum(np.abs(w), 1e-30)))
    assert read[1] < read[2] < read[0]
    assert errors[2] < errors[1] < 1.0
    assert errors[2] < 2**-7
    again = requests.get(resolve, params={"planes": 1}, timeout=30)
    assert again.headers["ETag"] != full.headers["ETag"]
    assert requests.get(resolve, params={"planes": 0}, timeout=30).status_code == 400

    # the same through our own client: dlv pull --planes k -o FILE
    out = tmp_path / "approx.safetensors"
    pulled = dlv(
        "pull", "alice/hf-mlp-ft", "--planes", "1", "-o", str(out), "--json",
        hub=published.hub, token="alice",
    )  # fmt: skip
    report = json.loads(pulled.stdout)
    assert report["bytes_read"] == read[1]
    assert out.read_bytes() == again.content
