"""Weights in S3 (a real SeaweedFS, session fixture ``seaweedfs``): a local repository made with
``dlv init --archive s3://…``, and a hub made with ``dlv hub init --store s3://…`` that publishes
and pulls bit-exactly and survives the object store going away mid-publish."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubkit import HubFixture, dlv, make_family, mlp, mlp_weights, out_json, same
from safetensors.numpy import load_file

from provdb.errors import ProvDBError
from provdb.hub import Hub, transfer
from provdb.hub import client as hub_client
from provdb.repository import Repository
from provdb.server.testing import HubServer
from storage import Archive, S3Store


@pytest.fixture
def aws_env(seaweedfs: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables for the session's SeaweedFS, set in this process too."""
    for key, value in seaweedfs.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the URLs below name the endpoint themselves
    return {k: v for k, v in seaweedfs.env.items() if k != "AWS_ENDPOINT_URL"}


def test_local_repository_on_s3(
    tmp_path: Path, seaweedfs: Any, s3_bucket: str, aws_env: dict[str, str]
) -> None:
    url = f"s3://{s3_bucket}/repo?endpoint={seaweedfs.endpoint}"
    info = out_json(dlv("init", str(tmp_path / "r"), "--archive", url, "--json"))
    assert info["archive"] == url
    config = json.loads((tmp_path / "r" / ".dlv" / "config.json").read_text())
    assert config["archive"] == url  # later commands reopen it from here
    assert not (tmp_path / "r" / ".dlv" / "archive").exists()

    w = mlp_weights(3)
    tuned = {**w, "fc3.weight": w["fc3.weight"] * 2}
    with Repository.open(tmp_path / "r") as repo:
        base = repo.commit("m", mlp(), w).version.id
        repo.commit("m-ft", mlp(), tuned, parent=base, op="finetune")
    out = tmp_path / "out.safetensors"
    dlv("checkout", base, "-o", str(out), repo=tmp_path / "r")
    assert same(load_file(out), w)
    dlv("checkout", "m-ft", "-o", str(tmp_path / "ft.safetensors"), repo=tmp_path / "r")
    assert same(load_file(tmp_path / "ft.safetensors"), tuned)
    with Archive.open(url, readonly=True) as ar:  # the weights really are in the bucket
        assert len(ar.list_snapshots()) == 2
    with Repository.open(tmp_path / "r") as repo:
        assert repo.gc().snapshots == 0  # the sweep of the S3 objects runs too
    dlv("checkout", base, "-o", str(out), "--force", repo=tmp_path / "r")
    assert same(load_file(out), w)
    # a second repository on the same prefix is refused: gc would drop the first one's weights
    again = dlv("init", str(tmp_path / "r2"), "--archive", url, ok=False)
    assert again.exit_code == 1
    assert "already holds an archive" in again.output


def test_init_refuses_an_unusable_store(tmp_path: Path, aws_env: dict[str, str]) -> None:
    bad = "s3://some-bucket/r?endpoint=http://127.0.0.1:1"
    result = dlv("init", str(tmp_path / "r"), "--archive", bad, ok=False)
    assert result.exit_code == 69  # unavailable
    assert "object store unreachable at http://127.0.0.1:1" in result.output
    assert not (tmp_path / "r" / ".dlv" / "config.json").exists()
    typo = dlv("init", str(tmp_path / "r"), "--archive", "s3://b/p?endpont=x", ok=False)
    assert "unknown S3 URL option 'endpont'" in typo.output


@pytest.fixture(scope="module")
def s3_hub(seaweedfs: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubFixture]:
    """One gunicorn hub (2 workers) for this module whose chunks live in a bucket of its own
    on the session's SeaweedFS; token ``alice``."""
    aws_env = {k: v for k, v in seaweedfs.env.items() if k != "AWS_ENDPOINT_URL"}
    store = f"s3://{seaweedfs.create_bucket('hub-s3')}/hub?endpoint={seaweedfs.endpoint}"
    root = tmp_path_factory.mktemp("s3hub") / "hub"
    init = dlv("hub", "init", str(root), "--store", store, env=aws_env)
    assert "chunks in s3://" in init.stdout
    h = Hub.open(root)
    h.accounts.add_user("alice")
    tokens = {"alice": h.accounts.create_token("alice", "write")["token"]}
    h.close()
    server = HubServer(root, workers=2, env=aws_env).start()
    try:
        yield HubFixture(root, server, tokens)
    finally:
        server.stop()


