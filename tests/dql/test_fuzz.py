"""The front end never fails with anything but a DQLError, whatever the input."""

from __future__ import annotations

import typing as t

import pytest
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


# -- generated DQL, run on a real database -----------------------------------------------------
# Text that compiles must run: the database never says something internal (a failed cast,
# an unknown map key, a regex it cannot read). Compile errors must be DQLErrors, as above.


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_STRING = _TEXT.map(_quote)
_NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, width=64).map(repr),
    st.sampled_from(["1e999", "-0.0", "0", "1", "0.5"]),
).map(str)
_LITERAL = st.one_of(_STRING, _NUMBER, st.sampled_from(["true", "false"]))
_VALUE = st.one_of(
    st.sampled_from(["m.name", "m.id", "m.creation_time", "m.author", "m.message", "m.framework"]),
    st.builds(lambda n, f: f"m[{n}]{f}", _STRING, st.sampled_from(["", ".min", ".max", ".last"])),
    st.sampled_from(['m["accuracy"]', "m.params.lr", "m.params.optimizer"]),
    st.builds(lambda n: f"m.params[{n}]", _STRING),
)
_LIKE_PATTERN = st.one_of(
    _STRING,
    st.text(st.sampled_from("%_a\\!é😀.*"), max_size=12).map(_quote),
)
_TEMPLATE = st.one_of(
    st.sampled_from(['POOL("MAX")', "POOL()", 'CONV("conv1")', "LAYER()", 'RELU("r*")']),
    st.builds(lambda n: f"LAYER({n})", _STRING),
)
_PREDICATE = st.one_of(
    st.builds(
        lambda v, op, lit: f"{v} {op} {lit}",
        _VALUE,
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        _LITERAL,
    ),
    st.builds(
        lambda v, neg, op, p, esc: f"{v} {neg}{op} {p}{esc}",
        _VALUE,
        st.sampled_from(["", "not "]),
        st.sampled_from(["like", "ilike"]),
        _LIKE_PATTERN,
        st.sampled_from(["", ' escape "!"', ' escape "%"', ' escape "_"']),
    ),
    st.builds(
        lambda v, items: f"{v} in [{', '.join(items)}]",
        _VALUE,
        st.lists(_LITERAL, min_size=1, max_size=3),
    ),
    st.builds(
        lambda g, hops, tpl: f"m[{g}]{''.join(hops)} has {tpl}",
        st.one_of(_STRING, st.sampled_from(['"conv*"', '"conv[1,3]"', '"*"', '"[!a]*"'])),
        st.lists(st.sampled_from([".next", ".prev"]), max_size=4),
        _TEMPLATE,
    ),
)
_CONDITION = st.recursive(
    _PREDICATE,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        inner.map(lambda c: f"not {c}"),
        inner.map(lambda c: f"({c})"),
    ),
    max_leaves=6,
)
_SELECT = st.builds(
    lambda where, order, limit: f"select m{where}{order}{limit}",
    st.one_of(st.just(""), _CONDITION.map(lambda c: f" where {c}")),
    st.sampled_from(
        ["", " order by m.name", ' order by m["accuracy"] desc', " order by m.params.lr"]
    ),
    st.one_of(st.just(""), st.integers(-1, 2**70).map(lambda n: f" limit {n}")),
)
_QUERY = st.one_of(
    _SELECT,
    st.builds(
        lambda c: f"select m from (select x where {c.replace('m.', 'x.').replace('m[', 'x[')})",
        _CONDITION,
    ),
    st.builds(
        lambda c, g: f"construct n from m where {c} mutate m[{g}].insert = RELU()",
        _CONDITION,
        _STRING,
    ),
    st.builds(
        lambda c, a, b: f"slice n from m where {c} mutate n.input = m[{a}] and n.output = m[{b}]",
        _CONDITION,
        _STRING,
        _STRING,
    ),
)


def _compile_for_run(text: str, dialect: str) -> dql.CompiledQuery | None:
    try:
        return dql.compile(text, dialect=dialect)
    except dql.DQLError as error:
        caught = error
    assert caught.code
    return None


@settings(max_examples=400, deadline=None)
@given(_QUERY)
def test_generated_queries_run_on_ladybug(ladybug_graph: t.Any, text: str) -> None:
    compiled = _compile_for_run(text, "ladybug")
    if compiled is not None:
        ladybug_graph.run(compiled.cypher, compiled.params)  # anything raised fails the test
    _compile_for_run(text, "neo4j")


@pytest.fixture(scope="module")
def neo4j_session(neo4j_uri: str, neo4j_auth: tuple[str, str] | None) -> t.Iterator[t.Any]:
    import neo4j

    with neo4j.GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        with driver.session(database="neo4j") as session:
            yield session


@pytest.mark.neo4j
@settings(max_examples=150, deadline=None)
@given(_QUERY)
def test_generated_queries_run_on_neo4j(neo4j_session: t.Any, text: str) -> None:
    import neo4j

    compiled = _compile_for_run(text, "neo4j")
    if compiled is not None:
        query = neo4j.Query(compiled.cypher, timeout=10.0)  # type: ignore[arg-type]
        neo4j_session.run(query, compiled.params).consume()
