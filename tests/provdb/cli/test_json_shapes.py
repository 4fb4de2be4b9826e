"""Every ``--json`` output keeps its keys: scripts parse them, and the server returns the same
``to_dict()`` shapes. These pins were taken from the outputs before the library's results
became typed; a key may be added here only together with its docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.numpy import save_file

from provdb.models import zoo
from provdb.models.builder import build_module, module_tensors

PINS: dict[str, Any] = {
    "init": ["archive", "backend", "graph", "id", "models", "root", "versions"],
    "commit": ["id", "name", "new_bytes", "raw_bytes", "snapshot"],
    "list": [["author", "created_at", "id", "message", "name", "parents", "run"]],
    "info": ["archive", "backend", "graph", "id", "models", "root", "versions"],
    "lineage": ["depth", "edges", "root", "versions"],
    "lineage.edges": ["at", "base", "derived", "op", "query"],
    "lineage.versions": ["created_at", "name"],
    "desc": [
        "author", "children", "created_at", "edges", "files", "framework", "id", "layers",
        "message", "metrics", "name", "network_inferred", "params", "parents", "run",
        "snapshots",
    ],
    "desc.layers": ["attrs", "mode", "name", "type"],
    "desc.snapshots": [
        "chain_depth", "float_scheme", "id", "iteration", "latest", "raw", "read_bytes",
        "referenced", "stored",
    ],
    "desc.children": ["id", "op"],
    "diff": ["edges", "layers", "metrics", "params", "versions", "weights"],
    "diff.rows": ["name", "status", "values"],
    "stats": [
        "archive_disk_bytes", "chunk_bytes", "chunks", "graph_disk_bytes", "per_plane",
        "per_snapshot", "ratio", "raw_bytes", "snapshots", "stored_bytes", "tensors",
        "unique_raw_bytes", "versions",
    ],
    "stats.versions": ["float_scheme", "id", "name", "raw_bytes", "snapshots", "unique_bytes"],
    "stats.per_snapshot": ["chain_depth", "id", "read_bytes", "version"],
    "archive": [
        "algorithm", "alpha", "budget_violations", "gc", "planned_storage_after",
        "planned_storage_before", "rewritten", "scheme", "stats",
    ],
    "eval": ["accuracy", "loss", "n", "top1", "top5"],
    "gc": [
        "archive_bytes_after", "archive_bytes_before", "bytes", "chunks", "graph_bytes_after",
        "graph_bytes_before", "snapshots", "tensors",
    ],
    # + cypher, params: --cypher; total, truncated: docs/dql.md "Paging"
    "query": ["columns", "created", "dry_run", "kind", "rows", "total", "truncated"],
}  # fmt: skip


def keys(data: Any) -> list[str]:
    return sorted(data)


@pytest.fixture
def repo_dir(dlv, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    args = ["init", str(tmp_path), "--json"]
    if backend == "neo4j":
        args += ["--graph", request.getfixturevalue("neo4j_graph_uri")]
    assert keys(json.loads(dlv(*args).output)) == PINS["init"]
    return tmp_path


def test_every_json_output_keeps_its_keys(dlv, repo_dir: Path) -> None:
    net = zoo.digits_cnn()
    (repo_dir / "net.json").write_text(net.to_json())
    save_file(module_tensors(build_module(net)), str(repo_dir / "w.safetensors"))

    def js(*args: str) -> Any:
        return json.loads(dlv("--repo", str(repo_dir), *args, "--json").output)

    commit = js("commit", str(repo_dir / "w.safetensors"), "--name", "lenet",
                "--network", str(repo_dir / "net.json"), "--param", "lr=0.1")  # fmt: skip
    assert keys(commit) == PINS["commit"]
    dlv("--repo", str(repo_dir), "copy", "lenet", "--name", "lenet-ft")
    assert [keys(r) for r in js("list")] == PINS["list"] * 2
    assert keys(js("info")) == PINS["info"]

    lineage = js("lineage", "lenet-ft")
    assert keys(lineage) == PINS["lineage"]
    assert keys(lineage["edges"][0]) == PINS["lineage.edges"]
    assert all(keys(v) == PINS["lineage.versions"] for v in lineage["versions"].values())

    desc = js("desc", "lenet")
    assert keys(desc) == PINS["desc"]
    assert keys(desc["layers"][0]) == PINS["desc.layers"]
    assert keys(desc["snapshots"][0]) == PINS["desc.snapshots"]
    assert keys(desc["children"][0]) == PINS["desc.children"]

    diff = js("diff", "lenet", "lenet-ft")
    assert keys(diff) == PINS["diff"]
    assert keys(diff["edges"]) == ["added", "removed"]
    for section in ("layers", "params", "weights"):
        assert keys(diff[section][0]) == PINS["diff.rows"]

    stats = js("stats")
    assert keys(stats) == PINS["stats"]
    assert keys(stats["versions"][0]) == PINS["stats.versions"]
    assert keys(stats["per_snapshot"][0]) == PINS["stats.per_snapshot"]
    assert {c["version"] for c in stats["per_snapshot"]} == {v["id"] for v in stats["versions"]}
    assert keys(js("archive", "--budget", "2")) == PINS["archive"]
    assert keys(js("eval", "lenet", "--data", "builtin:digits")) == PINS["eval"]
    assert keys(js("gc", "--compact")) == PINS["gc"]
    assert keys(js("query", 'select m where m.name like "lenet%"')) == PINS["query"]
    shown = js("query", 'select m where m.name like "lenet%"', "--cypher")
    assert keys(shown) == sorted([*PINS["query"], "cypher", "params"])
