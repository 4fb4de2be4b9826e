"""``dlv query``: run DQL from the command line, or in an interactive console.

Register it on the ``dlv`` group with::

    from provdb.cli.query import query
    cli.add_command(query)

``dlv query "TEXT"`` runs one statement and prints the result as a table (``--json`` for
scripts, ``--cypher`` to show the generated Cypher, ``--dry-run`` to commit nothing,
``--save NAME`` to save the statement under NAME without running it). A select shows its first
:data:`PAGE` rows and the total (``--limit N`` for another page size, ``--all`` for every row;
``--json`` adds ``total`` and ``truncated``). With no TEXT it starts a
console: statements may span lines and end with ``;`` or a blank line; ``\\cypher`` toggles
printing the Cypher, ``\\dry`` toggles dry runs, ``\\saved`` lists saved queries, ``\\save NAME``
saves the last statement, ``\\q`` quits. History lives in ``.dlv/query_history``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from dql import CompiledQuery
from provdb.cli.common import open_repo
from provdb.cli.render import echo_json, esc
from provdb.errors import ProvDBError
from provdb.query import QueryResult, compile_query
from provdb.repository import Repository

HISTORY_FILE = "query_history"
#: Rows of a select that ``dlv query`` shows unless told otherwise (``--limit``, ``--all``).
PAGE = 50
PROMPT = "dql> "
CONTINUATION = "...> "
#: Console width when the output is a pipe or a file.
NON_TTY_WIDTH = 160
HELP = (
    "End a statement with ';' or a blank line. Commands: \\cypher (toggle showing Cypher), "
    "\\dry (toggle dry runs), \\saved (list saved queries), \\save NAME (save the last "
    "statement), \\h (help), \\q (quit)."
)


@click.command("query")
@click.argument("text", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--dry-run", is_flag=True, help="Show what would be created; commit nothing.")
@click.option("--cypher", "show_cypher", is_flag=True, help="Also print the generated Cypher.")
@click.option("--save", "save_as", metavar="NAME", help="Save TEXT as query NAME (no run).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help=f"Show the first N rows of a select (default {PAGE}); the total is always counted.",
)
@click.option("--all", "all_rows", is_flag=True, help="Show every row of a select.")
@click.pass_context
def query(
    ctx: click.Context,
    text: str | None,
    as_json: bool,
    dry_run: bool,
    show_cypher: bool,
    save_as: str | None,
    limit: int | None,
    all_rows: bool,
) -> None:
    """Run a DQL statement (select, slice, construct, evaluate); no TEXT: a console.

    \b
    dlv query 'select m where m.name like "alexnet_%"'
    dlv query 'slice m2 from m1 where ... mutate m2.input = m1["conv1"] and ...' --dry-run
    dlv query 'construct ...' --save query3        # then: evaluate m from "query3" ...
    """
    if all_rows and limit is not None:
        raise click.UsageError("--limit and --all exclude each other")
    page = None if all_rows else (limit or PAGE)
    repo = open_repo(ctx)
    if save_as is not None:
        if text is None:
            raise click.UsageError("--save needs the query TEXT")
        repo.save_query(save_as, text)
        _emit_saved(save_as, as_json)
        return
    if text is None:
        QueryConsole(repo, show_cypher=show_cypher, dry_run=dry_run, limit=page).loop()
        return
    if as_json:
        _run_json(repo, text, dry_run, show_cypher, ctx, page)
        return
    view = View(_console(), show_cypher)
    view.result(repo.query(text, dry_run=dry_run, limit=page))


def _console() -> Console:
    """A rich console; wide when the output is not a terminal, so tables are not truncated."""
    return Console() if sys.stdout.isatty() else Console(width=NON_TTY_WIDTH)


def _emit_saved(name: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"saved": name}))
    else:
        click.echo(f"saved query {name!r}")


def _run_json(
    repo: Repository,
    text: str,
    dry_run: bool,
    show_cypher: bool,
    ctx: click.Context,
    limit: int | None,
) -> None:
    """``--json``: the result, or ``{"error": …}`` and the error code's exit status."""
    try:
        result = repo.query(text, dry_run=dry_run, limit=limit)
    except ProvDBError as exc:
        echo_json({"error": exc.to_dict()})
        ctx.exit(exc.exit_status)
        return
    data = result.to_dict()
    if not show_cypher:
        data.pop("cypher", None)
        data.pop("params", None)
    echo_json(data)


# -- rendering -------------------------------------------------------------------------------


@dataclass
class View:
    """Renders results and errors on a rich console."""

    console: Console
    show_cypher: bool = False

    def cypher(self, cypher: str, params: dict[str, Any]) -> None:
        """Print a Cypher statement and its parameters."""
        if not cypher:
            return
        self.console.print(Syntax(cypher, "cypher", word_wrap=True))
        if params:
            self.console.print(f"params: {json.dumps(params, default=str)}", highlight=False)

    def result(self, result: QueryResult, cypher: bool | None = None) -> None:
        """Print a result as a table (and its Cypher when asked)."""
        if self.show_cypher if cypher is None else cypher:
            self.cypher(result.cypher, result.params)
        table = Table(title=_title(result))
        for column in result.columns:
            table.add_column(column, overflow="fold")
        for row in result.rows:
            table.add_row(*(esc(_cell(column, row.get(column))) for column in result.columns))
        self.console.print(table)
        self.console.print(_summary(result), markup=False, highlight=False)

    def error(self, exc: ProvDBError) -> None:
        """Print an error; a DQL error keeps its caret snippet."""
        self.console.print(f"error: {exc.message}", markup=False, highlight=False)


