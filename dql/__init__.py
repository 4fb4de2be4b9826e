"""DQL: the model query language (select, slice, construct, evaluate) compiled to Cypher.

>>> import dql
>>> q = dql.compile('select m where m.name like "alexnet_%"', dialect="ladybug")
>>> q.kind, q.params
('select', {'p0': '(?s)alexnet..*'})
"""

from dql import ast
from dql.compiler import Resolver, compile
from dql.cypher import DIALECTS
from dql.errors import DQLError, ParseError, ResolveError, UnsupportedError
from dql.parser import parse
from dql.plan import (
    CompiledQuery,
    KeepThreshold,
    KeepTop,
    MutationPlan,
    SlicePlan,
    VaryPlan,
    apply_overrides,
    expand_grid,
)
from dql.tokens import Token, TokenType, tokenize

__all__ = [
    "DIALECTS",
    "CompiledQuery",
    "DQLError",
    "KeepThreshold",
    "KeepTop",
    "MutationPlan",
    "ParseError",
    "ResolveError",
    "Resolver",
    "SlicePlan",
    "Token",
    "TokenType",
    "UnsupportedError",
    "VaryPlan",
    "apply_overrides",
    "ast",
    "compile",
    "expand_grid",
    "parse",
    "tokenize",
]
