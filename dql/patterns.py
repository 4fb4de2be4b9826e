"""Pattern languages of DQL: SQL ``like`` patterns and layer-name globs with captures.

Both compile to regular expressions that Java (Neo4j) and RE2 (LadybugDB) read the same way:
full-match semantics (``=~``), literal characters escaped with a backslash, ``(?s)`` so that
wildcards also match newlines, and no named groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dql.errors import ParseError

_SPECIAL = set(".^$*+?()[]{}|\\/-#&~")
_CAPTURE = re.compile(r"\(\$(\d+)\)")


def escape(text: str) -> str:
    """Escape ``text`` for a regex understood by Java, RE2 and Python alike."""
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def like_to_regex(pattern: str, escape_char: str | None = "\\", insensitive: bool = False) -> str:
    """Translate an SQL ``like`` pattern (``%``, ``_``, escape character) to a regex.

    >>> like_to_regex("alexnet_%")
    '(?s)alexnet..*'
    """
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if escape_char and char == escape_char:
            out.append(escape(next(chars, escape_char)))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(escape(char))
    return ("(?is)" if insensitive else "(?s)") + "".join(out)


@dataclass(frozen=True)
class Glob:
    """A layer-name glob such as ``conv*($1)`` or ``conv[1,3,5]``.

    ``*`` matches any run of characters, ``?`` one character, ``[abc]`` / ``[a-z]`` / ``[!a]``
    a character class, and ``[1,3,10]`` (a comma inside brackets) one of the listed
    alternatives. ``($n)`` right after a wildcard captures what that wildcard matched as ``$n``.

    Attributes:
        pattern: the glob as written.
        regex: the full-match regex for Cypher (captures become plain groups).
        captures: capture numbers, in group order.
    """

    pattern: str
    regex: str = field(init=False)
    captures: tuple[str, ...] = field(init=False)
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex, captures = _glob_to_regex(self.pattern)
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "captures", tuple(captures))
        object.__setattr__(self, "_compiled", re.compile(regex))

    def match(self, name: str) -> dict[str, str] | None:
        """The captures (``{"1": "3"}``) if ``name`` matches the glob, else None."""
        found = self._compiled.fullmatch(name)
        if found is None:
            return None
        return {n: found.group(i + 1) for i, n in enumerate(self.captures)}


def _glob_to_regex(pattern: str) -> tuple[str, list[str]]:
    pieces: list[str] = []  # one regex piece per glob element
    wildcard: list[bool] = []
    captures: list[str] = []
    i = 0
    while i < len(pattern):
        capture = _CAPTURE.match(pattern, i)
        if capture:
            _attach_capture(pattern, i, capture.group(1), pieces, wildcard, captures)
            i = capture.end()
            continue
        piece, is_wild, i = _glob_element(pattern, i)
        pieces.append(piece)
        wildcard.append(is_wild)
    return "(?s)" + "".join(pieces), captures


def _attach_capture(
    pattern: str,
    pos: int,
    number: str,
    pieces: list[str],
    wildcard: list[bool],
    captures: list[str],
) -> None:
    if not pieces or not wildcard[-1]:
        raise ParseError(f"capture (${number}) must follow a wildcard in glob {pattern!r}")
    if number in captures:
        raise ParseError(f"capture ${number} is bound twice in glob {pattern!r}")
    pieces[-1] = f"({pieces[-1]})"
    wildcard[-1] = False
    captures.append(number)


def _glob_element(pattern: str, i: int) -> tuple[str, bool, int]:
    char = pattern[i]
    if char == "*":
        return ".*", True, i + 1
    if char == "?":
        return ".", True, i + 1
    if char == "[":
        close = pattern.find("]", i + 2)
        if close != -1:
            return _bracket(pattern[i + 1 : close]), True, close + 1
    if char == "\\" and i + 1 < len(pattern):
        return escape(pattern[i + 1]), False, i + 2
    return escape(char), False, i + 1


def _bracket(body: str) -> str:
    if "," in body:
        options = [opt.strip() for opt in body.split(",")]
        return "(?:" + "|".join(escape(opt) for opt in options) + ")"
    negate = body[0] in "!^"
    body = body[1:] if negate else body
    inner = "".join("\\" + c if c in "\\]^[" else c for c in body)
    return ("[^" if negate else "[") + inner + "]"


def interpolate(text: str, bindings: dict[str, str]) -> str:
    """Replace ``$n`` in a template argument with the capture ``n`` (unknown ones stay)."""
    return re.sub(r"\$(\d+)", lambda m: bindings.get(m.group(1), m.group(0)), text)


def like_prefix(pattern: str, escape_char: str | None = "\\") -> str:
    """The literal text every match of an SQL ``like`` pattern starts with ("" if none).

    Lets a generator add an index-friendly ``STARTS WITH`` test in front of the regex.

    >>> like_prefix("alexnet_%"), like_prefix("a!%b%", "!"), like_prefix("%wip%")
    ('alexnet', 'a%b', '')
    """
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if escape_char and char == escape_char:
            out.append(next(chars, escape_char))
        elif char in "%_":
            break
        else:
            out.append(char)
    return "".join(out)
