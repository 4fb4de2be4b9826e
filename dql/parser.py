"""The DQL parser: tokens → a :mod:`dql.ast` tree, one small ``_parse_<rule>`` per rule."""

from __future__ import annotations

import contextlib
import math
import typing as t

from dql import ast as exp
from dql.errors import ParseError
from dql.patterns import Glob
from dql.schema import (
    METRIC_FIELDS,
    METRIC_NAMESPACES,
    PARAM_NAMESPACES,
    VERSION_ATTRIBUTES,
)
from dql.tokens import Token, TokenType, tokenize

T = TokenType
N = t.TypeVar("N", bound=exp.Expression)

COMPARISONS: dict[TokenType, str] = {
    T.EQ: "=",
    T.NEQ: "<>",
    T.LT: "<",
    T.LTE: "<=",
    T.GT: ">",
    T.GTE: ">=",
}
FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
HOPS = ("next", "prev")

#: How deep parentheses, ``not`` and nested ``(select ...)`` sources may nest, together. Deeper
#: text is refused with a positioned error instead of exhausting Python's stack.
MAX_DEPTH = 64
#: How many ``.next`` / ``.prev`` hops one node set may chain (each is a join in the database).
MAX_HOPS = 16
#: Integers travel to the databases as 64-bit values.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: A parsed dotted/indexed path before it is given a meaning: (kind, text, token) per step.
Step = tuple[str, str, Token]


