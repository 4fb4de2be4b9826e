"""The issue's "done when": hub init, a user and a token, `dlv serve` (gunicorn), then
login, publish, search, and in a third folder pull + checkout (bit-exact) + lineage — on
both graph backends, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from hubkit import dlv, make_family, out_json, same
from safetensors.numpy import load_file

from provdb.server.testing import free_port


def _serve(hub_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from provdb.cli import main; main()"]
    cmd += ["serve", str(hub_dir), "--port", str(port), "--workers", "2"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"dlv serve did not come up: {log.read_text()}")


def test_share_a_model_end_to_end(tmp_path: Path, backend: str, request: pytest.FixtureRequest):
    hub_dir = tmp_path / "hub"
    init = ["hub", "init", str(hub_dir)]
    if backend == "neo4j":
        init += ["--graph", request.getfixturevalue("neo4j_graph_uri")]
    assert f"({backend} graph)" in dlv(*init).stdout
    dlv("hub", "--hub", str(hub_dir), "user", "add", "alice")
    token = dlv("hub", "--hub", str(hub_dir), "token", "create", "alice", "--scope", "write")
    token = token.stdout.strip()
    assert token.startswith("dlvh_")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(hub_dir, port, tmp_path / "serve.log")
    try:
        env = {
            "DLV_CONFIG_DIR": str(tmp_path / "config"),
            "DLV_HUB_URL": None,
            "DLV_HUB_TOKEN": None,
        }
        # second folder: a model family, published
        fam = make_family(tmp_path / "work")
        assert "as alice (write)" in dlv("login", url, "--token", token, env=env).stdout
        creds = tmp_path / "config" / "credentials.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        sent_base = out_json(
            dlv("publish", fam.base, "alice/mlp", "--tag", "demo", "--json", repo=fam.root, env=env)
        )
        assert sent_base["created"]
        assert sent_base["chunks"]["skipped"] == 0
        sent_ft = out_json(
            dlv("publish", fam.finetune, "alice/mlp", "--json", repo=fam.root, env=env)
        )
        # only the changed layer's chunks travel: at most 1.1 x its raw bytes
        changed = fam.tuned["fc3.weight"].nbytes
        assert 0 < sent_ft["bytes"]["sent"] <= 1.1 * changed
        assert sent_ft["chunks"]["skipped"] > 0

        found = out_json(dlv("search", "mlp", "--json", env=env))
        assert {r["id"] for r in found["results"]} == {fam.base, fam.finetune}
        where = out_json(dlv("search", "--where", 'm.name = "mlp-ft"', "--json", env=env))
        assert [r["id"] for r in where["results"]] == [fam.finetune]
        assert "alice/mlp" in dlv("search", "--tag", "demo", env=env).stdout

        # third folder: pull, checkout, lineage
        third = tmp_path / "third"
        dlv("init", str(third))
        pulled = out_json(
            dlv("pull", f"alice/mlp@{fam.finetune[:10]}", "--json", repo=third, env=env)
        )
        assert pulled["id"] == fam.finetune
        assert pulled["chunks"]["received"] > 0
        dlv("checkout", "alice/mlp", "-o", str(third / "out.safetensors"), repo=third)
        assert same(load_file(third / "out.safetensors"), fam.tuned)
        lineage = out_json(dlv("lineage", "alice/mlp", "--json", repo=third))
        edges = {(e["derived"], e["base"], e["op"]) for e in lineage["edges"]}
        assert (pulled["local_id"], fam.finetune, "pull") in edges
        assert (fam.finetune, fam.base, "finetune") in edges
        tree = dlv("lineage", "alice/mlp", repo=third).stdout
        assert "pull" in tree
        assert "finetune" in tree

        # pulling the base afterwards needs no chunks: the fine-tune brought them
        again = out_json(dlv("pull", "alice/mlp@" + fam.base, "--json", repo=third, env=env))
        assert again["chunks"]["received"] == 0
        rows = json.loads(dlv("list", "--json", repo=third).stdout)
        assert {r["name"] for r in rows} >= {"alice/mlp", "mlp", "mlp-ft"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
