"""Helpers for the DQL tests: AlexNet-like networks and a real embedded LadybugDB graph."""

from __future__ import annotations

import json
import sys
import typing as t
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # paper_queries, fixtures


def alexnet(pools: dict[int, str] | None = None) -> dict[str, t.Any]:
    """An AlexNet-like network: conv1..conv5 (pool after 1, 2, 5 by default), fc6..fc8.

    ``pools`` maps a conv index to the pooling mode (``MAX``/``AVG``) that follows it.
    """
    pools = {1: "MAX", 2: "MAX", 5: "MAX"} if pools is None else pools
    layers = [_layer("data", "Input", shape=[3, 227, 227])]
    for i in range(1, 6):
        layers.append(_layer(f"conv{i}", "Conv", out_channels=64 * i))
        if i in pools:
            layers.append(_layer(f"pool{i}", "Pool", mode=pools[i], kernel_size=[3, 3]))
    layers.append(_layer("flatten", "Flatten"))
    for i in (6, 7, 8):
        layers.append(_layer(f"fc{i}", "FC", out_features=4096 if i < 8 else 1000))
        if i < 8:
            layers.append(_layer(f"drop{i}", "Dropout", p=0.5))
    layers.append(_layer("prob", "Softmax"))
    names = [layer["name"] for layer in layers]
    return {
        "format": "provdb.network/1",
        "layers": layers,
        "edges": [[a, b] for a, b in zip(names, names[1:])],
    }


def _layer(name: str, type_: str, mode: str = "", **attrs: t.Any) -> dict[str, t.Any]:
    return {"name": name, "type": type_, "mode": mode, "attrs": attrs}


#: The versions loaded into the test graphs: id → (name, created_at, network).
VERSIONS: dict[str, tuple[str, str, dict[str, t.Any]]] = {
    "v1": ("alexnet_a", "2016-01-10", alexnet({1: "MAX", 2: "MAX", 5: "MAX"})),
    "v2": ("alexnet_b", "2016-03-01", alexnet({2: "MAX", 4: "MAX"})),  # no pool after 1/3/5
    "v3": ("alexnet_c", "2015-06-01", alexnet({3: "MAX"})),  # too old
    "v4": ("alexnet-origin", "2016-02-01", alexnet({1: "MAX", 3: "MAX"})),  # "_" matches "-"
    "v5": ("alexnet-avgv1", "2016-04-01", alexnet({1: "AVG", 2: "MAX", 5: "AVG"})),
    "v6": ("alexnet_avg", "2016-05-01", alexnet({3: "AVG", 5: "MAX"})),
    "v7": ("alexnet", "2016-05-02", alexnet({1: "MAX"})),  # "_" needs one more character
    "v8": ("vgg_a", "2016-05-03", alexnet({1: "MAX"})),
}
#: Paper query 1 on VERSIONS.
QUERY1_EXPECTED = {"v1", "v4", "v6"}


def version_rows(vid: str) -> tuple[dict[str, t.Any], list[dict[str, t.Any]], list[list[str]]]:
    """(version props, layer rows, NEXT edges as layer ids) for one of VERSIONS."""
    name, created_at, net = VERSIONS[vid]
    version = {
        "id": vid,
        "name": name,
        "created_at": created_at,
        "author": "tester",
        "message": "",
        "framework": "pytorch",
        "network": json.dumps(net),
    }
    layers = [
        {
            "id": f"{vid}/{layer['name']}",
            "name": layer["name"],
            "type": layer["type"],
            "mode": layer["mode"],
            "ordinal": i,
            "attrs": json.dumps(layer["attrs"]),
        }
        for i, layer in enumerate(net["layers"])
    ]
    edges = [[f"{vid}/{a}", f"{vid}/{b}"] for a, b in net["edges"]]
    return version, layers, edges


def ladybug_ddl() -> list[str]:
    """CREATE statements for the graph schema: the same DDL the embedded store runs."""
    from provdb.graph.dialect import LADYBUG

    return LADYBUG.schema_statements()


LOAD = [
    "CREATE (:ModelVersion {id: $v.id, name: $v.name, created_at: $v.created_at, "
    "author: $v.author, message: $v.message, framework: $v.framework, network: $v.network})",
    "UNWIND $layers AS l MATCH (m:ModelVersion {id: $vid}) CREATE (m)-[:HAS_LAYER]->"
    "(:Layer {id: l.id, name: l.name, type: l.type, mode: l.mode, ordinal: l.ordinal, "
    "attrs: l.attrs})",
    "UNWIND $edges AS e MATCH (a:Layer {id: e[1]}), (b:Layer {id: e[2]}) CREATE (a)-[:NEXT]->(b)",
    "UNWIND $metrics AS x MATCH (m:ModelVersion {id: $vid}) CREATE (m)-[:HAS_METRIC]->"
    "(:Metric {id: x.id, name: x.name, last: x.last, min: x.last, max: x.last})",
    "UNWIND $params AS h MATCH (m:ModelVersion {id: $vid}) CREATE (m)-[:HAS_PARAM]->"
    "(:Hyperparameter {id: h.id, name: h.name, value: h.value, num: h.num})",
]


def load_params(vid: str) -> dict[str, t.Any]:
    """Parameters for the LOAD statements (metrics: accuracy = 0.5 + i/20, lr by parity)."""
    version, layers, edges = version_rows(vid)
    i = int(vid[1:])
    metrics = [{"id": f"{vid}/accuracy", "name": "accuracy", "last": 0.5 + i / 20}]
    lr = 0.1 if i % 2 else 0.01
    params = [
        {"id": f"{vid}/lr", "name": "lr", "value": json.dumps(lr), "num": lr},
        {"id": f"{vid}/optimizer", "name": "optimizer", "value": json.dumps("sgd"), "num": None},
    ]
    return {
        "v": version,
        "vid": vid,
        "layers": layers,
        "edges": edges,
        "metrics": metrics,
        "params": params,
    }


class LadybugGraph:
    """A real embedded LadybugDB database holding VERSIONS."""

    def __init__(self, path: Path) -> None:
        import ladybug

        self.db = ladybug.Database(str(path / "graph"))
        self.conn = ladybug.Connection(self.db)
        for statement in ladybug_ddl():
            self.conn.execute(statement)
        for vid in VERSIONS:
            params = load_params(vid)
            for statement in LOAD:
                needed = {k: v for k, v in params.items() if f"${k}" in statement}
                self.conn.execute(statement, needed)

    def run(self, cypher: str, params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        """Execute and return rows as dicts."""
        result = self.conn.execute(cypher, params)
        columns = result.get_column_names()
        rows = []
        while result.has_next():
            rows.append(dict(zip(columns, result.get_next())))
        return rows


@pytest.fixture(scope="session")
def ladybug_graph(tmp_path_factory: pytest.TempPathFactory) -> LadybugGraph:
    """One LadybugDB graph with VERSIONS, shared by the session (tests only read it)."""
    return LadybugGraph(tmp_path_factory.mktemp("dql-ladybug"))
