"""dql/schema.py duplicates names from provdb/graph/schema.py; keep them in step."""

from __future__ import annotations

from dql import schema
from provdb.graph.schema import NODES, RELS


def test_labels_and_properties_exist() -> None:
    for label in (schema.VERSION, schema.LAYER, schema.HYPERPARAMETER, schema.METRIC):
        assert label in NODES
    version_props = NODES[schema.VERSION][1]
    for prop, kind in schema.VERSION_ATTRIBUTES.values():
        assert version_props[prop] == kind
    assert "network" in version_props
    assert {"name", "type", "mode"} <= set(NODES[schema.LAYER][1])
    assert {"name", "value", "num"} <= set(NODES[schema.HYPERPARAMETER][1])
    assert set(schema.METRIC_FIELDS) <= set(NODES[schema.METRIC][1])


def test_relationships_exist() -> None:
    assert (schema.VERSION, schema.LAYER) in RELS[schema.HAS_LAYER][0]
    assert (schema.LAYER, schema.LAYER) in RELS[schema.NEXT][0]
    assert (schema.VERSION, schema.HYPERPARAMETER) in RELS[schema.HAS_PARAM][0]
    assert (schema.VERSION, schema.METRIC) in RELS[schema.HAS_METRIC][0]
