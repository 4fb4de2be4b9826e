"""``dlv hub …``, ``dlv serve``, ``dlv login``, ``dlv publish``, ``dlv search``, ``dlv pull``.

The ``dlv hub`` commands administer a hub folder (``--hub DIR``, default the current folder):
``init``, ``user add``, ``org add``, ``token create`` (prints the token once), ``token
revoke``, ``token list``. ``dlv serve DIR`` runs it under gunicorn. The other commands act on
the local repository and the hub that ``dlv login`` (or ``DLV_HUB_URL``/``DLV_HUB_TOKEN``)
names. Errors go through the CLI's one boundary (one line, the code's exit status).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from provdb.cli.common import open_repo
from provdb.hub.names import parse_repo

err_console = Console(stderr=True)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _hub(ctx: click.Context) -> Any:
    from provdb.hub import Hub

    return Hub.open(ctx.obj["hub"])


def _client(ctx: click.Context) -> Any:
    from provdb.hub.client import HubClient

    client = HubClient.from_credentials()
    ctx.call_on_close(client.close)
    return client


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Any]:
    """A rich progress bar on stderr (only on a terminal and without --json)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        yield bar


# -- dlv hub ----------------------------------------------------------------------------------


@click.group("hub")
@click.option(
    "--hub",
    "hub_dir",
    default=".",
    envvar="DLV_HUB_DIR",
    type=click.Path(file_okay=False),
    help="The hub folder (default: the current folder).",
)
@click.pass_context
def hub(ctx: click.Context, hub_dir: str) -> None:
    """Create and administer a ModelHub folder (users, organisations, tokens)."""
    ctx.ensure_object(dict)
    ctx.obj["hub"] = hub_dir


@hub.command("init")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--graph", metavar="URI", help="Neo4j URI for the hub's graph (default: embedded).")
@click.option(
    "--max-upload-mb",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Largest request body the hub accepts (MiB); larger ones get 413.",
)
@click.option(
    "--store",
    metavar="URL",
    help="s3://BUCKET/PREFIX?endpoint=URL: keep the hub's chunks in an S3-compatible object "
    "store (credentials from the AWS variables); default: LMDB inside the hub folder.",
)
def hub_init(path: str, graph: str | None, max_upload_mb: int, store: str | None) -> None:
    """Create a hub in PATH: a dlv repository, an accounts database and hub.json."""
    from provdb.hub import Hub

    h = Hub.init(path, graph=graph, max_upload_bytes=max_upload_mb << 20, store=store)
    chunks = f", chunks in {h.repo.archive_location}" if store else ""
    click.echo(f"Initialized ModelHub in {h.root} ({h.repo.backend} graph{chunks})")
    h.close()


@hub.group("user")
def hub_user() -> None:
    """Hub users."""


@hub_user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May publish into every namespace.")
@click.pass_context
def hub_user_add(ctx: click.Context, name: str, admin: bool) -> None:
    """Add user NAME."""
    _hub(ctx).accounts.add_user(name, admin=admin)
    click.echo(f"added user {name}" + (" (admin)" if admin else ""))


@hub_user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def hub_user_list(ctx: click.Context, as_json: bool) -> None:
    """List users and organisations."""
    users = _hub(ctx).accounts.users()
    if as_json:
        _echo_json(users)
        return
    for u in users:
        kind = "org" if u["org"] else ("admin" if u["admin"] else "user")
        extra = f" members: {', '.join(u['members'])}" if u["org"] else ""
        click.echo(f"{u['name']} ({kind}){extra}")


@hub.group("org")
def hub_org() -> None:
    """Organisations: namespaces their members publish into."""


@hub_org.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, metavar="USER", help="A member (repeatable).")
@click.pass_context
def hub_org_add(ctx: click.Context, name: str, members: tuple[str, ...]) -> None:
    """Add organisation NAME (with its --member users)."""
    accounts = _hub(ctx).accounts
    accounts.add_user(name, org=True)
    for m in members:
        accounts.add_member(name, m)
    click.echo(f"added organisation {name}" + (f" ({', '.join(members)})" if members else ""))


