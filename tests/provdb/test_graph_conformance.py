"""The GraphStore conformance suite: every test runs on LadybugDB and on Neo4j 5.26."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest

from provdb.entities import (
    ENTITY_TYPES,
    Agent,
    Dataset,
    Derivation,
    File,
    Hyperparameter,
    Layer,
    Metric,
    Model,
    ModelVersion,
    RepositoryMark,
    Run,
    Snapshot,
    Tensor,
)
from provdb.errors import Conflict, InvalidInput, NotFound, ProvDBError, Unavailable
from provdb.graph import GraphStore, WriteBatch, open_store
from provdb.graph.schema import NODES, RELS

SAMPLES = [
    Model(name="alexnet"),
    ModelVersion(
        id="v1",
        name="alexnet",
        message="first 'one' \"quoted\" ✓",
        author="ann",
        framework="pytorch",
        tags=["cnn", "vision"],
        network='{"layers": []}',
    ),
    Snapshot(id="v1@100", iteration=100, is_latest=True, committed=True),
    Layer(id="v1/conv1", name="conv1", type="Conv", ordinal=1, attrs='{"kernel_size": [3, 3]}'),
    Tensor(
        id="t1",
        name="conv1.weight",
        layer="conv1",
        shape=[16, 1, 3, 3],
        dtype="float32",
        digest="ab" * 32,
    ),
    Hyperparameter.of("v1", "base_lr", 0.01),
    Hyperparameter.of("v1", "optimizer", "sgd"),
    Metric.series("v1", "loss", [0, 10, 20], [2.3, 1.1, 0.4]),
    File(id="f1", path="train.py", digest="cd" * 32, size=1234),
    Dataset(id="d1", name="digits", uri="builtin:digits"),
    Run(
        id="r1",
        name="train",
        status="FINISHED",
        ended_at="2026-11-22T00:00:00+00:00",
        command="python train.py --lr 0.01",
    ),
    Agent(name="ann", kind="person"),
    RepositoryMark(id="r" * 32, root="/work/repo"),
]


def test_every_entity_type_has_a_sample() -> None:
    assert {type(e).LABEL for e in SAMPLES} == set(ENTITY_TYPES) == set(NODES)


@pytest.mark.parametrize("entity", SAMPLES, ids=lambda e: e.LABEL)
def test_entity_round_trip(store: GraphStore, entity) -> None:
    store.put(entity)
    key = entity.props()[NODES[entity.LABEL][0]]
    assert store.get(type(entity), key) == entity
    assert store.count(entity.LABEL) == 1


def test_update_replaces_properties(store: GraphStore) -> None:
    store.put(Run(id="r", status="RUNNING"))
    store.put(Run(id="r", status="FAILED", ended_at="2026-01-01T00:00:00+00:00"))
    run = store.get(Run, "r")
    assert (run.status, run.ended_at) == ("FAILED", "2026-01-01T00:00:00+00:00")
    assert store.count("Run") == 1


def test_metric_keeps_nan_and_nulls(store: GraphStore) -> None:
    store.put(Metric.series("v", "acc", [1, 2], [0.5, math.nan]), Metric(id="e", name="empty"))
    got = store.get(Metric, "v/acc")
    assert got.values[0] == 0.5
    assert math.isnan(got.values[1])
    assert math.isnan(got.last)
    assert got.max == 0.5
    assert store.get(Metric, "e") == Metric(id="e", name="empty")


def _every_relationship() -> WriteBatch:
    batch = WriteBatch().add(
        *SAMPLES,
        Layer(id="v1/relu1", name="relu1", type="ReLU"),
        ModelVersion(id="v0", name="alexnet"),
    )
    by_label = {e.LABEL: e for e in SAMPLES}
    for rel, (pairs, props) in RELS.items():
        for a, b in pairs:
            src = ("ModelVersion", "v0") if (rel, b) == ("DERIVED_FROM", "ModelVersion") else None
            batch.relate(rel, by_label[a], src or by_label[b], **{p: "x" for p in props})
    return batch


def test_every_relationship_round_trips(store: GraphStore) -> None:
    store.write(_every_relationship())
    for rel, (pairs, _) in RELS.items():
        for a, b in pairs:
            rows = store.run_read(f"MATCH (:{a})-[r:{rel}]->(:{b}) RETURN count(r) AS n")
            assert rows[0]["n"] == 1, (rel, a, b)


def test_relationship_to_missing_node_writes_nothing(store: GraphStore) -> None:
    batch = (
        WriteBatch()
        .add(ModelVersion(id="v2", name="m"))
        .relate("VERSION_OF", ("ModelVersion", "v2"), ("Model", "no-such-model"))
    )
    with pytest.raises(Conflict, match="does not exist"):
        store.write(batch)
    assert store.count("ModelVersion") == 0


def test_relate_rejects_wrong_endpoints() -> None:
    with pytest.raises(InvalidInput, match="does not connect Layer to Model"):
        WriteBatch().relate("VERSION_OF", ("Layer", "x"), ("Model", "m"))
    with pytest.raises(InvalidInput, match="unknown derivation op"):
        WriteBatch().derive(Derivation("a", "b", op="teleport"))


def test_schema_setup_is_idempotent(store: GraphStore) -> None:
    store.put(Model(name="m"))
    store.setup()
    store.setup()
    assert store.get(Model, "m") == Model(name="m", created_at=store.get(Model, "m").created_at)


def version_with_layers(vid: str, n_layers: int) -> WriteBatch:
    """A version with ``n_layers`` chained layers, as one batch."""
    layers = [
        Layer(id=f"{vid}/l{i}", name=f"l{i}", type="Conv" if i % 2 else "ReLU", ordinal=i)
        for i in range(n_layers)
    ]
    batch = WriteBatch().add(Model(name="big"), ModelVersion(id=vid, name="big"), *layers)
    batch.relate("VERSION_OF", ("ModelVersion", vid), ("Model", "big"))
    for a, b in zip(layers, layers[1:]):
        batch.relate("NEXT", a, b)
    for layer in layers:
        batch.relate("HAS_LAYER", ("ModelVersion", vid), layer)
    return batch


def test_bulk_insert_of_hundreds_of_layers_is_one_statement_per_kind(store: GraphStore) -> None:
    batch = version_with_layers("vbig", 600)
    # Model, ModelVersion, Layer nodes + VERSION_OF, NEXT, HAS_LAYER: six UNWINDs, not 1,800.
    assert len(batch.statements(store.dialect)) == 6
    store.write(batch)
    rows = store.run_read(
        "MATCH (:ModelVersion {id: $id})-[:HAS_LAYER]->(l:Layer) RETURN count(l) AS n",
        {"id": "vbig"},
    )
    assert rows[0]["n"] == 600
    rows = store.run_read("MATCH (:Layer)-[r:NEXT]->(:Layer) RETURN count(r) AS n")
    assert rows[0]["n"] == 599


def _lineage_fixture(store: GraphStore) -> None:
    """base ← ft1 ← ft2 ← ft3, base ← pruned; ft2 + pruned ← merged."""
    ids = ["base", "ft1", "ft2", "ft3", "pruned", "merged"]
    batch = WriteBatch().add(*(ModelVersion(id=i, name=f"m-{i}") for i in ids))
    for derived, base, op in [
        ("ft1", "base", "finetune"),
        ("ft2", "ft1", "finetune"),
        ("ft3", "ft2", "finetune"),
        ("pruned", "base", "slice"),
        ("merged", "ft2", "construct"),
        ("merged", "pruned", "construct"),
    ]:
        batch.derive(Derivation(derived, base, op=op, query="q" if op != "finetune" else ""))
    store.write(batch)


def test_lineage_ancestors_at_depth(store: GraphStore) -> None:
    _lineage_fixture(store)
    full = store.lineage("merged")
    assert full.depth == {"merged": 0, "ft2": 1, "pruned": 1, "ft1": 2, "base": 2}
    assert {(e.derived, e.base, e.op) for e in full.edges} == {
        ("merged", "ft2", "construct"),
        ("merged", "pruned", "construct"),
        ("ft2", "ft1", "finetune"),
        ("ft1", "base", "finetune"),
        ("pruned", "base", "slice"),
    }
    one = store.lineage("merged", depth=1)
    assert set(one.versions) == {"merged", "ft2", "pruned"}


def test_lineage_descendants_and_both(store: GraphStore) -> None:
    _lineage_fixture(store)
    down = store.lineage("base", direction="down")
    assert down.depth == {"base": 0, "ft1": 1, "pruned": 1, "ft2": 2, "merged": 2, "ft3": 3}
    assert set(store.lineage("ft1", depth=1, direction="both").versions) == {"ft1", "base", "ft2"}


def test_lineage_of_unknown_version(store: GraphStore) -> None:
    with pytest.raises(NotFound, match="no version 'nope'"):
        store.lineage("nope")


def test_versions_glob_and_parents(store: GraphStore) -> None:
    _lineage_fixture(store)
    assert {v.id for v in store.versions(name="m-ft*")} == {"ft1", "ft2", "ft3"}
    assert [e.base for e in store.parents(["ft3"])] == ["ft2"]


INJECTIONS = [
    'x"}) DETACH DELETE n //',
    "x'}) MATCH (n) DETACH DELETE n //",
    "a` {id: 'b'}) DELETE n //",
    "$rows",
    "' OR 1=1 --",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_cypher_injection_through_a_name_stays_inert(store: GraphStore, name: str) -> None:
    _lineage_fixture(store)
    store.put(Model(name=name), ModelVersion(id=name, name=name, message=name))
    assert store.get(ModelVersion, name).name == name
    assert store.count("ModelVersion") == 7
    assert store.versions(name=name) == [store.get(ModelVersion, name)] or "[" in name
    assert store.lineage(name).versions.keys() == {name}


def test_neo4j_unreachable_is_a_clear_error() -> None:
    with open_store("bolt://127.0.0.1:1") as s, pytest.raises(Unavailable, match="cannot reach"):
        s.count("Model")


WRITER = textwrap.dedent(
    """
    import sys
    from provdb.entities import ModelVersion
    from provdb.graph import open_store
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(path)
    for i in range(n):
        store.put(ModelVersion(id=f"{who}-{i}", name=who))
    print(store.count("ModelVersion"))
    """
)


def test_embedded_concurrent_writers_all_land(tmp_path) -> None:
    path = str(tmp_path / "graph.lbdb")
    with open_store(path) as s:
        s.setup()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path, f"w{k}", "15"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-500:] for o in outs]
    with open_store(path) as s:
        assert s.count("ModelVersion") == 45


def test_embedded_reader_runs_while_a_writer_holds_the_lock(tmp_path) -> None:
    path = str(tmp_path / "graph.lbdb")
    writer = open_store(path)
    writer.setup()
    writer.put(ModelVersion(id="a", name="a"))
    reader_code = (
        "from provdb.graph import open_store; "
        f"print(open_store({path!r}, read_only=True).count('ModelVersion'))"
    )
    with writer.hold():
        out = subprocess.run(
            [sys.executable, "-c", reader_code], capture_output=True, text=True, timeout=120
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_embedded_writer_gives_up_on_a_held_lock_with_a_clear_error(tmp_path) -> None:
    path = str(tmp_path / "graph.lbdb")
    holder = open_store(path)
    holder.setup()
    code = (
        "from provdb.graph.ladybug_store import LadybugStore; from provdb.entities import "
        f"Model; LadybugStore({path!r}, lock_timeout=0.5).put(Model(name='x'))"
    )
    with holder.hold():
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
    assert out.returncode != 0
    assert "locked by another process" in out.stderr


def test_read_only_store_refuses_writes(tmp_path) -> None:
    path = tmp_path / "graph.lbdb"
    with open_store(path) as s:
        s.setup()
    with open_store(path, read_only=True) as ro, pytest.raises(Conflict, match="read-only"):
        ro.put(Model(name="m"))


def test_create_only_items_refuse_an_existing_key_and_roll_back(store: GraphStore) -> None:
    store.put(ModelVersion(id="v", name="m"))
    batch = WriteBatch().add(Model(name="m")).add(ModelVersion(id="v", name="dup"), new=True)
    with pytest.raises(ProvDBError):
        store.write(batch)
    assert store.get(ModelVersion, "v").name == "m"
    assert store.count("Model") == 0


def test_merge_keeps_the_creation_time(store: GraphStore) -> None:
    store.put(Model(name="m", created_at="2020-01-01T00:00:00+00:00"))
    store.put(Model(name="m", created_at="2026-01-01T00:00:00+00:00"))
    assert store.get(Model, "m").created_at == "2020-01-01T00:00:00+00:00"


def test_a_held_session_belongs_to_its_thread(tmp_path) -> None:
    """An SDK run writes from a worker thread while the training thread may hold a read
    session: the worker must get its own write handle, not the other thread's read one."""
    import threading

    with open_store(tmp_path / "g.lbdb") as store:
        store.setup()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                store.put(Model(name="from-a-thread"))
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)

        with store.session():
            worker = threading.Thread(target=write)
            worker.start()
            worker.join(60)
        assert errors == []
        assert store.count("Model") == 1
