"""Provenance commands: ``dlv segment``, ``dlv summarize``, ``dlv uses`` and ``dlv prov``.

Each parses its arguments, makes one :class:`~provdb.repository.Repository` call and renders
the typed result (``--json``: its ``to_dict()``); the semantics are in ``docs/provenance.md``.
"""

from __future__ import annotations

import click
from rich.tree import Tree

from provdb.cli.common import open_repo
from provdb.cli.render import console, echo_json, esc, size
from provdb.errors import InvalidInput
from provdb.provenance import Segment, SegmentVertex, Summary, SummaryNode

_ROLE_STYLE = {
    "source": "green",
    "destination": "bold magenta",
    "path": "bold",
    "context": "dim",
    "hop": "dim italic",
}


def _name(v: SegmentVertex) -> str:
    if v.kind == "snapshot":
        return f"@{v.props.get('iteration', '?')}"
    if v.kind == "file":
        return str(v.props.get("path") or v.id).rsplit("/", 1)[-1]
    return v.name or v.id


def _short(v: SegmentVertex) -> str:
    key = v.id if v.kind == "agent" else v.id[:12]
    style = _ROLE_STYLE.get(v.role, "")
    return f"[{style}]{v.kind} {esc(_name(v))}[/{style}] [dim]{esc(key)}[/dim]"


def _vertex_label(v: SegmentVertex, snapshots: list[str]) -> str:
    extra = f" [cyan]{esc(v.op)}[/cyan]" if v.op else ""
    if v.kind == "run":
        if v.props.get("status"):
            extra += f" {esc(v.props['status'])}"
        if v.params:
            names = ", ".join(v.params[:4]) + (", …" if len(v.params) > 4 else "")
            extra += f" [dim]{len(v.params)} params ({esc(names)})[/dim]"
    if snapshots:
        extra += f" [dim]snapshots {esc(' '.join(snapshots))}[/dim]"
    return f"{_short(v)} [dim]({v.role})[/dim]{extra}"


def render_segment(seg: Segment) -> None:
    """The segment as a tree from each destination back to the sources (a vertex reached a
    second time is marked ``↑`` and not expanded again); snapshots are listed on their
    version."""
    if seg.empty:
        console.print("no derivation path from the sources to the destinations")
        return
    by_ref = {v.ref: v for v in seg.vertices}
    out: dict[str, list[tuple[str, str, str]]] = {}
    snaps: dict[str, list[str]] = {}
    folded: set[str] = set()
    for e in seg.edges:
        if e.kind == "SNAPSHOT_OF":
            snaps.setdefault(e.dst, []).append(_name(by_ref[e.src]))
            folded.add(e.src)
        else:
            out.setdefault(e.src, []).append((e.kind, e.dst, e.op))
    shown: set[str] = set()

    def label(ref: str) -> str:
        return _vertex_label(by_ref[ref], sorted(snaps.get(ref, []), key=lambda x: (len(x), x)))

    def grow(tree: Tree, ref: str) -> None:
        for kind, dst, op in sorted(out.get(ref, ()), key=lambda x: (x[0], x[1])):
            edge = f"[dim]{kind.lower()}{' ' + esc(op) if op else ''} →[/dim] "
            if dst in shown:
                tree.add(edge + _short(by_ref[dst]) + " ↑")
                continue
            shown.add(dst)
            grow(tree.add(edge + label(dst)), dst)

    entered = {e.dst for e in seg.edges}
    starts = [v for v in seg.vertices if v.role == "destination"]
    starts += [v for v in seg.vertices if v.role != "destination" and v.ref not in entered]
    for v in starts:
        if v.ref in shown or v.ref in folded:  # snapshots: listed on their version
            continue
        shown.add(v.ref)
        tree = Tree(label(v.ref))
        grow(tree, v.ref)
        console.print(tree)
    counts: dict[str, int] = {}
    for v in seg.vertices:
        counts[v.role] = counts.get(v.role, 0) + 1
    console.print(
        f"[dim]{len(seg.vertices)} vertices ("
        + ", ".join(f"{n} {r}" for r, n in counts.items())
        + f"), {len(seg.edges)} edges[/dim]"
    )


@click.command()
@click.option("--from", "sources", multiple=True, required=True, help="A source version.")
@click.option("--to", "destinations", multiple=True, required=True, help="A destination.")
@click.option(
    "--exclude",
    multiple=True,
    help="Leave out a vertex kind (agent, dataset, file, snapshot, run), an edge kind "
    "(used, derived_from, …) or vertices with KEY=VALUE (uri=builtin:digits).",
)
@click.option("--hops", type=int, default=0, show_default=True, help="Rings of context to add.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def segment(
    ctx: click.Context,
    sources: tuple[str, ...],
    destinations: tuple[str, ...],
    exclude: tuple[str, ...],
    hops: int,
    as_json: bool,
) -> None:
    """Show how the --to versions derive from the --from versions (PgSeg)."""
    seg = open_repo(ctx).segment(list(sources), list(destinations), exclude, hops)
    if as_json:
        echo_json(seg.to_dict())
        return
    render_segment(seg)


