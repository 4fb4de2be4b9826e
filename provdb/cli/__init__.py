"""``dlv``: the git-like command line for model versions.

Every command parses its arguments, makes one library call and renders the result
(sqlite-utils style). Library errors (:class:`provdb.errors.ProvDBError`) become a one-line
``error: …`` on stderr and exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from provdb.errors import ProvDBError
from provdb.repository import Repository

console = Console()


class DlvGroup(click.Group):
    """A click group that turns library errors into one readable line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProvDBError as exc:
            fail(ctx, exc)


def fail(ctx: click.Context, exc: ProvDBError) -> NoReturn:
    """The CLI's one error boundary: one line on stderr, the code's exit status."""
    click.echo(f"error: {one_line(exc.message)}", err=True)
    ctx.exit(exc.exit_status)


def one_line(message: str, limit: int = 2000) -> str:
    """``message`` as one line of at most ``limit`` characters (a DQL caret snippet is kept
    on its lines: it is the one multi-line error users need)."""
    text = message if "^" in message else " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_standalone(
    command: click.Command, argv: list[str] | None, prog_name: str | None = None
) -> int:
    """Run ``command`` as a program and return its exit status (errors as :func:`fail`)."""
    try:
        command.main(argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except ProvDBError as exc:
        click.echo(f"error: {one_line(exc.message)}", err=True)
        return exc.exit_status
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _repo(ctx: click.Context) -> Repository:
    repo = Repository.open(ctx.obj.get("repo"))
    ctx.call_on_close(repo.close)
    return repo


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=DlvGroup)
@click.option(
    "--repo",
    envvar="DLV_REPO",
    type=click.Path(file_okay=False),
    help="Repository folder (default: the nearest one above the current folder).",
)
@click.version_option(package_name="provdb", prog_name="dlv")
@click.pass_context
def cli(ctx: click.Context, repo: str | None) -> None:
    """dlv — version, query and share deep-learning models."""
    ctx.ensure_object(dict)
    ctx.obj["repo"] = repo


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option(
    "--graph",
    metavar="URI",
    help="Neo4j URI (bolt://host:7687, neo4j+s://…) for the provenance graph; "
    "default: an embedded LadybugDB database inside .dlv/.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the repository's description as JSON.")
def init(path: str, graph: str | None, as_json: bool) -> None:
    """Create a repository in PATH (default: the current folder)."""
    with Repository.init(path, graph=graph) as repo:
        info = repo.info()
    if as_json:
        _echo_json(info)
    else:
        click.echo(f"Initialized empty dlv repository in {info['root']}/.dlv ({info['backend']})")


@cli.command("list")
@click.option("--name", metavar="GLOB", help="Only versions whose name matches GLOB.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many versions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_(ctx: click.Context, name: str | None, limit: int | None, as_json: bool) -> None:
    """List model versions, newest first, with what each was derived from."""
    rows = _repo(ctx).list_versions(name=name, limit=limit)
    if as_json:
        _echo_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no versions yet (commit one with `dlv commit`)")
        return
    table = Table("id", "name", "created", "derived from", "message")
    for r in rows:
        parents = ", ".join(f"{p['id'][:12]} ({p['op']})" for p in r.parents)
        table.add_row(r.id[:12], r.name, r.created_at[:19].replace("T", " "), parents, r.message)
    console.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Show where the repository's graph and archive live and what they hold."""
    data = _repo(ctx).info()
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key:>9}: {value}")


def _parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs; ``v`` is read as JSON when it parses (``0.01``, ``true``, ``[1,2]``)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def add(ctx: click.Context, files: tuple[str, ...]) -> None:
    """Stage FILES (scripts, configs, data) to be recorded, by digest, with the next commit."""
    for record in _repo(ctx).stage(list(files)):
        click.echo(f"staged {record.path} ({_size(record.size)}, sha256 {record.digest[:12]})")


