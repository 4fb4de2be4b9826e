"""The DQL syntax tree: nodes declare their child slots in ``arg_types`` (sqlglot style).

Every node keeps its children in one ``args`` dict, knows its ``parent`` and the slot it sits
in (``arg_key``), and carries its source position in ``meta`` (``line``, ``col``, ``start``,
``end``). ``key`` is the lowercased class name; generators dispatch on it (``<key>_cypher``).
"""

from __future__ import annotations

import typing as t

POSITION_KEYS = ("line", "col", "start", "end")


class Expression:
    """Base class of every DQL node.

    Args:
        **args: the child slots declared in ``arg_types``; a value may be a node, a list of
            nodes, or a plain Python value (str, int, float, bool, None).
    """

    key: t.ClassVar[str] = "expression"
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True}
    required_args: t.ClassVar[frozenset[str]] = frozenset({"this"})

    def __init_subclass__(cls, **kwargs: t.Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.key = cls.__name__.lower()
        cls.required_args = frozenset(k for k, v in cls.arg_types.items() if v)

    def __init__(self, **args: t.Any) -> None:
        unknown = set(args) - set(self.arg_types)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no slot(s) {sorted(unknown)}")
        self.args: dict[str, t.Any] = {}
        self.parent: Expression | None = None
        self.arg_key: str | None = None
        self.meta: dict[str, int] = {}
        for name, value in args.items():
            self.set(name, value)

    # -- slots -----------------------------------------------------------------------------
    def set(self, name: str, value: t.Any) -> None:
        """Set a child slot and adopt the child(ren)."""
        self.args[name] = value
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, Expression):
                child.parent, child.arg_key = self, name

    @property
    def this(self) -> t.Any:
        """The ``this`` slot."""
        return self.args.get("this")

    def missing_args(self) -> list[str]:
        """Required slots that are unset."""
        return [k for k in sorted(self.required_args) if self.args.get(k) is None]

    # -- positions -------------------------------------------------------------------------
    def at(self, line: int, col: int, start: int, end: int) -> Expression:
        """Record the source position (returns ``self`` for chaining)."""
        self.meta.update(line=line, col=col, start=start, end=end)
        return self

    @property
    def span(self) -> tuple[int, int]:
        """``(start, end)`` offsets in the query text (``(0, 0)`` if unknown)."""
        return self.meta.get("start", 0), self.meta.get("end", 0)

    # -- traversal -------------------------------------------------------------------------
    def iter_children(self) -> t.Iterator[Expression]:
        """The direct child nodes, in slot order."""
        for value in self.args.values():
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, Expression):
                    yield child

    def walk(self) -> t.Iterator[Expression]:
        """This node and all its descendants, depth first (pre-order), without recursion."""
        stack: list[Expression] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.iter_children())))

    def find_all(self, *types: type[E]) -> t.Iterator[E]:
        """Every descendant (or self) that is an instance of one of ``types``."""
        for node in self.walk():
            if isinstance(node, types):
                yield node

    def find(self, *types: type[E]) -> E | None:
        """The first node of ``types`` in pre-order, or None."""
        return next(self.find_all(*types), None)

    def copy(self) -> t.Self:
        """A deep copy (positions included)."""
        args = {k: _copy_value(v) for k, v in self.args.items()}
        node = type(self)(**args)
        node.meta = dict(self.meta)
        return node

    def transform(self, fn: t.Callable[[Expression], Expression]) -> Expression:
        """Rebuild the tree bottom-up, replacing every node with ``fn(node)``."""
        node = self.copy()
        for name, value in node.args.items():
            if isinstance(value, list):
                node.set(name, [v.transform(fn) if isinstance(v, Expression) else v for v in value])
            elif isinstance(value, Expression):
                node.set(name, value.transform(fn))
        return fn(node)

    # -- comparison and display ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.args == t.cast(Expression, other).args

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items() if v not in (None, []))
        return f"{type(self).__name__}({inner})"


E = t.TypeVar("E", bound=Expression)


def _copy_value(value: t.Any) -> t.Any:
    if isinstance(value, Expression):
        return value.copy()
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# queries
# ---------------------------------------------------------------------------------------------
class Query(Expression):
    """Base of the four statements; ``this`` is the statement's variable."""


class Select(Query):
    """``select VAR [from SOURCE] [where COND] [order by ...] [limit N]``."""

    arg_types = {"this": True, "source": False, "where": False, "order": False, "limit": False}


class Slice(Query):
    """``slice OUT from SOURCE [where COND] mutate OUT.input = SEL and OUT.output = SEL``."""

    arg_types = {"this": True, "source": True, "where": False, "input": True, "output": True}


