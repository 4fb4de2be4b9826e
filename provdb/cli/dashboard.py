"""``dlv dashboard``: serve the Dash provenance explorer (the ``dashboard`` extra).

Dash is imported only when the command runs, so ``import provdb`` and the other commands never
load it.
"""

from __future__ import annotations

import click


def _saved_token(url: str) -> str | None:
    """The token ``dlv login`` saved for this hub URL, if any."""
    import json

    from provdb.hub.client import CREDENTIALS, config_dir

    try:
        saved = json.loads((config_dir() / CREDENTIALS).read_text())
    except (OSError, ValueError):
        return None
    if str(saved.get("url") or "").rstrip("/") != url.rstrip("/"):
        return None
    return saved.get("token") or None


@click.command()
@click.option("--hub", "--server", "hub", metavar="URL",
              help="Read a hub's published versions (its API), not a repository.")  # fmt: skip
@click.option("--token", envvar="DLV_HUB_TOKEN", metavar="TOKEN",
              help="With --hub: the token to read private namespaces with [env: DLV_HUB_TOKEN; "
              "default: the one `dlv login` saved for that URL].")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")  # fmt: skip
@click.option("--debug", is_flag=True, help="Dash debug mode (reloads, shows callback errors).")
@click.pass_context
def dashboard(
    ctx: click.Context, hub: str | None, token: str | None, host: str, port: int, debug: bool
) -> None:
    """Explore the repository in a browser: lineage, version cards, compare, DQL console.

    The repository (--repo, $DLV_REPO or the nearest one above the current folder) is opened
    read-only for every page, so a training job can keep committing. With --hub URL the
    dashboard reads the hub's published versions instead (lineage, version cards, compare;
    no DQL console): what the token may see, shown to anyone who can open the dashboard.
    """
    try:
        from dashboard.app import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the 'dashboard' extra (pip install 'provdb[dashboard]'): {exc}"
        ) from exc
    if hub:
        app = create_app(hub=hub, token=token or _saved_token(hub))
    else:
        app = create_app((ctx.obj or {}).get("repo"))
    click.echo(f"dashboard on http://{host}:{port}/ (Ctrl-C stops it)")
    app.run(host=host, port=port, debug=debug)
