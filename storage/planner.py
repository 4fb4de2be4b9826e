"""Archival planner: the matrix storage graph of the ModelHub paper (ICDE 2017, §IV).

Pure functions over a small graph description; no I/O. Vertices are tensors, :data:`ROOT` is
ν0 (an edge ``ROOT–v`` means "materialise v"), and every other edge ``u–v`` is a candidate delta
with storage cost ``cs`` and recreation cost ``cr``. Edges are undirected (an XOR delta is the
same bytes in both directions). A plan is a spanning tree rooted at ``ROOT``; a tensor is
recreated along its tree path. ``groups`` are the snapshots: all their tensors are read together.

Recreation cost of a snapshot (Table III of the paper):

* ``independent``: sum over its tensors of their path costs;
* ``parallel``: max over its tensors of their path costs.

Algorithms: :func:`mst`, :func:`spt`, :func:`last` (Khuller–Raghavachari–Young), :func:`pas_mt`
(iterative refinement from the MST, gain ratios Eq. 1/2) and :func:`pas_pt` (Prim-like growth by
storage cost with lower-bound feasibility checks). Both PAS algorithms finish with a tightening
pass that applies storage-lowering re-parentings that keep every budget met. Feasibility in a
:class:`PlanResult` is always recomputed from the final plan, never taken from the search.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from storage.errors import InvalidInputError

ROOT = "ν0"
SCHEMES = ("independent", "parallel")
ALGORITHMS = ("mst", "spt", "last", "pas-mt", "pas-pt")


@dataclass(frozen=True)
class Edge:
    """A candidate storage edge: delta between ``u`` and ``v`` (``u == ROOT``: materialise)."""

    u: str
    v: str
    cs: float
    cr: float

    def other(self, x: str) -> str:
        """The endpoint that is not ``x``."""
        return self.v if x == self.u else self.u


@dataclass
class StorageGraph:
    """Vertices, candidate edges and snapshot groups.

    Every vertex needs at least one path to :data:`ROOT` (normally its materialise edge).
    """

    vertices: list[str]
    edges: list[Edge]
    groups: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = set(self.vertices)
        if ROOT in known or len(known) != len(self.vertices):
            raise InvalidInputError("vertices must be unique and must not include ROOT")
        self.adj: dict[str, list[Edge]] = {v: [] for v in [ROOT, *self.vertices]}
        for e in self.edges:
            if e.u not in self.adj or e.v not in self.adj or e.u == e.v:
                raise InvalidInputError(f"edge {e.u!r}–{e.v!r} has an unknown endpoint")
            if e.cs < 0 or e.cr < 0:
                raise InvalidInputError(f"edge {e.u!r}–{e.v!r} has a negative cost")
            self.adj[e.u].append(e)
            self.adj[e.v].append(e)
        for name, members in self.groups.items():
            if not set(members) <= known:
                raise InvalidInputError(f"group {name!r} names an unknown vertex")
        self.member_of: dict[str, list[str]] = {v: [] for v in self.vertices}
        for name, members in self.groups.items():
            for m in dict.fromkeys(members):
                self.member_of[m].append(name)


@dataclass
class Plan:
    """A spanning tree: ``parent[v]`` is the edge ``v`` is stored along."""

    parent: dict[str, Edge]

    def storage(self) -> float:
        """Total storage cost C_s."""
        return sum(e.cs for e in self.parent.values())

    def recreation(self) -> dict[str, float]:
        """Path cost from ROOT of every vertex."""
        cost: dict[str, float] = {ROOT: 0.0}

        def walk(v: str) -> float:
            chain = []
            while v not in cost:
                chain.append(v)
                v = self.parent[v].other(v)
                if len(chain) > len(self.parent) + 1:
                    raise InvalidInputError("plan has a cycle")
            for x in reversed(chain):
                cost[x] = cost[self.parent[x].other(x)] + self.parent[x].cr
            return cost[chain[0]] if chain else cost[v]

        for v in self.parent:
            walk(v)
        return cost

    def base_of(self, v: str) -> str:
        """The vertex ``v`` is recreated from (``ROOT`` when materialised)."""
        return self.parent[v].other(v)


def group_cost(members: Iterable[str], cost: Mapping[str, float], scheme: str) -> float:
    """Recreation cost of one snapshot under ``scheme``."""
    values = [cost[m] for m in dict.fromkeys(members)]
    if not values:
        return 0.0
    return sum(values) if scheme == "independent" else max(values)


@dataclass
class PlanResult:
    """A plan with its costs, budgets and the snapshots whose budget it breaks."""

    algorithm: str
    plan: Plan
    storage: float
    group_costs: dict[str, float]
    budgets: dict[str, float]
    violations: list[str]

    @property
    def feasible(self) -> bool:
        """Whether every snapshot meets its budget."""
        return not self.violations


def evaluate(
    graph: StorageGraph, plan: Plan, budgets: Mapping[str, float], scheme: str, algorithm: str
) -> PlanResult:
    """Compute storage, per-snapshot costs and violations of ``plan``."""
    cost = plan.recreation()
    costs = {g: group_cost(m, cost, scheme) for g, m in graph.groups.items()}
    bad = [g for g, c in costs.items() if g in budgets and c > budgets[g] * (1 + 1e-9) + 1e-9]
    return PlanResult(algorithm, plan, plan.storage(), costs, dict(budgets), bad)


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise InvalidInputError(f"unknown retrieval scheme {scheme!r}; use one of {SCHEMES}")


# ---------------------------------------------------------------------------------------------
# MST, SPT, budgets


def _prim(graph: StorageGraph, weight: str) -> Plan:
    """Prim (weight ``cs``) or Dijkstra (weight ``cr``, path sums) from ROOT."""
    dist: dict[str, float] = {ROOT: 0.0}
    parent: dict[str, Edge] = {}
    done: set[str] = set()
    tie = itertools.count()
    heap: list[tuple[float, int, str, Edge | None]] = [(0.0, next(tie), ROOT, None)]
    while heap:
        d, _, v, e = heapq.heappop(heap)
        if v in done:
            continue
        done.add(v)
        if e is not None:
            parent[v] = e
        for f in graph.adj[v]:
            w = f.other(v)
            if w in done:
                continue
            nd = f.cs if weight == "cs" else d + f.cr
            if nd < dist.get(w, math.inf):
                dist[w] = nd
                heapq.heappush(heap, (nd, next(tie), w, f))
    missing = [v for v in graph.vertices if v not in parent]
    if missing:
        raise InvalidInputError(f"vertices not connected to ROOT: {missing[:5]}")
    return Plan(parent)


def mst(graph: StorageGraph) -> Plan:
    """Minimum spanning tree on storage cost (minimum total storage, no budgets)."""
    return _prim(graph, "cs")


def spt(graph: StorageGraph) -> Plan:
    """Shortest-path tree on recreation cost (minimum recreation of every tensor)."""
    return _prim(graph, "cr")


def budgets_for(graph: StorageGraph, alpha: float, scheme: str) -> dict[str, float]:
    """θ_i = α · C_r(SPT, s_i) for every snapshot."""
    _check_scheme(scheme)
    if alpha < 1:
        raise InvalidInputError(f"alpha must be ≥ 1, got {alpha}")
    cost = spt(graph).recreation()
    return {g: alpha * group_cost(m, cost, scheme) for g, m in graph.groups.items()}


def last(graph: StorageGraph, alpha: float) -> Plan:
    """LAST (Khuller, Raghavachari, Young 1995) with ε = α − 1: every tensor's recreation cost
    is at most α times its SPT cost; storage at most (1 + 2/ε) × MST. Ignores groups."""
    if alpha < 1:
        raise InvalidInputError(f"alpha must be ≥ 1, got {alpha}")
    tree, short = mst(graph), spt(graph)
    dist = short.recreation()
    children: dict[str, list[Edge]] = {}
    for v, e in tree.parent.items():
        children.setdefault(e.other(v), []).append(e)
    d = {v: math.inf for v in graph.vertices} | {ROOT: 0.0}
    keep: set[Edge] = set(tree.parent.values())

    def relax(u: str, v: str, e: Edge) -> None:
        if d[u] + e.cr < d[v]:
            d[v] = d[u] + e.cr

    def add_path(v: str) -> None:
        chain = []
        while v != ROOT and d[v] > dist[v]:
            chain.append(v)
            v = short.base_of(v)
        for x in reversed(chain):
            keep.add(short.parent[x])
            relax(short.base_of(x), x, short.parent[x])

    stack: list[tuple[str, int]] = [(ROOT, 0)]
    while stack:  # iterative DFS over the MST: relax down, recurse, relax back up
        u, i = stack.pop()
        if i == 0 and d[u] > alpha * dist[u] + 1e-12:
            add_path(u)
        kids = children.get(u, [])
        if i > 0:
            prev = kids[i - 1]
            relax(prev.other(u), u, prev)
        if i < len(kids):
            e = kids[i]
            stack.append((u, i + 1))
            relax(u, e.other(u), e)
            stack.append((e.other(u), 0))
    return spt(StorageGraph(graph.vertices, list(keep), {}))


# ---------------------------------------------------------------------------------------------
# PAS-MT / PAS-PT


class _Tree:
    """Mutable spanning tree with recreation costs and Euler-tour ancestor tests."""

    def __init__(self, graph: StorageGraph, parent: dict[str, Edge]) -> None:
        self.graph = graph
        self.parent = dict(parent)
        self.refresh()

    def refresh(self) -> None:
        self.children: dict[str, list[str]] = {v: [] for v in self.graph.adj}
        for v, e in self.parent.items():
            self.children[e.other(v)].append(v)
        self.cost: dict[str, float] = {ROOT: 0.0}
        self.tin: dict[str, int] = {}
        self.tout: dict[str, int] = {}
        clock = 0
        stack: list[tuple[str, bool]] = [(ROOT, False)]
        while stack:
            v, leaving = stack.pop()
            if leaving:
                self.tout[v] = clock
                continue
            self.tin[v] = clock
            clock += 1
            if v != ROOT:
                e = self.parent[v]
                self.cost[v] = self.cost[e.other(v)] + e.cr
            stack.append((v, True))
            stack.extend((c, False) for c in self.children[v])

    def is_desc(self, x: str, of: str) -> bool:
        """Whether ``x`` is in the subtree of ``of`` (inclusive)."""
        return self.tin[of] <= self.tin[x] and self.tout[x] <= self.tout[of]

    def subtree_sum(self, weight: Mapping[str, float]) -> dict[str, float]:
        total = {v: weight.get(v, 0.0) for v in self.graph.adj}
        for v in sorted(self.tin, key=self.tin.__getitem__, reverse=True):
            if v != ROOT:
                total[self.parent[v].other(v)] += total[v]
        return total

    def group_cost(self, g: str, scheme: str, shift_of: str = "", shift: float = 0.0) -> float:
        values = [
            self.cost[m] - (shift if shift_of and self.is_desc(m, shift_of) else 0.0)
            for m in dict.fromkeys(self.graph.groups[g])
        ]
        if not values:
            return 0.0
        return sum(values) if scheme == "independent" else max(values)


def _violated(tree: _Tree, budgets: Mapping[str, float], scheme: str) -> dict[str, float]:
    out = {}
    for g in tree.graph.groups:
        c = tree.group_cost(g, scheme)
        if g in budgets and c > budgets[g] * (1 + 1e-9) + 1e-9:
            out[g] = c
    return out


def _best_swap(tree: _Tree, violated: Mapping[str, float], scheme: str) -> tuple[str, Edge] | None:
    """The re-parenting with the largest marginal gain (Eq. 1 / Eq. 2)."""
    graph = tree.graph
    weight = {v: float(sum(g in violated for g in graph.member_of[v])) for v in graph.vertices}
    sub = tree.subtree_sum(weight)
    best: tuple[tuple[float, float], str, Edge] | None = None
    for e in graph.edges:
        for vs, vi in ((e.u, e.v), (e.v, e.u)):
            if vi == ROOT or tree.parent[vi] is e or tree.is_desc(vs, vi):
                continue
            drop = tree.cost[vi] - (tree.cost[vs] + e.cr)
            if drop <= 1e-12 or sub[vi] == 0:
                continue
            if scheme == "independent":
                num = drop * sub[vi]
            else:
                num = sum(c - tree.group_cost(g, scheme, vi, drop) for g, c in violated.items())
            if num <= 1e-12:
                continue
            dcs = e.cs - tree.parent[vi].cs
            key = (math.inf, num - dcs) if dcs <= 0 else (num / dcs, -dcs)
            if best is None or key > best[0]:
                best = (key, vi, e)
    return None if best is None else (best[1], best[2])


def _repair(tree: _Tree, budgets: Mapping[str, float], scheme: str) -> None:
    """Apply best-gain swaps while some budget is broken and a swap helps."""
    for _ in range(4 * len(tree.graph.edges) + 8):
        violated = _violated(tree, budgets, scheme)
        if not violated:
            return
        swap = _best_swap(tree, violated, scheme)
        if swap is None:
            return
        tree.parent[swap[0]] = swap[1]
        tree.refresh()


def _force_feasible(tree: _Tree, budgets: Mapping[str, float], scheme: str) -> None:
    """Put every member of a still-violated snapshot on its shortest-path-tree path.

    Costs only ever drop, and each such snapshot then costs C_r(SPT) ≤ θ (as α ≥ 1), so the
    result is feasible whenever the budgets are at least the SPT costs."""
    violated = _violated(tree, budgets, scheme)
    if not violated:
        return
    short = spt(tree.graph)
    for g in violated:
        for v in tree.graph.groups[g]:
            while v != ROOT:
                tree.parent[v] = short.parent[v]
                v = short.base_of(v)
    tree.refresh()


def _tighten(tree: _Tree, budgets: Mapping[str, float], scheme: str) -> None:
    """Apply storage-lowering re-parentings that keep every (currently met) budget met."""
    graph = tree.graph
    for _ in range(len(graph.edges) + 1):
        met = {g for g in graph.groups if g not in _violated(tree, budgets, scheme)}
        best: tuple[float, str, Edge] | None = None
        for e in graph.edges:
            for vs, vi in ((e.u, e.v), (e.v, e.u)):
                if vi == ROOT or tree.parent[vi] is e or tree.is_desc(vs, vi):
                    continue
                saving = tree.parent[vi].cs - e.cs
                if saving <= 1e-12 or (best is not None and saving <= best[0]):
                    continue
                drop = tree.cost[vi] - (tree.cost[vs] + e.cr)
                touched = (
                    {g for m in graph.vertices if tree.is_desc(m, vi) for g in graph.member_of[m]}
                    if drop < 0
                    else set()
                )
                if all(
                    tree.group_cost(g, scheme, vi, drop) <= budgets[g] * (1 + 1e-9) + 1e-9
                    for g in touched & met
                    if g in budgets
                ):
                    best = (saving, vi, e)
        if best is None:
            return
        tree.parent[best[1]] = best[2]
        tree.refresh()


def pas_mt(
    graph: StorageGraph,
    budgets: Mapping[str, float],
    scheme: str = "independent",
    *,
    tighten: bool = True,
) -> Plan:
    """PAS-MT: start from the MST and re-parent by best marginal gain until budgets hold."""
    _check_scheme(scheme)
    tree = _Tree(graph, mst(graph).parent)
    _repair(tree, budgets, scheme)
    _force_feasible(tree, budgets, scheme)
    if tighten:
        _tighten(tree, budgets, scheme)
    return Plan(tree.parent)


def pas_pt(
    graph: StorageGraph,
    budgets: Mapping[str, float],
    scheme: str = "independent",
    *,
    tighten: bool = True,
) -> Plan:
    """PAS-PT: grow a tree from ROOT by increasing storage cost, admitting a vertex only if its
    snapshots can still meet their budgets (members not yet placed counted at their SPT lower
    bound); re-parent placed vertices when that lowers storage without raising recreation."""
    _check_scheme(scheme)
    lower = spt(graph).recreation()
    cost: dict[str, float] = {ROOT: 0.0}
    parent: dict[str, Edge] = {}
    tie = itertools.count()
    heap = [(e.cs, next(tie), ROOT, e) for e in graph.adj[ROOT]]
    heapq.heapify(heap)

    def admissible(v: str, cv: float) -> bool:
        for g in graph.member_of[v]:
            if g not in budgets:
                continue
            vals = [cv if m == v else cost.get(m, lower[m]) for m in dict.fromkeys(graph.groups[g])]
            total = sum(vals) if scheme == "independent" else max(vals)
            if total > budgets[g] * (1 + 1e-9) + 1e-9:
                return False
        return True

    while heap and len(parent) < len(graph.vertices):
        _, _, u, e = heapq.heappop(heap)
        v = e.other(u)
        if v in cost or not admissible(v, cost[u] + e.cr):
            continue
        cost[v], parent[v] = cost[u] + e.cr, e
        for f in graph.adj[v]:
            w = f.other(v)
            if w not in cost:
                heapq.heappush(heap, (f.cs, next(tie), v, f))
            elif w != ROOT and f.cs < parent[w].cs and cost[w] >= cost[v] + f.cr:
                if not _is_ancestor(parent, w, v):
                    parent[w] = f
                    _reprice(parent, cost, w)
    for v in graph.vertices:
        if v not in parent:
            parent[v] = min((f for f in graph.adj[v] if f.other(v) == ROOT), key=lambda f: f.cr)
    tree = _Tree(graph, parent)
    _repair(tree, budgets, scheme)
    _force_feasible(tree, budgets, scheme)
    if tighten:
        _tighten(tree, budgets, scheme)
    return Plan(tree.parent)


def _is_ancestor(parent: Mapping[str, Edge], a: str, v: str) -> bool:
    while v != ROOT:
        if v == a:
            return True
        v = parent[v].other(v)
    return False


def _reprice(parent: Mapping[str, Edge], cost: dict[str, float], w: str) -> None:
    kids: dict[str, list[str]] = {}
    for x, e in parent.items():
        kids.setdefault(e.other(x), []).append(x)
    stack = [w]
    while stack:
        x = stack.pop()
        cost[x] = cost[parent[x].other(x)] + parent[x].cr
        stack.extend(kids.get(x, []))


def exact(
    graph: StorageGraph,
    budgets: Mapping[str, float],
    scheme: str = "independent",
    *,
    limit: int = 200_000,
) -> Plan | None:
    """Brute-force optimum for tiny graphs (a test oracle); ``None`` if nothing is feasible."""
    options = [graph.adj[v] for v in graph.vertices]
    if math.prod(len(o) for o in options) > limit:
        raise InvalidInputError("graph too large for exhaustive search")
    best: tuple[float, Plan] | None = None
    for choice in itertools.product(*options):
        plan = Plan(dict(zip(graph.vertices, choice)))
        try:
            result = evaluate(graph, plan, budgets, scheme, "exact")
        except InvalidInputError:
            continue  # not a tree
        if result.feasible and (best is None or result.storage < best[0]):
            best = (result.storage, plan)
    return None if best is None else best[1]


def solve(
    graph: StorageGraph,
    algorithm: str = "pas-mt",
    *,
    alpha: float = 2.0,
    scheme: str = "independent",
    budgets: Mapping[str, float] | None = None,
) -> PlanResult:
    """Run one algorithm with θ_i = α · C_r(SPT, s_i) (or explicit ``budgets``)."""
    _check_scheme(scheme)
    theta = dict(budgets) if budgets is not None else budgets_for(graph, alpha, scheme)
    if algorithm == "mst":
        plan = mst(graph)
    elif algorithm == "spt":
        plan = spt(graph)
    elif algorithm == "last":
        plan = last(graph, alpha)
    elif algorithm == "pas-mt":
        plan = pas_mt(graph, theta, scheme)
    elif algorithm == "pas-pt":
        plan = pas_pt(graph, theta, scheme)
    else:
        raise InvalidInputError(f"unknown algorithm {algorithm!r}; use one of {ALGORITHMS}")
    return evaluate(graph, plan, theta, scheme, algorithm)


def graph_from_edges(
    edges: Sequence[tuple[str, str, float, float]], groups: Mapping[str, Sequence[str]]
) -> StorageGraph:
    """Build a graph from ``(u, v, cs, cr)`` tuples (use :data:`ROOT` or ``"v0"`` for ν0)."""
    es = [
        Edge(ROOT if u == "v0" else u, ROOT if v == "v0" else v, cs, cr) for u, v, cs, cr in edges
    ]
    vertices = sorted({x for e in es for x in (e.u, e.v)} - {ROOT})
    return StorageGraph(vertices, es, {g: list(m) for g, m in groups.items()})
