"""DQL execution (provdb.query) and ``dlv query`` on both graph backends.

The repository holds small AlexNet-like versions with real weights; the paper's four queries
(tests/dql/paper_queries.py) run verbatim with exact expected results.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from provdb.cli import cli
from provdb.cli.query import query
from provdb.errors import InvalidInput, QuerySyntaxError
from provdb.graph.base import Statement
from provdb.models import learner, zoo
from provdb.models.builder import build_module, module_tensors
from provdb.query import execute, save_query, saved_queries
from provdb.repository import Repository
from storage.codecs import CHUNK_FRAME_BYTES

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dql"))
from paper_queries import Q1, Q2, Q3, Q4  # noqa: E402

if "query" not in cli.commands:
    cli.add_command(query)

SMALL = {"channels": (2, 4, 4, 4, 4), "hidden": 16, "lrn": False}
#: name → pooling after conv1/3/5 (None: a ReLU, no pooling).
VERSIONS: dict[str, list[str | None]] = {
    "alexnet_v1": ["MAX", "MAX", "MAX"],
    "alexnet_v2": ["AVG", "AVG", "MAX"],
    "alexnet_v0": ["MAX", "MAX", "MAX"],  # backdated to 2015-06-01
    "alexnet-origin-a": ["MAX", "MAX", "MAX"],
    "alexnet-origin-b": [None, None, None],
    "alexnet-avgv1-a": ["AVG", "MAX", "AVG"],
    "alexnet-avgv1-c": ["MAX", "MAX", "MAX"],
    "alexnet-avgv2-a": ["AVG", "AVG", "AVG"],
    "lenet-max": ["MAX", "MAX", "MAX"],
}
CONV_TO_FC7 = [
    "conv1", "pool1", "conv2", "relu2", "conv3", "pool3", "conv4", "relu4", "conv5", "pool5",
    "flatten", "fc6", "relu6", "drop6", "fc7",
]  # fmt: skip


def _hold(repo: Repository):
    hold = getattr(repo.graph, "hold", None)
    return hold(write=True) if hold is not None else _null()


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def repo_dir(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A repository on the current backend holding the AlexNet-like :data:`VERSIONS`."""
    graph = request.getfixturevalue("neo4j_graph_uri") if backend == "neo4j" else None
    root = tmp_path / "repo"
    with Repository.init(root, graph=graph) as repo, _hold(repo):
        for i, (name, pools) in enumerate(VERSIONS.items()):
            net = zoo.alexnet(pools, **SMALL)
            torch.manual_seed(i)
            result = repo.commit(name, net, module_tensors(build_module(net)), author="ada")
            if name == "alexnet_v0":
                repo.graph.run_write(
                    [
                        Statement(
                            "MATCH (v:ModelVersion {id: $id}) SET v.created_at = $at",
                            {"id": result.version.id, "at": "2015-06-01T00:00:00+00:00"},
                        )
                    ]
                )
    return root


@pytest.fixture
def repo(repo_dir: Path) -> Iterator[Repository]:
    with Repository.open(repo_dir) as r:
        yield r


def names(result) -> list[str]:
    return sorted(row["name"] for row in result.rows)


def version_count(repo: Repository) -> int:
    return len(repo.list_versions())


def write_eval_files(folder: Path, iterations: int) -> None:
    """``path to config`` and two small digits data sets ``path1``/``path2`` (Q4, verbatim)."""
    config = {"iterations": iterations, "batch_size": 8, "eval_every": 0, "log_every": 50}
    (folder / "path to config").write_text(json.dumps(config))
    digits = learner.load_dataset("builtin:digits")
    for i, name in enumerate(("path1", "path2")):
        part = slice(i * 200, (i + 1) * 200)
        with open(folder / name, "wb") as fh:
            np.savez(
                fh,
                x_train=digits.x_train[part],
                y_train=digits.y_train[part],
                x_test=digits.x_test[:60],
                y_test=digits.y_test[:60],
            )


# -- the paper's queries, end to end -------------------------------------------------------


