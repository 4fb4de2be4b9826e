"""What every command module shares: the repository a command runs on."""

from __future__ import annotations

import click

from provdb.repository import Repository


def open_repo(ctx: click.Context) -> Repository:
    """The repository named by ``--repo`` (or found from the current folder), closed with
    the command's context."""
    repo = Repository.open((ctx.obj or {}).get("repo"))
    ctx.call_on_close(repo.close)
    return repo
