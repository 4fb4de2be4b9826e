"""``like`` has exactly SQL LIKE semantics in every compiled form, and cannot hang Neo4j.

Many patterns against many strings, checked against a small reference implementation of SQL
LIKE: the Java-shaped regex (atomic groups, Neo4j), the RE2-shaped regex (LadybugDB), the
string-function tests, and the compiled queries run on real LadybugDB and Neo4j.
"""

from __future__ import annotations

import json
import re
import typing as t

import pytest
from dql_testdata import ladybug_ddl

import dql
from dql.patterns import Like, StringTests

# -- the reference --------------------------------------------------------------------------


def sql_like(text: str, pattern: str, escape: str | None = "\\", fold: bool = False) -> bool:
    """SQL LIKE by dynamic programming: ``%`` any run, ``_`` one character, escape → literal."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if escape and char == escape:
            tokens.append(("lit", pattern[i + 1] if i + 1 < len(pattern) else char))
            i += 2
            continue
        tokens.append(("any", "") if char == "%" else ("one", "") if char == "_" else ("lit", char))
        i += 1

    def same(a: str, b: str) -> bool:
        return a == b or (fold and a.lower() == b.lower())

    row = [True] + [False] * len(text)  # row[j]: text[:j] matches the tokens so far
    for kind, char in tokens:
        nxt = [False] * (len(text) + 1)
        for j in range(len(text) + 1):
            if kind == "any":
                nxt[j] = row[j] or (j > 0 and nxt[j - 1])
            elif j > 0 and row[j - 1]:
                nxt[j] = kind == "one" or same(text[j - 1], char)
        row = nxt
    return row[len(text)]


def eval_string_tests(text: str, tests: StringTests) -> bool:
    """What the Cypher string functions compute (``size()`` counts code points)."""
    return (
        (tests.equals is None or text == tests.equals)
        and (tests.starts is None or text.startswith(tests.starts))
        and (tests.ends is None or text.endswith(tests.ends))
        and (tests.contains is None or tests.contains in text)
        and (tests.min_size is None or len(text) >= tests.min_size)
    )


# -- the table ------------------------------------------------------------------------------

#: (pattern, escape character) pairs.
PATTERNS: list[tuple[str, str | None]] = [
    (p, "\\")
    for p in [
        "",
        "%",
        "%%",
        "_",
        "__",
        "_%",
        "%_",
        "%_%",
        "_%_%_",
        "a",
        "a%",
        "%a",
        "%a%",
        "a%b",
        "a%a",
        "a_a",
        "a%%b",
        "%a%b%",
        "a%b%c",
        "ab%ba",
        "aba%aba",
        "%ab%ab%",
        "%_b_%",
        "%%%%%%%z",
        "%a%a%a%a%a%a%z",
        "%a%_%a%_%z",
        "%.%",
        "%*%",
        "(%)",
        "[%]",
        "%$^%",
        "%|%",
        "a\\%",
        "100\\%",
        "a\\_b",
        "\\\\%",
        "%\\",
        "é%",
        "%😀",
        "_😀_",
        "%\n%",
        "x\\%%\\_y",
    ]
] + [("a!%b%", "!"), ("!!%", "!"), ("%!_", "!"), ("a%%%", "%"), ("%__%", "_")]

STRINGS = [
    "",
    "a",
    "b",
    "z",
    "ab",
    "ba",
    "aa",
    "aba",
    "abab",
    "abc",
    "abcz",
    "abaxaba",
    "abaaba",
    "a%b",
    "a_b",
    "axb",
    "x%_y",
    "x%ay",
    "100%",
    "100",
    "a\\",
    "\\x",
    "é",
    "éa",
    "😀",
    "x😀y",
    "a\nb",
    "\n",
    ".",
    "*",
    "(x)",
    "[y]",
    "$^",
    "|",
    "a!b",
    "!x",
    "a%%",
    "a" * 100,
    "a" * 99 + "z",
    "ab" * 50,
    "a" * 40 + "b" + "a" * 20 + "z",
    "a_a_a_a_a_az",
]

ILIKE = ["A%", "%É%", "ÉA", "%B_", "%A%a%Z"]
ILIKE_STRINGS = ["a", "A", "ab", "AB", "é", "Éa", "éA", "xbx", "aaz", "aAz", "az"]


def python_can_run(like: Like) -> bool:
    """Whether Python's backtracking ``re`` runs the RE2 shape (no atomic groups) quickly.

    With three or more gaps it is the very pattern that hung Neo4j; RE2 itself is linear,
    and the LadybugDB test below runs those patterns on the real engine.
    """
    return len(like.gaps) <= 2


def _ids(pairs: list[tuple[str, str | None]]) -> list[str]:
    return [ascii(p) + (f" escape {e}" if e != "\\" else "") for p, e in pairs]


@pytest.mark.parametrize(("pattern", "escape"), PATTERNS, ids=_ids(PATTERNS))
def test_every_form_is_sql_like(pattern: str, escape: str | None) -> None:
    like = Like(pattern, escape)
    forms = {"java": re.compile(like.regex(atomic=True))}
    if python_can_run(like):
        forms["re2"] = re.compile(like.regex(atomic=False))
    tests = like.string_tests()
    for text in STRINGS:
        expected = sql_like(text, pattern, escape)
        for name, regex in forms.items():
            assert (regex.fullmatch(text) is not None) == expected, (name, text)
        if tests is not None:
            assert eval_string_tests(text, tests) == expected, ("string tests", text)


@pytest.mark.parametrize("pattern", ILIKE)
def test_ilike_folds_case_in_both_dialects(pattern: str) -> None:
    like = Like(pattern)
    for regex in (like.regex(True, True, unicode_case=True), like.regex(False, True)):
        for text in ILIKE_STRINGS:
            assert (re.fullmatch(regex, text) is not None) == sql_like(text, pattern, fold=True)


#: Pattern → (Neo4j condition on m.name, its params): which form each shape compiles to.
FORMS = [
    ("abc", "m.name = $p0", ["abc"]),
    ("%", "m.name STARTS WITH $p0", [""]),
    ("%%%", "m.name STARTS WITH $p0", [""]),
    ("abc%", "m.name STARTS WITH $p0", ["abc"]),
    ("%abc", "m.name ENDS WITH $p0", ["abc"]),
    ("%abc%", "m.name CONTAINS $p0", ["abc"]),
    (
        "a%z",
        "m.name STARTS WITH $p0 AND m.name ENDS WITH $p1 AND size(m.name) >= $p2",
        ["a", "z", 2],
    ),
    ("_%", "size(m.name) >= $p0", [1]),
    ("ab__%", "m.name STARTS WITH $p0 AND size(m.name) >= $p1", ["ab", 4]),
    ("a_c", "m.name STARTS WITH $p0 AND m.name =~ $p1", ["a", "(?s)a.c"]),
    ("%%%%%%%z", "m.name ENDS WITH $p0", ["z"]),
    ("%a%a%z", "m.name =~ $p0", ["(?s)(?>.*?a)(?>.*?a).*z"]),
    ("x%a%_%z", "m.name STARTS WITH $p0 AND m.name =~ $p1", ["x", "(?s)x(?>.*?a)..*z"]),
]


@pytest.mark.parametrize(("pattern", "condition", "params"), FORMS, ids=[f[0] for f in FORMS])
def test_neo4j_forms(pattern: str, condition: str, params: list[object]) -> None:
    compiled = dql.compile(f'select m where m.name like "{pattern}"', dialect="neo4j")
    assert compiled.cypher.splitlines()[1] == f"WHERE {condition}"
    assert list(compiled.params.values()) == params
    ladybug = dql.compile(f'select m where m.name like "{pattern}"', dialect="ladybug")
    assert ladybug.cypher.splitlines()[1] == "WHERE m.name =~ $p0"
    assert ladybug.params == {"p0": Like(pattern).regex(atomic=False)}


def dql_string(text: str) -> str:
    """``text`` as a DQL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def like_query(pattern: str, escape: str | None, target: str = "m.name", op: str = "like") -> str:
    tail = f" escape {dql_string(escape)}" if escape not in (None, "\\") else ""
    return f"select m where {target} {op} {dql_string(pattern)}{tail}"


