"""``dlv``: the git-like command line for model versions.

Every command parses its arguments, makes one library call and renders the result
(sqlite-utils style). Library errors (:class:`provdb.errors.ProvDBError`) become a one-line
``error: …`` on stderr and exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

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
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(1)


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


@cli.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def neo4j(args: tuple[str, ...]) -> None:
    """Fetch, start, stop or check a local Neo4j 5.26 server (from Maven Central jars).

    \b
    dlv neo4j start [--port N] [--password PW]   start in the background, print start-to-ready
    dlv neo4j status | stop | fetch
    """
    from provdb.neo4j_server.__main__ import main as neo4j_main

    sys.exit(neo4j_main(list(args) or ["--help"]))


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
