"""Limits: input that used to crash the compiler or the database is a positioned DQL error."""

from __future__ import annotations

import pytest
from dql_testdata import LadybugGraph

import dql
from dql.parser import INT64_MAX, MAX_DEPTH, MAX_HOPS

HOP = ".next"

#: (DQL, error class, code, the text the error underlines).
ERRORS = [
    ("select m where " + "(" * 200 + 'm.name = "a"' + ")" * 200, dql.ParseError, "too_deep", "("),
    ("select m where " + "not " * 800 + 'm.name = "a"', dql.ParseError, "too_deep", "not"),
    (
        "select m from " + "(select m from " * 100 + "m" + ")" * 100,
        dql.ParseError,
        "too_deep",
        "(",
    ),
    (
        f'select m where m["c*"]{HOP * 80} has POOL()',
        dql.ParseError,
        "too_many_hops",
        "next",
    ),
    (
        f'select m where m["c*"]{".prev" * (MAX_HOPS + 1)} has POOL()',
        dql.ParseError,
        "too_many_hops",
        "prev",
    ),
    ("select m limit 99999999999999999999", dql.ParseError, "out_of_range", "9" * 20),
    (f"select m limit {INT64_MAX + 1}", dql.ParseError, "out_of_range", str(INT64_MAX + 1)),
    ("select m limit -1", dql.ParseError, "syntax", "-1"),
    ("select m limit 1.5", dql.ParseError, "syntax", "1.5"),
    ("select m where m.params.lr = 99999999999999999999", dql.ParseError, "out_of_range", "9" * 20),
    ("select m where m.params.lr = -9223372036854775809", dql.ParseError, "out_of_range", "-9"),
    ('select m where m["loss"] < 1e999', dql.ParseError, "out_of_range", "1e999"),
    ("select m where m.id in [1, 1e400]", dql.ParseError, "out_of_range", "1e400"),
    (
        'evaluate m from m with config = "c" keep top(0, m["loss"], 10)',
        dql.ParseError,
        "out_of_range",
        "0",
    ),
    (
        'evaluate m from m with config = "c" keep top(1, m["loss"], 0)',
        dql.ParseError,
        "out_of_range",
        "0",
    ),
    (
        'evaluate m from m with config = "c" keep top(99999999999999999999, m["loss"], 1)',
        dql.ParseError,
        "out_of_range",
        "9" * 20,
    ),
]


@pytest.mark.parametrize(
    ("text", "error", "code", "underlined"), ERRORS, ids=[e[0][:50] for e in ERRORS]
)
@pytest.mark.parametrize("dialect", ["neo4j", "ladybug"])
def test_limit_errors_are_positioned(
    text: str, error: type[dql.DQLError], code: str, underlined: str, dialect: str
) -> None:
    with pytest.raises(error) as info:
        dql.compile(text, dialect=dialect)
    assert info.value.code == code
    assert info.value.line == 1
    assert info.value.col > 1
    assert text[info.value.start :].startswith(underlined)
    assert "^" in info.value.snippet


SAVED = {
    "loop": 'select x from "loop"',
    "a": "select x from \"b\" where x.name = 'a'",
    "b": 'select x from (select y from "a")',
    "eval": 'evaluate m from "eval" with config = "c"',
    **{f"s{i}": f'select x from "s{i + 1}"' for i in range(200)},
}


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ('select m from "loop"', "cyclic_query", "'loop' -> 'loop'"),
        ('select m from "a"', "cyclic_query", "'a' -> 'b' -> 'a'"),
        ('evaluate m from "eval" with config = "c"', "cyclic_query", "'eval' -> 'eval'"),
        ('select m from "s0"', "too_deep", f"at most {MAX_DEPTH}"),
    ],
)
def test_saved_queries_cannot_recurse_forever(text: str, code: str, message: str) -> None:
    with pytest.raises(dql.ResolveError, match=message) as info:
        dql.compile(text, resolve=SAVED.get)
    assert info.value.code == code
    assert info.value.line >= 1


def test_the_limits_themselves_compile_and_run(ladybug_graph: LadybugGraph) -> None:
    within = [
        "select m where " + "(" * (MAX_DEPTH - 1) + 'm.id = "v1"' + ")" * (MAX_DEPTH - 1),
        "select m where " + "not " * (MAX_DEPTH - 2) + 'm.id = "v1"',  # an even number of not
        f'select m where m["conv1"]{HOP * MAX_HOPS} has LAYER() or m.id = "v1"',
        f"select m where m.id = 'v1' limit {INT64_MAX}",
        "select m where m.id = 'v1' and m.params.lr >= -9223372036854775808",
    ]
    for text in within:
        for dialect in ("neo4j", "ladybug"):
            compiled = dql.compile(text, dialect=dialect)
        rows = ladybug_graph.run(compiled.cypher, compiled.params)
        assert {r["id"] for r in rows} == {"v1"}, text[:60]


@pytest.mark.parametrize("op", ["and", "or"])
def test_long_and_or_chains_do_not_recurse_per_term(op: str, ladybug_graph: LadybugGraph) -> None:
    n = 5000
    term = 'm.id <> "v1"' if op == "and" else 'm.id = "v1"'
    text = "select m where " + f" {op} ".join([term] * n)
    tree = dql.parse(text)
    assert len(list(tree.find_all(dql.ast.And, dql.ast.Or))) == n - 1
    assert tree.copy() == tree
    assert repr(tree)
    for dialect in ("neo4j", "ladybug"):
        compiled = dql.compile(text, dialect=dialect)
        assert compiled.cypher.count(f" {op.upper()} ") == n - 1
    rows = ladybug_graph.run(*_short(text, 800))
    assert {r["id"] for r in rows} == ({"v1"} if op == "or" else {f"v{i}" for i in range(2, 9)})


def _short(text: str, terms: int) -> tuple[str, dict[str, object]]:
    """The first ``terms`` terms compiled for LadybugDB (its own parser has a limit, too)."""
    op = " and " if " and " in text else " or "
    compiled = dql.compile(op.join(text.split(op)[:terms]), dialect="ladybug")
    return compiled.cypher, compiled.params


@pytest.mark.neo4j
def test_neo4j_runs_the_limits(neo4j_uri: str, neo4j_auth: tuple[str, str] | None) -> None:
    import neo4j

    texts = [
        "select m where " + " or ".join(['m.id = "like/none"'] * 2000),
        f'select m where m["conv1"]{HOP * MAX_HOPS} has LAYER()',
        f"select m limit {INT64_MAX}",
    ]
    with neo4j.GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        with driver.session(database="neo4j") as session:
            for text in texts:
                compiled = dql.compile(text, dialect="neo4j")
                query = neo4j.Query(compiled.cypher, timeout=20.0)  # type: ignore[arg-type]
                session.run(query, compiled.params).consume()
