"""What :func:`dql.compile` returns: the Cypher to run plus the declarative rest, as data.

An executor runs ``compiled.cypher`` with ``compiled.params`` (one round trip), then, per row:
``select`` returns the versions; ``slice`` calls :func:`dql.rewrite.slice_network` with the
row's ``network``, ``input`` and ``output``; ``construct`` calls
:func:`dql.rewrite.apply_mutations` with the row's ``network`` and the row itself as bindings;
``evaluate`` resolves ``source``, enumerates :func:`expand_grid` and prunes with ``keep``.
"""

from __future__ import annotations

import itertools
import math
import operator
import typing as t
from dataclasses import dataclass, field

from dql.errors import DQLError
from dql.patterns import Glob
from dql.templates import LayerSpec

Kind = t.Literal["select", "slice", "construct", "evaluate"]


@dataclass(frozen=True)
class MutationPlan:
    """One ``SELECTOR.insert = T`` / ``SELECTOR.delete`` of a construct.

    Attributes:
        action: ``"insert"`` or ``"delete"``.
        selector: the layer glob (``selector.match(name)`` gives the ``$n`` captures).
        template: the layer to insert (or, for delete, the successors to cut), or None.
        column: the result column that lists, per version, the layers this mutation binds.
    """

    action: str
    selector: Glob
    template: LayerSpec | None
    column: str

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data (JSON-ready)."""
        return {
            "action": self.action,
            "selector": self.selector.pattern,
            "column": self.column,
            "template": self.template.to_dict() if self.template else None,
        }


@dataclass(frozen=True)
class SlicePlan:
    """The ``mutate OUT.input = SEL and OUT.output = SEL`` of a slice (columns: input, output)."""

    input: Glob
    output: Glob

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data (JSON-ready)."""
        return {"input": self.input.pattern, "output": self.output.pattern}


@dataclass(frozen=True)
class VaryPlan:
    """One ``vary`` dimension: ``config.base_lr in [...]`` or ``config.net["conv*"].lr auto``.

    Attributes:
        path: config keys after ``config``; a :class:`Glob` step matches layer names.
        values: the listed values, or None for ``auto``.
        auto: True for ``auto`` (the executor's default range for the last key).
    """

    path: tuple[str | Glob, ...]
    values: tuple[t.Any, ...] | None = None
    auto: bool = False

    @property
    def dotted(self) -> str:
        """The path as written: ``net["conv*"].lr``."""
        return ".".join(p if isinstance(p, str) else f'["{p.pattern}"]' for p in self.path).replace(
            ".[", "["
        )

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data (JSON-ready)."""
        return {
            "path": self.dotted,
            "values": list(self.values) if self.values else None,
            "auto": self.auto,
        }


#: Default ranges for ``auto``, by the last key of the path (grid search).
AUTO_RANGES: dict[str, tuple[t.Any, ...]] = {
    "lr": (0.1, 0.01, 0.001),
    "base_lr": (0.1, 0.01, 0.001),
    "learning_rate": (0.1, 0.01, 0.001),
    "momentum": (0.0, 0.9),
    "weight_decay": (0.0, 1e-4),
    "dropout": (0.0, 0.5),
    "batch_size": (32, 64, 128),
}

#: Metrics where smaller is better (``keep top`` ranks them ascending unless told otherwise).
LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "perplexity")

_OPS: dict[str, t.Callable[[t.Any, t.Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class KeepTop:
    """``keep top(k, m["metric"] [asc|desc], iters)``: train ``iters`` iterations, keep best k."""

    k: int
    metric: str
    iters: int
    order: str  # "asc" (smaller is better) or "desc"
    field: str = "last"

    def survivors(self, scores: t.Mapping[str, float]) -> list[str]:
        """The ids of the best ``k`` candidates (NaN ranks last; ties by id)."""
        sign = 1 if self.order == "asc" else -1

        def rank(item: tuple[str, float]) -> tuple[bool, float, str]:
            value = item[1]
            bad = value is None or math.isnan(value)
            return bad, 0.0 if bad else sign * value, item[0]

        return [key for key, _ in sorted(scores.items(), key=rank)[: self.k]]

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data (JSON-ready)."""
        return {
            "rule": "top",
            "k": self.k,
            "metric": self.metric,
            "field": self.field,
            "iters": self.iters,
            "order": self.order,
        }


