"""Server-side graph layout: layered (Sugiyama-style) positions for Cytoscape's ``preset``.

Cytoscape's own layouts (dagre, breadthfirst) run in the browser and take seconds at a
thousand nodes; these run in Python in O((V + E) log V) and send finished positions.

1. **Layering**: longest path from the roots (Kahn's order), so every edge points down.
2. **Ordering**: one downward barycenter sweep; a node sits under the mean of its parents.
3. **Placement**: within a layer, nodes keep their barycenter order and are pushed right just
   enough not to overlap (``gap`` apart).

Long linear chains (each link the only child of its base and the only parent of its derived
version) can be collapsed first with :func:`collapse_chains`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

N = TypeVar("N", bound=Hashable)


def layers(nodes: Sequence[N], edges: Iterable[tuple[N, N]]) -> dict[N, int]:
    """The layer of each node: the length of the longest path reaching it from a root.

    ``edges`` are ``(base, derived)``; edges naming unknown nodes are ignored. Nodes on a cycle
    (which a derivation graph never has) are put one layer below their deepest known parent.
    """
    known = set(nodes)
    children: dict[N, list[N]] = {n: [] for n in nodes}
    indegree: dict[N, int] = dict.fromkeys(nodes, 0)
    for a, b in edges:
        if a in known and b in known and a != b:
            children[a].append(b)
            indegree[b] += 1
    layer: dict[N, int] = dict.fromkeys(nodes, 0)
    ready = [n for n in nodes if indegree[n] == 0]
    seen = 0
    while ready:
        nxt: list[N] = []
        for n in ready:
            seen += 1
            for c in children[n]:
                layer[c] = max(layer[c], layer[n] + 1)
                indegree[c] -= 1
                if indegree[c] == 0:
                    nxt.append(c)
        ready = nxt
    if seen < len(nodes):  # a cycle: leave its nodes where their known parents put them
        for n in nodes:
            if indegree[n] > 0:
                layer[n] = max(layer[n], 1)
    return layer


def positions(
    nodes: Sequence[N],
    edges: Iterable[tuple[N, N]],
    *,
    gap: float = 190.0,
    layer_gap: float = 110.0,
) -> dict[N, tuple[float, float]]:
    """``{node: (x, y)}``: layers top to bottom, no two nodes of a layer closer than ``gap``.

    ``nodes`` in a stable order (e.g. oldest first) break ties, so the same graph always gets
    the same picture.
    """
    edge_list = list(edges)
    layer = layers(nodes, edge_list)
    rank = {n: i for i, n in enumerate(nodes)}
    parents: dict[N, list[N]] = {n: [] for n in nodes}
    for a, b in edge_list:
        if a in parents and b in parents and layer[a] < layer[b]:
            parents[b].append(a)
    by_layer: dict[int, list[N]] = {}
    for n in nodes:
        by_layer.setdefault(layer[n], []).append(n)
    x: dict[N, float] = {}
    for depth in sorted(by_layer):
        wanted = {}
        for n in by_layer[depth]:
            xs = [x[p] for p in parents[n] if p in x]
            wanted[n] = sum(xs) / len(xs) if xs else float("-inf")
        ordered = sorted(by_layer[depth], key=lambda n: (wanted[n], rank[n]))
        edge = float("-inf")
        for n in ordered:
            want = wanted[n] if wanted[n] != float("-inf") else edge + gap
            if edge == float("-inf") and want == float("-inf"):
                want = 0.0
            x[n] = max(want, edge + gap)
            edge = x[n]
    return {n: (x[n], layer[n] * layer_gap) for n in nodes}


@dataclass(frozen=True)
class Chain:
    """The interior of a long linear chain, drawn as one node between ``head`` and ``tail``."""

    id: str
    head: str
    tail: str
    members: tuple[str, ...]


def collapse_chains(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]],
    min_length: int = 4,
    group: Mapping[str, str] | None = None,
) -> list[Chain]:
    """Linear runs of at least ``min_length`` versions (each the only child of the one
    before and the only parent of the one after, and in the same ``group``, e.g. model, when
    given). The head and tail stay visible; the interior becomes a :class:`Chain` (so at
    least ``min_length - 2`` versions are hidden)."""
    out_deg: dict[str, int] = dict.fromkeys(nodes, 0)
    in_deg: dict[str, int] = dict.fromkeys(nodes, 0)
    child: dict[str, str] = {}
    parent: dict[str, str] = {}
    for a, b in edges:
        if a in out_deg and b in in_deg and a != b:
            out_deg[a] += 1
            in_deg[b] += 1
            child[a], parent[b] = b, a

    def link(a: str) -> bool:
        """Whether the edge from ``a`` to its child is a chain link."""
        if out_deg[a] != 1 or in_deg[child[a]] != 1:
            return False
        return group is None or group.get(a) == group.get(child[a])

    result = []
    for start in nodes:
        starts_here = link(start) if out_deg[start] == 1 else False
        if not starts_here or (in_deg[start] == 1 and link(parent[start])):
            continue  # not a chain, or inside one that starts further up
        run = [start]
        while out_deg[run[-1]] == 1 and link(run[-1]) and len(run) <= len(nodes):
            run.append(child[run[-1]])
        if len(run) >= min_length:
            interior = tuple(run[1:-1])
            result.append(Chain(f"chain:{interior[0]}", run[0], run[-1], interior))
    return result
