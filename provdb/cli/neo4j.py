"""``dlv neo4j fetch|start|stop|status``: a local Neo4j 5.26 from Maven Central jars.

Options may come before or after the sub-command (``dlv neo4j status --port 7688``). Errors
go through the CLI's one boundary; ``status`` exits 3 when the server is not running.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from provdb.neo4j_server import Neo4jServer


def _server_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every sub-command takes (so they may follow the sub-command)."""
    options = [
        click.option(
            "--home",
            help="Jar/home folder (default $PROVDB_NEO4J_HOME or ~/.cache/provdb/neo4j-5.26).",
        ),
        click.option("--instance-dir", help="conf/data/logs/run folder (default: --home)."),
        click.option("--port", type=int, help="Bolt port on 127.0.0.1 (default 7687)."),
        click.option(
            "--password",
            envvar="PROVDB_NEO4J_PASSWORD",
            help="Auth on with this password for user neo4j (default: auth off).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _server(**options: Any) -> Neo4jServer:
    """The server the options name; those given after the sub-command win over the group's."""
    ctx = click.get_current_context()
    given = {k: v for k, v in options.items() if v is not None}
    o = {**ctx.meta.get("neo4j_where", {}), **given}
    return Neo4jServer(
        o.pop("home", None),
        port=o.pop("port", None),
        instance_dir=o.pop("instance_dir", None),
        password=o.pop("password", None),
        **o,
    )


@click.group()
@_server_options
@click.pass_context
def neo4j(ctx: click.Context, **where: Any) -> None:
    """Fetch, start, stop or check a local Neo4j 5.26 server (from Maven Central jars).

    The options may be given before or after the sub-command.
    """
    ctx.meta["neo4j_where"] = {k: v for k, v in where.items() if v is not None}


@neo4j.command()
@_server_options
@click.option("--force", is_flag=True, help="Re-fetch even if lib/ is complete.")
def fetch(force: bool, **where: Any) -> None:
    """Resolve the server jars with mvn into HOME/lib."""
    server = _server(**where)
    seconds = server.fetch(force=force, quiet=False)
    count, size = server.lib_stats()
    what = f"fetched in {seconds:.1f} s" if seconds else "already complete"
    click.echo(f"{server.lib_dir}: {count} jars, {size / 2**20:.0f} MiB ({what})")


@neo4j.command()
@_server_options
@click.option("--timeout", type=float, default=180.0, show_default=True, help="Seconds to ready.")
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops the server.")
@click.option("--heap", default="1g", show_default=True, help="Max JVM heap.")
@click.option("--pagecache", default="256m", show_default=True, help="Page cache size.")
def start(timeout: float, foreground: bool, heap: str, pagecache: str, **where: Any) -> None:
    """Start the server in the background (fetches the jars if needed)."""
    server = _server(**where, heap_max=heap, pagecache=pagecache)
    state = server.status()
    if state.running:
        click.echo(f"Neo4j already running at {state.uri} (pid {state.pid})")
        return
    server.fetch(quiet=False)
    seconds = server.start(timeout=timeout, detach=not foreground)
    click.echo(f"Neo4j {server.version()} ready at {server.uri} in {seconds:.1f} s")
    if not foreground:
        click.echo(f"log: {server.log_file}; stop: dlv neo4j stop{_where_flags(server, where)}")
        return
    try:
        server.wait()
    except KeyboardInterrupt:
        click.echo("stopping Neo4j")
    finally:
        server.stop()


def _where_flags(server: Neo4jServer, where: dict[str, Any]) -> str:
    """The flags ``dlv neo4j stop`` needs to find this server again."""
    flags = ""
    home = where.get("home") or click.get_current_context().meta["neo4j_where"].get("home")
    if home:
        flags += f" --home {home}"
    if server.instance_dir != server.home:
        flags += f" --instance-dir {server.instance_dir}"
    return flags


@neo4j.command()
@_server_options
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to SIGKILL.")
def stop(timeout: float, **where: Any) -> None:
    """Stop the server started from this instance folder."""
    stopped = _server(**where).stop(timeout=timeout)
    click.echo("Neo4j stopped" if stopped else "Neo4j was not running")


@neo4j.command()
@_server_options
def status(**where: Any) -> None:
    """Report whether the server runs and answers (exit 3 when it does not run)."""
    state = _server(**where).status()
    click.echo(state.describe())
    if not state.running:
        raise SystemExit(3)


def main(argv: list[str] | None = None) -> int:
    """``python -m provdb.neo4j_server …``: the same commands outside ``dlv``."""
    from provdb.cli import run_standalone

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run_standalone(neo4j, argv, prog_name="python -m provdb.neo4j_server")