def _node_label(n: SummaryNode, snapshots: int = 0) -> str:
    details = []
    for k, v in n.label.items():
        if k == "kind" or v in ("", [], None):
            continue
        if isinstance(v, list):
            v = ",".join(map(str, v[:4])) + (f",… ({len(v)})" if len(v) > 4 else "")
        details.append(f"{k}={esc(v)}")
    if snapshots:
        details.append(f"snapshots ×{snapshots}")
    text = f"[bold]{esc(n.kind)}[/bold] ×{n.frequency}"
    return text + (f" [dim]{' '.join(details)}[/dim]" if details else "")


def render_summary(summary: Summary) -> None:
    """The summary as a tree from the destination classes back to their inputs, with
    frequencies (each class drawn once; snapshot classes counted on their version class)."""
    out: dict[int, list[tuple[str, int, int]]] = {}
    snaps: dict[int, int] = {}
    folded = set()
    for e in summary.edges:
        if e.kind == "SNAPSHOT_OF":
            snaps[e.dst] = snaps.get(e.dst, 0) + e.frequency
            folded.add(e.src)
        else:
            out.setdefault(e.src, []).append((e.kind, e.dst, e.frequency))
    console.print(
        f"[dim]{summary.segments} segments → {len(summary.nodes)} classes, "
        f"{len(summary.edges)} edges (aggregation {', '.join(summary.aggregation)}; "
        f"k={summary.k})[/dim]"
    )
    shown: set[int] = set()

    def label(node: int) -> str:
        return _node_label(summary.node(node), snaps.get(node, 0))

    def grow(tree: Tree, node: int) -> None:
        for kind, dst, freq in sorted(out.get(node, ())):
            edge = f"[dim]{kind.lower()} ×{freq} →[/dim] "
            if dst in shown:
                tree.add(edge + _node_label(summary.node(dst)) + " ↑")  # drawn above already
            else:
                shown.add(dst)
                grow(tree.add(edge + label(dst)), dst)

    entered = {d for outs in out.values() for _, d, _ in outs}
    roots = [n for n in summary.nodes if n.id not in entered and n.id not in folded]
    roots.sort(key=lambda n: (n.label.get("role") != "destination", n.id))
    for root in roots:
        if root.id in shown:
            continue
        shown.add(root.id)
        tree = Tree(label(root.id))
        grow(tree, root.id)
        console.print(tree)


@click.command()
@click.option("--from", "sources", multiple=True, help="A source version (pairs with --to).")
@click.option("--to", "destinations", multiple=True, help="A destination version.")
@click.option("--select", "select", default=None, help="A DQL select: each version it returns, "
              "back to its roots, is one segment.")  # fmt: skip
@click.option("--by", "aggregation", default="kind,role,op,params", show_default=True,
              help="Properties that make vertices equivalent (kind, role, op, params, name, "
              "status, uri, path, command).")  # fmt: skip
@click.option("-k", "k", type=int, default=1, show_default=True,
              help="Steps of provenance that must match too.")  # fmt: skip
@click.option("--exclude", multiple=True, help="As for dlv segment.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def summarize(
    ctx: click.Context,
    sources: tuple[str, ...],
    destinations: tuple[str, ...],
    select: str | None,
    aggregation: str,
    k: int,
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """Merge similar segments into one summary graph with frequencies (PgSum)."""
    if len(sources) != len(destinations):
        raise InvalidInput("give --from and --to in pairs (as many of each)")
    summary = open_repo(ctx).summarize(
        list(zip(sources, destinations, strict=True)),
        query=select,
        aggregation=[a for a in aggregation.split(",")],
        k=k,
        exclude=exclude,
    )
    if as_json:
        echo_json(summary.to_dict())
        return
    render_summary(summary)


@click.command()
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def uses(ctx: click.Context, version: str, as_json: bool) -> None:
    """List later versions whose weights reuse VERSION's tensors bit for bit."""
    found = open_repo(ctx).uses(version)
    if as_json:
        echo_json(found.to_dict())
        return
    console.print(
        f"[bold]{esc(found.name)}[/bold] {found.version[:12]}: {size(found.total_bytes)} "
        f"in snapshot {esc(found.snapshot[:40])}"
    )
    if not found.reusers:
        console.print("no later version reuses its tensors")
    for r in found.reusers:
        share = f"{100 * r.shared_bytes / found.total_bytes:.1f}%" if found.total_bytes else "-"
        console.print(
            f"  [bold]{esc(r.name)}[/bold] {r.id[:12]}  shares {len(r.tensors)} tensors, "
            f"{size(r.shared_bytes)} ({share})"
        )
        for t in r.tensors:
            alias = f" as {esc(t.as_name)}" if t.as_name != t.tensor else ""
            console.print(
                f"    {esc(t.tensor)}{alias} {list(t.shape)} {esc(t.dtype)} {size(t.bytes)}"
            )


@click.command()
@click.argument("version")
@click.option("--format", "fmt", type=click.Choice(["json", "provn", "xml"]), default="json",
              show_default=True, help="PROV serialization.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of stdout.")  # fmt: skip
@click.pass_context
def prov(ctx: click.Context, version: str, fmt: str, output: str | None) -> None:
    """Write VERSION's provenance back to its roots as W3C PROV."""
    result = open_repo(ctx).prov(version, fmt)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(result.text)
        click.echo(
            f"wrote {output}: {result.entities} entities, {result.activities} activities, "
            f"{result.agents} agents, {result.relations} relations"
        )
        return
    click.echo(result.text)


COMMANDS = (segment, summarize, uses, prov)
