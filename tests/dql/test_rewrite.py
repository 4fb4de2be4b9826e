"""Network rewrites for slice and construct (pure functions on network JSON)."""

from __future__ import annotations

import copy

import pytest
from dql_testdata import alexnet
from paper_queries import Q3

import dql
from dql.rewrite import RewriteError, apply_mutations, slice_network


def names(net: dict) -> list[str]:
    return [layer["name"] for layer in net["layers"]]


def test_slice_keeps_exactly_conv1_to_fc7() -> None:
    net = alexnet()
    before = copy.deepcopy(net)
    sliced = slice_network(net, "conv1", "fc7")
    assert names(sliced) == [
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "conv3",
        "conv4",
        "conv5",
        "pool5",
        "flatten",
        "fc6",
        "drop6",
        "fc7",
    ]
    assert sliced["edges"][0] == ["conv1", "pool1"]
    assert sliced["edges"][-1] == ["drop6", "fc7"]
    assert sliced["inputs"] == ["conv1"]
    assert sliced["outputs"] == ["fc7"]
    assert sliced["layers"][0] == net["layers"][1]  # attributes kept as they were
    assert net == before  # pure


def test_slice_keeps_side_inputs_the_output_needs() -> None:
    net = {
        "layers": [
            {"name": n, "type": "Other", "mode": "", "attrs": {}}
            for n in ["data", "a", "b", "skip", "add", "head"]
        ],
        "edges": [
            ["data", "a"],
            ["a", "b"],
            ["data", "skip"],
            ["b", "add"],
            ["skip", "add"],
            ["add", "head"],
        ],
    }
    sliced = slice_network(net, "b", "add")
    assert names(sliced) == ["b", "skip", "add"]
    assert sliced["inputs"] == ["b", "skip"]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("conv9", "fc7", "not in the network: conv9"),
        ("fc7", "conv1", "No path from fc7 to conv1"),
    ],
)
def test_slice_errors(start: str, end: str, message: str) -> None:
    with pytest.raises(RewriteError, match=message):
        slice_network(alexnet(), start, end)


def test_construct_inserts_relu_only_after_conv_followed_by_avg_pool() -> None:
    net = alexnet({1: "AVG", 2: "MAX", 3: "AVG"})
    compiled = dql.compile(Q3)
    row = {"binding_0": ["conv3", "conv1"]}  # what the select part returns for this network
    built = apply_mutations(net, compiled.mutations, row)
    assert names(built) == [
        "data",
        "conv1",
        "relu1",
        "pool1",
        "conv2",
        "pool2",
        "conv3",
        "relu3",
        "pool3",
        "conv4",
        "conv5",
        "flatten",
        "fc6",
        "drop6",
        "fc7",
        "drop7",
        "fc8",
        "prob",
    ]
    assert ["conv1", "relu1"] in built["edges"]
    assert ["relu1", "pool1"] in built["edges"]
    assert ["conv1", "pool1"] not in built["edges"]
    relu = built["layers"][2]
    assert relu == {"name": "relu1", "type": "ReLU", "mode": "", "attrs": {}}
    assert len(built["edges"]) == len(net["edges"]) + 2


def test_bindings_match_what_the_selector_would_bind() -> None:
    [mutation] = dql.compile(Q3).mutations
    net = alexnet({1: "AVG", 2: "MAX", 3: "AVG"})
    layer_type = {layer["name"]: layer for layer in net["layers"]}
    after = {a: b for a, b in net["edges"]}
    bound = [
        n
        for n in layer_type
        if mutation.selector.match(n) is not None and layer_type[after[n]]["mode"] == "AVG"
    ]
    assert bound == ["conv1", "conv3"]
    assert mutation.selector.match("conv3") == {"1": "3"}


def test_insert_with_attrs_and_delete() -> None:
    compiled = dql.compile(
        'construct b from a mutate a["fc*($1)"].insert = '
        'DROPOUT("d$1", p=0.3) and a["drop*"].delete = FC()'
    )
    row = {"binding_0": ["fc6"], "binding_1": ["drop6", "drop7"]}
    built = apply_mutations(alexnet(), compiled.mutations, row)
    assert {"name": "d6", "type": "Dropout", "mode": "", "attrs": {"p": 0.3}} in built["layers"]
    # drop6 -> fc7 and drop7 -> fc8 are cut; what only they fed is no longer reachable
    assert names(built)[-4:] == ["flatten", "fc6", "d6", "drop6"]
    assert ["fc6", "d6"] in built["edges"]
    assert ["d6", "drop6"] in built["edges"]
    assert not any(edge[0] == "drop6" for edge in built["edges"])


def test_insert_name_clash() -> None:
    compiled = dql.compile('construct b from a mutate a["conv1"].insert = POOL("MAX", "pool1")')
    with pytest.raises(RewriteError, match="'pool1'.*the name exists"):
        apply_mutations(alexnet(), compiled.mutations, {"binding_0": ["conv1"]})
