"""``dlv dashboard``: serve the Dash provenance explorer (the ``dashboard`` extra).

Dash is imported only when the command runs, so ``import provdb`` and the other commands never
load it.
"""

from __future__ import annotations

import click


@click.command()
@click.option("--hub", "--server", "hub", metavar="URL",
              help="A hub's URL instead of a repository (not supported yet).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")  # fmt: skip
@click.option("--debug", is_flag=True, help="Dash debug mode (reloads, shows callback errors).")
@click.pass_context
def dashboard(ctx: click.Context, hub: str | None, host: str, port: int, debug: bool) -> None:
    """Explore the repository in a browser: lineage, version cards, compare, DQL console.

    The repository (--repo, $DLV_REPO or the nearest one above the current folder) is opened
    read-only for every page, so a training job can keep committing.
    """
    if hub:
        raise click.UsageError(
            "--hub is not supported yet: the hub's API serves published models, not a "
            "repository's lineage; run the dashboard on the repository (--repo PATH)"
        )
    try:
        from dashboard.app import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the 'dashboard' extra (pip install 'provdb[dashboard]'): {exc}"
        ) from exc
    repo = (ctx.obj or {}).get("repo")
    app = create_app(repo)
    click.echo(f"dashboard on http://{host}:{port}/ (Ctrl-C stops it)")
    app.run(host=host, port=port, debug=debug)