class Construct(Query):
    """``construct OUT from SOURCE [where COND] mutate MUTATION (and MUTATION)*``."""

    arg_types = {"this": True, "source": True, "where": False, "mutations": True}


class Evaluate(Query):
    """``evaluate VAR from SOURCE with config = PATH vary ITEM (and ITEM)* [keep RULE]``."""

    arg_types = {"this": True, "source": True, "config": True, "vary": False, "keep": False}


class Var(Expression):
    """A model-version variable such as ``m1``; ``this`` is its name."""


class Source(Expression):
    """``from``: ``this`` is a :class:`Var`, a :class:`SavedQuery` or a :class:`Subquery`."""

    arg_types = {"this": True, "alias": False}


class SavedQuery(Expression):
    """A query saved under a name and referenced by string: ``from "query3"``."""


class Subquery(Expression):
    """A query nested in parentheses."""


# ---------------------------------------------------------------------------------------------
# conditions
# ---------------------------------------------------------------------------------------------
class Condition(Expression):
    """Base of boolean nodes."""


class And(Condition):
    arg_types = {"this": True, "expression": True}


class Or(Condition):
    arg_types = {"this": True, "expression": True}


class Not(Condition):
    pass


class Paren(Condition):
    pass


class Compare(Condition):
    """``this OP expression`` with ``op`` one of ``= != < <= > >=``."""

    arg_types = {"this": True, "op": True, "expression": True}


class Like(Condition):
    """SQL ``like`` / ``ilike`` with an optional ``escape`` character."""

    arg_types = {"this": True, "pattern": True, "escape": False, "insensitive": False}


class In(Condition):
    """``this in [v1, v2, ...]``."""

    arg_types = {"this": True, "expressions": True}


class Has(Condition):
    """``NODESET has TEMPLATE``: some layer of the node set matches the template."""

    arg_types = {"this": True, "template": True}


# ---------------------------------------------------------------------------------------------
# operands
# ---------------------------------------------------------------------------------------------
class Literal(Expression):
    """A string, number, boolean or null; ``this`` is the Python value."""

    arg_types = {"this": False}


class Attribute(Expression):
    """A version attribute: ``m.name`` (``this`` = var name, ``name`` = attribute)."""

    arg_types = {"this": True, "name": True}


class Metric(Expression):
    """A metric of a version: ``m["loss"]``, ``m.metrics.loss``, ``m.metrics.loss.min``."""

    arg_types = {"this": True, "name": True, "field": False}


class Param(Expression):
    """A hyper-parameter of a version: ``m.params.lr`` or ``m.params["base_lr"]``."""

    arg_types = {"this": True, "name": True}


class Selector(Expression):
    """``m["glob"]``: the layers of ``m`` whose names match the glob (``this`` = var name)."""

    arg_types = {"this": True, "pattern": True}


class Hop(Expression):
    """``NODESET.next`` / ``NODESET.prev``: one hop over NEXT; ``direction`` is the word."""

    arg_types = {"this": True, "direction": True}


class Template(Expression):
    """A layer template such as ``POOL("MAX")`` or ``RELU("relu$1")``; ``this`` = name."""

    arg_types = {"this": True, "args": False}


class Kwarg(Expression):
    """A named template argument: ``CONV("c$1", out_channels=64)``."""

    arg_types = {"this": True, "value": True}


# ---------------------------------------------------------------------------------------------
# mutate, vary, keep, order
# ---------------------------------------------------------------------------------------------
class Mutation(Expression):
    """``SELECTOR.insert = TEMPLATE`` or ``SELECTOR.delete [= TEMPLATE]``."""

    arg_types = {"this": True, "action": True, "template": False}


class ConfigPath(Expression):
    """``config.a["glob"].b``: ``this`` is the root word, ``parts`` a list of str / Selector."""

    arg_types = {"this": True, "parts": True}


class Vary(Expression):
    """``PATH in [values]`` or ``PATH auto``."""

    arg_types = {"this": True, "values": False, "auto": False}


class KeepTop(Expression):
    """``top(k, METRIC [asc|desc], iters)``."""

    arg_types = {"this": True, "metric": True, "iters": True, "order": False}


class KeepThreshold(Expression):
    """``METRIC OP value [after iters]``; ``this`` is a :class:`Compare` on a metric."""

    arg_types = {"this": True, "iters": False}


class Ordered(Expression):
    """An ``order by`` item."""

    arg_types = {"this": True, "desc": False}