def _chunks(root: Path, ref: str) -> list[str]:
    """Every chunk digest version ``ref`` of the repository at ``root`` needs."""
    with Repository.open(root) as repo:
        return transfer.manifest_chunks(transfer.version_manifest(repo, ref))


def _hub_store(hub: HubFixture) -> S3Store:
    url = json.loads((hub.root / ".dlv" / "config.json").read_text())["archive"]
    assert url.startswith("s3://")
    return S3Store.from_url(url, read_only=True)


def test_hub_on_s3_publishes_and_pulls_bit_exact(
    tmp_path: Path, s3_hub: HubFixture, aws_env: dict[str, str]
) -> None:
    fam = make_family(tmp_path / "work")
    sent = out_json(dlv("publish", fam.finetune, "alice/mlp", "--json", repo=fam.root,
                        hub=s3_hub, token="alice"))  # fmt: skip
    assert sent["chunks"]["sent"] > 0
    with Archive(_hub_store(s3_hub)) as ar:  # the chunks are objects in the bucket
        assert ar.missing_chunks(_chunks(fam.root, fam.finetune)) == []

    third = tmp_path / "third"
    dlv("init", str(third))
    pulled = out_json(dlv("pull", "alice/mlp", "--json", repo=third, hub=s3_hub, token="alice"))
    assert pulled["chunks"]["received"] == sent["chunks"]["total"]
    dlv("checkout", "alice/mlp", "-o", str(third / "out.safetensors"), repo=third)
    assert same(load_file(third / "out.safetensors"), fam.tuned)


def test_object_store_down_mid_publish(
    tmp_path: Path,
    s3_hub: HubFixture,
    seaweedfs: Any,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fam = make_family(tmp_path / "work", seed=5)
    monkeypatch.setenv("DLV_HUB_BATCH_BYTES", str(200_000))  # several upload batches
    client = hub_client.HubClient(s3_hub.url, s3_hub.tokens["alice"])
    batches: list[int] = []

    def stop_after_first_batch(stage: str, chunks: int, nbytes: int) -> None:
        batches.append(chunks)
        if len(batches) == 1:
            seaweedfs.stop()

    try:
        with Repository.open(fam.root) as repo:
            with pytest.raises(ProvDBError) as failed:
                hub_client.publish(
                    client, repo, fam.finetune, "alice", "big", progress=stop_after_first_batch
                )
            assert failed.value.code == "unavailable"
            message = str(failed.value)
            assert "\n" not in message
            assert f"object store unreachable at {seaweedfs.endpoint}" in message
            # while the store is down, nothing of the version is visible
            with pytest.raises(ProvDBError) as absent:
                client.model("alice", "big")
            assert absent.value.code == "not_found"
            digests = _chunks(fam.root, fam.finetune)

            seaweedfs.start()
            with Archive(_hub_store(s3_hub)) as ar:
                missing = ar.missing_chunks(digests)
            assert 0 < len(missing) < len(digests)  # the first batch is in, the rest is not
            assert client.have("alice", "big", digests)["missing"] == missing

            done = hub_client.publish(client, repo, fam.finetune, "alice", "big")  # resumes
        assert done.created
        assert done.chunks_skipped == len(digests) - len(missing)
        assert done.chunks_moved == len(missing)
    finally:
        if not seaweedfs.running:
            seaweedfs.start()
        client.close()
    third = tmp_path / "third"
    dlv("init", str(third))
    dlv("pull", "alice/big", repo=third, hub=s3_hub, token="alice")
    dlv("checkout", "alice/big", "-o", str(third / "out.safetensors"), repo=third)
    assert same(load_file(third / "out.safetensors"), fam.tuned)
