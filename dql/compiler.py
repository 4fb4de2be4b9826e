"""DQL text → :class:`~dql.plan.CompiledQuery` for one Cypher dialect."""

from __future__ import annotations

import typing as t

from dql import ast as exp
from dql import schema as s
from dql.cypher import DIALECTS, Anchor, Binding, Generator, Seek, V, unwind_nodeset
from dql.errors import DQLError, ParseError, ResolveError, UnsupportedError
from dql.parser import MAX_DEPTH, parse
from dql.patterns import Glob
from dql.plan import (
    LOWER_IS_BETTER,
    CompiledQuery,
    KeepRule,
    KeepThreshold,
    KeepTop,
    MutationPlan,
    SlicePlan,
    VaryPlan,
)
from dql.templates import layer_spec

#: Looks up a saved query by name and returns its DQL text (None if there is no such query).
Resolver = t.Callable[[str], str | None]

#: Result column → the version property it returns, for every version-returning query.
VERSION_PROPERTIES: dict[str, str] = {c: s.VERSION_ATTRIBUTES[c][0] for c in s.VERSION_COLUMNS}
#: The reverse: which result column already carries a version property.
PROPERTY_COLUMNS: dict[str, str] = {prop: c for c, prop in VERSION_PROPERTIES.items()}
VERSION_RETURN = tuple(f"{V}.{prop} AS {c}" for c, prop in VERSION_PROPERTIES.items())


def compile(text: str, dialect: str = "neo4j", resolve: Resolver | None = None) -> CompiledQuery:
    """Compile one DQL statement.

    Args:
        text: the DQL statement.
        dialect: ``"neo4j"`` or ``"ladybug"``.
        resolve: looks up saved queries referenced by name (``from "query3"``). Select, slice
            and construct inline a resolved select; evaluate compiles its source when it can
            and otherwise keeps the name in ``CompiledQuery.source``.

    Returns:
        The compiled query: one Cypher statement plus the declarative parts as data.

    Raises:
        ParseError: the text is not DQL.
        UnsupportedError: valid DQL the dialect cannot express.
        ResolveError: a saved query referenced by a select, slice or construct is unknown.

    >>> compile('select m where m.name = "a"').cypher.splitlines()[1]
    'WHERE m.name = $p0'
    """
    if dialect not in DIALECTS:
        raise UnsupportedError(
            f"Unknown dialect {dialect!r} (known: {', '.join(DIALECTS)})", code="unknown_dialect"
        )
    return Compiler(text, DIALECTS[dialect], resolve).compile(parse(text))