def test_paper_queries_end_to_end(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    # Query 1: SQL like ("_" is one character), the date, and MAX pooling after conv1/3/5.
    assert names(execute(repo, Q1)) == sorted(
        ["alexnet_v1", "alexnet_v2", "alexnet-origin-a", "alexnet-avgv1-a", "alexnet-avgv1-c"]
    )
    before = version_count(repo)

    # Query 2: dry run first (nothing committed), then for real.
    dry = execute(repo, Q2, dry_run=True)
    assert names(dry) == ["alexnet-origin-a-slice", "alexnet-origin-b-slice"]
    assert all(c.id is None for c in dry.created)
    assert version_count(repo) == before
    sliced = execute(repo, Q2)
    assert sorted(c.name for c in sliced.created) == [
        "alexnet-origin-a-slice",
        "alexnet-origin-b-slice",
    ]
    for created in sliced.created:
        check_slice(repo, created)
    assert version_count(repo) == before + 2

    # Query 3: relu1/relu5 only after the convs followed by AVG pooling, on avgv1 only.
    constructed = execute(repo, Q3)
    assert [(r["name"], r["added"]) for r in constructed.rows] == [
        ("alexnet-avgv1-a-construct", ["relu1", "relu5"])
    ]
    check_construct(repo, constructed.created[0])

    # Query 4 (verbatim): 3 base_lr × 3 conv lr × 2 data sets = 18 candidates of the construct.
    save_query(repo, "query3", Q3)
    write_eval_files(repo.root, iterations=104)
    monkeypatch.chdir(repo.root)
    evaluated = execute(repo, Q4)
    assert len(evaluated.rows) == 18
    assert {r["source"] for r in evaluated.rows} == {"alexnet-avgv1-a-construct"}
    kept = [r for r in evaluated.rows if r["status"] == "kept"]
    assert len(kept) == 5
    assert all(r["status"] == "pruned@100" for r in evaluated.rows if r not in kept)
    worst_kept = max(r["score"] for r in kept)
    assert all(r["score"] >= worst_kept for r in evaluated.rows if r not in kept)
    survivors = [c for c in evaluated.created if c.op == "evaluate"]
    assert len(survivors) == 5
    for survivor, row in zip(survivors, kept):
        check_survivor(repo, survivor, row)


def check_slice(repo: Repository, created) -> None:
    net = repo.network(created.id)
    parent = repo.network(created.parent)
    span = parent.names[parent.names.index("conv1") : parent.names.index("fc7") + 1]
    assert net.names == ["data", *span]
    if created.parent_name == "alexnet-origin-a":
        assert span == CONV_TO_FC7
    assert [layer.name for layer in net.inputs()] == ["data"]
    assert [layer.name for layer in net.outputs()] == ["fc7"]
    assert net.layer("data").attrs["shape"] == [1, 8, 8]
    assert created.new_bytes == 0
    weights, parent_weights = repo.weights(created.id), repo.weights(created.parent)
    assert weights
    assert all(k.split(".")[0] in net for k in weights)
    for key, value in weights.items():
        assert value.tobytes() == parent_weights[key].tobytes(), key
    edge = repo.lineage(created.id, depth=1).edges[0]
    assert (edge.base, edge.op, edge.query) == (created.parent, "slice", Q2)
    config = learner.TrainConfig(iterations=3, batch_size=16, eval_every=0, log_every=1)
    trained = learner.train(net, weights, config)
    assert set(trained.tensors) == set(weights)
    assert len(trained.metrics["train_loss"]) == 3


def check_construct(repo: Repository, created) -> None:
    net = repo.network(created.id)
    assert net.successors("conv1") == ["relu1"]
    assert net.successors("relu1") == ["pool1"]
    assert net.successors("conv5") == ["relu5"]
    assert net.successors("relu5") == ["pool5"]
    assert net.successors("conv3") == ["pool3"]
    assert "relu3" not in net
    assert created.new_bytes == 0
    weights, parent_weights = repo.weights(created.id), repo.weights(created.parent)
    assert set(weights) == set(parent_weights)
    assert all(weights[k].tobytes() == parent_weights[k].tobytes() for k in weights)
    assert repo.lineage(created.id, depth=1).edges[0].op == "construct"


def check_survivor(repo: Repository, survivor, row) -> None:
    assert survivor.id == row["id"]
    assert survivor.name == row["name"]
    assert survivor.name == f"alexnet-avgv1-a-construct-eval-{row['candidate']}"
    params = repo.graph.params_of(survivor.id)
    assert params["base_lr"] == row["overrides"]["base_lr"]
    assert params["input_data"].endswith(row["overrides"]["input_data"])
    assert params["lr_mult"]["conv3"] == row["overrides"]["net.conv3.lr"]
    assert params["iterations"] == 104
    metrics = repo.graph.metrics_of(survivor.id)
    assert {"loss", "test_loss", "train_loss", "test_accuracy"} <= set(metrics)
    assert metrics["test_loss"].steps == [100, 104]
    assert repo.lineage(survivor.id, depth=1).edges[0].op == "evaluate"


def test_construct_initialises_new_parametric_layers(repo: Repository) -> None:
    text = (
        'construct m2 from m1 where m1.name = "alexnet_v1" '
        'mutate m1["fc7"].insert = FC("fc7b", out_features=16)'
    )
    created = execute(repo, text).created[0]
    net = repo.network(created.id)
    assert net.successors("fc7") == ["fc7b"]
    assert net.successors("fc7b") == ["relu7"]
    assert net.layer("fc7b").attrs["in_features"] == 16
    weights, parent_weights = repo.weights(created.id), repo.weights(created.parent)
    assert sorted(set(weights) - set(parent_weights)) == ["fc7b.bias", "fc7b.weight"]
    assert created.initialised == ["fc7b.bias", "fc7b.weight"]
    assert all(weights[k].tobytes() == parent_weights[k].tobytes() for k in parent_weights)
    # no bytes beyond the new layers' own (random, incompressible) weights, plus one frame per
    # stored chunk (4 byte planes × 2 tensors)
    new_raw = weights["fc7b.weight"].nbytes + weights["fc7b.bias"].nbytes
    assert 0 < created.new_bytes <= new_raw + 8 * CHUNK_FRAME_BYTES


def test_evaluate_threshold_and_dry_run(repo: Repository, tmp_path: Path) -> None:
    config = tmp_path / "tune.json"
    config.write_text(json.dumps({"iterations": 6, "batch_size": 16, "eval_every": 0}))
    text = (
        'evaluate m from (construct m2 from m1 where m1.name = "alexnet_v1" '
        'mutate m1["conv1"].insert = RELU("r1")) '
        f'with config = "{config}" vary config.base_lr in [0.01, 0.001] '
        'keep m["loss"] < 1000 after 2 and top(1, m["accuracy"], 4)'
    )
    before = version_count(repo)
    dry = execute(repo, text, dry_run=True)
    assert version_count(repo) == before
    assert [r["status"] for r in dry.rows].count("kept") == 1
    assert [c.op for c in dry.created] == ["construct", "evaluate"]
    assert all(c.id is None for c in dry.created)
    real = execute(repo, text)
    assert [c.op for c in real.created] == ["construct", "evaluate"]
    assert version_count(repo) == before + 2
    survivor = real.created[1]
    assert survivor.parent == real.created[0].id
    assert repo.graph.params_of(survivor.id)["iterations"] == 6


# -- saved queries and errors --------------------------------------------------------------


def test_saved_queries_and_errors(repo: Repository) -> None:
    assert saved_queries(repo) == {}
    save_query(repo, "maxnets", 'select m where m["conv1"].next has POOL("MAX")')
    assert set(saved_queries(repo)) == {"maxnets"}
    result = execute(repo, 'select m from "maxnets" where m.name like "alexnet-%"')
    assert names(result) == ["alexnet-avgv1-c", "alexnet-origin-a"]
    with pytest.raises(QuerySyntaxError) as info:
        execute(repo, 'select m from "nope"')
    assert (info.value.code, info.value.line, info.value.col) == ("syntax_error", 1, 15)
    assert "^^^^^^" in info.value.message
    with pytest.raises(QuerySyntaxError) as info:
        save_query(repo, "bad", "select m where m.name like")
    assert set(saved_queries(repo)) == {"maxnets"}
    middle = execute(
        repo,
        'slice b from a where a.name = "alexnet_v1" '
        'mutate b.input = a["conv3"] and b.output = a["fc6"]',
        dry_run=True,
    ).created[0]
    assert middle.network.names[:2] == ["relu2", "conv3"]
    assert middle.network.layer("relu2").to_dict() == {
        "name": "relu2", "type": "Input", "mode": "", "attrs": {"shape": [4, 4, 4]},
    }  # fmt: skip
    with pytest.raises(InvalidInput, match="slice: no layer"):
        execute(repo, 'slice b from a where a.name = "lenet-max" '
                      'mutate b.input = a["nope"] and b.output = a["fc7"]')  # fmt: skip


# -- dlv query -----------------------------------------------------------------------------


def dlv(repo_dir: Path, *args: str, input: str | None = None, code: int = 0):
    result = CliRunner().invoke(cli, ["--repo", str(repo_dir), "query", *args], obj={}, input=input)
    assert result.exit_code == code, result.output
    return result


def test_dlv_query(repo_dir: Path) -> None:
    out = dlv(repo_dir, Q1).output
    assert "alexnet-avgv1-c" in out
    assert "5 rows" in out
    assert "alexnet-avgv2-a" not in out
    data = json.loads(dlv(repo_dir, Q1, "--json").output)
    assert data["kind"] == "select"
    assert len(data["rows"]) == 5
    assert set(data["rows"][0]) == {"id", "name", "created_at", "author"}
    shown = dlv(repo_dir, Q3, "--dry-run", "--cypher").output
    assert "MATCH (" in shown
    assert "HAS_LAYER" in shown
    assert "would create 1 version(s)" in shown
    assert "alexnet-avgv1-a-construct" in shown
    with Repository.open(repo_dir) as repo:
        assert version_count(repo) == len(VERSIONS)
    assert "saved query 'q3'" in dlv(repo_dir, Q3, "--save", "q3").output

    bad = dlv(repo_dir, 'select m\nwhere m.nmae = "x"', code=1)
    lines = bad.output.splitlines()
    assert "Line 2, Col 9" in lines[0]
    assert lines[-1] == "  " + " " * 8 + "^^^^"
    error = json.loads(dlv(repo_dir, "select m where", "--json", code=1).output)["error"]
    assert error["code"] == "syntax_error"
    assert error["line"] == 1


def test_select_pages_count_every_row(repo: Repository) -> None:
    everything = execute(repo, Q1)
    assert (everything.total, everything.truncated) == (5, False)
    # without order by: the first page of the creation-time-then-id order, on both backends
    assert [r["id"] for r in everything.rows] == [
        r["id"] for r in sorted(everything.rows, key=lambda r: (r["created_at"], r["id"]))
    ]
    page = execute(repo, Q1, limit=2)
    assert (len(page.rows), page.total, page.truncated) == (2, 5, True)
    assert page.rows == everything.rows[:2]
    assert page.to_dict()["total"] == 5
    assert page.to_dict()["truncated"] is True
    ordered = 'select m where m.name like "alexnet%" order by m.creation_time desc limit 5'
    top = execute(repo, ordered, limit=3)
    full = execute(repo, ordered)
    assert (len(top.rows), top.total, len(full.rows), full.total) == (3, 5, 5, 5)
    assert top.rows == full.rows[:3]
    assert [r["created_at"] for r in full.rows] == sorted(
        (r["created_at"] for r in full.rows), reverse=True
    )
    none = execute(repo, 'select m where m.name = "nothing"', limit=3)
    assert (none.rows, none.total, none.truncated) == ([], 0, False)


def test_dlv_query_pages(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import provdb.cli.query as cli_query

    text = 'select m where m.name like "alexnet%"'  # 8 of the 9 versions
    every = json.loads(dlv(repo_dir, text, "--json", "--all").output)
    assert (len(every["rows"]), every["total"], every["truncated"]) == (8, 8, False)
    first = json.loads(dlv(repo_dir, text, "--json", "--limit", "3").output)
    assert (first["total"], first["truncated"]) == (8, True)
    assert first["rows"] == every["rows"][:3]
    assert set(first) >= {"columns", "rows", "total", "truncated"}

    out = dlv(repo_dir, text, "--limit", "3").output
    assert "3 of 8 rows" in out
    assert "--all" in out
    assert sum(row["name"] in out for row in every["rows"]) == 3
    assert "8 rows" in dlv(repo_dir, text, "--all").output

    monkeypatch.setattr(cli_query, "PAGE", 2)  # the default page, without flags
    out = dlv(repo_dir, text).output
    assert "2 of 8 rows" in out
    default = json.loads(dlv(repo_dir, text, "--json").output)
    assert (len(default["rows"]), default["total"], default["truncated"]) == (2, 8, True)
    assert "exclude each other" in dlv(repo_dir, text, "--all", "--limit", "2", code=2).output
    dlv(repo_dir, text, "--limit", "0", code=2)


def test_dlv_query_console(repo_dir: Path) -> None:
    session = "\n".join(
        [
            "\\saved",
            'select m where m.name like "alexnet-origin%"',
            "  and m.author = 'ada';",
            "\\cypher",
            "select m where m.nmae = 1",
            "",
            'select m where m.name = "lenet-max"',
            "",
            "\\save lenet",
            "\\saved",
            "\\q",
            "select m",
        ]
    )
    out = dlv(repo_dir, input=session + "\n").output
    assert "no saved queries" in out
    assert "alexnet-origin-a" in out
    assert "alexnet-origin-b" in out
    assert "2 rows" in out
    assert "showing Cypher: on" in out
    assert "Line 1, Col 18" in out
    assert "\n" + " " * 19 + "^^^^\n" in out
    assert "WHERE m.name = $p0" in out
    assert "lenet-max" in out
    assert "saved query 'lenet'" in out
    assert out.count("dql> ") == 8
    assert out.count("...> ") == 3