@cli.command()
@click.argument("model_file", required=False, type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Version name (the model series it belongs to).")
@click.option("--parent", metavar="VERSION", help="Version this one derives from.")
@click.option(
    "--op",
    default="commit",
    show_default=True,
    type=click.Choice(["commit", "finetune", "copy"]),
    help="How it derives from --parent.",
)
@click.option(
    "--network",
    "network_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Network definition JSON (for weights-only files without --parent).",
)
@click.option("-m", "--message", default="", help="Commit message.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Hyper-parameter (repeatable); VALUE is JSON when it parses.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new version as JSON.")
@click.pass_context
def commit(
    ctx: click.Context,
    model_file: str | None,
    name: str,
    parent: str | None,
    op: str,
    network_file: str | None,
    message: str,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Commit MODEL_FILE (.onnx, .safetensors, or a PyTorch checkpoint) as a new version.

    Staged files (dlv add) are recorded with it. Weights-only files take their network from
    --network or from --parent. Prints the new version id.
    """
    from provdb.models.files import read_network_file

    network = read_network_file(network_file) if network_file else None
    with console.status("committing…"):
        result = _repo(ctx).commit_file(
            model_file,
            name,
            parent=parent,
            network=network,
            op=op,
            message=message,
            params=_parse_params(params),
        )
    if as_json:
        _echo_json(
            {
                "id": result.version.id,
                "name": name,
                "snapshot": result.snapshot,
                "raw_bytes": result.raw_bytes,
                "new_bytes": result.new_bytes,
            }
        )
    else:
        click.echo(result.version.id)


@cli.command()
@click.argument("version")
@click.option("--name", required=True, help="Name of the new version.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.pass_context
def copy(ctx: click.Context, version: str, name: str, message: str) -> None:
    """Start a new version from VERSION (same network and weights; no new weight bytes)."""
    click.echo(_repo(ctx).copy(version, name, message).version.id)


@cli.command()
@click.argument("version")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write: .safetensors (bit-exact weights) or .onnx.",
)
@click.pass_context
def checkout(ctx: click.Context, version: str, output: str) -> None:
    """Write VERSION's weights (and network, for .onnx) to a file."""
    click.echo(f"wrote {_repo(ctx).checkout(version, output)}")


@cli.command()
@click.argument("version")
@click.option("--depth", type=click.IntRange(min=1), help="At most this many hops.")
@click.option("--down", is_flag=True, help="Descendants instead of ancestors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def lineage(ctx: click.Context, version: str, depth: int | None, down: bool, as_json: bool) -> None:
    """Show what VERSION was derived from (or, with --down, what derives from it)."""
    lin = _repo(ctx).lineage(version, depth=depth, direction="down" if down else "up")
    if as_json:
        _echo_json(
            {
                "root": lin.root,
                "depth": lin.depth,
                "versions": {
                    k: {"name": v.name, "created_at": v.created_at} for k, v in lin.versions.items()
                },
                "edges": [e.__dict__ for e in lin.edges],
            }
        )
        return
    from rich.tree import Tree

    def label(vid: str) -> str:
        v = lin.versions[vid]
        return f"[bold]{v.name}[/bold] {vid[:12]} [dim]{v.created_at[:19]}[/dim]"

    children: dict[str, list[tuple[str, str]]] = {}
    for e in lin.edges:
        a, b = (e.base, e.derived) if down else (e.derived, e.base)
        children.setdefault(a, []).append((b, e.op))
    tree = Tree(label(lin.root))

    def grow(node: Tree, vid: str, seen: set[str]) -> None:
        for nxt, op in children.get(vid, []):
            if lin.depth.get(nxt, 0) > lin.depth.get(vid, 0) and nxt not in seen:
                grow(node.add(f"[cyan]{op}[/cyan] {label(nxt)}"), nxt, seen | {nxt})

    grow(tree, lin.root, {lin.root})
    console.print(tree)


@cli.command()
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def desc(ctx: click.Context, version: str, as_json: bool) -> None:
    """Describe VERSION: network, hyper-parameters, metrics, files, snapshots, storage."""
    from provdb.compare import describe

    d = describe(_repo(ctx), version)
    if as_json:
        _echo_json(d)
        return
    console.print(f"[bold]{d['name']}[/bold] {d['id']}  {d['created_at'][:19]}  by {d['author']}")
    if d["message"]:
        console.print(f"  {d['message']}")
    for p in d["parents"]:
        console.print(f"  derived from {p['id'][:12]} ({p['op']})")
    layers = Table("#", "layer", "type", "attributes", title="network")
    for i, layer in enumerate(d["layers"]):
        kind = layer["type"] + (f"({layer['mode']})" if layer["mode"] else "")
        layers.add_row(str(i), layer["name"], kind, json.dumps(layer["attrs"])[:60])
    console.print(layers)
    if d["params"]:
        t = Table("hyper-parameter", "value")
        for k, v in d["params"].items():
            t.add_row(k, json.dumps(v))
        console.print(t)
    if d["metrics"]:
        t = Table("metric", "last", "min", "max", "points")
        for k, m in d["metrics"].items():
            t.add_row(
                k,
                *(f"{m[c]:.4g}" if m[c] is not None else "-" for c in ("last", "min", "max")),
                str(m["points"]),
            )
        console.print(t)
    for f in d["files"]:
        console.print(f"  file {f['path']} ({_size(f['size'])}, sha256 {f['digest'][:12]})")
    t = Table("snapshot", "iteration", "raw", "stored", title="weights")
    for s in d["snapshots"]:
        t.add_row(s["id"], str(s["iteration"]), _size(s.get("raw")), _size(s.get("stored")))
    console.print(t)


@cli.command()
@click.argument("versions", nargs=-1, required=True)
@click.option("--only-differences", is_flag=True, help="Hide what is the same everywhere.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def diff(
    ctx: click.Context, versions: tuple[str, ...], only_differences: bool, as_json: bool
) -> None:
    """Compare two or more versions against the first: architecture, hyper-parameters,
    metrics and per-layer weight change (relative L2)."""
    from provdb.compare import diff as diff_versions

    if len(versions) < 2:
        raise click.UsageError("give at least two versions")
    d = diff_versions(_repo(ctx), list(versions), only_differences)
    if as_json:
        _echo_json(d)
        return
    heads = [f"{v['name']} {v['id'][:8]}" for v in d["versions"]]
    colour = {"added": "green", "removed": "red", "changed": "yellow", "same": "dim"}

    def show(title: str, rows: list[dict[str, Any]], fmt: Any) -> None:
        if not rows:
            return
        t = Table(title, "", *heads, title=title)
        for r in rows:
            t.add_row(
                f"[{colour[r['status']]}]{r['name']}", r["status"], *(fmt(v) for v in r["values"])
            )
        console.print(t)

    def layer(v: Any) -> str:
        return "-" if v is None else v["type"] + (f"({v['mode']})" if v["mode"] else "")

    show("layers", d["layers"], layer)
    show("hyper-parameters", d["params"], lambda v: "-" if v is None else json.dumps(v))
    show("metrics (last)", d["metrics"], lambda v: "-" if v is None else f"{v:.4g}")
    show("weights (rel. L2 vs first)", d["weights"], lambda v: "-" if v is None else f"{v:.3g}")
    for kind in ("added", "removed"):
        for a, b in d["edges"][kind]:
            console.print(f"[{colour[kind]}]edge {kind}: {a} → {b}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Raw vs stored bytes of the archive: total, per byte plane, per version."""
    s = _repo(ctx).stats()
    if as_json:
        _echo_json(s)
        return
    console.print(
        f"raw {_size(s['raw_bytes'])}  unique {_size(s['unique_raw_bytes'])}  "
        f"stored {_size(s['stored_bytes'])}  ({100 * s['ratio']:.1f}% of raw)  "
        f"{s['snapshots']} snapshots, {s['tensors']} tensors, {s['chunks']} chunks"
    )
    if s["per_plane"]:
        console.print(
            "per byte plane: "
            + ", ".join(f"plane {i}: {_size(b)}" for i, b in enumerate(s["per_plane"]))
        )
    t = Table("version", "name", "snapshots", "raw")
    for v in s["versions"]:
        t.add_row(v["id"][:12], v["name"], str(v["snapshots"]), _size(v["raw_bytes"]))
    console.print(t)


@cli.command()
@click.pass_context
def gc(ctx: click.Context) -> None:
    """Remove archive data no committed version refers to (e.g. after a crash mid-commit)."""
    out = _repo(ctx).gc()
    click.echo(", ".join(f"{k}: {v}" for k, v in out.items()))


@cli.command()
@click.option(
    "--budget",
    "alpha",
    type=click.FloatRange(min=1.0),
    required=True,
    help="α ≥ 1: each snapshot may cost α × its cheapest recreation cost.",
)
@click.option(
    "--algorithm",
    default="pas-mt",
    show_default=True,
    type=click.Choice(["pas-mt", "pas-pt", "mst", "spt", "last"]),
)
@click.option(
    "--scheme",
    default="independent",
    show_default=True,
    type=click.Choice(["independent", "parallel"]),
    help="Retrieval scheme.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def archive(ctx: click.Context, alpha: float, algorithm: str, scheme: str, as_json: bool) -> None:
    """Re-plan the parameter archive: minimise storage under recreation budgets."""
    with console.status(f"re-planning with {algorithm} at α = {alpha}…"):
        out = _repo(ctx).replan(alpha, algorithm, scheme)
    if as_json:
        _echo_json(out)
        return
    click.echo(
        f"{algorithm} (α = {alpha}, {scheme}): rewrote {out['rewritten']} tensors; "
        f"stored now {_size(out['stats']['stored_bytes'])}; "
        f"{len(out['budget_violations'])} budget violations"
    )


@cli.command("eval")
@click.argument("version")
@click.option("--data", required=True, help="builtin:digits or an .npz with x_test/y_test.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def eval_(ctx: click.Context, version: str, data: str, as_json: bool) -> None:
    """Evaluate VERSION on a data set: accuracy, top-k and loss."""
    with console.status("evaluating…"):
        out = _repo(ctx).evaluate(version, data)
    if as_json:
        _echo_json(out)
        return
    for k, v in out.items():
        click.echo(f"{k:>9}: {v:.4f}" if isinstance(v, float) else f"{k:>9}: {v}")


def _register_query() -> None:
    from provdb.cli.hub import COMMANDS as HUB_COMMANDS
    from provdb.cli.neo4j import neo4j
    from provdb.cli.query import query

    cli.add_command(query)
    cli.add_command(neo4j)
    for command in HUB_COMMANDS:
        cli.add_command(command)


_register_query()


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
