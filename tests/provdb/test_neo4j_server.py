"""Tests of :mod:`provdb.neo4j_server` against real Neo4j JVMs (no mocks).

Fast tests cover config writing and the errors raised before any JVM starts. The server tests
use the session's Neo4j (``tests/conftest.py``) plus one throw-away instance with a password,
and one JVM that must die at once on a bad setting (about a second).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError

from provdb.cli.neo4j import main as cli_main
from provdb.errors import ProvDBError
from provdb.neo4j_server import (
    NEO4J_VERSION,
    Neo4jServer,
    Neo4jServerError,
    default_home,
    free_port,
)

# ------------------------------------------------------------------ helpers and fixtures


def _conf(path: Path) -> dict[str, str]:
    """``neo4j.conf`` as a dict (last value wins, comments skipped)."""
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    )
    return {key: value for key, value in pairs}


def _fake_lib_home(tmp_path: Path) -> Path:
    """A home whose lib/ has the two jar names the start checks look for (empty files)."""
    lib = tmp_path / "home" / "lib"
    lib.mkdir(parents=True)
    for name in ("neo4j", "neo4j-record-storage-engine"):
        (lib / f"org.neo4j.{name}-{NEO4J_VERSION}.jar").touch()
    return lib.parent


@pytest.fixture(scope="module")
def jar_home() -> Path:
    """The shared home with a complete lib/ (fetched with mvn if needed)."""
    if not (shutil.which("mvn") and shutil.which("java")) and not os.environ.get("CI"):
        pytest.skip("mvn or java not on PATH")
    server = Neo4jServer()
    server.fetch()
    return server.home


@pytest.fixture
def throwaway(jar_home: Path, tmp_path: Path) -> Iterator[Neo4jServer]:
    """An unstarted server in a temporary instance folder; stopped after the test."""
    server = Neo4jServer(jar_home, port=free_port(), instance_dir=tmp_path / "inst")
    yield server
    server.stop(timeout=10)


# ------------------------------------------------------------------ fast: no JVM


def test_config_is_bolt_only_on_loopback(tmp_path: Path) -> None:
    server = Neo4jServer(tmp_path, port=17001, instance_dir=tmp_path / "i")
    conf = _conf(server.write_config())
    assert conf["server.bolt.listen_address"] == "127.0.0.1:17001"
    assert conf["server.default_listen_address"] == "127.0.0.1"
    assert conf["server.http.enabled"] == "false"
    assert conf["server.https.enabled"] == "false"
    assert conf["dbms.routing.enabled"] == "false"
    assert conf["dbms.security.auth_enabled"] == "false"
    assert conf["client.allow_telemetry"] == "false"
    assert conf["server.memory.pagecache.size"] == "256m"
    assert server.uri == "bolt://127.0.0.1:17001"
    assert server.auth is None


def test_password_turns_auth_on(tmp_path: Path) -> None:
    server = Neo4jServer(tmp_path, port=17002, password="Secret-123", pagecache="64m")
    conf = _conf(server.write_config())
    assert conf["dbms.security.auth_enabled"] == "true"
    assert conf["server.memory.pagecache.size"] == "64m"
    assert server.auth == ("neo4j", "Secret-123")


def test_port_is_read_back_from_an_existing_config(tmp_path: Path) -> None:
    Neo4jServer(tmp_path, port=17003).write_config()
    assert Neo4jServer(tmp_path).uri == "bolt://127.0.0.1:17003"


def test_java_command_is_one_jvm_with_heap_flags(tmp_path: Path) -> None:
    cmd = Neo4jServer(tmp_path, heap_initial="256m", heap_max="768m").java_command()
    assert "org.neo4j.server.CommunityEntryPoint" in cmd
    assert {"-Xms256m", "-Xmx768m", "--console-mode"} <= set(cmd)
    assert "-XX:+AlwaysPreTouch" not in cmd
    assert f"--home-dir={tmp_path}" in cmd


def test_default_home_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVDB_NEO4J_HOME", str(tmp_path))
    assert default_home() == tmp_path.resolve()
    monkeypatch.delenv("PROVDB_NEO4J_HOME")
    assert default_home().name == "neo4j-5.26"


def test_start_without_jars_says_fetch(tmp_path: Path) -> None:
    server = Neo4jServer(tmp_path / "empty", port=free_port())
    with pytest.raises(Neo4jServerError, match="fetch") as info:
        server.start(timeout=5)
    assert isinstance(info.value, ProvDBError)
    assert info.value.code == "unavailable"
    assert not server.pid_file.exists()


def test_fetch_without_mvn_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with neither mvn nor java
    with pytest.raises(Neo4jServerError, match="`mvn` not found"):
        Neo4jServer(tmp_path / "home").fetch()


def test_start_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = Neo4jServer(_fake_lib_home(tmp_path), port=port, instance_dir=tmp_path / "i")
        with pytest.raises(Neo4jServerError, match="already in use"):
            server.start(timeout=5)


def test_stale_pid_file_is_never_trusted(tmp_path: Path) -> None:
    server = Neo4jServer(tmp_path, port=free_port())
    server.pid_file.parent.mkdir(parents=True)
    server.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a Neo4j JVM
    state = server.status()
    assert not state.running
    assert not state.ready
    assert not server.pid_file.exists()
    assert server.stop() is False


def test_cli_status_of_a_stopped_instance(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["--instance-dir", str(tmp_path), "status"]) == 3
    assert "not running" in capsys.readouterr().out


def test_cli_start_without_jars_exits_69_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli_main(["--home", str(tmp_path), "--port", str(free_port()), "start"]) == 69
    assert "error: " in capsys.readouterr().err


# ------------------------------------------------------------------ the session's server


def test_cypher_round_trip(neo4j_uri: str, neo4j_auth: tuple[str, str] | None) -> None:
    with GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        records, _, _ = driver.execute_query(
            "CREATE (n:Neo4jServerTestProbe {name: $name, size: $size}) "
            "WITH n RETURN n.name AS name, n.size AS size",
            name="probe",
            size=42,
            database_="neo4j",
        )
        driver.execute_query("MATCH (n:Neo4jServerTestProbe) DELETE n", database_="neo4j")
    assert [(r["name"], r["size"]) for r in records] == [("probe", 42)]


def test_server_is_neo4j_5_26(neo4j_uri: str, neo4j_auth: tuple[str, str] | None) -> None:
    with GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        records, _, _ = driver.execute_query(
            "CALL dbms.components() YIELD name, versions, edition "
            "RETURN name, versions[0] AS version, edition",
            database_="neo4j",
        )
    kernel = {r["name"]: r for r in records}["Neo4j Kernel"]
    assert kernel["version"].startswith("5.26.")
    assert kernel["edition"] == "community"


def test_session_server_status_is_ready(neo4j_target: Any) -> None:
    if neo4j_target.server is None:
        pytest.skip(f"session Neo4j comes from {neo4j_target.source}, not provdb.neo4j_server")
    server = neo4j_target.server
    state = server.status()
    assert state.running
    assert state.ready
    assert state.pid is not None
    assert state.rss_bytes is not None
    assert state.rss_bytes > 100 * 2**20
    assert server.version() == NEO4J_VERSION
    assert neo4j_target.startup_seconds is not None
    assert neo4j_target.startup_seconds > 0


# ------------------------------------------------------------------ extra JVMs (cheap)


def test_bad_setting_fails_fast_with_log_tail(throwaway: Neo4jServer) -> None:
    class BadConfig(Neo4jServer):
        def config_lines(self) -> list[str]:
            return [*super().config_lines(), "server.no_such_setting_for_tests=1"]

    server = BadConfig(throwaway.home, port=throwaway.port, instance_dir=throwaway.instance_dir)
    started = time.monotonic()
    with pytest.raises(Neo4jServerError, match="exited with code") as info:
        server.start(timeout=60)
    assert time.monotonic() - started < 30
    assert "no_such_setting_for_tests" in info.value.message
    assert not server.status(probe=False).running


def test_password_instance_starts_and_is_stopped_by_another_process(
    throwaway: Neo4jServer,
) -> None:
    server = Neo4jServer(
        throwaway.home,
        port=throwaway.port,
        instance_dir=throwaway.instance_dir,
        password="Secret-123",
        heap_initial="256m",
        heap_max="512m",
        pagecache="64m",
    )
    assert server.start(timeout=180, detach=True) > 0
    with GraphDatabase.driver(server.uri, auth=None) as anonymous:
        with pytest.raises(AuthError):
            anonymous.verify_connectivity()
    with GraphDatabase.driver(server.uri, auth=server.auth) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one", database_="neo4j")
    assert records[0]["one"] == 1

    # Another process finds the server through the pid file and the written neo4j.conf.
    cli = [sys.executable, "-m", "provdb.neo4j_server", "--home", str(throwaway.home)]
    cli += ["--instance-dir", str(throwaway.instance_dir)]
    status = subprocess.run([*cli, "status"], capture_output=True, text=True, check=False)
    assert status.returncode == 0, status.stderr
    assert f"ready, at {server.uri}" in status.stdout
    stop = subprocess.run([*cli, "stop"], capture_output=True, text=True, check=False)
    assert stop.returncode == 0, stop.stderr
    assert "Neo4j stopped" in stop.stdout
    assert not server.status(probe=False).running
    assert not server.pid_file.exists()
    assert server.stop() is False  # also reaps our (detached) child
