"""Network definitions: validation, JSON round trip, navigation."""

from __future__ import annotations

import json

import pytest

from provdb.errors import InvalidInput
from provdb.models.network import FORMAT, Layer, NetworkDef, layer_of
from provdb.models.zoo import alexnet, digits_cnn

DOC_EXAMPLE = {
    "format": "provdb.network/1",
    "layers": [
        {"name": "data", "type": "Input", "mode": "", "attrs": {"shape": [1, 8, 8]}},
        {
            "name": "conv1",
            "type": "Conv",
            "mode": "",
            "attrs": {
                "in_channels": 1,
                "out_channels": 16,
                "kernel_size": [3, 3],
                "stride": [1, 1],
                "padding": [1, 1],
            },
        },
        {"name": "relu1", "type": "ReLU", "mode": "", "attrs": {}},
        {
            "name": "pool1",
            "type": "Pool",
            "mode": "MAX",
            "attrs": {"kernel_size": [2, 2], "stride": [2, 2]},
        },
        {"name": "flatten", "type": "Flatten", "mode": "", "attrs": {}},
        {
            "name": "fc1",
            "type": "FC",
            "mode": "",
            "attrs": {"in_features": 256, "out_features": 10},
        },
    ],
    "edges": [
        ["data", "conv1"],
        ["conv1", "relu1"],
        ["relu1", "pool1"],
        ["pool1", "flatten"],
        ["flatten", "fc1"],
    ],
}


def test_doc_example_round_trips() -> None:
    net = NetworkDef.from_dict(DOC_EXAMPLE)
    assert net.to_dict() == DOC_EXAMPLE
    assert NetworkDef.from_json(net.to_json()) == net
    assert json.loads(net.to_json(indent=2))["format"] == FORMAT


def test_navigation() -> None:
    net = NetworkDef.from_dict(DOC_EXAMPLE)
    assert [layer.name for layer in net.inputs()] == ["data"]
    assert [layer.name for layer in net.outputs()] == ["fc1"]
    assert net.successors("conv1") == ["relu1"]
    assert net.predecessors("conv1") == ["data"]
    assert [layer.name for layer in net.param_layers()] == ["conv1", "fc1"]
    assert [layer.name for layer in net.param_layers(["fc1.weight", "x.y"])] == ["fc1"]
    assert "pool1" in net
    assert "nope" not in net
    assert net.layer("pool1").mode == "MAX"
    with pytest.raises(InvalidInput, match="no layer named 'nope'"):
        net.layer("nope")


def test_layers_are_stored_in_topological_order() -> None:
    layers = (Layer("add", "Add"), Layer("b", "ReLU"), Layer("a", "ReLU"), Layer("x", "Input"))
    edges = (("x", "a"), ("x", "b"), ("b", "add"), ("a", "add"))
    net = NetworkDef(layers, edges)
    assert net.names == ["x", "b", "a", "add"]
    assert net.predecessors("add") == ["b", "a"]


def test_repeated_edges_are_kept_for_x_plus_x() -> None:
    net = NetworkDef((Layer("x", "Input"), Layer("s", "Add")), (("x", "s"), ("x", "s")))
    assert net.predecessors("s") == ["x", "x"]


@pytest.mark.parametrize(
    ("layers", "edges", "message"),
    [
        ([Layer("a", "ReLU"), Layer("a", "Tanh")], [], "duplicate layer names: a"),
        ([Layer("a", "ReLU")], [("a", "b")], "unknown layer 'b'"),
        ([Layer("a", "ReLU"), Layer("b", "ReLU")], [("a", "b"), ("b", "a")], "cycle"),
        ([Layer("a", "ReLU")], [("a", "a")], "self-loop"),
        ([Layer("a", "ReLU"), Layer("i", "Input")], [("a", "i")], "Input layer 'i'"),
        ([Layer("a", "ReLU")], [("a",)], r"\[source, destination\]"),
    ],
)
def test_invalid_networks(layers: list[Layer], edges: list, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        NetworkDef(tuple(layers), tuple(edges))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "c", "type": "Convolution"}, "unknown type 'Convolution'"),
        ({"name": "p", "type": "Pool", "mode": "MIN"}, "mode MAX or AVG"),
        ({"name": "r", "type": "ReLU", "mode": "MAX"}, "must have mode ''"),
        ({"name": "", "type": "ReLU"}, "non-empty"),
        ({"type": "ReLU"}, "needs 'name' and 'type'"),
        ({"name": "r", "type": "ReLU", "attrs": {"x": float("nan")}}, "not JSON"),
    ],
)
def test_invalid_layers(data: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Layer.from_dict(data)


def test_bad_json_and_format() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        NetworkDef.from_json("{nope")
    with pytest.raises(InvalidInput, match="unsupported network format"):
        NetworkDef.from_dict({"format": "caffe/1", "layers": []})
    with pytest.raises(InvalidInput, match="'layers' list"):
        NetworkDef.from_dict({"edges": []})


def test_network_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, provdb.models.network, provdb.models.zoo, provdb.models.files; "
        "assert not {'torch', 'onnx'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_layer_of_prefers_longest_dotted_prefix() -> None:
    assert layer_of("features.0.weight", ["features", "features.0"]) == "features.0"
    assert layer_of("fc.bias", ["fc1"]) is None


def test_zoo_networks() -> None:
    cnn = digits_cnn()
    assert [layer.type for layer in cnn.layers][:4] == ["Input", "Conv", "ReLU", "Pool"]
    assert cnn.layer("fc1").attrs["in_features"] == 16 * 2 * 2
    net = alexnet(("MAX", "AVG", None))
    assert net.successors("conv1") == ["pool1"]
    assert net.layer("pool3").mode == "AVG"
    assert net.successors("conv5") == ["relu5"]
    assert {f"conv{k}" for k in range(1, 6)} | {"fc6", "fc7", "fc8"} <= set(net.names)
    with pytest.raises(InvalidInput, match="pools must be"):
        alexnet("MIN")


def test_ports_and_meta_round_trip_through_json() -> None:
    layers = [Layer("x", "Input"), Layer("lstm", "Other", attrs={"op": "LSTM"}), Layer("h", "Tanh")]
    net = NetworkDef(tuple(layers), (("x", "lstm"), ("lstm", "h", 1)), {"onnx": {"ir_version": 8}})
    assert net.edges == (("x", "lstm"), ("lstm", "h"))
    assert net.ports == (0, 1)
    data = json.loads(net.to_json())
    assert data["edges"] == [["x", "lstm"], ["lstm", "h", 1]]
    assert data["meta"] == {"onnx": {"ir_version": 8}}
    assert NetworkDef.from_json(net.to_json()) == net
    assert "meta" not in json.loads(NetworkDef(tuple(layers[:1])).to_json())
    with pytest.raises(InvalidInput, match="output index"):
        NetworkDef(tuple(layers), (("x", "lstm", -1),))
