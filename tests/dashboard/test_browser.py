"""The dashboard in a real headless Chromium: every view, clicks, and the error pages.

Screenshots of each view land in tests/artifacts/dashboard/ (git ignores it).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from dashkit import ARTIFACTS, write_config
from repo_builder import Q1
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from provdb.repository import Repository

#: The Cytoscape instance inside a dash-cytoscape component (cytoscape.js keeps it on its
#: container as ``_cyreg.cy``).
CY = """
const root = document.getElementById(arguments[0]);
if (!root) return null;
for (const el of [root, ...root.querySelectorAll('*')]) {
  if (el._cyreg && el._cyreg.cy) { window.__cy = el._cyreg.cy; return true; }
}
return null;
"""
NODES = "return window.__cy.nodes().map(n => [n.id(), n.data('status') || '', "
NODES += "n.position('x'), n.position('y')]);"
EDGES = "return window.__cy.edges().map(e => [e.source().id(), e.target().id(), e.data('op')]);"


def shot(browser: Any, name: str, height: int = 1000) -> Path:
    """Save a screenshot of the window (``height`` pixels tall) under tests/artifacts/."""
    path = ARTIFACTS / f"{name}.png"
    if height != 1000:
        browser.driver.set_window_size(1400, height)
        time.sleep(0.5)  # plotly and cytoscape redraw for the new size
    browser.driver.save_screenshot(str(path))
    if height != 1000:
        browser.driver.set_window_size(1400, 1000)
    return path


def graph(browser: Any, gid: str, min_nodes: int = 1) -> tuple[list[Any], list[Any]]:
    """Wait until the Cytoscape graph ``gid`` has drawn ``min_nodes``; its nodes and edges."""

    def ready(driver: Any) -> bool:
        if not driver.execute_script(CY, gid):
            return False
        return len(driver.execute_script(NODES)) >= min_nodes

    WebDriverWait(browser.driver, 15).until(ready)
    return browser.driver.execute_script(NODES), browser.driver.execute_script(EDGES)


def visit(browser: Any, url: str) -> None:
    browser.driver.get(url)


def no_overlap(nodes: list[Any], width: float = 130, height: float = 42) -> bool:
    """No two node boxes intersect."""
    boxes = sorted((x, y) for _, _, x, y in nodes)
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1 :]:
            if x2 - x1 >= width:
                break
            if abs(y2 - y1) < height:
                return False
    return True


def test_lineage_shows_every_version_and_edge(browser: Any, url: str, built: Any) -> None:
    with Repository.open(built.root) as repo:
        rows = repo.list_versions()
    want_edges = {(p.id, r.id, p.op) for r in rows for p in r.parents}
    hidden = set(built.chain[1:-1])
    chain_id = f"chain:{built.chain[1]}"

    visit(browser, f"{url}/lineage")
    nodes, edges = graph(browser, "lineage-graph", len(rows) - len(hidden) + 1)
    assert {n[0] for n in nodes} == {r.id for r in rows} - hidden | {chain_id}
    assert no_overlap(nodes)
    drawn = {(a, b, op) for a, b, op in edges}
    assert (built.ids["alexnet-avgv1-a"], built.ids["alexnet-avgv1-a-construct"],
            "construct") in drawn  # fmt: skip
    assert (built.chain[0], chain_id, "commit") in drawn
    legend = browser.find_element("#lineage-legend").text
    for word in ("models", "ops", "construct", "finetune", "digits-cnn-ft"):
        assert word in legend
    shot(browser, "lineage")

    # a click on the collapsed chain expands it: now every version and every edge is drawn
    browser.driver.execute_script("window.__cy.getElementById(arguments[0]).emit('tap');",
                                  chain_id)  # fmt: skip
    nodes, edges = graph(browser, "lineage-graph", len(rows))
    assert {n[0] for n in nodes} == {r.id for r in rows}
    assert {(a, b, op) for a, b, op in edges} == want_edges
    assert no_overlap(nodes)
    shot(browser, "lineage-expanded")


def test_hover_shows_a_summary(browser: Any, url: str, built: Any) -> None:
    visit(browser, f"{url}/lineage")
    graph(browser, "lineage-graph", 5)
    vid = built.ids["digits-cnn-ft"]
    browser.driver.execute_script(
        "window.__cy.getElementById(arguments[0]).emit('mouseover');", vid)  # fmt: skip
    browser.wait_for_contains_text("#hover-summary", f"digits-cnn-ft {vid[:12]}")
    assert "finetune of " + built.ids["digits-cnn"][:12] in browser.find_element(
        "#hover-summary").text  # fmt: skip


def test_unknown_version_is_a_page_not_a_traceback(browser: Any, url: str) -> None:
    visit(browser, f"{url}/version/no-such-version")
    page = browser.wait_for_element("#error-page")
    assert "Not found" in page.text
    assert "no-such-version" in page.text


def test_lineage_filter_by_name(browser: Any, url: str, built: Any) -> None:
    visit(browser, f"{url}/lineage")
    graph(browser, "lineage-graph", 5)
    box = browser.find_element("#filter-name")
    box.send_keys("alexnet\n")
    want = {built.ids[n] for n in ("alexnet_v1", "alexnet-avgv1-a", "alexnet-avgv1-a-construct")}
    WebDriverWait(browser.driver, 10).until(
        lambda d: {n[0] for n in d.execute_script(NODES)} == want
    )


def test_click_a_node_opens_its_card(browser: Any, url: str, built: Any) -> None:
    visit(browser, f"{url}/lineage")
    graph(browser, "lineage-graph", 5)
    vid = built.ids["digits-cnn-ft"]
    browser.driver.execute_script("window.__cy.getElementById(arguments[0]).emit('tap');", vid)
    browser.wait_for_contains_text("#version-title", "digits-cnn-ft")
    assert browser.driver.current_url.endswith(f"/version/{vid}")
    card = browser.find_element("#version-card").text
    for part in ("Network (9 layers)", "Hyper-parameters", "base_lr", "Run and agent",
                 "FINISHED", "Snapshots and storage", "finetune of",
                 "plane 0 stored / raw", "plane 3 stored / raw"):  # fmt: skip
        assert part in card, part
    nodes, _ = graph(browser, "version-network", 9)
    assert {n[0] for n in nodes} >= {"conv1", "pool2", "fc1"}
    assert browser.find_elements(".js-plotly-plot"), "metric curves drawn"
    shot(browser, "version-card", 2000)


def test_compare_construct_highlights_exactly_the_inserted_layers(
    browser: Any, url: str, built: Any
) -> None:
    a, b = built.ids["alexnet-avgv1-a"], built.ids["alexnet-avgv1-a-construct"]
    visit(browser, f"{url}/compare?v={a}&v={b}")
    nodes, edges = graph(browser, "compare-network", 10)
    marked = {n[0]: n[1] for n in nodes if n[1] != "same"}
    assert marked == {"relu1": "added", "relu5": "added"}
    assert browser.find_element("#diff-counts").text.startswith("2 layers added, 0 removed")
    legend = browser.find_element("#compare-view").text
    for word in ("added", "removed", "changed", "only differences"):
        assert word in legend
    assert browser.find_elements("#weight-bars")
    shot(browser, "compare", 2000)


def test_dql_console_runs_paper_query_1(browser: Any, url: str, built: Any) -> None:
    visit(browser, f"{url}/query")
    box = browser.wait_for_element("#dql-text")
    box.send_keys(Q1)
    browser.find_element("#dql-run").click()
    browser.wait_for_contains_text("#dql-summary", "select: 3 rows")
    table = browser.find_element("#dql-table table")
    names = {row.find_elements(By.TAG_NAME, "td")[1].text
             for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")}  # fmt: skip
    assert names == {"alexnet_v1", "alexnet-avgv1-a", "alexnet-avgv1-a-construct"}
    assert "q=select" in browser.driver.current_url  # the query is in the URL
    link = table.find_element(By.CSS_SELECTOR, "tbody tr a")
    assert link.get_attribute("href").split("/version/")[1] in built.ids.values()
    shot(browser, "query")


def test_dql_console_dry_runs_a_construct_first(browser: Any, url: str, built: Any) -> None:
    from repo_builder import Q3

    before = len(Repository.open(built.root, read_only=True).list_versions())
    visit(browser, f"{url}/query")
    browser.wait_for_element("#dql-text").send_keys(Q3)
    browser.find_element("#dql-run").click()
    browser.wait_for_contains_text("#dql-summary", "dry run: nothing committed")
    assert browser.find_element("#dql-commit").text == "Commit these versions"
    assert "would create" in browser.find_element("#dql-table").text
    assert len(Repository.open(built.root, read_only=True).list_versions()) == before


def test_dql_console_commits_after_the_dry_run(
    browser: Any, serve: Any, built: Any, tmp_path: Path
) -> None:
    from repo_builder import Q3

    copy = tmp_path / "copy"
    shutil.copytree(built.root, copy)  # this test writes: not on the shared repository
    before = {r.id for r in Repository.open(copy, read_only=True).list_versions()}
    visit(browser, serve(str(copy)) + "/query?" + urlencode({"q": Q3}))
    browser.wait_for_contains_text("#dql-summary", "dry run: nothing committed")
    browser.find_element("#dql-commit").click()
    browser.wait_for_text_to_equal("#dql-summary", "construct: 1 rows")  # committed now
    assert "created" in browser.find_element("#dql-table").text
    link = browser.find_elements("#dql-table a[href^='/version/']")[-1]  # the created table
    after = {r.id for r in Repository.open(copy, read_only=True).list_versions()}
    new = after - before
    assert len(new) == 1
    assert link.get_attribute("href").endswith(f"/version/{new.pop()}")


def test_malformed_query_shows_the_caret(browser: Any, url: str) -> None:
    visit(browser, f"{url}/query?q=select+m+where+m.name+%3D")
    error = browser.wait_for_element("#dql-error")
    assert "Syntax error at line 1, column" in error.text
    snippet = browser.find_element("#dql-error pre").text.splitlines()
    assert snippet[-1].strip() == "^"
    assert "select m where m.name =" in snippet[-2]
    shot(browser, "query-error")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing", "No repository here"),
        ("empty", "No versions yet"),
        ("neo4j", "Graph unreachable"),
    ],  # fmt: skip
)
def test_error_pages(browser: Any, serve: Any, tmp_path: Path, case: str, expect: str) -> None:
    root = tmp_path / "repo"
    if case == "empty":
        Repository.init(root).close()
    elif case == "neo4j":
        write_config(root, f"bolt://127.0.0.1:{_closed_port()}")
    visit(browser, serve(str(root)) + "/lineage")
    page = browser.wait_for_element("#empty-page" if case == "empty" else "#error-page")
    assert expect in page.text
    assert "Traceback" not in browser.driver.page_source
    shot(browser, f"error-{case}")


def test_compare_picker_finds_versions_by_search(
    browser: Any, url: str, built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dashboard.views.PICK_LIMIT", 1)  # the others only through a search
    visit(browser, f"{url}/lineage")
    graph(browser, "lineage-graph", 5)
    a, b = built.ids["digits-cnn"], built.ids["digits-cnn-ft"]
    for vid in (a, b):
        browser.find_element("#compare-pick").click()
        box = browser.driver.switch_to.active_element
        box.send_keys(vid[:10])
        option = (By.XPATH, f"//*[contains(text(), '{vid[:8]}')]")
        WebDriverWait(browser.driver, 10).until(lambda d, o=option: d.find_elements(*o))
        browser.driver.find_elements(*option)[-1].click()
    browser.driver.switch_to.active_element.send_keys("\ue00c")  # Escape: close the menu
    browser.find_element("#compare-go").click()
    WebDriverWait(browser.driver, 10).until(lambda d: "/compare" in d.current_url)
    assert a in browser.driver.current_url
    assert b in browser.driver.current_url
