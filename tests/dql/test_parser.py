"""Parser tests: the paper's four queries verbatim, the tree shape, and error positions."""

from __future__ import annotations

import pytest
from paper_queries import PAPER_QUERIES, Q1, Q3, Q4

import dql
from dql import ast as exp
from dql.tokens import TokenType


@pytest.mark.parametrize("name", sorted(PAPER_QUERIES))
def test_paper_queries_parse(name: str) -> None:
    tree = dql.parse(PAPER_QUERIES[name])
    kind = {
        "query1": exp.Select,
        "query2": exp.Slice,
        "query3": exp.Construct,
        "query4": exp.Evaluate,
    }[name]
    assert isinstance(tree, kind)
    assert tree.meta["line"] == 1
    assert tree.meta["col"] == 1


def test_query1_shape() -> None:
    tree = dql.parse(Q1)
    has = tree.find(exp.Has)
    assert has is not None
    assert has.args["template"] == exp.Template(this="POOL", args=[exp.Literal(this="MAX")])
    selector = has.find(exp.Selector)
    assert selector is not None
    assert selector.args["pattern"] == "conv[1,3,5]"
    assert (selector.meta["line"], selector.meta["col"]) == (5, 3)
    like = tree.find(exp.Like)
    assert like is not None
    assert like.this == exp.Attribute(this="m1", name="name")


def test_query3_and_4_shape() -> None:
    construct = dql.parse(Q3)
    [mutation] = construct.args["mutations"]
    assert mutation.args["action"] == "insert"
    assert mutation.this.args["pattern"] == "conv*($1)"
    evaluate = dql.parse(Q4)
    assert evaluate.args["source"].this == exp.SavedQuery(this="query3")
    assert [v.args.get("auto") for v in evaluate.args["vary"]] == [None, True, None]


def test_tokens_have_positions() -> None:
    tokens = dql.tokenize('select m\n  where m.name = "x"')
    where = next(tok for tok in tokens if tok.type is TokenType.WHERE)
    assert (where.line, where.col, where.start, where.end) == (2, 3, 11, 16)
    assert tokens[-1].type is TokenType.EOF


def test_tree_utilities() -> None:
    tree = dql.parse(Q1)
    assert len(list(tree.find_all(exp.Literal))) == 3
    copy = tree.copy()
    assert copy == tree
    assert copy is not tree
    renamed = tree.transform(
        lambda n: (
            exp.Attribute(this="m1", name="author")
            if isinstance(n, exp.Attribute) and n.args["name"] == "name"
            else n
        )
    )
    assert renamed.find(exp.Attribute) == exp.Attribute(this="m1", name="author")


#: (query, code, line, col, highlighted text, message fragment)
ERRORS = [
    ("selec m", "syntax", 1, 1, "selec", "Expected select, slice, construct or evaluate"),
    ("select m where m.name like", "syntax", 1, 27, "", "Expected a quoted string"),
    ('select m where m.name = "abc', "token", 1, 25, '"abc', "Unterminated string"),
    ("select m where m.name # 3", "token", 1, 23, "#", "Unexpected character"),
    ("select m\nwhere m.nmae = 'x'", "unknown_attribute", 2, 9, "nmae", "Unknown attribute"),
    ("select m\nwhere\n  q.name = 'x'", "unknown_variable", 3, 3, "q", "Unknown variable 'q'"),
    (
        'select m where m["c"].next has BLOB()',
        "unknown_template",
        1,
        32,
        "BLOB",
        "Unknown layer template",
    ),
    (
        'select m where m["c"].next has POOL("MIN")',
        "bad_template",
        1,
        32,
        'POOL("MIN")',
        "Pooling mode",
    ),
    ('select m where m["c($1)"] has FC()', "syntax", 1, 18, '"c($1)"', "must follow a wildcard"),
    ("select m where m.name = 'a' limit x", "syntax", 1, 35, "x", "Expected a row count"),
    ('slice m2 from m1 mutate m2.input = m1["a"]', "syntax", 1, 43, "", "Expected and"),
    (
        'construct b from a mutate a["x"].replace = RELU()',
        "syntax",
        1,
        34,
        "replace",
        "Expected a mutation",
    ),
    ("select m where m.name = 'x' extra", "syntax", 1, 29, "extra", "Expected end of query"),
    ('select m where m["x"].next = 3', "syntax", 1, 28, "=", "A layer set can only"),
]


@pytest.mark.parametrize(
    ("text", "code", "line", "col", "highlight", "message"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_error_positions(
    text: str, code: str, line: int, col: int, highlight: str, message: str
) -> None:
    with pytest.raises(dql.DQLError, match=message) as info:
        dql.compile(text)
    error = info.value
    assert (error.code, error.line, error.col) == (code, line, col)
    assert error.highlight.strip() == highlight
    assert isinstance(error, dql.ParseError)
    caret_line = str(error).splitlines()[-1]
    assert caret_line.index("^") == col + 1  # two spaces of indent, 1-based column
    assert error.to_dict()["line"] == line


def test_error_message_underlines_the_offending_text() -> None:
    with pytest.raises(dql.ParseError) as info:
        dql.parse("select m where m.name lik 'a%'")
    assert str(info.value).splitlines()[1:] == [
        "  select m where m.name lik 'a%'",
        "                        ^^^",
    ]
