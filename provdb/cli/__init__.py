"""``dlv``: the git-like command line for model versions.

Every command parses its arguments, makes one library call and renders the result
(sqlite-utils style). Library errors (:class:`provdb.errors.ProvDBError`) become a one-line
``error: …`` on stderr and exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
from typing import Any, NoReturn

import click
from rich.table import Table

from provdb.cli.common import open_repo
from provdb.cli.render import (
    clip_json,
    console,
    echo_json,
    esc,
    number,
    run_status,
    seconds,
    shorten_names,
    size,
)
from provdb.errors import AlreadyExists, DiskFull, ProvDBError
from provdb.repository import Repository
from provdb.results import DiffRow, LineageNode

#: Commands whose modules are imported only when one of them is looked up (run, or listed by
#: ``dlv --help``): DQL and its console, the Neo4j server, the hub client and server,
#: the dashboard and the provenance operators.
LAZY_COMMANDS: dict[str, str] = {
    "query": "provdb.cli.query",
    "neo4j": "provdb.cli.neo4j",
    "dashboard": "provdb.cli.dashboard",
    **dict.fromkeys(("hub", "serve", "login", "publish", "search", "pull"), "provdb.cli.hub"),
    **dict.fromkeys(("segment", "summarize", "uses", "prov"), "provdb.cli.provenance"),
}


class DlvGroup(click.Group):
    """A click group that turns library errors into one readable line and exit status 1,
    and loads the :data:`LAZY_COMMANDS` on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module = importlib.import_module(LAZY_COMMANDS[cmd_name])
            self.add_command(getattr(module, cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProvDBError as exc:
            fail(ctx, exc)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            fail(ctx, DiskFull(f"disk full: {exc.strerror} ({exc.filename or 'a write'})"))


def fail(ctx: click.Context, exc: ProvDBError) -> NoReturn:
    """The CLI's one error boundary: one line on stderr, the code's exit status."""
    ctx.exit(report(exc))


def report(exc: ProvDBError) -> int:
    """Print ``exc`` as one ``error: …`` line on stderr; its code's exit status."""
    click.echo(f"error: {one_line(exc.message)}", err=True)
    return exc.exit_status


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
        return report(exc)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


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
@click.option(
    "--archive",
    metavar="URL",
    help="s3://BUCKET/PREFIX?endpoint=URL: keep the weights in an S3-compatible object store "
    "(credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); default: LMDB inside .dlv/.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the repository's description as JSON.")
def init(path: str, graph: str | None, archive: str | None, as_json: bool) -> None:
    """Create a repository in PATH (default: the current folder)."""
    with Repository.init(path, graph=graph, archive=archive) as repo:
        info = repo.info()
    if as_json:
        echo_json(info.to_dict())
    else:
        click.echo(f"Initialized empty dlv repository in {info.root}/.dlv ({info.backend})")


@cli.command("list")
@click.option("--name", metavar="GLOB", help="Only versions whose name matches GLOB.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many versions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_(ctx: click.Context, name: str | None, limit: int | None, as_json: bool) -> None:
    """List model versions, newest first, with what each was derived from and the status
    of the run that generated it (FAILED in red)."""
    rows = open_repo(ctx).list_versions(name=name, limit=limit)
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no versions yet (commit one with `dlv commit`)")
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("name", no_wrap=True)  # names and ids stay whole; the message wraps
    table.add_column("created", no_wrap=True)
    for head in ("derived from", "run", "message"):
        table.add_column(head)
    for r in rows:
        parents = ", ".join(f"{p.id[:12]} ({p.op})" for p in r.parents)
        created = r.created_at[:19].replace("T", " ")
        table.add_row(r.id[:12], esc(r.name), created, parents, run_status(r.run), esc(r.message))
    console.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Show where the repository's graph and archive live and what they hold."""
    data = open_repo(ctx).info().to_dict()
    if as_json:
        echo_json(data)
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


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def add(ctx: click.Context, files: tuple[str, ...]) -> None:
    """Stage FILES (scripts, configs, data) to be recorded, by digest, with the next commit."""
    for record in open_repo(ctx).stage(list(files)):
        click.echo(f"staged {record.path} ({size(record.size)}, sha256 {record.digest[:12]})")


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.pass_context
def unstage(ctx: click.Context, files: tuple[str, ...]) -> None:
    """Take FILES off the list dlv add staged (no FILES: clear the whole list)."""
    for record in open_repo(ctx).unstage(list(files) if files else None):
        click.echo(f"unstaged {record.path}")


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
@click.option(
    "--float",
    "float_scheme",
    metavar="SCHEME",
    help="Store 32/64-bit float tensors approximately: fp16, bf16, fixed16 or q8 "
    "(default: lossless, bit-exact).",
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
    float_scheme: str | None,
    as_json: bool,
) -> None:
    """Commit MODEL_FILE (.onnx, .safetensors, or a PyTorch checkpoint) as a new version.

    Staged files (dlv add) are recorded with it. Weights-only files take their network from
    --network or from --parent. Prints the new version id.
    """
    from provdb.models.files import read_network_file

    network = read_network_file(network_file) if network_file else None
    with console.status("committing…"):
        result = open_repo(ctx).commit_file(
            model_file,
            name,
            parent=parent,
            network=network,
            op=op,
            message=message,
            params=_parse_params(params),
            float_scheme=float_scheme,
        )
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(result.version.id)


@cli.command()
@click.argument("version")
@click.option("--name", required=True, help="Name of the new version.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.pass_context
def copy(ctx: click.Context, version: str, name: str, message: str) -> None:
    """Start a new version from VERSION (same network and weights; no new weight bytes)."""
    click.echo(open_repo(ctx).copy(version, name, message).version.id)


@cli.command()
@click.argument("version")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write: .safetensors (bit-exact weights) or .onnx.",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.pass_context
def checkout(ctx: click.Context, version: str, output: str, force: bool) -> None:
    """Write VERSION's weights (and network, for .onnx) to a file; says so on stderr when
    they were committed with a lossy --float scheme (the values are approximate)."""
    from provdb.lossy import LOSSLESS, summarise

    repo = open_repo(ctx)
    click.echo(f"wrote {repo.checkout(version, output, force=force)}")
    schemes = repo.float_schemes(version)
    lossy = [n for n, label in schemes.items() if label != LOSSLESS]
    if lossy:
        click.echo(f"note: weights are approximate: {len(lossy)} of {len(schemes)} tensors "
                   f"were stored with --float {summarise(schemes)}", err=True)  # fmt: skip


@cli.command()
@click.argument("version")
@click.option("--depth", type=click.IntRange(min=1), help="At most this many hops.")
@click.option("--down", is_flag=True, help="Descendants instead of ancestors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def lineage(ctx: click.Context, version: str, depth: int | None, down: bool, as_json: bool) -> None:
    """Show what VERSION was derived from (or, with --down, what derives from it)."""
    lin = open_repo(ctx).lineage(version, depth=depth, direction="down" if down else "up")
    if as_json:
        echo_json(lin.to_dict())
        return
    from rich.tree import Tree

    def label(node: LineageNode) -> str:
        op = f"[cyan]{esc(node.op)}[/cyan] " if node.op else ""
        return f"{op}[bold]{esc(node.name)}[/bold] {node.id[:12]} [dim]{node.created_at[:19]}[/dim]"

    def grow(tree: Tree, node: LineageNode) -> None:
        for child in node.children:
            grow(tree.add(label(child)), child)

    root = lin.tree()
    tree = Tree(label(root))
    grow(tree, root)
    console.print(tree)


@cli.command()
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def desc(ctx: click.Context, version: str, as_json: bool) -> None:
    """Describe VERSION: network, hyper-parameters, metrics, files, snapshots, storage."""
    d = open_repo(ctx).describe(version)
    if as_json:
        echo_json(d.to_dict())
        return
    console.print(f"[bold]{esc(d.name)}[/bold] {d.id}  {d.created_at[:19]}  by {esc(d.author)}")
    if d.message:
        console.print(f"  {esc(d.message)}")
    for p in d.parents:
        console.print(f"  derived from {p.id[:12]} ({p.op})")
    if d.run:
        r = d.run
        console.print(
            f"  run {r.id[:12]} {run_status(r)}  started {esc(r.started_at[:19])}"
            f"  duration {seconds(r.duration())}  agent {esc(r.agent or '-')}"
        )
        if r.command:
            console.print(f"  command {esc(r.command)}")
    if d.network_inferred:
        console.print("  network inferred from tensor names and shapes")
    layers = Table("#", "layer", "type", "attributes", title="network")
    for i, layer in enumerate(d.layers):
        kind = layer.type + (f"({layer.mode})" if layer.mode else "")
        attrs = clip_json(json.dumps(layer.attrs), 60)
        layers.add_row(str(i), esc(layer.name), esc(kind), esc(attrs))
    console.print(layers)
    if d.params:
        t = Table("hyper-parameter", "value")
        for k, v in d.params.items():
            t.add_row(esc(k), esc(json.dumps(v)))
        console.print(t)
    if d.metrics:
        t = Table("metric", "last", "min", "max", "points")
        for k, m in d.metrics.items():
            t.add_row(esc(k), number(m.last), number(m.min), number(m.max), str(m.points))
        console.print(t)
    for f in d.files:
        console.print(f"  file {esc(f.path)} ({size(f.size)}, sha256 {f.digest[:12]})")
    t = Table("snapshot", "iteration", "raw", "stored (own)", "shared", "float",
              "chain depth", "full read", title="weights")  # fmt: skip
    for s in d.snapshots:
        depth, read = s.extra.get("chain_depth"), s.extra.get("read_bytes")
        t.add_row(s.id, str(s.iteration), size(s.raw), size(s.stored),
                  size(s.extra.get("referenced")), esc(str(s.extra.get("float_scheme", "-"))),
                  "-" if depth is None else str(depth), size(read))  # fmt: skip
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
    if len(versions) < 2:
        raise click.UsageError("give at least two versions")
    d = open_repo(ctx).diff(list(versions), only_differences)
    if as_json:
        echo_json(d.to_dict())
        return
    heads = [f"{esc(v['name'])} {v['id'][:8]}" for v in d.versions]
    colour = {"added": "green", "removed": "red", "changed": "yellow", "same": "dim"}
    name_width = max(16, console.width // 3)  # long names are cut from the middle to this

    def show(title: str, rows: list[DiffRow], fmt: Any) -> None:
        if not rows:
            return
        t = Table(title=title)
        names = shorten_names([r.name for r in rows], name_width)
        t.add_column(title, min_width=min(name_width, max(map(len, names))), overflow="fold")
        for head in ("", *heads):
            t.add_column(head)
        for r, shown in zip(rows, names, strict=True):
            name = f"[{colour[r.status]}]{esc(shown)}"
            t.add_row(name, r.status, *(esc(fmt(v)) for v in r.values))
        console.print(t)

    def layer(v: Any) -> str:
        return "-" if v is None else v["type"] + (f"({v['mode']})" if v["mode"] else "")

    show("layers", d.layers, layer)
    show("hyper-parameters", d.params, lambda v: "-" if v is None else json.dumps(v))
    show("metrics (last)", d.metrics, number)
    show("weights (rel. L2 vs first)", d.weights, lambda v: "-" if v is None else f"{v:.3g}")
    for kind in ("added", "removed"):
        for a, b in d.edges[kind]:
            console.print(f"[{colour[kind]}]edge {kind}: {esc(a)} → {esc(b)}")


@cli.group()
def network() -> None:
    """Work with network definitions (the JSON that --network reads)."""


@network.command("infer")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the JSON to this file instead of printing it.",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def network_infer(model_file: str, output: str | None, force: bool) -> None:
    """Infer a network definition from a weights file's tensor names and shapes (ONNX files
    give their own network) and print it as JSON, to edit and pass to dlv commit --network."""
    from provdb.models.files import read_model_file

    found = read_model_file(model_file, infer=True)
    assert found.network is not None  # infer=True always yields one
    text = found.network.to_json(indent=2) + "\n"
    if output:
        if os.path.exists(output) and not force:
            raise AlreadyExists(f"{output} exists; give --force to overwrite it")
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Raw vs stored bytes of the archive: total, per byte plane, per version."""
    s = open_repo(ctx).stats()
    if as_json:
        echo_json(s.to_dict())
        return
    console.print(
        f"raw {size(s.raw_bytes)}  unique {size(s.unique_raw_bytes)}  "
        f"stored {size(s.stored_bytes)}  ({100 * s.ratio:.1f}% of raw)  "
        f"{s.snapshots} snapshots, {s.tensors} tensors, {s.chunks} chunks"
    )
    graph = "n/a (Neo4j server)" if s.graph_disk_bytes is None else size(s.graph_disk_bytes)
    archive = (
        "n/a (S3)" if s.archive_disk_bytes is None else f"{size(s.archive_disk_bytes)} (data.mdb)"
    )
    console.print(f"on disk: archive {archive}, graph {graph}")
    if s.per_plane:
        planes = ", ".join(f"plane {i}: {size(b)}" for i, b in enumerate(s.per_plane))
        console.print(f"per byte plane: {planes}")
    t = Table("version", "name", "snapshots", "raw", "added (unique)", "float")
    for v in s.versions:
        t.add_row(v.id[:12], esc(v.name), str(v.snapshots), size(v.raw_bytes),
                  size(v.unique_bytes), esc(v.float_scheme))  # fmt: skip
    console.print(t)


@cli.command()
@click.option(
    "--compact",
    is_flag=True,
    help="Then rewrite the archive file and the embedded graph without their free pages "
    "(neither shrinks otherwise); report their size before and after.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def gc(ctx: click.Context, compact: bool, as_json: bool) -> None:
    """Remove archive data no committed version refers to (e.g. after a crash mid-commit)."""
    result = open_repo(ctx).gc(compact=compact)
    if as_json:
        echo_json(result.to_dict())
        return
    out = {k: v for k, v in result.to_dict().items() if not k.endswith(("_before", "_after"))}
    click.echo(", ".join(f"{k}: {v}" for k, v in out.items()))
    if compact:
        r = result
        click.echo(f"archive file: {size(r.archive_bytes_before)} -> "
                   f"{size(r.archive_bytes_after)} on disk")  # fmt: skip
        if r.graph_bytes_before is not None:
            click.echo(f"graph: {size(r.graph_bytes_before)} -> {size(r.graph_bytes_after)} "
                       "on disk")  # fmt: skip


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
        out = open_repo(ctx).replan(alpha, algorithm, scheme)
    if as_json:
        echo_json(out.to_dict())
        return
    click.echo(
        f"{algorithm} (α = {alpha}, {scheme}): rewrote {out.rewritten} tensors; "
        f"stored now {size(out.stats['stored_bytes'])}; "
        f"{len(out.budget_violations)} budget violations"
    )


@cli.command("eval")
@click.argument("version")
@click.option(
    "--data", required=True, help="builtin:digits, or an .npz with x_test and y_test arrays."
)
@click.option(
    "--progressive",
    is_flag=True,
    help="Answer top-K from the high-order byte planes first, reading lower planes only for "
    "inputs not yet certain (answers equal the full-precision ones).",
)
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --progressive: certify the top-K class set.")  # fmt: skip
@click.option("--predictions", type=click.Path(dir_okay=False),
              help="With --progressive: write the predicted classes to this .npy.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def eval_(
    ctx: click.Context,
    version: str,
    data: str,
    progressive: bool,
    top: int,
    predictions: str | None,
    as_json: bool,
) -> None:
    """Evaluate VERSION on a data set: accuracy, top-k and loss (or, with --progressive, the
    fraction of inputs answered per byte plane and the bytes read)."""
    if progressive:
        _eval_progressive(ctx, version, data, top, predictions, as_json)
        return
    if predictions:
        raise click.UsageError("--predictions needs --progressive")
    with console.status("evaluating…"):
        out = open_repo(ctx).evaluate(version, data).to_dict()
    if as_json:
        echo_json(out)
        return
    for k, v in out.items():
        click.echo(f"{k:>9}: {v:.4f}" if isinstance(v, float) else f"{k:>9}: {v}")


def _eval_progressive(
    ctx: click.Context, version: str, data: str, top: int, predictions: str | None, as_json: bool
) -> None:
    import numpy as np

    with console.status("evaluating plane by plane…"):
        result = open_repo(ctx).evaluate_progressive(version, data, top=top)
    if predictions:
        np.save(predictions, result.predictions)
    if as_json:
        echo_json(result.to_dict())
        return
    if result.fallback:
        click.echo(f"note: {result.fallback}; answered at full precision")
    t = Table("planes", "certified", "of inputs", "bytes read", "of the model", "seconds",
              title=f"progressive top-{top} on {result.n} inputs")  # fmt: skip
    for step in result.steps:
        share = f"{100 * step.bytes_read / result.full_bytes:.1f}%" if (
            step.bytes_read is not None and result.full_bytes) else "-"  # fmt: skip
        t.add_row(str(step.planes), str(step.certified), f"{100 * step.fraction:.1f}%",
                  size(step.bytes_read), share, f"{step.seconds:.3f}")  # fmt: skip
    console.print(t)
    if predictions:
        click.echo(f"wrote {predictions}")


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