@pytest.mark.parametrize("dialect", ["neo4j", "ladybug"])
def test_hyper_parameter_like_matches_whole_json_characters(dialect: str) -> None:
    values = [*STRINGS, 'q"uote', "back\\slash", "tab\t", "u00e9", "\\u00e9"]
    for pattern, escape in [*PATTERNS, ("%u00e9%", "\\"), ("%00e9", "\\"), ("_", "\\")]:
        if dialect == "ladybug" and not python_can_run(Like(pattern, escape)):
            continue
        compiled = dql.compile(like_query(pattern, escape, "m.params.x"), dialect=dialect)
        (regex,) = (v for v in compiled.params.values() if str(v).startswith("(?"))
        for value in values:
            got = re.fullmatch(regex, json.dumps(value)) is not None
            assert got == sql_like(value, pattern, escape), (pattern, value)
        assert re.fullmatch(regex, json.dumps(1.5)) is None  # only strings match


def test_like_on_a_metric_is_a_positioned_error() -> None:
    for dialect in ("neo4j", "ladybug"):
        with pytest.raises(dql.UnsupportedError, match="Line 1, Col 16") as info:
            dql.compile('select m where m["loss"] like "1%"', dialect=dialect)
        assert info.value.code == "unsupported"


# -- on the databases -----------------------------------------------------------------------

