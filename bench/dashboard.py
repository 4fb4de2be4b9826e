"""Dashboard benchmark: page load to lineage drawn, in headless Chromium (Debian's).

For 100, 1,000 and 5,000 synthetic versions, the lineage page is loaded three times per layout:
``preset`` (positions computed on the server by :mod:`dashboard.layout`, the default) against
the browser laying the graph out itself (``breadthfirst``, built in, and ``dagre``, the extra
bundle). The clock runs from ``driver.get`` until Cytoscape holds every expected node and has
painted a frame. Then the compare view of two real 50-layer versions (one with two layers
inserted and weights changed) is timed the same way.

    python bench/dashboard.py            # writes bench/results/dashboard.md
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboard import elements  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from provdb.models.network import Layer, NetworkDef  # noqa: E402
from provdb.repository import Repository  # noqa: E402
from provdb.results import Parent, RepoInfo, VersionRow  # noqa: E402

OPS = ["finetune", "finetune", "commit", "copy", "construct", "slice", "evaluate"]
DRAWN = """
const done = arguments[arguments.length - 1];
const root = document.getElementById(arguments[0]);
if (!root) return done(-1);
for (const el of [root, ...root.querySelectorAll('*')]) {
  if (el._cyreg && el._cyreg.cy) {
    const n = el._cyreg.cy.nodes().length;
    return requestAnimationFrame(() => requestAnimationFrame(() => done(n)));
  }
}
done(-1);
"""


def synthetic(n: int, seed: int = 0) -> list[VersionRow]:
    """``n`` versions, newest first: ~n/20 models, each version derived from a recent one."""
    rng = random.Random(seed)
    rows: list[VersionRow] = []
    for i in range(n):
        vid = f"{i:08x}" + "0" * 24
        if i == 0 or rng.random() < 0.05:
            name, parents = f"model-{i}", []
        else:
            base = rows[rng.randrange(max(0, i - 50), i)]
            name, parents = base.name, [Parent(base.id, rng.choice(OPS))]
        rows.append(VersionRow(vid, name, f"2026-01-01T{i:08d}", "", "bench", parents))
    return rows[::-1]


class Synthetic:
    """A stand-in for :class:`dashboard.source.RepoSource` serving a synthetic lineage."""

    def __init__(self, rows: list[VersionRow]) -> None:
        self.rows = rows
        models = len({r.name for r in rows})
        self.info_ = RepoInfo("synthetic", "0", "synthetic", "-", "-", len(rows), models)

    def list_versions(self) -> list[VersionRow]:
        return self.rows

    def info(self) -> RepoInfo:
        return self.info_

    def read(self, fn: Any) -> Any:
        return fn(self)

    @contextmanager
    def open(self, *, write: bool = False) -> Any:
        yield self


@contextmanager
def served(app: Any) -> Any:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def cpu_seconds(driver: Any) -> dict[int, float]:
    """CPU seconds used so far by each of the browser's processes and by this process (the
    server), by pid."""
    import psutil

    out = {0: time.process_time()}
    for proc in psutil.Process(driver.service.process.pid).children(recursive=True):
        try:
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
        except psutil.Error:
            pass
    return out


def cpu_since(driver: Any, before: dict[int, float]) -> float:
    """CPU seconds spent since ``before`` by the processes alive now (a renderer that
    Chromium started meanwhile counts from zero)."""
    now = cpu_seconds(driver)
    return sum(t - before.get(pid, 0.0) for pid, t in now.items())


def load_time(
    driver: Any, url: str, gid: str, nodes: int, timeout: float = 120.0
) -> tuple[float, float]:
    """Wall and CPU seconds (browser + server) from navigation until graph ``gid`` holds
    ``nodes`` nodes and has painted."""
    driver.get("about:blank")
    cpu = cpu_seconds(driver)
    start = time.perf_counter()
    driver.get(url)
    while time.perf_counter() - start < timeout:
        try:
            if driver.execute_async_script(DRAWN, gid) >= nodes:
                return time.perf_counter() - start, cpu_since(driver, cpu)
        except TimeoutException:  # the page's main thread is busy laying out
            pass
        time.sleep(0.05)
    return float("nan"), float("nan")


def page_time(driver: Any, url: str) -> float:
    """Wall seconds to a page without a graph (the DQL console): Dash's own floor."""
    driver.get("about:blank")
    start = time.perf_counter()
    driver.get(f"{url}/query")
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "dql-text"))
    return time.perf_counter() - start


def warm_up(driver: Any, url: str) -> None:
    """Load the console page once so every bundle is in the browser's cache (each app is
    served on its own port, so its own origin)."""
    driver.get(f"{url}/query")
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "dql-text"))


def network(n_layers: int, insert: tuple[int, ...] = ()) -> NetworkDef:
    """A chain of ``n_layers`` small FC/ReLU layers (ReLUs inserted after ``insert``)."""
    layers = [Layer("data", "Input", "", {"shape": [16]})]
    for k in range(1, n_layers):
        if k % 2:
            layers.append(Layer(f"fc{k}", "FC", "", {"in_features": 16, "out_features": 16,
                                                     "bias": True}))  # fmt: skip
        else:
            layers.append(Layer(f"relu{k}", "ReLU"))
        if k in insert:
            layers.append(Layer(f"extra{k}", "ReLU"))
    names = [x.name for x in layers]
    return NetworkDef(layers, list(zip(names, names[1:])))