class Parser:
    """Parses one DQL statement.

    Args:
        text: the DQL source.
    """

    STATEMENT_PARSERS: t.ClassVar[dict[TokenType, t.Callable[[Parser], exp.Query]]] = {
        T.SELECT: lambda self: self._parse_select(),
        T.SLICE: lambda self: self._parse_slice(),
        T.CONSTRUCT: lambda self: self._parse_construct(),
        T.EVALUATE: lambda self: self._parse_evaluate(),
    }

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0  # current nesting of parentheses, not and subqueries

    # -- entry -----------------------------------------------------------------------------
    def parse(self) -> exp.Query:
        """Parse the whole text as one statement (an optional ``;`` may end it)."""
        query = self._parse_query()
        self._match(T.SEMICOLON)
        if self._curr.type is not T.EOF:
            self.raise_error("Expected end of query", self._curr)
        return query

    # -- token helpers ---------------------------------------------------------------------
    @property
    def _curr(self) -> Token:
        return self.tokens[self.index]

    @property
    def _prev(self) -> Token:
        return self.tokens[max(self.index - 1, 0)]

    def _advance(self) -> Token:
        token = self._curr
        if token.type is not T.EOF:
            self.index += 1
        return token

    def _match(self, *types: TokenType) -> Token | None:
        if self._curr.type in types:
            return self._advance()
        return None

    def _match_word(self, *words: str) -> Token | None:
        if self._curr.type is T.IDENT and self._curr.text.lower() in words:
            return self._advance()
        return None

    def _expect(self, type_: TokenType, what: str | None = None) -> Token:
        token = self._match(type_)
        if token is None:
            self.raise_error(f"Expected {what or type_.name.lower()}", self._curr)
        return t.cast(Token, token)

    def _expect_word(self, *words: str) -> Token:
        token = self._match_word(*words)
        if token is None:
            self.raise_error(f"Expected {' or '.join(repr(w) for w in words)}", self._curr)
        return t.cast(Token, token)

    def raise_error(self, message: str, token: Token, code: str = "syntax") -> t.NoReturn:
        """Raise a :class:`ParseError` that underlines ``token``."""
        if token.type is T.EOF:
            message = f"{message}, got end of query"
        elif token.text:
            message = f"{message}, got {token.text!r}"
        end = token.end if token.end > token.start else token.start + 1
        raise ParseError(message, query=self.text, start=token.start, end=end, code=code)

    @contextlib.contextmanager
    def _nested(self, token: Token) -> t.Iterator[None]:
        """One more level of nesting, opened by ``token`` (refused beyond MAX_DEPTH)."""
        if self.depth >= MAX_DEPTH:
            self.raise_error(
                f"Too deeply nested (at most {MAX_DEPTH} levels of parentheses, not and "
                "subqueries)",
                token,
                code="too_deep",
            )
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def _node(self, node: N, first: Token) -> N:
        last = self._prev
        node.at(first.line, first.col, first.start, max(last.end, first.end))
        return node

    # -- statements ------------------------------------------------------------------------
    def _parse_query(self) -> exp.Query:
        parser = self.STATEMENT_PARSERS.get(self._curr.type)
        if parser is None:
            self.raise_error("Expected select, slice, construct or evaluate", self._curr)
        return parser(self)

    def _parse_select(self) -> exp.Select:
        first = self._advance()
        var = self._parse_var()
        source = self._parse_source() if self._match(T.FROM) else None
        where = self._parse_where()
        order = self._parse_order()
        limit = self._parse_limit()
        return self._node(
            exp.Select(this=var, source=source, where=where, order=order, limit=limit), first
        )

    def _parse_slice(self) -> exp.Slice:
        first = self._advance()
        var = self._parse_var()
        self._expect(T.FROM, "from")
        source = self._parse_source()
        where = self._parse_where()
        self._expect(T.MUTATE, "mutate")
        binds = {}
        for _ in range(2):
            port, selector = self._parse_slice_binding(var)
            if port in binds:
                self.raise_error(f"{var.this}.{port} is bound twice", self._prev)
            binds[port] = selector
            if len(binds) < 2:
                self._expect(T.AND, "and")
        return self._node(exp.Slice(this=var, source=source, where=where, **binds), first)

    def _parse_slice_binding(self, out: exp.Var) -> tuple[str, exp.Selector]:
        name = self._expect(T.IDENT, "a variable")
        if name.text != out.this:
            self.raise_error(
                f"Expected {out.this}.input or {out.this}.output", name, code="unknown_variable"
            )
        self._expect(T.DOT, "'.'")
        port = self._expect_word("input", "output").text.lower()
        self._expect(T.EQ, "'='")
        return port, self._parse_selector()

    def _parse_construct(self) -> exp.Construct:
        first = self._advance()
        var = self._parse_var()
        self._expect(T.FROM, "from")
        source = self._parse_source()
        where = self._parse_where()
        self._expect(T.MUTATE, "mutate")
        mutations = [self._parse_mutation()]
        while self._match(T.AND):
            mutations.append(self._parse_mutation())
        return self._node(
            exp.Construct(this=var, source=source, where=where, mutations=mutations), first
        )

    def _parse_mutation(self) -> exp.Mutation:
        first = self._curr
        steps = self._parse_steps()
        kind, word, token = steps[-1]
        if len(steps) != 3 or kind != "attr" or word.lower() not in ("insert", "delete"):
            self.raise_error('Expected a mutation such as m["conv1"].insert = RELU()', token)
        selector = self._selector_from_steps(steps[:2])
        action = word.lower()
        template = None
        if action == "insert":
            self._expect(T.EQ, "'='")
            template = self._parse_template()
        elif self._match(T.EQ):
            template = self._parse_template()
        return self._node(exp.Mutation(this=selector, action=action, template=template), first)

    def _parse_evaluate(self) -> exp.Evaluate:
        first = self._advance()
        var = self._parse_var()
        self._expect(T.FROM, "from")
        source = self._parse_source()
        self._expect(T.WITH, "with")
        self._expect_word("config")
        self._expect(T.EQ, "'='")
        config = self._parse_string()
        vary = self._parse_and_list(self._parse_vary) if self._match(T.VARY) else []
        keep = self._parse_and_list(self._parse_keep) if self._match(T.KEEP) else []
        return self._node(
            exp.Evaluate(this=var, source=source, config=config, vary=vary, keep=keep), first
        )

    def _parse_and_list(self, rule: t.Callable[[], N]) -> list[N]:
        items = [rule()]
        while self._match(T.AND):
            items.append(rule())
        return items

    # -- sources ---------------------------------------------------------------------------
    def _parse_var(self) -> exp.Var:
        token = self._expect(T.IDENT, "a variable name")
        return self._node(exp.Var(this=token.text), token)

    def _parse_source(self) -> exp.Source:
        first = self._curr
        if self._match(T.L_PAREN):
            with self._nested(first):
                query = self._parse_query()
            self._expect(T.R_PAREN, "')'")
            this: exp.Expression = self._node(exp.Subquery(this=query), first)
        elif self._curr.type is T.STRING:
            token = self._advance()
            this = self._node(exp.SavedQuery(this=token.text), token)
        else:
            this = self._parse_var()
        alias = self._parse_var() if self._match(T.AS) else None
        return self._node(exp.Source(this=this, alias=alias), first)

    # -- where, order, limit ---------------------------------------------------------------
    def _parse_where(self) -> exp.Condition | None:
        return self._parse_condition() if self._match(T.WHERE) else None

    def _parse_order(self) -> list[exp.Ordered]:
        if not self._match(T.ORDER):
            return []
        self._expect(T.BY, "by")
        return [self._parse_ordered()] + [
            self._parse_ordered() for _ in iter(lambda: self._match(T.COMMA), None)
        ]

    def _parse_ordered(self) -> exp.Ordered:
        first = self._curr
        value = self._parse_value()
        desc = self._match(T.DESC) is not None
        if not desc:
            self._match(T.ASC)
        return self._node(exp.Ordered(this=value, desc=desc), first)

    def _parse_limit(self) -> exp.Literal | None:
        if not self._match(T.LIMIT):
            return None
        return self._parse_int("a row count")

    def _parse_int(self, what: str, minimum: int = 0) -> exp.Literal:
        """An integer literal from ``minimum`` to INT64_MAX."""
        token = self._expect(T.NUMBER, what)
        kind = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        if not (token.text.isascii() and token.text.isdigit()):
            self.raise_error(f"Expected {what} ({kind})", token)
        value = int(token.text)
        if not minimum <= value <= INT64_MAX:
            self.raise_error(
                f"Expected {what} ({kind} up to {INT64_MAX})", token, code="out_of_range"
            )
        return self._node(exp.Literal(this=value), token)

    # -- conditions ------------------------------------------------------------------------
    def _parse_condition(self) -> exp.Condition:
        terms = [self._parse_conjunction()]
        while self._match(T.OR):
            terms.append(self._parse_conjunction())
        return _chain(exp.Or, terms)

    def _parse_conjunction(self) -> exp.Condition:
        terms = [self._parse_negation()]
        while self._match(T.AND):
            terms.append(self._parse_negation())
        return _chain(exp.And, terms)

    def _parse_negation(self) -> exp.Condition:
        first = self._curr
        if self._match(T.NOT):
            with self._nested(first):
                return self._node(exp.Not(this=self._parse_negation()), first)
        return self._parse_predicate()

    def _parse_predicate(self) -> exp.Condition:
        first = self._curr
        if self._match(T.L_PAREN):
            with self._nested(first):
                inner = self._parse_condition()
            self._expect(T.R_PAREN, "')'")
            return self._node(exp.Paren(this=inner), first)
        if self._curr.type is not T.IDENT:
            return self._parse_flipped_comparison()
        steps = self._parse_steps()
        if self._match(T.HAS):
            nodes = self._to_nodeset(steps)
            return self._node(exp.Has(this=nodes, template=self._parse_template()), first)
        value = self._to_value(steps)
        return self._parse_value_predicate(value, first)

    def _parse_value_predicate(self, value: exp.Expression, first: Token) -> exp.Condition:
        negate = self._match(T.NOT)
        if self._curr.type in (T.LIKE, T.ILIKE):
            node: exp.Condition = self._parse_like(value, first)
        elif self._match(T.IN):
            node = self._node(exp.In(this=value, expressions=self._parse_list()), first)
        elif negate:
            self.raise_error("Expected like, ilike or in after not", self._curr)
        else:
            op = self._parse_comparison_op()
            node = self._node(
                exp.Compare(this=value, op=op, expression=self._parse_literal()), first
            )
        return self._node(exp.Not(this=node), first) if negate else node

    def _parse_flipped_comparison(self) -> exp.Condition:
        first = self._curr
        literal = self._parse_literal()
        op = self._parse_comparison_op()
        if self._curr.type is not T.IDENT:
            self.raise_error("Expected a version attribute", self._curr)
        value = self._to_value(self._parse_steps())
        return self._node(exp.Compare(this=value, op=FLIPPED[op], expression=literal), first)

    def _parse_comparison_op(self) -> str:
        token = self._advance()
        if token.type not in COMPARISONS:
            self.index -= token.type is not T.EOF
            self.raise_error("Expected a comparison (=, <>, <, <=, >, >=, like, in, has)", token)
        return COMPARISONS[token.type]

    def _parse_like(self, value: exp.Expression, first: Token) -> exp.Like:
        insensitive = self._advance().type is T.ILIKE
        pattern = self._parse_string()
        escape = None
        if self._match(T.ESCAPE):
            escape = self._parse_string()
            if len(escape.this) != 1:
                self.raise_error("The escape must be one character", self._prev)
        return self._node(
            exp.Like(this=value, pattern=pattern, escape=escape, insensitive=insensitive), first
        )

    # -- paths: m.name, m["conv1"].next, m.metrics.loss ------------------------------------
    def _parse_steps(self) -> list[Step]:
        head = self._expect(T.IDENT, "a variable")
        steps: list[Step] = [("var", head.text, head)]
        while True:
            if self._match(T.DOT):
                word = self._curr
                if word.type is not T.IDENT and word.text.isidentifier():
                    word = self._advance()  # keywords are fine as attribute names
                else:
                    word = self._expect(T.IDENT, "an attribute name")
                steps.append(("attr", word.text, word))
            elif self._match(T.L_BRACKET):
                token = self._expect(T.STRING, "a quoted name")
                self._expect(T.R_BRACKET, "']'")
                steps.append(("index", token.text, token))
            else:
                return steps

    def _to_nodeset(self, steps: list[Step]) -> exp.Expression:
        if len(steps) < 2 or steps[1][0] != "index":
            self.raise_error('Expected a layer selector such as m["conv*"]', steps[-1][2])
        node: exp.Expression = self._selector_node(steps[0], steps[1])
        for i, (kind, text, token) in enumerate(steps[2:]):
            if kind != "attr" or text.lower() not in HOPS:
                self.raise_error("Expected .next or .prev", token)
            if i == MAX_HOPS:
                self.raise_error(
                    f"Too many hops (at most {MAX_HOPS} .next/.prev in a row)",
                    token,
                    code="too_many_hops",
                )
            node = exp.Hop(this=node, direction=text.lower()).at(
                steps[0][2].line, steps[0][2].col, steps[0][2].start, token.end
            )
        return node

    def _selector_node(self, var: Step, index: Step) -> exp.Selector:
        token = index[2]
        try:
            Glob(index[1])
        except ParseError as error:
            raise ParseError(
                error.description, query=self.text, start=token.start, end=token.end
            ) from None
        node = exp.Selector(this=var[1], pattern=index[1])
        return t.cast(exp.Selector, node.at(var[2].line, var[2].col, var[2].start, token.end + 1))

    def _to_value(self, steps: list[Step]) -> exp.Expression:
        var, rest = steps[0], steps[1:]
        first, last = var[2], steps[-1][2]
        node = self._value_node(var[1], rest, first)
        return node.at(first.line, first.col, first.start, last.end)

    def _value_node(self, var: str, rest: list[Step], first: Token) -> exp.Expression:
        if not rest:
            self.raise_error('Expected an attribute such as .name or ["loss"]', self._curr)
        kind, text, token = rest[0]
        if any(s[0] == "attr" and s[1].lower() in HOPS for s in rest[1:]):
            self.raise_error("A layer set can only be tested with has", self._curr)
        if kind == "index":
            return self._metric(var, text, rest[1:])
        word = text.lower()
        if word in METRIC_NAMESPACES and len(rest) > 1:
            return self._metric(var, rest[1][1], rest[2:])
        if word in PARAM_NAMESPACES and len(rest) == 2:
            return exp.Param(this=var, name=rest[1][1])
        if word in VERSION_ATTRIBUTES and len(rest) == 1:
            return exp.Attribute(this=var, name=word)
        self.raise_error(
            f"Unknown attribute {text!r} of a model version", token, code="unknown_attribute"
        )

    def _metric(self, var: str, name: str, rest: list[Step]) -> exp.Metric:
        field = None
        if rest:
            kind, text, token = rest[0]
            if kind != "attr" or text.lower() not in METRIC_FIELDS or len(rest) > 1:
                self.raise_error("Expected .last, .min or .max after a metric", token)
            field = text.lower()
        return exp.Metric(this=var, name=name, field=field)

    def _parse_value(self) -> exp.Expression:
        return self._to_value(self._parse_steps())

    def _parse_selector(self) -> exp.Selector:
        return self._selector_from_steps(self._parse_steps())

    def _selector_from_steps(self, steps: list[Step]) -> exp.Selector:
        if len(steps) != 2 or steps[1][0] != "index":
            self.raise_error('Expected a layer selector such as m1["conv1"]', steps[-1][2])
        return self._selector_node(steps[0], steps[1])

    # -- templates, literals ---------------------------------------------------------------
    def _parse_template(self) -> exp.Template:
        from dql.templates import TEMPLATES  # the table of built-in layer templates

        first = self._expect(T.IDENT, 'a layer template such as POOL("MAX")')
        if first.text.upper() not in TEMPLATES:
            known = ", ".join(sorted(TEMPLATES))
            self.raise_error(
                f"Unknown layer template (known: {known})", first, code="unknown_template"
            )
        self._expect(T.L_PAREN, "'('")
        args: list[exp.Expression] = []
        while self._curr.type is not T.R_PAREN:
            args.append(self._parse_template_arg())
            if not self._match(T.COMMA):
                break
        self._expect(T.R_PAREN, "')'")
        return self._node(exp.Template(this=first.text.upper(), args=args), first)

    def _parse_template_arg(self) -> exp.Expression:
        first = self._curr
        if self._curr.type is T.IDENT and self.tokens[self.index + 1].type is T.EQ:
            name = self._advance().text
            self._advance()
            value = self._parse_literal_or_list()
            return self._node(exp.Kwarg(this=name, value=value), first)
        return self._parse_literal_or_list()

    def _parse_literal_or_list(self) -> exp.Expression:
        if self._curr.type is T.L_BRACKET:
            first = self._curr
            return self._node(exp.Literal(this=[v.this for v in self._parse_list()]), first)
        return self._parse_literal()

    def _parse_string(self) -> exp.Literal:
        token = self._expect(T.STRING, "a quoted string")
        return self._node(exp.Literal(this=token.text), token)

    def _parse_literal(self) -> exp.Literal:
        token = self._advance()
        value: t.Any
        if token.type is T.STRING:
            value = token.text
        elif token.type is T.NUMBER:
            value = _number(token.text)
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                self.raise_error("Integer out of range (64 bits)", token, code="out_of_range")
            if isinstance(value, float) and not math.isfinite(value):
                self.raise_error("Number out of range", token, code="out_of_range")
        elif token.type in (T.TRUE, T.FALSE):
            value = token.type is T.TRUE
        else:
            self.index -= token.type is not T.EOF
            self.raise_error("Expected a value (string, number, true or false)", token)
        return self._node(exp.Literal(this=value), token)

    def _parse_list(self) -> list[exp.Literal]:
        self._expect(T.L_BRACKET, "'['")
        values: list[exp.Literal] = []
        while self._curr.type is not T.R_BRACKET:
            values.append(self._parse_literal())
            if not self._match(T.COMMA):
                break
        self._expect(T.R_BRACKET, "']'")
        if not values:
            self.raise_error("Expected at least one value in the list", self._prev)
        return values

    # -- vary, keep ------------------------------------------------------------------------
    def _parse_vary(self) -> exp.Vary:
        first = self._curr
        path = self._parse_config_path()
        if self._match(T.AUTO):
            return self._node(exp.Vary(this=path, auto=True), first)
        self._expect(T.IN, "in or auto")
        return self._node(exp.Vary(this=path, values=self._parse_list()), first)

    def _parse_config_path(self) -> exp.ConfigPath:
        first = self._curr
        steps = self._parse_steps()
        if steps[0][1].lower() != "config":
            self.raise_error("Expected a config path such as config.base_lr", steps[0][2])
        if len(steps) < 2:
            self.raise_error("Expected a config key after config", self._curr)
        parts: list[t.Any] = []
        for kind, text, token in steps[1:]:
            if kind == "index":
                parts.append(
                    exp.Selector(this="config", pattern=text).at(
                        token.line, token.col, token.start, token.end
                    )
                )
            else:
                parts.append(text)
        return self._node(exp.ConfigPath(this="config", parts=parts), first)

    def _parse_keep(self) -> exp.Expression:
        first = self._curr
        if self._match(T.TOP):
            self._expect(T.L_PAREN, "'('")
            k = self._parse_int("the number of models to keep", minimum=1)
            self._expect(T.COMMA, "','")
            metric = self._parse_metric()
            order = "desc" if self._match(T.DESC) else "asc" if self._match(T.ASC) else None
            self._expect(T.COMMA, "','")
            iters = self._parse_int("the number of iterations", minimum=1)
            self._expect(T.R_PAREN, "')'")
            return self._node(exp.KeepTop(this=k, metric=metric, iters=iters, order=order), first)
        metric = self._parse_metric()
        op = self._parse_comparison_op()
        value = self._parse_literal()
        compare = self._node(exp.Compare(this=metric, op=op, expression=value), first)
        after = self._parse_int("the number of iterations") if self._match(T.AFTER) else None
        return self._node(exp.KeepThreshold(this=compare, iters=after), first)

    def _parse_metric(self) -> exp.Metric:
        value = self._parse_value()
        if not isinstance(value, exp.Metric):
            self.index -= 1
            self.raise_error('Expected a metric such as m["loss"]', self.tokens[self.index])
        return value


def _chain(kind: type[exp.And] | type[exp.Or], terms: list[exp.Condition]) -> exp.Condition:
    """Join ``a and b and c ...`` as a balanced tree, bottom-up without recursion.

    ``and``/``or`` are associative, so the shape does not change the meaning, and a balanced
    tree is log2(terms) deep: a chain of thousands of terms cannot exhaust Python's stack in
    any recursive walk (printing, copying, comparing). Every node spans its first to its
    last term.
    """
    while len(terms) > 1:
        paired: list[exp.Condition] = []
        for left, right in zip(terms[::2], terms[1::2]):
            node = kind(this=left, expression=right)
            (start, _), (_, end) = left.span, right.span
            node.at(left.meta.get("line", 0), left.meta.get("col", 0), start, end)
            paired.append(node)
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse(text: str) -> exp.Query:
    """Parse one DQL statement into its syntax tree.

    Raises:
        ParseError: the text is not DQL; the error carries line, column and a snippet.
    """
    return Parser(text).parse()