def _cypher_of(compiled: CompiledQuery) -> tuple[str, dict[str, Any]]:
    """The Cypher a query runs (for evaluate, its source's)."""
    if compiled.kind == "evaluate":
        source = compiled.source
        return ("", {}) if isinstance(source, str) or source is None else _cypher_of(source)
    return compiled.cypher, compiled.params


def _title(result: QueryResult) -> str:
    dry = " (dry run)" if result.dry_run else ""
    return f"{result.kind}{dry}"


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "—"
    if column in ("id", "parent") and isinstance(value, str):
        return value[:12]
    if column == "created_at" and isinstance(value, str):
        return value[:19].replace("T", " ")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _summary(result: QueryResult) -> str:
    rows = f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    if result.kind == "select":
        if result.truncated:
            return f"{len(result.rows)} of {result.total:,} rows (--limit N or --all for more)"
        return rows
    verb = "would create" if result.dry_run else "created"
    names = ", ".join(c.name for c in result.created)
    new_bytes = sum(c.new_bytes for c in result.created)
    stored = "" if result.dry_run else f"; {new_bytes} new archive bytes"
    return f"{rows}; {verb} {len(result.created)} version(s){': ' + names if names else ''}{stored}"


# -- the console -----------------------------------------------------------------------------


def _read_line(prompt: str) -> str:
    return input(prompt)


class QueryConsole:
    """The interactive DQL console (``dlv query`` without TEXT)."""

    def __init__(
        self,
        repo: Repository,
        *,
        show_cypher: bool = False,
        dry_run: bool = False,
        read_line: Callable[[str], str] = _read_line,
        console: Console | None = None,
        limit: int | None = PAGE,
    ) -> None:
        self.repo = repo
        self.dry_run = dry_run
        self.limit = limit
        self.read_line = read_line
        self.view = View(console or _console(), show_cypher)
        self.last: str | None = None

    def loop(self) -> None:
        """Read statements until ``\\q`` or end of input."""
        with _history(self.repo.dlv_dir / HISTORY_FILE):
            self.view.console.print(f"DQL console on {self.repo.root} — {HELP}", highlight=False)
            for statement in self.statements():
                if statement.startswith("\\"):
                    if not self.command(statement):
                        return
                    continue
                self.run(statement)

    def statements(self) -> Iterator[str]:
        """Complete statements (or backslash commands) from the input."""
        buffer: list[str] = []
        while True:
            try:
                line = self.read_line(CONTINUATION if buffer else PROMPT)
            except EOFError:
                break
            except KeyboardInterrupt:
                buffer = []
                self.view.console.print()
                continue
            stripped = line.strip()
            if not buffer and stripped.startswith("\\"):
                yield stripped
                continue
            if not stripped:
                if buffer:
                    yield "\n".join(buffer)
                    buffer = []
                continue
            if stripped.endswith(";"):
                buffer.append(line.rstrip()[:-1])
                yield "\n".join(buffer)
                buffer = []
            else:
                buffer.append(line)
        if buffer:
            yield "\n".join(buffer)

    def command(self, text: str) -> bool:
        """Run a backslash command; False to quit."""
        name, _, arg = text.partition(" ")
        name = name.rstrip(";")
        if name in ("\\q", "\\quit", "\\exit"):
            return False
        if name == "\\cypher":
            self.view.show_cypher = not self.view.show_cypher
            self._say(f"showing Cypher: {'on' if self.view.show_cypher else 'off'}")
        elif name == "\\dry":
            self.dry_run = not self.dry_run
            self._say(f"dry run: {'on' if self.dry_run else 'off'}")
        elif name == "\\saved":
            self._list_saved()
        elif name == "\\save":
            self._save(arg.strip().rstrip(";").strip())
        elif name in ("\\h", "\\help", "\\?"):
            self._say(HELP)
        else:
            self._say(f"unknown command {name}; {HELP}")
        return True

    def run(self, text: str) -> None:
        """Run one statement, printing its result or its error (the console goes on)."""
        if not text.strip():
            return
        self.last = text
        try:
            if self.view.show_cypher:
                self.view.cypher(*_cypher_of(compile_query(self.repo, text)))
            result = self.repo.query(text, dry_run=self.dry_run, limit=self.limit)
            self.view.result(result, cypher=False)
        except ProvDBError as exc:
            self.view.error(exc)

    def _list_saved(self) -> None:
        queries = self.repo.saved_queries()
        if not queries:
            self._say("no saved queries (save one with \\save NAME or dlv query TEXT --save NAME)")
            return
        table = Table("name", "query", title="saved queries")
        for name, text in sorted(queries.items()):
            table.add_row(esc(name), esc(text))
        self.view.console.print(table)

    def _save(self, name: str) -> None:
        if not name or self.last is None:
            self._say("usage: \\save NAME (saves the last statement)")
            return
        try:
            self.repo.save_query(name, self.last)
            self._say(f"saved query {name!r}")
        except ProvDBError as exc:
            self.view.error(exc)

    def _say(self, text: str) -> None:
        self.view.console.print(text, markup=False, highlight=False)


@contextmanager
def _history(path: Path) -> Iterator[None]:
    """readline history in ``path`` while stdin is a terminal (a no-op otherwise)."""
    readline: Any = None
    if sys.stdin.isatty():
        try:
            import readline
        except ImportError:  # pragma: no cover - platforms without readline
            readline = None
    if readline is not None:
        readline.set_history_length(1000)
        with suppress(OSError):
            if path.exists():
                readline.read_history_file(str(path))
    try:
        yield
    finally:
        if readline is not None:
            with suppress(OSError):
                readline.write_history_file(str(path))


__all__ = ["QueryConsole", "View", "query"]