@hub_org.command("member")
@click.argument("org")
@click.argument("user")
@click.pass_context
def hub_org_member(ctx: click.Context, org: str, user: str) -> None:
    """Make USER a member of ORG."""
    _hub(ctx).accounts.add_member(org, user)
    click.echo(f"{user} is a member of {org}")


@hub.group("token")
def hub_token() -> None:
    """Access tokens (shown once, stored as SHA-256, revocable)."""


@hub_token.command("create")
@click.argument("user")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
@click.option("--expires-days", type=click.FloatRange(min=0), help="Expire after this many days.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the token).")
@click.pass_context
def hub_token_create(
    ctx: click.Context, user: str, scope: str, expires_days: float | None, as_json: bool
) -> None:
    """Create a token for USER and print it (this is the only time it is shown)."""
    token = _hub(ctx).accounts.create_token(user, scope, expires_days)
    if as_json:
        _echo_json(token)
        return
    click.echo(token["token"])
    click.echo(f"token {token['id']} for {user} ({scope}); it is not shown again", err=True)


@hub_token.command("revoke")
@click.argument("token")
@click.pass_context
def hub_token_revoke(ctx: click.Context, token: str) -> None:
    """Revoke TOKEN (its id from `token list`, or the token itself)."""
    out = _hub(ctx).accounts.revoke_token(token)
    click.echo(f"revoked token {out['id']} of {out['user']}")


