"""DQL errors: every error knows where in the query it happened.

``DQLError`` is the one base class. ``ParseError`` is raised for text that is not DQL (bad
characters, unterminated strings, grammar violations, unknown variables); ``UnsupportedError``
for valid DQL that the chosen Cypher dialect cannot express; ``ResolveError`` for a reference
to a saved query that the caller could not resolve. Each carries a stable ``code``, the 1-based
``line`` and ``col`` of the offending text, and a message that repeats the offending line with
the text underlined by carets.
"""

from __future__ import annotations

import typing as t


def highlight(text: str, start: int, end: int) -> tuple[int, int, str]:
    """Return ``(line, col, snippet)`` for ``text[start:end]``; the snippet underlines it."""
    start = max(0, min(start, len(text)))
    end = max(start + 1, min(end, len(text) + 1))
    line_no = text.count("\n", 0, start) + 1
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line_end = len(text) if line_end == -1 else line_end
    line = text[line_start:line_end]
    col = start - line_start + 1
    width = max(1, min(end, line_end + 1) - start)
    snippet = f"  {line}\n  {' ' * (col - 1)}{'^' * width}"
    return line_no, col, snippet


class DQLError(Exception):
    """Base class of every DQL error.

    Attributes:
        code: a stable machine-readable code (``"syntax"``, ``"token"``, ...).
        description: the message without position or snippet.
        line: 1-based line of the offending text (0 if unknown).
        col: 1-based column of the offending text (0 if unknown).
        start: 0-based offset of the offending text in the query.
        end: offset one past the offending text.
        snippet: the offending line with carets under the offending text.
    """

    code: str = "dql_error"

    def __init__(
        self,
        description: str,
        *,
        query: str | None = None,
        start: int = 0,
        end: int = 0,
        code: str | None = None,
    ) -> None:
        self.description = description
        if code is not None:
            self.code = code
        self.start, self.end = start, max(end, start + 1)
        self.line = self.col = 0
        self.snippet = ""
        self.highlight = ""
        if query is not None:
            self.line, self.col, self.snippet = highlight(query, start, self.end)
            self.highlight = query[start : self.end]
        super().__init__(self._format())

    def _format(self) -> str:
        if not self.line:
            return self.description
        return f"{self.description}. Line {self.line}, Col {self.col}.\n{self.snippet}"

    def to_dict(self) -> dict[str, t.Any]:
        """The structured form, for JSON APIs."""
        return {
            "code": self.code,
            "description": self.description,
            "line": self.line,
            "col": self.col,
            "start": self.start,
            "end": self.end,
            "highlight": self.highlight,
        }


class ParseError(DQLError):
    """The text is not valid DQL (bad token, grammar violation, unknown variable)."""

    code = "syntax"


class UnsupportedError(DQLError):
    """Valid DQL that the target Cypher dialect cannot express."""

    code = "unsupported"


class ResolveError(DQLError):
    """A saved query referenced by name (``from "query3"``) could not be resolved."""

    code = "unresolved_query"
