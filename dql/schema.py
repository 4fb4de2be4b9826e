"""The slice of the provenance graph schema that DQL compiles against.

Duplicated from ``provdb/graph/schema.py`` on purpose: ``dql`` is a leaf library and never
imports ``provdb``. A test keeps the two in step.
"""

from __future__ import annotations

VERSION = "ModelVersion"
LAYER = "Layer"
HYPERPARAMETER = "Hyperparameter"
METRIC = "Metric"
HAS_LAYER = "HAS_LAYER"
NEXT = "NEXT"
HAS_PARAM = "HAS_PARAM"
HAS_METRIC = "HAS_METRIC"

#: DQL attribute of a version → (property of ModelVersion, property type).
VERSION_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "id": ("id", "STRING"),
    "name": ("name", "STRING"),
    "creation_time": ("created_at", "STRING"),
    "created_at": ("created_at", "STRING"),
    "author": ("author", "STRING"),
    "message": ("message", "STRING"),
    "framework": ("framework", "STRING"),
}

#: Metric fields a query may read; ``m["loss"]`` means the ``last`` value.
METRIC_FIELDS = ("last", "min", "max")
DEFAULT_METRIC_FIELD = "last"

#: Words that introduce a metric or hyper-parameter namespace: ``m.metrics.acc``, ``m.params.lr``.
METRIC_NAMESPACES = ("metrics", "metric")
PARAM_NAMESPACES = ("params", "param", "hyperparameters", "hp")

#: Columns every version-returning query yields, in order (DQL attribute names).
VERSION_COLUMNS = ("id", "name", "created_at", "author")
