"""The server-side layout and the element builders (pure functions, no browser)."""

from __future__ import annotations

import random
import time

from dashboard.elements import Filters, lineage
from dashboard.layout import collapse_chains, layers, positions
from provdb.results import Parent, VersionRow


def rows_of(edges: list[tuple[str, str, str]], names: dict[str, str]) -> list[VersionRow]:
    """VersionRows (newest first) for ``names`` {id: name} and ``(base, derived, op)`` edges."""
    parents: dict[str, list[Parent]] = {}
    for a, b, op in edges:
        parents.setdefault(b, []).append(Parent(a, op))
    ids = list(names)
    return [VersionRow(i, names[i], f"2026-01-01T00:{n:02d}", "", "ada", parents.get(i, []))
            for n, i in reversed(list(enumerate(ids)))]  # fmt: skip


def test_every_edge_points_down_and_layers_do_not_overlap() -> None:
    rng = random.Random(1)
    nodes = [f"v{i}" for i in range(300)]
    edges = [(f"v{rng.randrange(i)}", f"v{i}") for i in range(1, 300)]
    edges += [(f"v{rng.randrange(i)}", f"v{i}") for i in range(150, 300, 7)]  # merges
    xy = positions(nodes, edges, gap=100)
    assert all(xy[a][1] < xy[b][1] for a, b in edges)
    by_y: dict[float, list[float]] = {}
    for x, y in xy.values():
        by_y.setdefault(y, []).append(x)
    for xs in by_y.values():
        xs.sort()
        assert all(b - a >= 100 for a, b in zip(xs, xs[1:]))


def test_longest_path_layering() -> None:
    assert layers(list("abcd"), [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")]) == {
        "a": 0, "b": 1, "c": 2, "d": 3}  # fmt: skip


def test_layout_of_5000_versions_is_fast() -> None:
    nodes = [str(i) for i in range(5000)]
    edges = [(str(i // 3), str(i)) for i in range(1, 5000)]
    start = time.perf_counter()
    positions(nodes, edges)
    collapse_chains(nodes, edges)
    assert time.perf_counter() - start < 1.0


def test_chains_keep_head_and_tail() -> None:
    nodes = list("rabcdex")
    edges = [("r", "a"), ("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("r", "x")]
    (chain,) = collapse_chains(nodes, edges)
    assert (chain.head, chain.tail, chain.members) == ("a", "e", ("b", "c", "d"))
    assert collapse_chains(nodes, edges, min_length=6) == []
    # a chain never spans two models: "c" starts another model, so a-b and c-d-e are too short
    group = {"r": "m", "a": "m", "b": "m", "c": "n", "d": "n", "e": "n", "x": "m"}
    assert collapse_chains(nodes, edges, group=group) == []


def test_lineage_collapses_and_expands_a_chain() -> None:
    names = {"r": "base", "a": "ck", "b": "ck", "c": "ck", "d": "ck", "f": "ft"}
    edges = [("r", "a", "commit"), ("a", "b", "commit"), ("b", "c", "commit"),
             ("c", "d", "commit"), ("r", "f", "finetune")]  # fmt: skip
    rows = rows_of(edges, names)
    graph = lineage(rows)
    ids = {e["data"]["id"] for e in graph.elements if "source" not in e["data"]}
    assert ids == {"r", "a", "chain:b", "d", "f"}
    assert graph.ops == {"commit": "#555555", "finetune": "#1f77b4"}
    opened = lineage(rows, expanded=["chain:b"])
    assert {e["data"]["id"] for e in opened.elements if "source" not in e["data"]} == set(names)
    assert all("position" in e for e in opened.elements if "source" not in e["data"])


def test_filters() -> None:
    names = {"r": "alexnet-a", "a": "alexnet-b", "f": "lenet"}
    rows = rows_of([("r", "a", "construct"), ("r", "f", "finetune")], names)

    def drawn(f: Filters) -> set[str]:
        return {e["data"]["id"] for e in lineage(rows, f).elements}

    assert drawn(Filters(name="alex")) == {"r", "a", "r->a"}
    assert drawn(Filters(name="*net")) == {"f"}
    assert drawn(Filters(models=frozenset({"lenet", "alexnet-a"}))) == {"r", "f", "r->f"}
    assert drawn(Filters(ops=frozenset({"finetune"}))) == {"r", "a", "f", "r->f"}