class Compiler:
    """Compiles one parsed statement; nested and saved queries share its parameters."""

    def __init__(
        self,
        text: str,
        generator: type[Generator],
        resolve: Resolver | None,
        chain: tuple[str, ...] = (),
    ) -> None:
        self.text = text
        self.generator_class = generator
        self.gen = generator(text)
        self.resolve = resolve
        #: The sources this statement is nested in, outermost first: saved query names, ""
        #: for a ``(subquery)`` (it bounds the nesting and spots a saved query citing itself).
        self.chain = chain

    def compile(self, query: exp.Query) -> CompiledQuery:
        """Dispatch on the statement kind."""
        handler = getattr(self, f"_compile_{query.key}")
        return handler(query)

    # -- select / slice / construct -------------------------------------------------------
    def _compile_select(self, query: exp.Select) -> CompiledQuery:
        clauses = self._match(query, {query.this.this})
        carry = [V]
        order_items, order_columns = self._order(query, clauses, carry)
        columns = (*s.VERSION_COLUMNS, *(c for c in order_columns if c not in s.VERSION_COLUMNS))
        clauses.append("RETURN " + ", ".join((*VERSION_RETURN, *order_items)))
        if query.args.get("order"):
            desc = [o.args.get("desc") for o in query.args["order"]]
            keys = [f"{c} DESC" if d else c for c, d in zip(order_columns, desc)]
            clauses.append("ORDER BY " + ", ".join(keys))
        if query.args.get("limit") is not None:
            clauses.append(f"LIMIT {self.gen.param(query.args['limit'].this)}")
        cq = self._result("select", query, clauses, columns)
        return _replace(cq, ordered=bool(query.args.get("order")))

    def _compile_slice(self, query: exp.Slice) -> CompiledQuery:
        names = {query.this.this}
        for port in ("input", "output"):
            self._check_var(query.args[port], names | self._range_vars(query))
        bindings = [
            Binding(port, Glob(query.args[port].args["pattern"]), [])
            for port in ("input", "output")
        ]
        plan = SlicePlan(bindings[0].glob, bindings[1].glob)
        cq = self._derive("slice", query, bindings)
        return _replace(cq, slice=plan)

    def _compile_construct(self, query: exp.Construct) -> CompiledQuery:
        allowed = {query.this.this} | self._range_vars(query)
        plans, bindings = [], []
        restrictions = _restrictions(query.args.get("where"))
        for i, mutation in enumerate(query.args["mutations"]):
            selector = mutation.this
            self._check_var(selector, allowed)
            glob = Glob(selector.args["pattern"])
            template = mutation.args.get("template")
            spec = layer_spec(template, self.text) if template is not None else None
            column = f"binding_{i}"
            bindings.append(Binding(column, glob, restrictions.get(glob.pattern, [])))
            plans.append(MutationPlan(mutation.args["action"], glob, spec, column))
        cq = self._derive("construct", query, bindings)
        return _replace(cq, mutations=tuple(plans))

    def _derive(
        self, kind: t.Literal["slice", "construct"], query: exp.Query, bindings: list[Binding]
    ) -> CompiledQuery:
        clauses = self._match(query, set())
        extra, items = self.gen.binding_clauses([V], bindings)
        clauses += extra
        returns = (*VERSION_RETURN, f"{V}.network AS network", *items)
        clauses.append("RETURN " + ", ".join(returns))
        columns = (*s.VERSION_COLUMNS, "network", *(b.column for b in bindings))
        return self._result(kind, query, clauses, columns)

    def _result(
        self, kind: t.Any, query: exp.Query, clauses: list[str], columns: tuple[str, ...]
    ) -> CompiledQuery:
        return CompiledQuery(
            kind=kind,
            dialect=self.gen.DIALECT,
            dql=self.text,
            cypher="\n".join(clauses),
            params=dict(self.gen.params),
            columns=columns,
        )

    # -- where and sources ----------------------------------------------------------------
    def _match(self, query: exp.Query, extra_vars: set[str]) -> list[str]:
        """The clauses that bind ``m`` to every version passing the query's filter.

        Without anchors: ``MATCH (m:ModelVersion) WHERE <filter>``. When top-level conjuncts
        of ``where`` (or of the select it ranges over) are anchorable (a ``has``, a metric or
        hyper-parameter comparison; see :meth:`Generator.anchor`), their patterns become
        ``MATCH`` clauses the planner may start from, followed by ``WITH DISTINCT m`` (one
        row per version again) and the remaining ``EXISTS`` tests::

            MATCH (m:ModelVersion)-[:HAS_LAYER]->(l0:Layer)-[:NEXT]->(n0:Layer)
            WHERE <tests on m> AND <tests on l0, n0>
            MATCH (m)-[:HAS_PARAM]->(h0:Hyperparameter)
            WHERE <tests on h0>
            WITH DISTINCT m
            WHERE <other tests with subqueries>

        Each anchor gets its own ``MATCH`` clause, so (as with separate ``EXISTS`` tests) two
        conjuncts may be satisfied by the same relationship; tests on ``m`` alone join the
        first one (index seeks); tests with subqueries run once per version, after
        ``DISTINCT``. Without any anchorable conjunct the clauses are exactly the old
        ``MATCH (m:ModelVersion) WHERE ...``.

        A ``has`` whose template names a layer type (Neo4j: :attr:`Generator.LAYER_FIRST`)
        goes first and starts from the layers; the version joins after a ``WITH``::

            MATCH (l0:Layer)-[:NEXT]->(n0:Layer) WHERE <tests on l0, n0>
            WITH DISTINCT l0
            MATCH (m)-[:HAS_LAYER]->(l0) WHERE <tests on m>
            ...
        """
        items: list[_Item] = []
        seeks = {self.gen.seeks_versions(c) for c in self._all_conjuncts(query, self.gen.text)}
        seek: Seek = "point" if "point" in seeks else "range" if "range" in seeks else None
        self._filter(query, extra_vars, items, seek)
        start = f"MATCH ({V}:{s.VERSION})"
        anchors = [item.anchor for item in items if item.anchor is not None]
        if not anchors:
            if not items:
                return [start]
            return [start, "WHERE " + " AND ".join(item.text for item in items)]
        # a has that starts from its layers goes first (see Generator.LAYER_FIRST)
        first = next((a for a in anchors if a.layer is not None), anchors[0])
        others = [a for a in anchors if a is not first]
        plain = [item.text for item in items if item.plain]
        if first.layer is not None:
            version_edge = f"({V})-[:{s.HAS_LAYER}]->"
            clauses = _match_clause(first.pattern[len(version_edge) :], first.conditions)
            clauses.append(f"WITH DISTINCT {first.layer}")
            # no :ModelVersion label: only versions have HAS_LAYER (schema), and the label
            # test would cost a db hit per layer
            clauses += _match_clause(f"{version_edge}({first.layer})", plain)
        else:
            first_where = [
                text
                for item in items
                if item.plain or item.anchor is first
                for text in (item.anchor.conditions if item.anchor is not None else [item.text])
            ]
            pattern = f"({V}:{s.VERSION})" + first.pattern[len(f"({V})") :]
            clauses = _match_clause(pattern, first_where)
        for anchor in others:
            clauses += _match_clause(anchor.pattern, anchor.conditions)
        clauses.append(f"WITH DISTINCT {V}")
        deferred = [item.text for item in items if not item.plain and item.anchor is None]
        if deferred:
            clauses.append("WHERE " + " AND ".join(deferred))
        return clauses

    def _all_conjuncts(
        self, query: exp.Query, text: str, chain: tuple[str, ...] = ()
    ) -> t.Iterator[exp.Expression]:
        """The top-level conjuncts of the filter: the source select's, then the query's own."""
        source = query.args.get("source")
        if source is not None and not isinstance(source.this, exp.Var):
            try:
                inner, inner_text, inner_chain = self._source_query(source.this, text, chain)
            except DQLError:
                inner = None  # reported by _source_filter
            if isinstance(inner, exp.Select):
                yield from self._all_conjuncts(inner, inner_text, inner_chain)
        yield from _conjuncts(query.args.get("where"))

    def _filter(
        self,
        query: exp.Query,
        extra_vars: set[str],
        items: list[_Item],
        seek: Seek,
        chain: tuple[str, ...] = (),
    ) -> None:
        """Append the filter of the select(s) ``query`` ranges over, then its own ``where``."""
        self._source_filter(query.args.get("source"), items, seek, chain)
        where = query.args.get("where")
        if where is None:
            return
        self._check_vars(where, extra_vars | self._range_vars(query))
        conjuncts = list(_conjuncts(where))
        if not any(self.gen.anchorable(c, seek) for c in conjuncts):
            text = self.gen.cypher(where)
            items.append(_Item(f"({text})" if isinstance(where, exp.Or) else text, _plain(where)))
            return
        for conjunct in conjuncts:
            if self.gen.anchorable(conjunct, seek):
                items.append(_Item("", False, self.gen.anchor(conjunct)))
                continue
            text = self.gen.cypher(conjunct)
            wrap = isinstance(conjunct, exp.Or)
            items.append(_Item(f"({text})" if wrap else text, _plain(conjunct)))

    def _range_vars(self, query: exp.Query) -> set[str]:
        source = query.args.get("source")
        if source is None:
            return {query.this.this}
        names = {source.args["alias"].this} if source.args.get("alias") else set()
        inner = source.this
        if isinstance(inner, exp.Var):
            names.add(inner.this)
        elif isinstance(inner, exp.Subquery):
            names.add(inner.this.this.this)
        if isinstance(query, exp.Select) or not names:
            names.add(query.this.this)
        return names

    def _source_filter(
        self, source: exp.Source | None, items: list[_Item], seek: Seek, chain: tuple[str, ...]
    ) -> None:
        if source is None or isinstance(source.this, exp.Var):
            return
        text = self.gen.text
        inner, inner_text, inner_chain = self._source_query(source.this, text, chain)
        if not isinstance(inner, exp.Select):
            raise UnsupportedError(
                "Only a select can be the source of select, slice or "
                "construct; evaluate can range over any query",
                query=text,
                start=source.span[0],
                end=source.span[1],
            )
        if inner.args.get("order") or inner.args.get("limit") is not None:
            raise UnsupportedError(
                "A nested select cannot have order by or limit",
                query=text,
                start=source.span[0],
                end=source.span[1],
            )
        self.gen.text = inner_text
        try:
            self._filter(inner, {inner.this.this}, items, seek, inner_chain)
        finally:
            self.gen.text = text

    def _source_query(
        self, node: exp.Expression, text: str, chain: tuple[str, ...]
    ) -> tuple[exp.Query, str, tuple[str, ...]]:
        """The query a ``(subquery)`` or saved-query source stands for, its text and chain.

        Raises:
            ResolveError: an unknown saved query, a saved query that (through others) cites
                itself, or sources nested deeper than MAX_DEPTH.
        """
        start, end = node.span
        outer = (*self.chain, *chain)
        if len(outer) >= MAX_DEPTH:
            raise ResolveError(
                f"Sources nest too deep (at most {MAX_DEPTH} levels of subqueries and saved "
                "queries)",
                query=text,
                start=start,
                end=end,
                code="too_deep",
            )
        if isinstance(node, exp.Subquery):
            return node.this, text, (*chain, "")
        name = node.this
        if name in outer:
            cycle = " -> ".join(repr(n) for n in (*outer[outer.index(name) :], name) if n)
            raise ResolveError(
                f"Saved query {name!r} refers to itself ({cycle})",
                query=text,
                start=start,
                end=end,
                code="cyclic_query",
            )
        saved = self.resolve(name) if self.resolve is not None else None
        if saved is None:
            raise ResolveError(f"Unknown saved query {name!r}", query=text, start=start, end=end)
        return parse(saved), saved, (*chain, name)

    def _check_vars(self, node: exp.Expression, allowed: set[str]) -> None:
        for child in node.find_all(exp.Attribute, exp.Metric, exp.Param, exp.Selector):
            self._check_var(child, allowed)

    def _check_var(self, node: exp.Expression, allowed: set[str]) -> None:
        if node.this not in allowed:
            start, end = node.span
            known = ", ".join(sorted(allowed))
            raise ParseError(
                f"Unknown variable {node.this!r} (expected {known})",
                query=self.gen.text,
                start=start,
                end=start + len(node.this),
                code="unknown_variable",
            )

    # -- order by -------------------------------------------------------------------------
    def _order(
        self, query: exp.Select, clauses: list[str], carry: list[str]
    ) -> tuple[list[str], list[str]]:
        items, columns = [], []
        for i, ordered in enumerate(query.args.get("order") or []):
            value = ordered.this
            self._check_var(value, {query.this.this} | self._range_vars(query))
            if isinstance(value, exp.Attribute):
                prop = s.VERSION_ATTRIBUTES[value.args["name"]][0]
                if prop in PROPERTY_COLUMNS:  # already returned: sort by that column
                    columns.append(PROPERTY_COLUMNS[prop])
                    continue
            extra, expression = self.gen.order_value(value)
            clauses += extra
            items.append(f"{expression} AS order_{i}")
            columns.append(f"order_{i}")
        return items, columns

    # -- evaluate -------------------------------------------------------------------------
    def _compile_evaluate(self, query: exp.Evaluate) -> CompiledQuery:
        var = query.this.this
        for rule in query.args.get("keep") or []:
            self._check_vars(rule, {var})
        return CompiledQuery(
            kind="evaluate",
            dialect=self.gen.DIALECT,
            dql=self.text,
            source=self._evaluate_source(query.args["source"]),
            config=query.args["config"].this,
            vary=tuple(_vary_plan(v) for v in query.args.get("vary") or []),
            keep=tuple(_keep_rule(k) for k in query.args.get("keep") or []),
        )

    def _evaluate_source(self, source: exp.Source) -> CompiledQuery | str:
        node = source.this
        if isinstance(node, exp.Var):
            node_query: exp.Query = exp.Select(this=exp.Var(this=node.this))
            return self._nested(self.text, self.chain).compile(node_query)
        try:
            inner, text, chain = self._source_query(node, self.text, ())
        except ResolveError as error:
            if error.code == "unresolved_query" and isinstance(node, exp.SavedQuery):
                return str(node.this)  # the executor looks it up
            raise
        return self._nested(text, (*self.chain, *chain)).compile(inner)

    def _nested(self, text: str, chain: tuple[str, ...]) -> Compiler:
        return Compiler(text, self.generator_class, self.resolve, chain)