@hub_token.command("list")
@click.argument("user", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def hub_token_list(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """List tokens (never their secret), of USER or everyone."""
    rows = _hub(ctx).accounts.tokens(user)
    if as_json:
        _echo_json(rows)
        return
    table = Table("id", "user", "token", "scope", "created", "expires", "revoked")
    for r in rows:
        table.add_row(
            r["id"],
            r["user"],
            r["display"],
            r["scope"],
            r["created_at"][:19],
            (r["expires_at"] or "")[:19],
            (r["revoked_at"] or "")[:19],
        )
    Console().print(table)


# -- serving and the client side -----------------------------------------------------------


@click.command("serve")
@click.argument("path", default=".", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--timeout", default=120, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--rate-limit",
    metavar="off|RATE/BURST[,ANON_RATE/ANON_BURST]",
    help="Requests per second and burst per token (and per IP address without a token); "
    "default: hub.json's rate_limit, else 50/1000,20/400.",
)
def serve(
    path: str, host: str, port: int, workers: int, timeout: int, rate_limit: str | None
) -> None:
    """Serve the hub in PATH with gunicorn (Ctrl-C or SIGTERM stops it gracefully)."""
    from provdb.server.gunicorn import serve as run

    run(path, host, port, workers, timeout, rate_limit=rate_limit)


@click.command("login")
@click.argument("url")
@click.option("--token", help="Access token (prompted for, hidden, when left out).")
def login(url: str, token: str | None) -> None:
    """Remember hub URL and a token (credentials file, mode 0600) after checking them."""
    from provdb.hub.client import HubClient, save_credentials

    if token is None:
        token = click.prompt("token", hide_input=True)
    client = HubClient(url, token)
    try:
        me = client.whoami()
    finally:
        client.close()
    path = save_credentials(client.url, token)
    click.echo(f"logged in to {client.url} as {me['name']} ({me['scope']}); saved {path}")


@click.command("publish")
@click.argument("version")
@click.argument("target", metavar="OWNER/NAME")
@click.option("--private", is_flag=True, help="Visible only to the namespace's members.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print what was sent and skipped.")
@click.pass_context
def publish(
    ctx: click.Context,
    version: str,
    target: str,
    private: bool,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Publish VERSION to the hub as OWNER/NAME; only chunks the hub lacks are sent."""
    from provdb.hub import client as hub_client

    owner, name, ref = parse_repo(target)
    if ref is not None:
        raise click.UsageError("publish takes OWNER/NAME without @VERSION")
    repo, client = open_repo(ctx), _client(ctx)
    with _progress(not as_json, "uploading") as bar:
        task = bar.add_task("upload", total=None) if bar else None

        def tick(_what: str, _chunks: int, nbytes: int) -> None:
            if bar is not None:
                bar.update(task, completed=nbytes)

        out = hub_client.publish(
            client, repo, version, owner, name, private=private, tags=list(tags), progress=tick
        )
    if as_json:
        _echo_json(out.to_dict("sent"))
        return
    state = "published" if out.created else "already published"
    click.echo(
        f"{state} {out.id[:12]} as {out.repo}: sent {out.chunks_moved} chunks "
        f"({out.bytes_moved} bytes), skipped {out.chunks_skipped} the hub had"
    )


@click.command("search")
@click.argument("text", required=False)
@click.option(
    "--where", metavar="CONDITION", help='DQL select condition on m, e.g. m.name like "bert%".'
)
@click.option("--owner", help="Only this owner's models.")
@click.option("--tag", "tags", multiple=True, help="Only models with this tag (repeatable).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Hyper-parameter.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(
    ctx: click.Context,
    text: str | None,
    where: str | None,
    owner: str | None,
    tags: tuple[str, ...],
    params: tuple[str, ...],
    page: int,
    per_page: int,
    as_json: bool,
) -> None:
    """Search the hub's published versions."""
    out = _client(ctx).search(
        q=text,
        where=where,
        owner=owner,
        tag=list(tags),
        param=list(params),
        page=page,
        per_page=per_page,
    )
    if as_json:
        _echo_json(out)
        return
    if not out["results"]:
        click.echo("no matches")
        return
    table = Table("model", "version", "name", "published", "tags", "metrics")
    for r in out["results"]:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in r["metrics"].items() if v is not None)
        table.add_row(
            r["repo"] + (" 🔒" if r["private"] else ""),
            r["id"][:12],
            r["name"],
            r["published_at"][:19].replace("T", " "),
            ", ".join(r["tags"]),
            metrics,
        )
    Console().print(table)
    shown = (page - 1) * per_page + len(out["results"])
    if shown < out["total"]:
        click.echo(f"{shown} of {out['total']}; more with --page {page + 1}")


@click.command("pull")
@click.argument("source", metavar="OWNER/NAME[@VERSION]")
@click.option(
    "--planes",
    type=click.IntRange(min=1),
    help="Only the top K byte planes: write the approximate weights to --output.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="With --planes: the .safetensors file."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was received and skipped.")
@click.pass_context
def pull(
    ctx: click.Context, source: str, planes: int | None, output: str | None, as_json: bool
) -> None:
    """Pull a hub version into this repository (bit-exact, with its lineage); with
    ``--planes K -o FILE``, download only its top-K-planes approximation to FILE."""
    from provdb.hub import client as hub_client

    owner, name, ref = parse_repo(source)
    if (planes is None) != (output is None):
        raise click.UsageError("--planes and --output go together")
    if planes is not None and output is not None:
        got = hub_client.download_weights(_client(ctx), owner, name, ref, output, planes)
        if as_json:
            _echo_json(got.to_dict())
            return
        click.echo(got.path)
        click.echo(
            f"{got.repo}@{got.id[:12]} with {planes} planes: received {got.bytes_received} "
            f"bytes; the hub read {got.bytes_read} bytes of its archive",
            err=True,
        )
        return
    repo, client = open_repo(ctx), _client(ctx)
    with _progress(not as_json, "downloading") as bar:
        task = bar.add_task("download", total=None) if bar else None

        def tick(_what: str, _chunks: int, nbytes: int) -> None:
            if bar is not None:
                bar.update(task, completed=nbytes)

        out = hub_client.pull(client, repo, owner, name, ref, progress=tick)
    if as_json:
        _echo_json(out.to_dict("received"))
        return
    click.echo(out.local_id)
    click.echo(
        f"pulled {out.repo}@{out.id[:12]}: received {out.chunks_moved} chunks "
        f"({out.bytes_moved} bytes), {out.chunks_skipped} were here already",
        err=True,
    )


COMMANDS = (hub, serve, login, publish, search, pull)
