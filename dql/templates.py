"""Built-in layer templates: ``POOL("MAX")``, ``RELU("relu$1")``, ``CONV(...)``, ...

A template names a layer ``type`` (the canonical types of docs/network-format.md) and says
what its positional arguments mean. In a condition (``has POOL("AVG")``) a template matches
layers by type, mode and name glob; in ``insert`` it describes the new layer, with ``$n``
in the name replaced by the selector's captures and keyword arguments as layer attributes.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from dql import ast as exp
from dql.errors import ParseError

#: Template name → (layer type, meaning of the positional arguments in order).
TEMPLATES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "LAYER": (None, ("type", "name")),
    "INPUT": ("Input", ("name",)),
    "CONV": ("Conv", ("name",)),
    "POOL": ("Pool", ("mode", "name")),
    "RELU": ("ReLU", ("name",)),
    "SIGMOID": ("Sigmoid", ("name",)),
    "TANH": ("Tanh", ("name",)),
    "FC": ("FC", ("name",)),
    "DROPOUT": ("Dropout", ("name",)),
    "BATCHNORM": ("BatchNorm", ("name",)),
    "FLATTEN": ("Flatten", ("name",)),
    "SOFTMAX": ("Softmax", ("name",)),
    "LRN": ("LRN", ("name",)),
    "ADD": ("Add", ("name",)),
    "CONCAT": ("Concat", ("name",)),
    "IDENTITY": ("Identity", ("name",)),
    "LAYERNORM": ("LayerNorm", ("name",)),
    "EMBEDDING": ("Embedding", ("name",)),
}

POOL_MODES = ("MAX", "AVG")


@dataclass(frozen=True)
class LayerSpec:
    """What a template says about a layer; None means "any" (in conditions).

    Attributes:
        type: canonical layer type (``Pool``), or None for ``LAYER()`` without a type.
        mode: ``MAX``/``AVG`` for pooling, else None.
        name: a name (glob in conditions; may hold ``$n`` in inserts), or None.
        attrs: keyword arguments (layer attributes, used by inserts).
    """

    type: str | None
    mode: str | None = None
    name: str | None = None
    attrs: dict[str, t.Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, t.Any]:
        """A plain-data form (for JSON plans)."""
        return {"type": self.type, "mode": self.mode, "name": self.name, "attrs": self.attrs}


def layer_spec(template: exp.Template, query: str | None = None) -> LayerSpec:
    """Interpret a parsed template (raises :class:`ParseError` on bad arguments)."""
    layer_type, slots = TEMPLATES[template.this]
    values: dict[str, t.Any] = {"type": layer_type}
    attrs: dict[str, t.Any] = {}
    positional = [a for a in template.args.get("args") or [] if isinstance(a, exp.Literal)]
    if len(positional) > len(slots):
        _fail(
            f"{template.this} takes at most {len(slots)} positional argument(s)",
            positional[len(slots)],
            query,
        )
    for slot, arg in zip(slots, positional):
        values[slot] = arg.this
    for arg in template.args.get("args") or []:
        if isinstance(arg, exp.Kwarg):
            target = values if arg.this in ("name", "mode", "type") else attrs
            target[arg.this] = arg.args["value"].this
    mode = values.get("mode")
    if mode is not None:
        mode = str(mode).upper()
        if layer_type == "Pool" and mode not in POOL_MODES:
            _fail(f"Pooling mode must be one of {', '.join(POOL_MODES)}", template, query)
    return LayerSpec(type=values["type"], mode=mode, name=values.get("name"), attrs=attrs)


def _fail(message: str, node: exp.Expression, query: str | None) -> t.NoReturn:
    start, end = node.span
    raise ParseError(message, query=query, start=start, end=end, code="bad_template")