def compare_repo(root: Path) -> tuple[str, str]:
    """Two 50-layer versions: a base and a child with two inserted layers, weights nudged."""
    rng = np.random.default_rng(0)
    with Repository.init(root) as repo:
        base_net = network(50)
        w = {f"{x.name}.{p}": rng.standard_normal((16, 16) if p == "weight" else (16,))
             .astype(np.float32) for x in base_net.layers if x.type == "FC"
             for p in ("weight", "bias")}  # fmt: skip
        a = repo.commit("wide", base_net, w, params={"lr": 0.1}).version.id
        w2 = {k: v + np.float32(0.01) * rng.standard_normal(v.shape).astype(np.float32)
              for k, v in w.items()}  # fmt: skip
        b = repo.commit("wide", network(50, insert=(10, 30)), w2, parent=a,
                        params={"lr": 0.01}).version.id  # fmt: skip
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--layouts",
        default="preset,breadthfirst,dagre",
        help="lineage layouts to time (e.g. just preset)",
    )
    parser.add_argument("--no-compare", action="store_true", help="skip the compare view")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per page load")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "dashboard.md"))
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # quit the browser on a kill
    load_before = os.getloadavg()[0]

    from dash.testing.browser import Browser

    results: dict[tuple[int, str], list[tuple[float, float]]] = {}
    server_ms: dict[int, float] = {}
    drawn_nodes: dict[int, int] = {}
    with Browser("chrome", headless=True, percy_run=False) as browser:
        driver = browser.driver
        driver.set_window_size(1400, 1000)
        driver.set_script_timeout(10)
        chrome = driver.capabilities.get("browserVersion", "?")
        for n in sizes:
            rows = synthetic(n)
            t = time.perf_counter()
            graph = elements.lineage(rows)
            server_ms[n] = 1000 * (time.perf_counter() - t)
            nodes = sum("source" not in e["data"] for e in graph.elements)
            drawn_nodes[n] = nodes
            if n == sizes[0]:
                with served(create_app(source=Synthetic(rows))) as url:
                    warm_up(driver, url)
                    floor = statistics.median(page_time(driver, url) for _ in range(args.repeat))
            for layout in layouts:
                app = create_app(source=Synthetic(rows), layout=layout)
                # the browser layouts of the largest graph take minutes: load them once
                repeat = args.repeat if layout == "preset" or n < 5000 else 1
                with served(app) as url:
                    warm_up(driver, url)
                    times = [load_time(driver, f"{url}/lineage", "lineage-graph", nodes,
                                       timeout=args.timeout) for _ in range(repeat)]  # fmt: skip
                results[(n, layout)] = times
                print(n, layout, times, flush=True)
        compare: list[tuple[float, float]] = []
        if not args.no_compare:
            with tempfile.TemporaryDirectory() as tmp:
                a, b = compare_repo(Path(tmp) / "repo")
                with served(create_app(str(Path(tmp) / "repo"))) as url:
                    target = f"{url}/compare?v={a}&v={b}"
                    warm_up(driver, url)
                    compare = [load_time(driver, target, "compare-network", 52)
                               for _ in range(args.repeat)]  # fmt: skip
            print("compare", compare, flush=True)

    def med(xs: list[tuple[float, float]]) -> str:
        if not xs:
            return "not run"
        if any(x[0] != x[0] for x in xs):  # NaN: not drawn in time
            return f"not drawn in {args.timeout:.0f} s"
        wall = statistics.median(x[0] for x in xs)
        cpu = statistics.median(x[1] for x in xs)
        return f"{wall:.2f} / {cpu:.2f}"

    lines = [
        "# Dashboard benchmark",
        "",
        f"`python bench/dashboard.py` on {platform.node() or 'this machine'} "
        f"({len(os.sched_getaffinity(0))} cores shared with other jobs: load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; Python "
        f"{platform.python_version()}); headless Chromium {chrome} (Debian) through "
        "/usr/bin/chromedriver, window 1400×1000.",
        "",
        "Time from `driver.get` to the lineage drawn (Cytoscape holds every node and painted "
        "two frames), median of "
        f"{args.repeat} loads (1 for the browser layouts of 5,000) after a warm-up that caches "
        "the bundles; it includes Dash's page, the router callback (which reads the versions "
        "and lays them out) and drawing. Synthetic lineage: ~5% of versions "
        "start a new model, the rest derive from one of the 50 versions before them; chains of "
        "≥ 4 collapse (the node counts below are what is drawn).",
        "",
        "Each cell is **wall s / CPU s**: wall time on this shared, loaded machine, and the CPU "
        "seconds the browser's processes and the server spent meanwhile (steadier under load; "
        "on an idle machine wall time is close to the CPU time of the browser's main thread, "
        "which is most of it).",
        "",
        "| versions | nodes drawn | server layout (ms) | **preset (server layout)** | "
        "breadthfirst (browser) | dagre (browser) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        lines.append(
            f"| {n:,} | {drawn_nodes[n]:,} | {server_ms[n]:.0f} | "
            f"**{med(results.get((n, 'preset'), []))}** | "
            f"{med(results.get((n, 'breadthfirst'), []))} | {med(results.get((n, 'dagre'), []))} |"
        )
    lines += [
        "",
        f"Floor: the DQL console page (no graph, same bundles) takes **{floor:.2f} s** wall "
        "to appear on this machine; every lineage time above includes it.",
        "",
        f"Compare view, two 50-layer versions (2 layers inserted, every weight changed): "
        f"**{med(compare)}** (wall s / CPU s) to the network diff drawn (median of "
        f"{args.repeat}).",
        "",
    ]
    if 1000 in sizes and "preset" in layouts:
        wall = statistics.median(x[0] for x in results[(1000, "preset")])
        cpu = statistics.median(x[1] for x in results[(1000, "preset")])
        verdict = "met" if wall <= 2.0 else "NOT met in wall time on this machine"
        lines.append(f"Goal (issue 11): 1,000 versions drawn in ≤ 2 s — {verdict} "
                     f"({wall:.2f} s wall, {cpu:.2f} CPU s).")  # fmt: skip
    lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