#: One version per string; the id says which. Its hyper-parameter ``x`` holds the string too.
ROWS = [{"id": f"like/{i}", "name": s, "x": json.dumps(s)} for i, s in enumerate(STRINGS)]
LOAD = (
    "UNWIND $rows AS r CREATE (m:ModelVersion {id: r.id, name: r.name})"
    "-[:HAS_PARAM]->(:Hyperparameter {id: r.id + '/x', name: 'x', value: r.x})"
)


def _expected(pattern: str, escape: str | None, fold: bool = False) -> set[str]:
    return {r["id"] for r in ROWS if sql_like(r["name"], pattern, escape, fold)}


def _cases() -> t.Iterator[tuple[str, set[str]]]:
    for pattern, escape in PATTERNS:
        yield like_query(pattern, escape), _expected(pattern, escape)
        yield (
            like_query(pattern, escape, op="not like"),
            {r["id"] for r in ROWS} - _expected(pattern, escape),
        )
    for pattern in ILIKE:
        yield like_query(pattern, "\\", op="ilike"), _expected(pattern, "\\", fold=True)
    for pattern, escape in PATTERNS:  # the same names as a hyper-parameter's JSON text
        yield like_query(pattern, escape, "m.params.x"), _expected(pattern, escape)


def test_ladybug_runs_every_pattern(tmp_path: t.Any) -> None:
    import ladybug

    db = ladybug.Database(str(tmp_path / "graph"))
    conn = ladybug.Connection(db)
    for statement in ladybug_ddl():
        conn.execute(statement)
    conn.execute(LOAD, {"rows": ROWS})
    for text, expected in _cases():
        compiled = dql.compile(text, dialect="ladybug")
        result = conn.execute(compiled.cypher, compiled.params)
        got = set()
        while result.has_next():
            got.add(result.get_next()[0])
        assert got == expected, text


CLEAN = (
    "MATCH (m:ModelVersion)-->(h:Hyperparameter) WHERE m.id STARTS WITH 'like/' DETACH DELETE m, h"
)


@pytest.mark.neo4j
def test_neo4j_runs_every_pattern_fast(neo4j_uri: str, neo4j_auth: tuple[str, str] | None) -> None:
    """Including the patterns that took Neo4j seconds per name as ``.*.*.*`` regexes; each
    transaction gets a 5 s timeout, so a regression fails instead of hanging the suite."""
    import neo4j

    cases = [
        *_cases(),
        ("select m where m.name like '%%%%%%%z'", _expected("%%%%%%%z", "\\")),
        ("select m where m.name like '%a%a%a%a%a%a%z'", _expected("%a%a%a%a%a%a%z", "\\")),
        ("select m where m.name ilike '%A%a%A%a%A%a%Z'", _expected("%a%a%a%a%a%a%z", "\\")),
        (
            "select m where m.name like '%a%a%a%a%a%a%a%a%b%b'",
            _expected("%a%a%a%a%a%a%a%a%b%b", "\\"),
        ),
        (
            "select m where m.name like '%a_%a_%a_%a_%a_%a_%z'",
            _expected("%a_%a_%a_%a_%a_%a_%z", "\\"),
        ),
    ]
    with neo4j.GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        with driver.session(database="neo4j") as session:
            session.run(CLEAN).consume()
            session.run(LOAD, rows=ROWS).consume()
            try:
                for text, expected in cases:
                    compiled = dql.compile(text, dialect="neo4j")
                    query = neo4j.Query(compiled.cypher, timeout=5.0)  # type: ignore[arg-type]
                    records = session.run(query, compiled.params).data()
                    got = {r["id"] for r in records if r["id"].startswith("like/")}
                    assert got == expected, text
            finally:
                session.run(CLEAN).consume()


@pytest.mark.parametrize(
    ("glob", "regex", "name", "captures"),
    [
        ("conv****z", "(?s)conv.*z", "conv12z", {}),
        ("*a**a***z", "(?s).*a.*a.*z", "xaayz", {}),
        ("c**($1)x", "(?s)c(.*)x", "c12x", {"1": "12"}),
        ("conv*($1)", "(?s)conv(.*)", "conv3", {"1": "3"}),
    ],
)
def test_a_run_of_glob_stars_is_one_star(
    glob: str, regex: str, name: str, captures: dict[str, str]
) -> None:
    """Adjacent ``.*`` in a regex make Java's engine backtrack polynomially per star (a layer
    selector like ``m["********z"]`` could tie up Neo4j): a run of stars compiles to one."""
    from dql.patterns import Glob

    compiled = Glob(glob)
    assert compiled.regex == regex
    assert compiled.match(name) == captures