class _Item(t.NamedTuple):
    """One condition of a query's filter, in DQL order."""

    text: str
    #: Whether it only tests ``m``'s own properties (no subquery): it can sit in the first
    #: ``MATCH``'s ``WHERE`` (index seeks) rather than after ``WITH DISTINCT m``.
    plain: bool
    #: The pattern and conditions of an anchored conjunct (then ``text`` is unused).
    anchor: Anchor | None = None


def _plain(node: exp.Expression) -> bool:
    return node.find(exp.Metric, exp.Param, exp.Has) is None


def _match_clause(pattern: str, conditions: list[str]) -> list[str]:
    where = ["WHERE " + " AND ".join(conditions)] if conditions else []
    return [f"MATCH {pattern}", *where]


def _restrictions(where: exp.Expression | None) -> dict[str, list[exp.Has]]:
    """``has`` tests that are top-level conjuncts, by the glob of their selector."""
    found: dict[str, list[exp.Has]] = {}
    for conjunct in _conjuncts(where):
        if isinstance(conjunct, exp.Has):
            selector, _ = unwind_nodeset(conjunct.this)
            found.setdefault(selector.args["pattern"], []).append(conjunct)
    return found


def _conjuncts(node: exp.Expression | None) -> t.Iterator[exp.Expression]:
    if node is None:
        return
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.args["expression"])
    elif isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    else:
        yield node


