"""dlv init / list / info on both backends, and the errors a user sees."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from provdb.cli import cli
from provdb.entities import Derivation, Model, ModelVersion
from provdb.graph import WriteBatch, open_store
from provdb.repository import Repository


@pytest.fixture
def repo_dir(dlv, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """An initialised repository on the current backend."""
    args = ["init", str(tmp_path)]
    if backend == "neo4j":
        args += ["--graph", request.getfixturevalue("neo4j_graph_uri")]
    out = dlv(*args)
    assert f"({backend})" in out.output
    return tmp_path


def test_list_on_an_empty_repository(dlv, repo_dir: Path) -> None:
    assert json.loads(dlv("--repo", str(repo_dir), "list", "--json").output) == []
    assert "no versions yet" in dlv("--repo", str(repo_dir), "list").output


def test_list_shows_versions_with_lineage(dlv, repo_dir: Path, backend: str) -> None:
    with Repository.open(repo_dir) as repo:
        repo.graph.write(
            WriteBatch()
            .add(Model(name="lenet"))
            .add(ModelVersion(id="a" * 32, name="lenet", created_at="2026-01-01T00:00:00+00:00"))
            .add(ModelVersion(id="b" * 32, name="lenet-ft", created_at="2026-01-02T00:00:00+00:00"))
            .derive(Derivation("b" * 32, "a" * 32, op="finetune"))
        )
    rows = json.loads(dlv("--repo", str(repo_dir), "list", "--json").output)
    assert [r["name"] for r in rows] == ["lenet-ft", "lenet"]
    assert rows[0]["parents"] == [{"id": "a" * 32, "op": "finetune"}]
    assert [
        r["name"]
        for r in json.loads(dlv("--repo", str(repo_dir), "list", "--json", "--name", "*-ft").output)
    ] == ["lenet-ft"]
    table = dlv("--repo", str(repo_dir), "list").output
    assert "lenet-ft" in table
    assert "finetune" in table
    info = json.loads(dlv("--repo", str(repo_dir), "info", "--json").output)
    assert (info["backend"], info["versions"]) == (backend, 2)


def test_list_from_a_subfolder_finds_the_repository(dlv, repo_dir: Path, monkeypatch) -> None:
    sub = repo_dir / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert json.loads(dlv("list", "--json").output) == []


def test_list_outside_a_repository_is_a_one_line_error(tmp_path: Path) -> None:
    dlv = shutil.which("dlv", path=str(Path(sys.executable).parent))
    out = subprocess.run([dlv, "list"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("error: not a dlv repository")


def test_init_twice_is_refused(dlv, tmp_path: Path) -> None:
    dlv("init", str(tmp_path))
    out = dlv("init", str(tmp_path), ok=False)
    assert out.exit_code == 1
    assert "already a dlv repository" in out.output


def test_corrupt_config_is_reported(dlv, tmp_path: Path) -> None:
    dlv("init", str(tmp_path))
    (tmp_path / ".dlv" / "config.json").write_text("{not json")
    out = dlv("--repo", str(tmp_path), "list", ok=False)
    assert out.exit_code == 1
    assert "corrupt repository" in out.output


def test_missing_config_is_reported(dlv, tmp_path: Path) -> None:
    dlv("init", str(tmp_path))
    (tmp_path / ".dlv" / "config.json").unlink()
    out = dlv("--repo", str(tmp_path), "list", ok=False)
    assert "config.json is missing" in out.output


def test_init_rejects_a_non_neo4j_graph_uri(dlv, tmp_path: Path) -> None:
    out = dlv("init", str(tmp_path), "--graph", "http://example.invalid", ok=False)
    assert out.exit_code == 1
    assert "--graph must be a Neo4j URI" in out.output
    assert not (tmp_path / ".dlv" / "config.json").exists()


def test_init_with_unreachable_neo4j_writes_nothing(dlv, tmp_path: Path) -> None:
    out = dlv("init", str(tmp_path), "--graph", "bolt://127.0.0.1:1", ok=False)
    assert out.exit_code == 69  # unavailable
    assert "cannot reach Neo4j" in out.output
    assert not (tmp_path / ".dlv" / "config.json").exists()


def test_embedded_graph_lives_in_the_repository(dlv, tmp_path: Path) -> None:
    dlv("init", str(tmp_path))
    with open_store(tmp_path / ".dlv" / "graph.lbdb") as g:
        assert g.count("ModelVersion") == 0


def test_every_command_has_help_and_is_in_the_readme(dlv) -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):  # the lazily loaded commands too
        command = cli.get_command(ctx, name)
        assert command is not None
        assert f"dlv {name}" in readme, f"dlv {name} is not documented in README.md"
        if name == "neo4j":
            continue
        out = dlv(name, "--help")
        assert command.help
        first_words = " ".join(command.help.split()[:5])  # click re-wraps the rest
        assert first_words in " ".join(out.output.split())