@dataclass(frozen=True)
class KeepThreshold:
    """``keep m["metric"] OP value [after iters]``: keep candidates that satisfy the test.

    Without ``after``, the test applies at the end of training (``iters`` is None).
    """

    metric: str
    op: str
    value: float
    iters: int | None = None
    field: str = "last"

    def passes(self, score: float | None) -> bool:
        """Whether a candidate with this metric value is kept (a missing/NaN value is not)."""
        if score is None or math.isnan(score):
            return False
        return _OPS[self.op](score, self.value)

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data (JSON-ready)."""
        return {
            "rule": "threshold",
            "metric": self.metric,
            "field": self.field,
            "op": self.op,
            "value": self.value,
            "iters": self.iters,
        }


KeepRule = KeepTop | KeepThreshold


@dataclass(frozen=True)
class CompiledQuery:
    """A compiled DQL statement.

    Attributes:
        kind: ``select``, ``slice``, ``construct`` or ``evaluate``.
        dialect: ``neo4j`` or ``ladybug``.
        dql: the DQL text it came from.
        cypher: the one Cypher query to run (``""`` for evaluate: see ``source``).
        params: the Cypher parameters (``p0``, ``p1``, ...).
        columns: the result columns, in order (every row has exactly these keys).
        ordered: whether the Cypher sorts the rows (``order by``); when False the row order
            is the database's and an executor may sort as it likes.
        mutations: construct only: the mutations, in order.
        slice: slice only: the input/output selectors.
        source: evaluate only: the compiled nested query, or the saved query's name when it
            was not resolved at compile time.
        config: evaluate only: the tuning config path.
        vary: evaluate only: the grid dimensions.
        keep: evaluate only: the pruning rules (all must hold).
    """

    kind: Kind
    dialect: str
    dql: str
    cypher: str = ""
    params: dict[str, t.Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    ordered: bool = False
    mutations: tuple[MutationPlan, ...] = ()
    slice: SlicePlan | None = None
    source: CompiledQuery | str | None = None
    config: str | None = None
    vary: tuple[VaryPlan, ...] = ()
    keep: tuple[KeepRule, ...] = ()

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data (JSON-ready), e.g. for ``dlv query --json`` or ``\\cypher``."""
        source = self.source.to_dict() if isinstance(self.source, CompiledQuery) else self.source
        return {
            "kind": self.kind,
            "dialect": self.dialect,
            "dql": self.dql,
            "cypher": self.cypher,
            "params": self.params,
            "columns": list(self.columns),
            "ordered": self.ordered,
            "mutations": [m.to_dict() for m in self.mutations],
            "slice": self.slice.to_dict() if self.slice else None,
            "source": source,
            "config": self.config,
            "vary": [v.to_dict() for v in self.vary],
            "keep": [k.to_dict() for k in self.keep],
        }


def expand_grid(
    vary: t.Sequence[VaryPlan],
    layer_names: t.Sequence[str] = (),
    auto_ranges: t.Mapping[str, t.Sequence[t.Any]] = AUTO_RANGES,
) -> list[dict[str, t.Any]]:
    """Enumerate the grid: one dict of config overrides per candidate.

    Keys are dotted config paths; a glob step expands to every matching layer name, and all
    those layers share the dimension's value (``net.conv1.lr`` and ``net.conv3.lr`` move
    together). ``auto`` takes ``auto_ranges[last key]``.

    >>> expand_grid([VaryPlan(("base_lr",), (0.1, 0.01))])
    [{'base_lr': 0.1}, {'base_lr': 0.01}]
    """
    axes = [(_concrete_keys(v, layer_names), _values(v, auto_ranges)) for v in vary]
    grid = []
    for combo in itertools.product(*(values for _, values in axes)):
        grid.append({key: value for (keys, _), value in zip(axes, combo) for key in keys})
    return grid


def apply_overrides(
    config: t.Mapping[str, t.Any], overrides: t.Mapping[str, t.Any]
) -> dict[str, t.Any]:
    """A copy of a nested config dict with dotted-path overrides applied."""
    result = _deep_copy(dict(config))
    for dotted, value in overrides.items():
        node = result
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return result


def _deep_copy(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _concrete_keys(vary: VaryPlan, layer_names: t.Sequence[str]) -> list[str]:
    keys = [""]
    for part in vary.path:
        if isinstance(part, str):
            keys = [f"{k}.{part}" if k else part for k in keys]
        else:
            names = [n for n in layer_names if part.match(n) is not None]
            keys = [f"{k}.{n}" if k else n for k in keys for n in names]
    return keys


def _values(vary: VaryPlan, auto_ranges: t.Mapping[str, t.Sequence[t.Any]]) -> tuple[t.Any, ...]:
    if not vary.auto:
        return tuple(vary.values or ())
    last = next((p for p in reversed(vary.path) if isinstance(p, str)), "")
    if last not in auto_ranges:
        raise DQLError(f"No default range for 'auto' on {vary.dotted}", code="no_auto_range")
    return tuple(auto_ranges[last])
