"""Execute DQL (``docs/dql.md``) against a repository: the executor behind ``dlv query``.

:func:`execute` compiles a statement with :func:`dql.compile` for the repository's graph
dialect and runs it:

* ``select`` — one Cypher round trip; the rows are the matching versions.
* ``slice`` / ``construct`` — one Cypher round trip finds the versions and their bound layers;
  each network is rewritten in Python (:mod:`dql.rewrite`) and committed as a new version named
  ``<source name>-slice`` / ``<source name>-construct`` with ``DERIVED_FROM {op, query}`` to its
  source. Every layer whose definition (name, type, mode, attributes) is unchanged keeps the
  source's tensors as they are, so the archive stores no new bytes for them; new parametric
  layers are initialised by :func:`provdb.models.builder.build_module` (missing ``in_channels`` /
  ``in_features`` / ``num_features`` are inferred and written into the new definition). A slice
  gets an ``Input`` layer in front of each cut edge, named after the layer it replaces and
  carrying that layer's output shape.
* ``evaluate`` — runs the source query (a select's versions, or the versions a slice/construct
  creates; with ``dry_run`` the rewritten networks are used in memory), loads the JSON
  :class:`~provdb.models.learner.TrainConfig`, enumerates the grid, trains every candidate with the
  learner, prunes with the ``keep`` rules and trains the survivors on to the config's
  ``iterations``. Survivors are committed as ``<source name>-eval-<n>`` (``n``: the candidate's
  number) with their effective config as hyper-parameters and their metric curves.

``dry_run`` commits nothing and reports what would be created. Saved queries live in
``.dlv/queries.json`` (:func:`save_query`, :func:`saved_queries`) and can be referenced by
name: ``from "query3"``. DQL errors become :class:`provdb.errors.QuerySyntaxError` (code
``syntax_error``) whose message keeps the line, column and the caret snippet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dql
from dql.errors import DQLError
from provdb.errors import from_dql
from provdb.query.derive import derive as _derive
from provdb.query.evaluate import evaluate as _evaluate
from provdb.query.evaluate import load_config
from provdb.query.results import CreatedVersion, QueryResult
from provdb.query.saved import compile_query, save_query, saved_queries

if TYPE_CHECKING:
    from provdb.repository import Repository


# -- execution ---------------------------------------------------------------------------------


def execute(
    repo: Repository, text: str, *, dry_run: bool = False, limit: int | None = None
) -> QueryResult:
    """Compile and run one DQL statement against ``repo``.

    Args:
        repo: an open repository.
        text: the DQL statement.
        dry_run: commit nothing; report what would be created.
        limit: select only: return at most this many rows (the first page, in the query's
            order, or by creation time and id); ``QueryResult.total`` still counts them all.
            None: every row. Slice, construct and evaluate always process every version.

    Raises:
        QuerySyntaxError: the text is not DQL, a saved query is unknown, or a rewrite does not fit
            a network (the message underlines the offending text).
        InvalidInput: e.g. an evaluate config that cannot be read.
    """
    compiled = compile_query(repo, text)
    try:
        if compiled.kind == "select":
            return _select(repo, compiled, dry_run, limit)
        if compiled.kind in ("slice", "construct"):
            return _derive(repo, compiled, dry_run)
        return _evaluate(repo, compiled, dry_run)
    except DQLError as exc:
        raise from_dql(exc) from exc


def _select(
    repo: Repository, compiled: dql.CompiledQuery, dry_run: bool, limit: int | None
) -> QueryResult:
    """One round trip: the first ``limit`` rows and the total (:meth:`run_read_page`).

    Without an ``order by`` of its own the query is sorted by creation time and id in Cypher,
    so every page is the start of the same order on both backends.
    """
    cypher = compiled.cypher if compiled.ordered else compiled.cypher + "\n" + DEFAULT_ORDER
    rows, total = repo.graph.run_read_page(cypher, compiled.params, compiled.columns, limit)
    return QueryResult(
        "select",
        list(compiled.columns),
        rows,
        [],
        compiled.cypher,
        compiled.params,
        dry_run,
        compiled,
        total=total,
    )


#: The order of a select without ``order by`` (the columns every select returns).
DEFAULT_ORDER = "ORDER BY created_at, id"


__all__ = [
    "CreatedVersion",
    "QueryResult",
    "compile_query",
    "execute",
    "load_config",
    "save_query",
    "saved_queries",
]
