"""Cypher generation, one generator class per dialect (sqlglot style).

A :class:`Generator` prints DQL nodes through ``<key>_cypher`` methods found by name; a dialect
subclass overrides only what differs. Every user value becomes a parameter (``$p0``, ``$p1``,
...): user text never lands in the Cypher string. The version is always the Cypher variable
``m``; helper variables are ``l0``, ``n0``, ``x0``, ``o0``, ``b0`` ... so no user identifier
reaches Cypher either.
"""

from __future__ import annotations

import json
import typing as t

from dql import ast as exp
from dql import schema as s
from dql.errors import UnsupportedError
from dql.patterns import JSON_CHAR, Glob, Like, StringTests, escape, json_literal, like_prefix
from dql.templates import layer_spec

V = "m"  # the Cypher variable of the version


def _build_dispatch(cls: type[Generator]) -> dict[str, t.Callable[[Generator, t.Any], str]]:
    return {
        name[: -len("_cypher")]: getattr(cls, name)
        for name in dir(cls)
        if name.endswith("_cypher") and not name.startswith("_")
    }


class Generator:
    """Prints DQL conditions and select clauses as Cypher for Neo4j 5 (the reference dialect).

    Args:
        text: the DQL text (for positioned errors).
    """

    DIALECT: t.ClassVar[str] = "neo4j"
    #: Whether comparing a typed column with a value of another type is an error (it is in
    #: LadybugDB, which casts the parameter to the column type) rather than simply false.
    STRICT_TYPES: t.ClassVar[bool] = False
    #: Which kinds of top-level ``where`` conjunct may start the match instead of being an
    #: ``EXISTS {}`` test per version (see :meth:`anchor`): ``"has"`` (structural tests),
    #: ``"metric"`` and ``"param"`` (comparisons on a metric or hyper-parameter node).
    ANCHORS: t.ClassVar[frozenset[str]] = frozenset({"has", "metric", "param"})
    #: Version properties with an index. When another conjunct finds versions through one by
    #: ``=`` or ``in`` (a *point* seek: few versions), a ``has`` stays ``EXISTS {}``: starting
    #: from those versions is cheapest, and the existential test stops at the first matching
    #: layer. A *range* seek (``<``, ``>=``, ``like "prefix%"``) can match most versions, so a
    #: ``has`` whose template names a type and mode still anchors, layer first
    #: (:attr:`LAYER_FIRST`).
    INDEXED_PROPERTIES: t.ClassVar[frozenset[str]] = frozenset({"id", "name", "created_at"})
    #: Whether an anchored ``has`` whose template names a type and mode starts from the layers
    #: (``MATCH (l0:Layer)-[:NEXT]->(n0:Layer) WHERE … WITH DISTINCT l0``, an index seek on
    #: ``Layer(type, mode)``) and only then joins the versions (``MATCH (m)-[:HAS_LAYER]->(l0)``).
    #: The ``WITH`` stops Neo4j's planner from starting at a version range seek instead: paper
    #: query 1 at 10k versions, PROFILE 131k db hits against 234k as ``EXISTS`` (docs/dql.md).
    LAYER_FIRST: t.ClassVar[bool] = True
    #: Whether a ``like`` with a literal prefix also gets ``STARTS WITH $prefix`` (an index
    #: range seek in Neo4j) in front of its regex.
    LIKE_PREFIX: t.ClassVar[bool] = True
    #: Whether a case-sensitive ``like`` on an attribute becomes string-function tests where
    #: they are exact (``STARTS WITH`` is an index seek, ``ENDS WITH`` / ``CONTAINS`` use a
    #: text index, and none of them backtracks).
    LIKE_STRING_TESTS: t.ClassVar[bool] = True
    #: Whether the regex engine backtracks and so needs atomic groups (Java: yes; RE2 has
    #: neither the problem nor the syntax).
    ATOMIC_GROUPS: t.ClassVar[bool] = True
    #: Whether ``(?i)`` needs Java's ``u`` flag to fold non-ASCII letters (RE2 folds them
    #: by default and rejects the flag).
    UNICODE_CASE: t.ClassVar[bool] = True
    #: Node class → override printer, for one-liners (empty in the reference dialect).
    TRANSFORMS: t.ClassVar[dict[type[exp.Expression], t.Callable[[Generator, t.Any], str]]] = {}

    _dispatch: t.ClassVar[dict[str, t.Callable[[Generator, t.Any], str]]]

    def __init_subclass__(cls, **kwargs: t.Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = _build_dispatch(cls)

    def __init__(self, text: str) -> None:
        self.text = text
        self.params: dict[str, t.Any] = {}
        self._counters: dict[str, int] = {}
        self._captured: list[Anchor] | None = None

    # -- helpers ---------------------------------------------------------------------------
    def param(self, value: t.Any) -> str:
        """Register a parameter and return its placeholder."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def fresh(self, prefix: str) -> str:
        """A new helper variable name such as ``l0``."""
        n = self._counters.get(prefix, 0)
        self._counters[prefix] = n + 1
        return f"{prefix}{n}"

    def unsupported(self, message: str, node: exp.Expression) -> t.NoReturn:
        """Raise :class:`UnsupportedError` pointing at ``node``."""
        start, end = node.span
        query = self.text if node.meta else None
        raise UnsupportedError(
            f"{message} (dialect {self.DIALECT})", query=query, start=start, end=end
        )

    def cypher(self, node: exp.Expression) -> str:
        """Print one node."""
        transform = self.TRANSFORMS.get(type(node))
        if transform is not None:
            return transform(self, node)
        handler = self._dispatch.get(node.key)
        if handler is None:
            self.unsupported(f"{type(node).__name__} cannot be expressed in Cypher", node)
        return handler(self, node)

    # -- boolean structure -----------------------------------------------------------------
    def and_cypher(self, node: exp.And) -> str:
        return f"{self.cypher(node.this)} AND {self.cypher(node.args['expression'])}"

    def or_cypher(self, node: exp.Or) -> str:
        return f"{self.cypher(node.this)} OR {self.cypher(node.args['expression'])}"

    def not_cypher(self, node: exp.Not) -> str:
        inner = node.this
        text = self.cypher(inner)
        return (
            f"NOT {text}" if isinstance(inner, exp.Paren | exp.Has | exp.Not) else (f"NOT ({text})")
        )

    def paren_cypher(self, node: exp.Paren) -> str:
        return f"({self.cypher(node.this)})"

    # -- predicates on values --------------------------------------------------------------
    def compare_cypher(self, node: exp.Compare) -> str:
        literal = node.args["expression"]
        return self._predicate(
            node.this, literal.this, node, lambda col, v: f"{col} {node.args['op']} {self.param(v)}"
        )

    def in_cypher(self, node: exp.In) -> str:
        values = [v.this for v in node.args["expressions"]]
        if len({type(v) for v in values}) > 1:
            self.unsupported("The values of one in-list must all have the same type", node)
        return self._predicate(
            node.this, values[0], node, lambda col, v: f"{col} IN {self.param(v)}", many=values
        )

    def like_cypher(self, node: exp.Like) -> str:
        """``like`` / ``ilike``, compiled so that no pattern can make the regex engine hang.

        On a version attribute, a case-sensitive pattern that string functions express
        exactly becomes ``=``, ``STARTS WITH``, ``ENDS WITH``, ``CONTAINS`` and ``size()``
        tests (:meth:`dql.patterns.Like.string_tests`); anything else is a regex of the
        safe shape of :meth:`dql.patterns.Like.regex`. A hyper-parameter's value is JSON text,
        so its regex matches whole JSON-encoded characters between the quotes.
        """
        if isinstance(node.this, exp.Metric):
            self.unsupported("like needs a text value, and a metric is a number", node)
        esc = node.args.get("escape")
        like = Like(node.args["pattern"].this, esc.this if esc else "\\")
        insensitive = bool(node.args.get("insensitive"))
        if isinstance(node.this, exp.Param):
            flags, body = self.like_regex(like, insensitive, json_literal, JSON_CHAR).split(")", 1)
            regex = f'{flags})"{body}"'  # hyper-parameter values are JSON text
            return self._predicate(node.this, "", node, lambda c, _: self.regex_match(c, regex))
        tests = like.string_tests() if self.LIKE_STRING_TESTS and not insensitive else None
        prefix = like.prefix if self.LIKE_PREFIX and not insensitive else ""

        def build(column: str, _value: t.Any) -> str:
            if tests is not None:
                return " AND ".join(self.string_tests(column, tests))
            starts = f"{column} STARTS WITH {self.param(prefix)} AND " if prefix else ""
            return starts + self.regex_match(column, self.like_regex(like, insensitive))

        return self._predicate(node.this, "", node, build)

    def like_regex(
        self,
        like: Like,
        insensitive: bool,
        literal: t.Callable[[str], str] = escape,
        one: str = ".",
    ) -> str:
        """The dialect's regex for a ``like`` pattern."""
        return like.regex(
            atomic=self.ATOMIC_GROUPS,
            insensitive=insensitive,
            literal=literal,
            one=one,
            unicode_case=self.UNICODE_CASE,
        )

    def string_tests(self, column: str, tests: StringTests) -> list[str]:
        """Print :class:`~dql.patterns.StringTests` on ``column`` (all must hold)."""
        out = []
        if tests.equals is not None:
            out.append(f"{column} = {self.param(tests.equals)}")
        if tests.starts is not None:
            out.append(f"{column} STARTS WITH {self.param(tests.starts)}")
        if tests.ends is not None:
            out.append(f"{column} ENDS WITH {self.param(tests.ends)}")
        if tests.contains is not None:
            out.append(f"{column} CONTAINS {self.param(tests.contains)}")
        if tests.min_size is not None:
            out.append(f"size({column}) >= {self.param(tests.min_size)}")
        return out

    def regex_match(self, column: str, regex: str) -> str:
        """A full-match regex test (Java regex in Neo4j)."""
        return f"{column} =~ {self.param(regex)}"

    def _predicate(
        self,
        value: exp.Expression,
        sample: t.Any,
        node: exp.Expression,
        build: t.Callable[[str, t.Any], str],
        many: list[t.Any] | None = None,
    ) -> str:
        if isinstance(value, exp.Attribute):
            prop, col_type = s.VERSION_ATTRIBUTES[value.args["name"]]
            self._check_type(col_type, sample, node)
            return build(f"{V}.{prop}", many if many is not None else sample)
        if isinstance(value, exp.Metric):
            self._check_type("DOUBLE", sample, node)
            x = self.fresh("x")
            field = value.args.get("field") or s.DEFAULT_METRIC_FIELD
            name = f"{x}.name = {self.param(value.args['name'])}"
            test = build(f"{x}.{field}", many if many is not None else sample)
            return self._exists(f"({V})-[:{s.HAS_METRIC}]->({x}:{s.METRIC})", [name, test])
        if isinstance(value, exp.Param):
            return self._param_predicate(value, sample, build, many)
        self.unsupported("Expected a version attribute, metric or hyper-parameter", value)

    def _param_predicate(
        self,
        value: exp.Param,
        sample: t.Any,
        build: t.Callable[[str, t.Any], str],
        many: list[t.Any] | None,
    ) -> str:
        h = self.fresh("h")
        name = f"{h}.name = {self.param(value.args['name'])}"
        numeric = isinstance(sample, int | float) and not isinstance(sample, bool)
        if numeric or sample == "":
            test = build(
                f"{h}.num" if numeric else f"{h}.value", many if many is not None else sample
            )
        else:  # strings and booleans compare with the stored JSON text
            encoded = [json.dumps(v) for v in many] if many is not None else json.dumps(sample)
            test = build(f"{h}.value", encoded)
        return self._exists(f"({V})-[:{s.HAS_PARAM}]->({h}:{s.HYPERPARAMETER})", [name, test])

    def _check_type(self, col_type: str, sample: t.Any, node: exp.Expression) -> None:
        if not self.STRICT_TYPES:
            return
        is_number = isinstance(sample, int | float) and not isinstance(sample, bool)
        if (col_type == "STRING") == is_number or isinstance(sample, bool):
            kind = type(sample).__name__
            self.unsupported(f"Cannot compare a {col_type} column with a {kind} value", node)

    def _exists(self, pattern: str, conditions: list[str], layer: str | None = None) -> str:
        if self._captured is not None:  # anchor(): hand back the parts instead
            self._captured.append(Anchor(pattern, conditions, layer))
            return ""
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"EXISTS {{ MATCH {pattern}{where} }}"

    # -- anchors: a conjunct that starts the match -----------------------------------------
    def seeks_versions(self, node: exp.Expression) -> Seek:
        """How a top-level conjunct lets the planner find versions by an index.

        ``"point"``: ``=`` or ``in`` on an indexed property (few versions); ``"range"``: a
        comparison or a ``like`` with a literal prefix (possibly most versions); ``None``:
        no index seek.
        """
        if not isinstance(node, exp.Compare | exp.In | exp.Like):
            return None
        if not isinstance(node.this, exp.Attribute):
            return None
        if s.VERSION_ATTRIBUTES[node.this.args["name"]][0] not in self.INDEXED_PROPERTIES:
            return None
        if isinstance(node, exp.Compare):
            op = node.args["op"]
            return None if op in ("!=", "<>") else "point" if op == "=" else "range"
        if isinstance(node, exp.Like):
            escape = node.args.get("escape")
            prefix = like_prefix(node.args["pattern"].this, escape.this if escape else "\\")
            usable = self.LIKE_PREFIX and bool(prefix) and not node.args.get("insensitive")
            return "range" if usable else None
        return "point"

    def anchorable(self, node: exp.Expression, seek: Seek = None) -> bool:
        """Whether a top-level ``where`` conjunct can be printed by :meth:`anchor`.

        Args:
            node: the conjunct.
            seek: the strongest index seek on versions among the other conjuncts
                (:meth:`seeks_versions`): a ``has`` does not anchor next to a point seek, and
                next to a range seek only when it can start from the layers (:meth:`layer_first`).
        """
        if isinstance(node, exp.Has):
            if "has" not in self.ANCHORS or seek == "point":
                return False
            return seek is None or self.layer_first(node)
        if isinstance(node, exp.Compare | exp.In | exp.Like):
            kind = {exp.Metric: "metric", exp.Param: "param"}.get(type(node.this))
            return kind in self.ANCHORS
        return False

    def layer_first(self, node: exp.Has) -> bool:
        """Whether an anchored ``has`` starts from its layers: its template names a type and
        a mode, so the layer it tests is an index seek on ``Layer(type, mode)``.

        Not for a type alone: a ``Layer(type)`` index would serve it, but with that index
        Neo4j planned the ``EXISTS`` form (kept next to point seeks and under ``or``/``not``)
        as a hash join over every layer of the type per version: paper query 1's old form
        took 14.7 s and 33M db hits at 1k versions. So there is no such index, and a
        type-only template keeps the old forms.
        """
        spec = layer_spec(node.args["template"], self.text)
        return self.LAYER_FIRST and spec.type is not None and spec.mode is not None

    def anchor(self, node: exp.Expression) -> Anchor:
        """The pattern and conditions of an anchorable conjunct, for a ``MATCH`` clause.

        The same pattern and conditions its ``EXISTS {}`` test would use: ``MATCH`` on it
        followed by ``WITH DISTINCT m`` keeps exactly the versions the test keeps, but lets
        the planner start from the layer, metric or hyper-parameter (an index seek in Neo4j)
        instead of expanding every version.
        """
        self._captured = []
        try:
            self.cypher(node)
            (found,) = self._captured
        finally:
            self._captured = None
        return found

    # -- structure: selectors, hops, has ---------------------------------------------------
    def has_cypher(self, node: exp.Has) -> str:
        selector, hops = unwind_nodeset(node.this)
        layer = self.fresh("l")
        pattern = f"({V})-[:{s.HAS_LAYER}]->({layer}:{s.LAYER})"
        conditions = [self.regex_match(f"{layer}.name", Glob(selector.args["pattern"]).regex)]
        hop_pattern, last = self._hops(layer, hops)
        conditions += self.template_conditions(last, node.args["template"])
        first = layer if self._captured is not None and self.layer_first(node) else None
        return self._exists(pattern + hop_pattern, conditions, first)

    def _hops(self, start: str, hops: list[str]) -> tuple[str, str]:
        pattern, last = "", start
        for direction in hops:
            last = self.fresh("n")
            arrow = "-[:{0}]->" if direction == "next" else "<-[:{0}]-"
            pattern += arrow.format(s.NEXT) + f"({last}:{s.LAYER})"
        return pattern, last

    def template_conditions(self, var: str, template: exp.Template) -> list[str]:
        """Conditions that a layer variable matches a template (type, mode, name glob)."""
        spec = layer_spec(template, self.text)
        if spec.attrs:
            self.unsupported("has cannot test layer attributes; use type, mode and name", template)
        conditions = []
        if spec.type is not None:
            conditions.append(f"{var}.type = {self.param(spec.type)}")
        if spec.mode is not None:
            conditions.append(f"{var}.mode = {self.param(spec.mode)}")
        if spec.name is not None:
            if "$" in str(spec.name):
                self.unsupported("has cannot use $n captures in a template name", template)
            conditions.append(self.regex_match(f"{var}.name", Glob(str(spec.name)).regex))
        return conditions

    def bound_layer_conditions(
        self, var: str, glob: Glob, restrictions: list[exp.Has]
    ) -> list[str]:
        """Conditions that layer ``var`` is bound by a selector under its ``has`` tests."""
        conditions = [self.regex_match(f"{var}.name", glob.regex)]
        for has in restrictions:
            _, hops = unwind_nodeset(has.this)
            if not hops:
                conditions += self.template_conditions(var, has.args["template"])
                continue
            pattern, last = self._hops(var, hops)
            conditions.append(
                self._exists(
                    f"({var}){pattern}", self.template_conditions(last, has.args["template"])
                )
            )
        return conditions

    # -- select clauses --------------------------------------------------------------------
    def binding_clauses(
        self, carry: list[str], bindings: list[Binding]
    ) -> tuple[list[str], list[str]]:
        """Clauses and RETURN items that list, per version, the layers each binding selects.

        Neo4j uses pattern comprehensions (no extra rows, no WITH needed).
        """
        items = []
        for binding in bindings:
            b = self.fresh("b")
            where = " AND ".join(self.bound_layer_conditions(b, binding.glob, binding.restrictions))
            items.append(
                f"[({V})-[:{s.HAS_LAYER}]->({b}:{s.LAYER}) WHERE {where} | {b}.name] "
                f"AS {binding.column}"
            )
        return [], items

    def order_value(self, value: exp.Expression) -> tuple[list[str], str]:
        """Clauses that bring an ``order by`` value into scope, and its expression."""
        if isinstance(value, exp.Attribute):
            return [], f"{V}.{s.VERSION_ATTRIBUTES[value.args['name']][0]}"
        o = self.fresh("o")
        if isinstance(value, exp.Metric):
            rel, label = s.HAS_METRIC, s.METRIC
            column = value.args.get("field") or s.DEFAULT_METRIC_FIELD
        else:
            rel, label, column = s.HAS_PARAM, s.HYPERPARAMETER, "num"
        clause = (
            f"OPTIONAL MATCH ({V})-[:{rel}]->({o}:{label}) "
            f"WHERE {o}.name = {self.param(value.args['name'])}"
        )
        return [clause], f"{o}.{column}"


class LadybugGenerator(Generator):
    """LadybugDB (Kùzu) dialect.

    Differences from Neo4j, all verified against ladybug 0.22: no pattern comprehensions and no
    ``CALL {}`` subqueries, so bound layers are collected with ``OPTIONAL MATCH`` + ``WITH
    collect()``; typed columns, so a STRING column compared with a number is an error instead
    of false (raised here as :class:`UnsupportedError`). ``=~`` (RE2, full match) and
    ``EXISTS { MATCH ... }`` (nested too) work as in Neo4j.
    """

    DIALECT = "ladybug"
    STRICT_TYPES = True
    #: ``WITH DISTINCT`` and ``STARTS WITH`` work, but neither form pays off here (no secondary
    #: indexes; hash joins): at 10k versions the anchored structural select took 82 ms against
    #: 55 ms as ``EXISTS``, paper query 1 64 against 58, metric/parameter and prefix tests
    #: were unchanged (bench/results/dql.md). So LadybugDB keeps ``EXISTS`` and the bare regex.
    ANCHORS = frozenset()
    LIKE_PREFIX = False
    #: Measured like LIKE_PREFIX: nothing to gain, so LadybugDB keeps the one regex.
    LIKE_STRING_TESTS = False
    ATOMIC_GROUPS = False
    UNICODE_CASE = False

    def binding_clauses(
        self, carry: list[str], bindings: list[Binding]
    ) -> tuple[list[str], list[str]]:
        clauses: list[str] = []
        for binding in bindings:
            b = self.fresh("b")
            where = " AND ".join(self.bound_layer_conditions(b, binding.glob, binding.restrictions))
            clauses.append(f"OPTIONAL MATCH ({V})-[:{s.HAS_LAYER}]->({b}:{s.LAYER}) WHERE {where}")
            clauses.append(f"WITH {', '.join(carry)}, collect({b}.name) AS {binding.column}")
            carry.append(binding.column)
        return clauses, list(binding.column for binding in bindings)


#: How a conjunct seeks versions by an index (:meth:`Generator.seeks_versions`).
Seek = t.Literal["point", "range"] | None


class Anchor(t.NamedTuple):
    """An anchored conjunct: its ``MATCH`` pattern (from ``(m)``) and conditions.

    ``layer`` is set for a ``has`` that starts from its layers (:meth:`Generator.layer_first`):
    the variable of the layer ``HAS_LAYER`` reaches (``l0``); everything in ``pattern`` after
    ``(m)-[:HAS_LAYER]->`` is then a pattern of layers alone.
    """

    pattern: str
    conditions: list[str]
    layer: str | None = None


class Binding(t.NamedTuple):
    """A result column listing the layers a selector binds, under its ``has`` restrictions."""

    column: str
    glob: Glob
    restrictions: list[exp.Has]


def unwind_nodeset(node: exp.Expression) -> tuple[exp.Selector, list[str]]:
    """Split ``m["g"].next.prev`` into the selector and the hop directions, in order."""
    hops: list[str] = []
    while isinstance(node, exp.Hop):
        hops.append(node.args["direction"])
        node = node.this
    return t.cast(exp.Selector, node), hops[::-1]


Generator._dispatch = _build_dispatch(Generator)

DIALECTS: dict[str, type[Generator]] = {"neo4j": Generator, "ladybug": LadybugGenerator}
