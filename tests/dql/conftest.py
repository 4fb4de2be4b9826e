"""Fixtures for the DQL tests; the data they build lives in ``dql_testdata`` (a module name
of its own, so test files never import a ``conftest`` that another folder shadows)."""

from dql_testdata import ladybug_graph

__all__ = ["ladybug_graph"]
