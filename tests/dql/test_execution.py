"""Run the generated Cypher on real databases: embedded LadybugDB and the session's Neo4j
(``NEO4J_URI`` or the Maven-provisioned server)."""

from __future__ import annotations

import json
import typing as t

import pytest
from dql_testdata import LOAD, QUERY1_EXPECTED, VERSIONS, LadybugGraph, ladybug_ddl, load_params
from paper_queries import Q1, Q2, Q3

import dql
from dql.rewrite import apply_mutations, slice_network

#: (DQL, expected version ids) run on both backends.
SELECTS = [
    (Q1, QUERY1_EXPECTED),
    ('select m where m.name like "alexnet\\_%"', {"v1", "v2", "v3", "v6"}),
    ('select m where m.name like "ALEXNET-%"', set()),
    ('select m where m.name ilike "ALEXNET-%"', {"v4", "v5"}),
    ('select m where m["conv*"].next has POOL("AVG")', {"v5", "v6"}),
    ('select m where m["pool*"].prev has CONV("conv3")', {"v3", "v4", "v6"}),
    ('select m where m["conv2"].next.next has POOL()', {"v3", "v4", "v6"}),
    ('select m where not m["conv1"].next has POOL()', {"v2", "v3", "v6"}),
    ('select m where m["accuracy"] >= 0.75', {"v5", "v6", "v7", "v8"}),
    ('select m where m.metrics.accuracy.max < 0.65 or m.id = "v8"', {"v1", "v2", "v8"}),
    ('select m where m.params.lr = 0.1 and m.params.optimizer = "sgd"', {"v1", "v3", "v5", "v7"}),
    ('select m where m.params.optimizer like "s%"', set(VERSIONS)),
    ('select m where m.id in ["v1", "v2", "zz"]', {"v1", "v2"}),
    (
        'select m from (select x where x.name like "alexnet%") where m.creation_time < "2016-02"',
        {"v1", "v3"},
    ),
    # Anchored forms on Neo4j (a top-level has / metric / parameter test starts the match,
    # then WITH DISTINCT m): the same sets as the EXISTS forms, one row per version.
    (
        'select m where m["conv*"].next has POOL("MAX") and m["accuracy"] >= 0.75',
        {"v5", "v6", "v7", "v8"},
    ),
    ("select m where m.params.lr > 0.001 and m.params.lr < 0.05", {"v2", "v4", "v6", "v8"}),
    (
        'select m where m["conv*"].next has POOL() and m["conv*"].next has POOL("AVG") '
        "and m.params.lr = 0.1",
        {"v5"},
    ),
    (
        'select m where m["pool*"] has POOL("MAX") and not m["conv1"].next has POOL() '
        'and (m.name like "x%" or m["accuracy"] > 0.7)',
        {"v6"},
    ),
    (
        'select m from (select x where x["conv3"].next has POOL()) where m.name like "alexnet%"',
        {"v3", "v4", "v6"},
    ),
    ('select m where m.name like "alexnet!_%" escape "!"', {"v1", "v2", "v3", "v6"}),
    ('select m where m.name not like "alexnet%"', {"v8"}),
    ('select m where m.params.optimizer like "s%" and m.id in ["v1", "v2"]', {"v1", "v2"}),
    # Neo4j: next to a point seek a has stays EXISTS; next to a range seek (or alone) a has
    # with a typed template starts from the layers (WITH DISTINCT l0), then joins m.
    ('select m where m.id = "v5" and m["conv*"].next has POOL("AVG")', {"v5"}),
    ('select m where m.id in ["v1", "v5", "v6"] and m["conv*"].next has POOL("AVG")', {"v5", "v6"}),
    (
        'select m where m.creation_time >= "2016-04" and m["conv[1,2]"].next has POOL("MAX")',
        {"v5", "v7", "v8"},
    ),
    (
        'select m where m.name like "alexnet%" and m["conv*"].next has POOL("MAX")',
        {"v1", "v2", "v3", "v4", "v5", "v6", "v7"},
    ),
    ('select m where m.creation_time > "2016-02" and m["conv3"].next has POOL()', {"v4", "v6"}),
]

#: DQL → whether the Neo4j Cypher starts from the layers (ladybug never does).
LAYER_FIRST = [
    (Q1, True),
    ('select m where m["conv*"].next has POOL("AVG")', True),
    ('select m where m.id = "v5" and m["conv*"].next has POOL("AVG")', False),
    ('select m where m.creation_time > "2016-02" and m["conv3"].next has POOL()', False),
    ('select m where m.creation_time > "2016-02" and m["conv3"].next has POOL("MAX")', True),
    (
        'select m where m.creation_time > "2016-02" and m["conv3"].next has LAYER(name="pool3")',
        False,
    ),
]


@pytest.mark.parametrize(("text", "layer_first"), LAYER_FIRST)
def test_layer_first_form(text: str, layer_first: bool) -> None:
    neo4j = dql.compile(text, dialect="neo4j").cypher
    assert neo4j.startswith("MATCH (l0:Layer)") == layer_first
    assert ("WITH DISTINCT l0" in neo4j) == layer_first
    assert ("EXISTS" in neo4j) == (not layer_first)
    assert "WITH DISTINCT l0" not in dql.compile(text, dialect="ladybug").cypher


