"""Rendering for the CLI: JSON, sizes, and rich tables that never read user text as markup.

Names, messages, layer attributes and parameter values are user text: a version named
``[bold]x`` or ``[/]`` must print as written, so every such string goes through :func:`esc`
(or a ``Text``) before it reaches rich.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from provdb.results import RunInfo

console = Console()


def esc(value: Any) -> str:
    """``value`` as text that rich prints verbatim (no markup, no emoji codes)."""
    return escape(str(value))


def finite(data: Any) -> Any:
    """``data`` with NaN and ±infinity as ``None``, so it is valid JSON (RFC 8259)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (non-finite numbers become ``null``)."""
    click.echo(json.dumps(finite(data), indent=2, default=str, allow_nan=False))


def size(n: float | None) -> str:
    """A byte count for people (``1.5 MiB``)."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_json(text: str, limit: int) -> str:
    """Compact JSON ``text`` cut to at most ``limit`` characters after the last ``,`` (outside
    strings) that fits, with an ellipsis: a cut never splits a key, a number or a string.
    With no such comma it is cut like :func:`clip`."""
    if len(text) <= limit:
        return text
    cut, in_string, escaped = -1, False, False
    for i, ch in enumerate(text[: limit - 1]):
        if escaped:
            escaped = False
        elif in_string:
            escaped, in_string = ch == "\\", ch != '"'
        elif ch == '"':
            in_string = True
        elif ch == ",":
            cut = i
    return text[: cut + 1] + "…" if cut > 0 else clip(text, limit)


def middle(text: str, limit: int, head: int | None = None) -> str:
    """``text`` cut from the middle to ``limit`` characters (``encoder.layer.…query.weight``):
    tensor and layer names differ at both ends, so both are kept; ``head`` characters of the
    start (default: half)."""
    if len(text) <= limit:
        return text
    if limit < 3:
        return clip(text, limit)
    head = limit // 2 if head is None else max(1, min(head, limit - 1))
    tail = limit - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def shorten_names(names: list[str], limit: int) -> list[str]:
    """The names cut from the middle to ``limit`` characters at one split that keeps them
    all distinct (the cut moves towards whichever end tells them apart); names no split
    keeps apart are returned whole, for the table to wrap."""
    half = limit // 2
    for head in (half, *range(half + 1, limit - 1), *range(half - 1, 0, -1)):
        short = [middle(n, limit, head) for n in names]
        if len(set(short)) == len(set(names)):
            return short
    return list(names)


def number(value: float | None) -> str:
    """A metric value (``-`` when absent)."""
    return "-" if value is None else f"{value:.4g}"


def seconds(value: float | None) -> str:
    """A duration for people (``42.0 s``, ``3 min 5 s``, ``2 h 4 min``; ``-`` when unknown)."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def run_status(run: RunInfo | None) -> str:
    """A run's status as rich markup: FAILED in red, RUNNING in yellow, empty for no run."""
    if run is None:
        return ""
    colour = {"FAILED": "bold red", "RUNNING": "yellow"}.get(run.status)
    return f"[{colour}]{esc(run.status)}[/{colour}]" if colour else esc(run.status)
