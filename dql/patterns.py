"""Pattern languages of DQL: SQL ``like`` patterns and layer-name globs with captures.

Both compile to regular expressions that Java (Neo4j) and RE2 (LadybugDB) read the same way:
full-match semantics (``=~``), literal characters escaped with a backslash, ``(?s)`` so that
wildcards also match newlines, and no named groups.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field

from dql.errors import ParseError

_SPECIAL = set(".^$*+?()[]{}|\\/-#&~")
_ESCAPES = {"\\": r"\x5c"}
_CAPTURE = re.compile(r"\(\$(\d+)\)")


def escape(text: str) -> str:
    """Escape ``text`` for a regex understood by Java, RE2 and Python alike.

    A backslash becomes ``\\x5c``: LadybugDB turns ``\\\\`` in a regex into ``\\`` before
    RE2 sees it, so the usual escape would not match a backslash there.
    """
    return "".join(_ESCAPES.get(c) or ("\\" + c if c in _SPECIAL else c) for c in text)


#: One piece of a ``like`` segment: a literal character, or None for ``_`` (any one character).
Piece = str | None


@dataclass(frozen=True)
class Like:
    """An SQL ``like`` pattern, parsed: literal segments separated by gaps.

    ``%`` matches any run of characters (also none), ``_`` exactly one character, and the
    escape character (``\\`` unless the query names another) makes the next character
    literal; an escape at the very end stands for itself. A run of wildcards that holds at
    least one ``%`` is one *gap* of "at least k characters" (k = the number of ``_`` in the
    run), so ``%%%`` is ``%`` and ``%_%`` is "one or more". What is left between gaps are the
    *segments*: fixed-length sequences of literal characters and ``_``.

    ``segments`` always has one more entry than ``gaps``: ``a%b_c%`` is the segments
    ``("a",)``, ``("b", None, "c")`` and ``()`` with the gaps ``(0, 0)``.

    >>> Like("alexnet_%").segments, Like("alexnet_%").gaps
    ((('a', 'l', 'e', 'x', 'n', 'e', 't'), ()), (1,))
    """

    pattern: str
    escape: str | None = "\\"
    segments: tuple[tuple[Piece, ...], ...] = field(init=False)
    gaps: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        segments: list[list[Piece]] = [[]]
        gaps: list[int] = []
        ones, wild = 0, False  # the wildcard run being read: its _ count, whether it has %
        chars = iter(self.pattern)
        for char in chars:
            if char in "%_" and not (self.escape and char == self.escape):
                ones += char == "_"
                wild = wild or char == "%"
                continue
            ones, wild = self._close_run(segments, gaps, ones, wild)
            segments[-1].append(next(chars, char) if self.escape and char == self.escape else char)
        self._close_run(segments, gaps, ones, wild)
        object.__setattr__(self, "segments", tuple(tuple(seg) for seg in segments))
        object.__setattr__(self, "gaps", tuple(gaps))

    @staticmethod
    def _close_run(
        segments: list[list[Piece]], gaps: list[int], ones: int, wild: bool
    ) -> tuple[int, bool]:
        if wild:
            gaps.append(ones)
            segments.append([])
        else:
            segments[-1].extend([None] * ones)
        return 0, False

    @property
    def prefix(self) -> str:
        """The literal text every match starts with (``""`` if none)."""
        first = self.segments[0]
        end = first.index(None) if None in first else len(first)
        return "".join(t.cast(tuple[str, ...], first[:end]))

    def regex(
        self,
        atomic: bool,
        insensitive: bool = False,
        literal: t.Callable[[str], str] = lambda c: escape(c),
        one: str = ".",
        unicode_case: bool = False,
    ) -> str:
        """A full-match regex for ``=~`` with no nested or adjacent unbounded quantifiers.

        Args:
            atomic: put every middle segment with the gap before it in an atomic group,
                ``(?>.*?seg)``: the lazy gap finds the segment's leftmost occurrence and the
                group never gives it back. For fixed-length segments the leftmost occurrence
                is always the best one (it leaves the most text for the rest), so this is
                exact, and a backtracking engine (Java, Neo4j) runs in O(text x pattern)
                instead of O(text ** gaps). RE2 (LadybugDB) is linear anyway and has no
                atomic groups: pass False there.
            insensitive: ``ilike``.
            literal: the regex for one literal character.
            one: the regex for one character (``_``).
            unicode_case: add Java's ``u`` flag, so ``(?i)`` folds non-ASCII letters too
                (as RE2 and Python do by default).

        >>> Like("%a%b%z").regex(atomic=True)
        '(?s)(?>.*?a)(?>.*?b).*z'
        >>> Like("%a%b%z").regex(atomic=False)
        '(?s).*a.*b.*z'
        """
        many = one + "*" if len(one) == 1 else f"(?:{one})*"

        def seg(pieces: tuple[Piece, ...]) -> str:
            return "".join(one if p is None else literal(p) for p in pieces)

        out = [seg(self.segments[0])]
        last = len(self.gaps) - 1
        for i, k in enumerate(self.gaps):
            body = one * k + many
            if atomic and i < last:
                out.append(f"(?>{body}?{seg(self.segments[i + 1])})")
            else:
                out.append(body + seg(self.segments[i + 1]))
        flags = "s" + ("i" if insensitive else "") + ("u" if insensitive and unicode_case else "")
        return f"(?{''.join(sorted(flags, key='isu'.index))})" + "".join(out)

    def string_tests(self) -> StringTests | None:
        """The same test as ``STARTS WITH`` / ``ENDS WITH`` / ``CONTAINS`` / ``size()``.

        None when string functions cannot say it exactly: a ``_`` inside a segment, or more
        than one literal segment whose order matters (``a%b%c``). ``size()`` counts code
        points, as ``_`` does.
        """
        if any(None in seg for seg in self.segments):
            return None
        words = ["".join(t.cast(tuple[str, ...], seg)) for seg in self.segments]
        if not self.gaps:
            return StringTests(equals=words[0])
        if len(self.gaps) == 1:
            (k,), (head, tail) = self.gaps, words
            size = len(head) + len(tail) + k
            needs_size = k > 0 or (head and tail)
            if not head and not tail and not k:
                return StringTests(starts="")  # "%": any string (null stays null)
            return StringTests(
                starts=head or None,
                ends=tail or None,
                min_size=size if needs_size else None,
            )
        if len(self.gaps) == 2 and self.gaps == (0, 0) and not words[0] and not words[2]:
            return StringTests(contains=words[1])
        return None


#: One character of a JSON string's text as Python's ``json.dumps`` writes it (hyper-parameter
#: values): a plain character, a two-character escape, a ``\\uXXXX`` escape of a character of
#: the basic plane, or a surrogate pair. The alternatives exclude one another, so a run of
#: them never backtracks into itself.
JSON_CHAR = (
    r'(?:[^\x5c"]|\x5c[^u]|\x5cu(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2})'
    r"|\x5cu[dD][89abAB][0-9a-fA-F]{2}\x5cu[dD][c-fC-F][0-9a-fA-F]{2})"
)


def json_literal(char: str) -> str:
    """The regex for one literal character inside JSON text (``é`` → ``\\\\u00e9``)."""
    return escape(json.dumps(char)[1:-1])


class StringTests(t.NamedTuple):
    """A ``like`` as string-function tests, all of which must hold (None: no such test)."""

    equals: str | None = None
    starts: str | None = None
    ends: str | None = None
    contains: str | None = None
    min_size: int | None = None


def like_to_regex(pattern: str, escape_char: str | None = "\\", insensitive: bool = False) -> str:
    """Translate an SQL ``like`` pattern to a full-match regex (RE2 shape, runs of ``%`` as one).

    >>> like_to_regex("alexnet_%")
    '(?s)alexnet..*'
    """
    return Like(pattern, escape_char).regex(atomic=False, insensitive=insensitive)


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
        if piece == ".*" and pieces and pieces[-1] == ".*" and wildcard[-1]:
            continue  # a run of stars is one star: adjacent .* make Java's regex backtrack
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
    inner = "".join(_ESCAPES.get(c) or ("\\" + c if c in "]^[" else c) for c in body)
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
    return Like(pattern, escape_char).prefix
