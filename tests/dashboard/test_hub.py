"""``dlv dashboard --hub URL`` over a real gunicorn hub: a public base and its private
fine-tune, drawn with and without the owner's token; the hub's error pages."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashkit import Served
from selenium.webdriver.support.ui import WebDriverWait
from test_browser import graph, shot

from dashboard.source import HubSource
from provdb.server.testing import HubServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "provdb" / "server"))
from hub_family import HubFamily, build  # noqa: E402


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> HubFamily:
    return build(tmp_path_factory.mktemp("dash-hub"))


@pytest.fixture(scope="module")
def hub_url(family: HubFamily) -> Iterator[str]:
    """gunicorn (one worker) serving the family's hub."""
    with HubServer(family.root, workers=1) as server:
        yield server.url


@pytest.fixture(scope="module")
def dash_url(hub_url: str, family: HubFamily) -> Iterator[str]:
    """The dashboard over the hub, with alice's token (she owns the private fine-tune)."""
    from dashboard.app import create_app

    served = Served(create_app(hub=hub_url, token=family.tokens["alice"]))
    yield served.url
    served.stop()


def test_lineage_and_version_card_over_a_hub(
    browser: Any, dash_url: str, family: HubFamily
) -> None:
    browser.driver.get(f"{dash_url}/lineage")
    nodes, edges = graph(browser, "lineage-graph", 2)
    assert {n[0] for n in nodes} == {family.base, family.finetune}
    assert [tuple(e) for e in edges] == [(family.base, family.finetune, "finetune")]
    assert "2 versions · 2 models · hub" in browser.find_element("#page").text
    shot(browser, "hub-lineage")

    browser.driver.execute_script("window.__cy.getElementById(arguments[0]).emit('tap');",
                                  family.finetune)  # fmt: skip
    browser.wait_for_contains_text("#version-title", "mlp-ft")
    card = browser.find_element("#version-card").text
    for part in ("Network (3 layers)", "lr", "0.01", "finetune of", family.base[:12],
                 "plane 0 stored / raw", "plane 3 stored / raw"):  # fmt: skip
        assert part in card, part
    nodes, _ = graph(browser, "version-network", 3)
    assert {n[0] for n in nodes} == {"fc1", "relu", "fc2"}
    assert browser.find_elements(".js-plotly-plot"), "metric curves drawn"
    shot(browser, "hub-version-card", 1600)

    browser.find_element("#compare-parent").click()  # the same diff dlv diff computes
    browser.wait_for_contains_text("#diff-counts", "0 layers added, 0 removed, 0 changed")
    assert browser.find_elements("#weight-bars")
    browser.wait_for_contains_text("#params-table", "lr")  # the one differing param (a callback)


def test_without_a_token_only_public_versions_show(hub_url: str, family: HubFamily) -> None:
    rows = HubSource(hub_url).read(lambda r: r.list_versions())
    assert [(r.id, r.parents) for r in rows] == [(family.base, [])]
    card = HubSource(hub_url).read(lambda r: r.describe(family.base))
    assert card.children == []  # the private fine-tune is not even a child


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("where", "page", "expect"),
    [
        ("unreachable", "/lineage", "Hub unreachable"),
        ("hub", "/query?q=select+m", "DQL runs against a repository"),
        ("hub", "/version/" + "0" * 32, "private namespace"),
        ("hub", "/version/mlp", "Invalid request"),
    ],  # fmt: skip
)
def test_hub_pages_that_are_not_drawings(
    browser: Any, dash_url: str, where: str, page: str, expect: str
) -> None:
    from dashboard.app import create_app

    served = None
    if where == "unreachable":
        served = Served(create_app(hub=f"http://127.0.0.1:{_closed_port()}"))
        base = served.url
    else:
        base = dash_url
    try:
        browser.driver.get(base + page)
        WebDriverWait(browser.driver, 15).until(
            lambda d: expect in d.find_element("id", "page").text
        )
        assert "Traceback" not in browser.driver.page_source
        assert not browser.find_elements("#dql-text")  # no console over a hub
        shot(browser, f"hub-{where}-" + expect.split()[0].lower())
    finally:
        if served:
            served.stop()
