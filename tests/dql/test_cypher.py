"""Table-driven DQL → Cypher pairs for both dialects (fixtures/cypher_pairs.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from dql_testdata import LadybugGraph

import dql

CASES = json.loads((Path(__file__).parent / "fixtures" / "cypher_pairs.json").read_text())
IDS = [case["dql"][:60] for case in CASES]


def validate(text: str, dialect: str, expected: dict[str, object]) -> dql.CompiledQuery | None:
    """Compile ``text`` and compare with the expected Cypher and params, or the error."""
    if "error" in expected:
        error = getattr(dql, str(expected["error"]))
        with pytest.raises(error, match=r"\(dialect|Line") as info:
            dql.compile(text, dialect=dialect)
        assert info.value.code == expected["code"]
        return None
    compiled = dql.compile(text, dialect=dialect)
    assert compiled.cypher.splitlines() == expected["cypher"]
    assert compiled.params == expected["params"]
    return compiled


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_neo4j(case: dict[str, object]) -> None:
    validate(str(case["dql"]), "neo4j", case["neo4j"])  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ladybug(case: dict[str, object], ladybug_graph: LadybugGraph) -> None:
    compiled = validate(str(case["dql"]), "ladybug", case["ladybug"])  # type: ignore[arg-type]
    if compiled is not None:  # every generated statement is valid Cypher for LadybugDB
        ladybug_graph.run(compiled.cypher, compiled.params)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_user_text_is_never_inlined(case: dict[str, object]) -> None:
    for dialect in ("neo4j", "ladybug"):
        expected = case[dialect]
        if "cypher" in expected:  # type: ignore[operator]
            cypher = "\n".join(expected["cypher"])  # type: ignore[index]
            assert not re.search(r"['\"]|\d", re.sub(r"\b[a-z_]+\d+\b|\$p\d+", "", cypher))


def test_paper_query_4_is_data() -> None:
    from paper_queries import Q3, Q4

    compiled = dql.compile(Q4, resolve={"query3": Q3}.get)
    assert compiled.kind == "evaluate"
    assert compiled.cypher == ""
    assert isinstance(compiled.source, dql.CompiledQuery)
    assert compiled.source.kind == "construct"
    assert compiled.config == "path to config"
    assert [v.dotted for v in compiled.vary] == ["base_lr", 'net["conv*"].lr', "input_data"]
    assert compiled.vary[0].values == (0.1, 0.01, 0.001)
    assert compiled.vary[1].auto
    assert compiled.keep == (dql.KeepTop(5, "loss", 100, "asc"),)
    assert dql.compile(Q4).source == "query3"  # unresolved: the executor looks it up
    json.dumps(compiled.to_dict())


def test_saved_query_is_inlined_in_select() -> None:
    saved = {"recent": 'select x where x.creation_time > "2016"'}
    compiled = dql.compile('select m from "recent" where m.author = "ann"', resolve=saved.get)
    assert compiled.cypher.splitlines()[1] == "WHERE m.created_at > $p0 AND m.author = $p1"
    with pytest.raises(dql.ResolveError, match="Unknown saved query 'nope'"):
        dql.compile('select m from "nope"')


def test_threshold_keep_rule() -> None:
    compiled = dql.compile(
        'evaluate m from (select x) with config = "c.yaml" '
        'vary config.lr in [0.1] keep m["accuracy"] > 0.9 after 50 '
        "and top(2, m.metrics.accuracy.max, 100)"
    )
    threshold, top = compiled.keep
    assert threshold == dql.KeepThreshold("accuracy", ">", 0.9, 50)
    assert top == dql.KeepTop(2, "accuracy", 100, "desc", "max")
    assert isinstance(compiled.source, dql.CompiledQuery)
    assert compiled.source.kind == "select"


def test_unknown_dialect() -> None:
    with pytest.raises(dql.UnsupportedError, match="Unknown dialect 'sql'"):
        dql.compile("select m", dialect="sql")


def test_nested_construct_is_not_a_select_source() -> None:
    with pytest.raises(dql.UnsupportedError, match="Only a select can be the source"):
        dql.compile('select m from (construct a from b mutate b["x"].delete)')


VERSION = ("id", "name", "created_at", "author")

#: (DQL, ordered, columns): what an executor reads instead of sniffing the Cypher text.
SHAPES = [
    ("select m", False, VERSION),
    ('select m where m.name like "a%"', False, VERSION),
    ("select m order by m.name", True, VERSION),
    ("select m order by m.creation_time desc limit 3", True, VERSION),
    ('select m order by m.message, m["acc"] desc', True, (*VERSION, "order_0", "order_1")),
    ("select m order by m.author, m.params.lr", True, (*VERSION, "order_1")),
    ("select m limit 5", False, VERSION),
    (
        'slice n from m mutate n.input = m["a"] and n.output = m["b"]',
        False,
        (*VERSION, "network", "input", "output"),
    ),
    (
        'construct n from m mutate m["a"].delete and m["b"].insert = RELU()',
        False,
        (*VERSION, "network", "binding_0", "binding_1"),
    ),
]


@pytest.mark.parametrize(("text", "ordered", "columns"), SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("dialect", ["neo4j", "ladybug"])
def test_ordered_and_columns_are_data(
    text: str, ordered: bool, columns: tuple[str, ...], dialect: str
) -> None:
    compiled = dql.compile(text, dialect=dialect)
    assert compiled.ordered is ordered
    assert compiled.columns == columns
    assert compiled.to_dict()["ordered"] is ordered
    assert compiled.to_dict()["columns"] == list(columns)
