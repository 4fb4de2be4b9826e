"""The provenance graph's schema, declared once and printed per dialect.

The vocabulary is W3C PROV-shaped (DESIGN.md §3). Every node has a stable string key (``id``,
or ``name`` for :class:`Model` and :class:`Agent`); internal database ids are never exposed.
Timestamps are ISO-8601 UTC strings (``2026-11-22T03:56:44.123456+00:00``) so they compare
the same way on both backends and against date literals such as ``"2015-11-22"``.
Free-form attributes (layer attributes, hyper-parameter values) are JSON strings; the columns
that queries filter on (``Layer.type``, ``Layer.mode``, ``Hyperparameter.num``, ``Metric.last``)
are typed columns of their own.
"""

from __future__ import annotations

#: Node labels → (key property, {property: type}). Types are LadybugDB's; Neo4j is schemaless
#: and gets a uniqueness constraint on the key.
NODES: dict[str, tuple[str, dict[str, str]]] = {
    "Model": ("name", {"name": "STRING", "created_at": "STRING"}),
    "ModelVersion": (
        "id",
        {
            "id": "STRING",
            "name": "STRING",
            "created_at": "STRING",
            "message": "STRING",
            "author": "STRING",
            "framework": "STRING",
            "tags": "STRING[]",
            "network": "STRING",  # JSON network definition (inputs/outputs, layer order)
        },
    ),
    "Snapshot": (
        "id",
        {
            "id": "STRING",
            "iteration": "INT64",
            "created_at": "STRING",
            "is_latest": "BOOLEAN",
            "committed": "BOOLEAN",
        },
    ),
    "Layer": (
        "id",
        {
            "id": "STRING",  # "<version id>/<layer name>"
            "name": "STRING",
            "type": "STRING",  # Conv, Pool, ReLU, FC, Dropout, BatchNorm, Flatten, Softmax, ...
            "mode": "STRING",  # MAX/AVG for Pool, "" otherwise
            "ordinal": "INT64",
            "attrs": "STRING",  # JSON object
        },
    ),
    "Tensor": (
        "id",
        {
            "id": "STRING",  # archive key
            "name": "STRING",
            "layer": "STRING",
            "shape": "INT64[]",
            "dtype": "STRING",
            "digest": "STRING",
        },
    ),
    "Hyperparameter": (
        "id",
        {
            "id": "STRING",  # "<owner id>/<name>"
            "name": "STRING",
            "value": "STRING",  # JSON value
            "num": "DOUBLE",  # the value when it is a number, else null
        },
    ),
    "Metric": (
        "id",
        {
            "id": "STRING",  # "<owner id>/<name>"
            "name": "STRING",
            # a series written in one go; the SDK's points are archive blocks (provdb/metrics.py)
            "steps": "INT64[]",
            "values": "DOUBLE[]",
            "last": "DOUBLE",
            "min": "DOUBLE",
            "max": "DOUBLE",
        },
    ),
    "File": ("id", {"id": "STRING", "path": "STRING", "digest": "STRING", "size": "INT64"}),
    "Dataset": ("id", {"id": "STRING", "name": "STRING", "uri": "STRING", "digest": "STRING"}),
    "Run": (
        "id",
        {
            "id": "STRING",
            "name": "STRING",
            "status": "STRING",  # RUNNING, FINISHED, FAILED
            "started_at": "STRING",
            "ended_at": "STRING",
            "command": "STRING",
        },
    ),
    "Agent": ("name", {"name": "STRING", "kind": "STRING"}),
    # the repository a graph belongs to: one per database (a second repository is refused)
    "Repository": ("id", {"id": "STRING", "root": "STRING", "created_at": "STRING"}),
}

#: Relationship types → (list of (from label, to label), {property: type}).
RELS: dict[str, tuple[list[tuple[str, str]], dict[str, str]]] = {
    "VERSION_OF": ([("ModelVersion", "Model")], {}),
    "SNAPSHOT_OF": ([("Snapshot", "ModelVersion")], {}),
    "HAS_LAYER": ([("ModelVersion", "Layer")], {}),
    "NEXT": ([("Layer", "Layer")], {}),
    "HAS_TENSOR": ([("Snapshot", "Tensor")], {}),
    "HAS_PARAM": ([("ModelVersion", "Hyperparameter"), ("Run", "Hyperparameter")], {}),
    "HAS_METRIC": ([("ModelVersion", "Metric"), ("Run", "Metric")], {}),
    "HAS_FILE": ([("ModelVersion", "File"), ("Run", "File")], {}),
    "USED": ([("Run", "Dataset"), ("Run", "ModelVersion"), ("Run", "File")], {}),
    "WAS_GENERATED_BY": ([("ModelVersion", "Run"), ("Snapshot", "Run")], {}),
    "WAS_ASSOCIATED_WITH": ([("Run", "Agent")], {}),
    "DERIVED_FROM": (
        [("ModelVersion", "ModelVersion")],
        {"op": "STRING", "query": "STRING", "at": "STRING"},
    ),
}

#: Derivation operations allowed on DERIVED_FROM.op.
DERIVATION_OPS = ("commit", "copy", "finetune", "slice", "construct", "evaluate", "pull")
