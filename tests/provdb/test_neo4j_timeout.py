"""Every query the library runs on Neo4j has a server-side time limit, and DQL's `like` never
reaches Neo4j as a backtracking regex (one kept the server at 190% CPU after the client left:
Java's regex matcher does not stop for a terminated transaction, so the compiler must never
emit one — the timeout covers everything else)."""

from __future__ import annotations

import time

import pytest

from provdb.errors import Unavailable
from provdb.graph import open_store
from provdb.repository import Repository

#: A long but interruptible query (Neo4j checks for termination between rows).
SLOW = "UNWIND range(1, 100000000000) AS i WITH i WHERE i < 0 RETURN count(i) AS n"


@pytest.mark.neo4j
def test_a_runaway_query_is_stopped_and_the_server_answers_right_after(
    neo4j_graph_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVDB_QUERY_TIMEOUT", "2")
    with open_store(neo4j_graph_uri) as store:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="time limit"):
            store.run_read(SLOW)
        assert time.monotonic() - started < 30
        assert store.run_read("RETURN 1 AS one") == [{"one": 1}]


@pytest.mark.neo4j
def test_dql_like_with_many_percents_is_fast_and_right(
    neo4j_graph_uri: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVDB_QUERY_TIMEOUT", "5")
    from provdb.entities import Model, ModelVersion
    from provdb.graph import WriteBatch

    with Repository.init(tmp_path / "r", graph=neo4j_graph_uri) as repo:
        name = "a" * 100
        repo.graph.write(WriteBatch().add(Model(name=name)).add(ModelVersion(id="v1", name=name)))
        assert repo.query('select m where m.name like "%%%%%%%z"').rows == []
        hit = repo.query('select m where m.name like "%a%a%a%a%a%a%"').rows
        assert [r["id"] for r in hit] == ["v1"]
        assert repo.graph.run_read("RETURN 1 AS one") == [{"one": 1}]