def check_selects(
    run: t.Callable[[str, dict[str, t.Any]], list[dict[str, t.Any]]], dialect: str
) -> None:
    for text, expected in SELECTS:
        compiled = dql.compile(text, dialect=dialect)
        rows = run(compiled.cypher, compiled.params)
        assert {r["id"] for r in rows} == expected, text
        assert len(rows) == len({r["id"] for r in rows}), f"duplicate rows: {text}"
        assert all(tuple(r) == compiled.columns for r in rows)


def check_order_limit(
    run: t.Callable[[str, dict[str, t.Any]], list[dict[str, t.Any]]], dialect: str
) -> None:
    compiled = dql.compile('select m order by m["accuracy"] desc limit 3', dialect=dialect)
    assert [r["id"] for r in run(compiled.cypher, compiled.params)] == ["v8", "v7", "v6"]
    compiled = dql.compile(
        "select m order by m.params.lr, m.creation_time desc limit 2", dialect=dialect
    )
    assert [r["id"] for r in run(compiled.cypher, compiled.params)] == ["v8", "v6"]
    compiled = dql.compile(  # Neo4j: anchored on the has, then ordered
        'select m where m["conv*"].next has POOL("MAX") order by m["accuracy"] desc limit 3',
        dialect=dialect,
    )
    assert ("WITH DISTINCT m" in compiled.cypher) == (dialect == "neo4j")
    assert [r["id"] for r in run(compiled.cypher, compiled.params)] == ["v8", "v7", "v6"]


def check_derivations(
    run: t.Callable[[str, dict[str, t.Any]], list[dict[str, t.Any]]], dialect: str
) -> None:
    compiled = dql.compile(Q2, dialect=dialect)
    [row] = run(compiled.cypher, compiled.params)
    sliced = slice_network(json.loads(row["network"]), row["input"], row["output"])
    assert row["id"] == "v4"
    assert [layer["name"] for layer in sliced["layers"]] == [
        "conv1",
        "pool1",
        "conv2",
        "conv3",
        "pool3",
        "conv4",
        "conv5",
        "flatten",
        "fc6",
        "drop6",
        "fc7",
    ]

    compiled = dql.compile(Q3, dialect=dialect)
    [row] = run(compiled.cypher, compiled.params)
    assert row["id"] == "v5"
    assert sorted(row["binding_0"]) == ["conv1", "conv5"]
    built = apply_mutations(json.loads(row["network"]), compiled.mutations, row)
    names = [layer["name"] for layer in built["layers"]]
    assert names[:4] == ["data", "conv1", "relu1", "pool1"]
    assert "relu2" not in names
    assert names[names.index("conv5") + 1] == "relu5"


def test_ladybug_select(ladybug_graph: LadybugGraph) -> None:
    check_selects(ladybug_graph.run, "ladybug")


def test_ladybug_order_limit(ladybug_graph: LadybugGraph) -> None:
    check_order_limit(ladybug_graph.run, "ladybug")


def test_ladybug_slice_and_construct(ladybug_graph: LadybugGraph) -> None:
    check_derivations(ladybug_graph.run, "ladybug")


def test_ladybug_rejects_type_mismatch_that_compile_reports() -> None:
    with pytest.raises(dql.UnsupportedError, match="Cannot compare a STRING column"):
        dql.compile("select m where m.creation_time > 2015", dialect="ladybug")


def test_ladybug_ddl_covers_schema() -> None:
    assert any(
        s.startswith(
            "CREATE REL TABLE IF NOT EXISTS HAS_PARAM(FROM ModelVersion TO Hyperparameter, "
            "FROM Run TO Hyperparameter"
        )
        for s in ladybug_ddl()
    )


@pytest.fixture(scope="module")
def neo4j_run(
    neo4j_uri: str, neo4j_auth: tuple[str, str] | None
) -> t.Iterator[t.Callable[[str, dict[str, t.Any]], list[dict[str, t.Any]]]]:
    """The session's Neo4j (tests/conftest.py), emptied and loaded with VERSIONS."""
    import neo4j

    driver = neo4j.GraphDatabase.driver(neo4j_uri, auth=neo4j_auth)
    database = "neo4j"
    with driver.session(database=database) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()
        for vid in VERSIONS:
            params = load_params(vid)
            for statement in LOAD:
                statement = statement.replace("e[1]", "e[0]").replace("e[2]", "e[1]")
                needed = {k: v for k, v in params.items() if f"${k}" in statement}
                session.run(statement, needed).consume()

    def run(cypher: str, params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        with driver.session(database=database) as session:
            return [dict(record) for record in session.run(cypher, params)]

    yield run
    driver.close()


def test_neo4j_select(neo4j_run: t.Callable[..., list[dict[str, t.Any]]]) -> None:
    check_selects(neo4j_run, "neo4j")
    check_order_limit(neo4j_run, "neo4j")
    check_derivations(neo4j_run, "neo4j")
