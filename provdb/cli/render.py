"""Rendering for the CLI: JSON, sizes, and rich tables that never read user text as markup.

Names, messages, layer attributes and parameter values are user text: a version named
``[bold]x`` or ``[/]`` must print as written, so every such string goes through :func:`esc`
(or a ``Text``) before it reaches rich.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

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


def number(value: float | None) -> str:
    """A metric value (``-`` when absent)."""
    return "-" if value is None else f"{value:.4g}"
