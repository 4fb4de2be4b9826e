"""Evaluate plans: grid expansion, config overrides and keep rules."""

from __future__ import annotations

import math

import pytest
from paper_queries import Q3, Q4

import dql
from dql.plan import apply_overrides, expand_grid


def test_paper_query_4_grid() -> None:
    compiled = dql.compile(Q4, resolve={"query3": Q3}.get)
    grid = expand_grid(compiled.vary, layer_names=["data", "conv1", "relu1", "conv2", "fc6"])
    assert len(grid) == 3 * 3 * 2
    assert grid[0] == {
        "base_lr": 0.1,
        "net.conv1.lr": 0.1,
        "net.conv2.lr": 0.1,
        "input_data": "path1",
    }
    assert {g["net.conv1.lr"] for g in grid} == {0.1, 0.01, 0.001}


def test_auto_needs_a_default_range() -> None:
    compiled = dql.compile('evaluate m from "q" with config = "c" vary config.foo auto')
    with pytest.raises(dql.DQLError, match="No default range"):
        expand_grid(compiled.vary)


def test_apply_overrides_is_pure() -> None:
    config = {"base_lr": 1, "net": {"conv1": {"lr": 1, "wd": 2}}}
    out = apply_overrides(config, {"net.conv1.lr": 0.5, "net.conv2.lr": 0.5})
    assert out == {"base_lr": 1, "net": {"conv1": {"lr": 0.5, "wd": 2}, "conv2": {"lr": 0.5}}}
    assert config["net"]["conv1"]["lr"] == 1


def test_keep_top_and_threshold() -> None:
    top = dql.KeepTop(2, "loss", 100, "asc")
    assert top.survivors({"a": 0.3, "b": math.nan, "c": 0.1, "d": 0.2}) == ["c", "d"]
    assert dql.KeepTop(1, "acc", 10, "desc").survivors({"a": 0.3, "b": 0.9}) == ["b"]
    rule = dql.KeepThreshold("accuracy", ">=", 0.9)
    assert rule.passes(0.9)
    assert not rule.passes(0.5)
    assert not rule.passes(None)