def _vary_plan(vary: exp.Vary) -> VaryPlan:
    parts = tuple(
        p if isinstance(p, str) else Glob(p.args["pattern"]) for p in vary.this.args["parts"]
    )
    if vary.args.get("auto"):
        return VaryPlan(parts, None, True)
    return VaryPlan(parts, tuple(v.this for v in vary.args["values"]))


def _keep_rule(node: exp.Expression) -> KeepRule:
    if isinstance(node, exp.KeepTop):
        metric = node.args["metric"]
        name = metric.args["name"]
        order = node.args.get("order") or (
            "asc" if any(w in name.lower() for w in LOWER_IS_BETTER) else "desc"
        )
        return KeepTop(
            node.this.this,
            name,
            node.args["iters"].this,
            order,
            metric.args.get("field") or s.DEFAULT_METRIC_FIELD,
        )
    compare = node.this
    metric = compare.this
    iters = node.args.get("iters")
    return KeepThreshold(
        metric.args["name"],
        compare.args["op"],
        compare.args["expression"].this,
        iters.this if iters else None,
        metric.args.get("field") or s.DEFAULT_METRIC_FIELD,
    )


def _replace(cq: CompiledQuery, **changes: t.Any) -> CompiledQuery:
    import dataclasses

    return dataclasses.replace(cq, **changes)
