"""Static checks of ``docker/compose.yaml`` and ``docker/Dockerfile``.

No Docker engine runs on the development and CI machines, so the deployment files are parsed
and checked for the intended shape rather than started.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """``docker/compose.yaml``, parsed (anchors and merge keys resolved)."""
    return yaml.safe_load((DOCKER_DIR / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    """The ``services`` mapping."""
    return compose["services"]


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports of a service's ``ports`` list (``[ip:]host:container`` strings)."""
    return {int(str(spec).rsplit(":", 1)[-1].split("/")[0]) for spec in service.get("ports", [])}


def test_services(services: dict[str, Any]) -> None:
    assert set(services) == {"neo4j", "seaweedfs", "hub-init", "provdb", "dashboard"}


def test_every_service_the_docs_name_is_in_compose(services: dict[str, Any]) -> None:
    """docs/hub.md's deployment table lists exactly the compose services."""
    text = (ROOT / "docs" / "hub.md").read_text()
    section = text.split("## Deployment", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M))
    assert documented == set(services)


def test_hub_runs_on_neo4j_and_the_s3_store(services: dict[str, Any]) -> None:
    weed = services["seaweedfs"]
    assert weed["image"].startswith("chrislusf/seaweedfs:")  # SeaweedFS's official image
    assert weed["image"].split(":", 1)[1] != "latest"
    assert "-master.telemetry=false" in weed["command"]
    assert 8333 in _container_ports(weed)
    for spec in weed["ports"]:
        assert str(spec).startswith("127.0.0.1:"), spec
    init, hub = services["hub-init"], services["provdb"]
    env = hub["environment"]
    assert env == init["environment"]
    store = env["DLV_HUB_STORE"]
    assert store.startswith("s3://")
    assert "endpoint=http://seaweedfs:8333" in store
    assert env["NEO4J_URI"] == "bolt://neo4j:7687"
    script = " ".join(init["command"])
    assert "dlv hub init /srv/hub" in script
    assert "--graph" in script
    assert "--store" in script
    assert init["restart"] == "no"
    assert hub["command"][:3] == ["dlv", "serve", "/srv/hub"]
    assert hub["depends_on"]["hub-init"]["condition"] == "service_completed_successfully"
    assert hub["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    mounts = {str(v).split(":", 1)[1] for v in hub["volumes"]}
    assert "/srv/hub" in mounts


def test_neo4j_is_the_official_5_26_image_with_auth_and_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    neo4j = services["neo4j"]
    assert neo4j["image"] == "neo4j:5.26"
    auth = neo4j["environment"]["NEO4J_AUTH"]
    assert auth.startswith("neo4j/")
    assert auth != "none"
    assert 7687 in _container_ports(neo4j)
    mounts = {v.split(":", 1)[0]: v.split(":", 1)[1] for v in neo4j["volumes"]}
    assert mounts.get("neo4j-data") == "/data"
    assert "neo4j-data" in compose["volumes"]
    assert "healthcheck" in neo4j


def test_bolt_and_browser_published_on_loopback_only(services: dict[str, Any]) -> None:
    for spec in services["neo4j"]["ports"]:
        assert str(spec).startswith("127.0.0.1:"), spec


def test_provdb_service_builds_the_dockerfile_and_serves_on_5000(
    services: dict[str, Any],
) -> None:
    provdb = services["provdb"]
    build = provdb["build"]
    context = (DOCKER_DIR / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()
    assert provdb["command"][:2] == ["dlv", "serve"]
    assert "5000" in provdb["command"]
    assert 5000 in _container_ports(provdb)
    assert provdb["environment"]["NEO4J_URI"] == "bolt://neo4j:7687"
    assert provdb["depends_on"]["neo4j"]["condition"] == "service_healthy"


def test_dashboard_runs_from_the_same_image_over_the_hub(services: dict[str, Any]) -> None:
    from provdb.cli.dashboard import dashboard as command

    dashboard = services["dashboard"]
    assert dashboard["image"] == services["provdb"]["image"]
    argv = dashboard["command"]
    assert argv[:2] == ["dlv", "dashboard"]
    assert argv[argv.index("--hub") + 1] == "http://provdb:5000"
    options = {o for p in command.params for o in p.opts}
    assert {a for a in argv[2:] if a.startswith("--")} <= options  # flags dlv accepts
    assert "provdb" in dashboard["depends_on"]
    assert _container_ports(dashboard)
    env = dashboard["environment"]
    assert "DLV_HUB_TOKEN" in env  # an optional read token, from the host's environment
    assert not any(k.startswith(("NEO4J_", "AWS_")) for k in env)  # it reads the API only


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    used = {
        str(v).split(":", 1)[0]
        for service in services.values()
        for v in service.get("volumes", [])
        if not str(v).startswith((".", "/"))
    }
    assert used <= set(compose["volumes"])


def test_dockerfile_installs_the_project_on_python_3_11_slim() -> None:
    text = (DOCKER_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    install = re.search(r'pip install "?\.(?:\[([a-z0-9,]+)\])?"?', text)
    assert install
    # dlv serve needs the hub extra, --store s3:// the s3 one, dlv dashboard the dashboard one
    assert {"hub", "s3", "dashboard"} <= set((install.group(1) or "").split(","))
    assert re.search(r'^CMD \["dlv", "serve"', text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} missing from the repository"
