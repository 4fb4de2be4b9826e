"""The front end never fails with anything but a DQLError, whatever the input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from paper_queries import PAPER_QUERIES

import dql

WORDS = [
    "select",
    "slice",
    "construct",
    "evaluate",
    "from",
    "where",
    "mutate",
    "and",
    "or",
    "not",
    "like",
    "escape",
    "has",
    "in",
    "with",
    "config",
    "vary",
    "auto",
    "keep",
    "top",
    "order",
    "by",
    "desc",
    "limit",
    "m",
    "m1",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "=",
    "<",
    ">=",
    '"conv*($1)"',
    '"x%"',
    "POOL",
    "RELU",
    "1",
    "0.5",
    ".next",
    ".prev",
    ".insert",
    ".name",
    ".params",
    ".metrics",
    '["loss"]',
    "after",
    "as",
    '"q"',
    "'",
]


def _compile(text: str) -> None:
    for dialect in ("neo4j", "ladybug"):
        caught: dql.DQLError | None = None
        try:
            dql.compile(text, dialect=dialect, resolve=PAPER_QUERIES.get)
        except dql.DQLError as error:  # anything else fails the test
            caught = error
        if caught is not None:
            assert caught.code
            assert min(caught.line, caught.col) >= 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text(text: str) -> None:
    _compile(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=25))
def test_token_soup(words: list[str]) -> None:
    _compile(" ".join(words))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(PAPER_QUERIES)),
    st.integers(0, 400),
    st.integers(0, 30),
    st.text(max_size=5),
)
def test_mangled_paper_queries(name: str, at: int, cut: int, insert: str) -> None:
    text = PAPER_QUERIES[name]
    at = min(at, len(text))
    _compile(text[:at] + insert + text[at + cut :])
