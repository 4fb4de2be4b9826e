"""Builder: definition → trainable module, tensors by name, round trips with from_torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from provdb.errors import InvalidInput
from provdb.models.builder import build_module, module_tensors
from provdb.models.importers import from_torch
from provdb.models.network import Layer, NetworkDef
from provdb.models.zoo import alexnet, digits_cnn


class Branchy(nn.Module):
    """Sequential blocks, a shared module, functional calls, BatchNorm, an unknown module."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.side = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.act = nn.GELU()
        self.norm = nn.LocalResponseNorm(3)
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)
        z = F.max_pool2d(self.side(x), 2)
        y = torch.cat([y, z], 1) + z.repeat(1, 2, 1, 1)
        y = self.norm(self.act(y))
        y = y.view(y.size(0), -1)
        return F.softmax(self.head(y), dim=1)


def _train_a_bit(model: nn.Module) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 1, 8, 8)).sum().backward()
        opt.step()


def test_from_torch_build_round_trip_is_bit_exact() -> None:
    torch.manual_seed(0)
    model = Branchy()
    _train_a_bit(model)  # moves BatchNorm running stats away from their defaults
    model.eval()
    x = torch.randn(5, 1, 8, 8)
    net, tensors = from_torch(model, x)
    assert set(tensors) == set(model.state_dict())
    rebuilt = build_module(net, tensors, strict=True).eval()
    assert torch.equal(rebuilt(x), model(x))
    again = module_tensors(rebuilt)
    assert set(again) == set(tensors)
    assert all(np.array_equal(again[k], tensors[k]) for k in tensors)
    # the rebuilt module loads into the original class too: same state_dict names
    fresh = Branchy().eval()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in again.items()})
    assert torch.equal(fresh(x), model(x))


def test_built_module_trains() -> None:
    torch.manual_seed(0)
    module = build_module(digits_cnn())
    before = module_tensors(module)["conv1.weight"].copy()
    _train_a_bit(module)
    assert not np.array_equal(module_tensors(module)["conv1.weight"], before)
    assert sorted(module_tensors(module)) == [
        "conv1.bias",
        "conv1.weight",
        "conv2.bias",
        "conv2.weight",
        "fc1.bias",
        "fc1.weight",
    ]


def test_inserted_layer_gets_default_init_others_keep_weights() -> None:
    torch.manual_seed(0)
    base = alexnet("AVG")
    tensors = module_tensors(build_module(base))
    # what DQL construct does: split conv1 -> pool1 with relu1
    layers = (*base.layers, Layer("relu1", "ReLU"))
    edges = tuple(e for e in base.edges if e != ("conv1", "pool1"))
    net = NetworkDef(layers, (*edges, ("conv1", "relu1"), ("relu1", "pool1")))
    module = build_module(net, tensors)
    assert net.successors("conv1") == ["relu1"]
    got = module_tensors(module)
    assert all(np.array_equal(got[k], tensors[k]) for k in tensors)
    assert module(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_fc_in_features_inferred_after_flatten() -> None:
    net = digits_cnn()
    fc = net.layer("fc1")
    attrs = {k: v for k, v in fc.attrs.items() if k != "in_features"}
    lazy = NetworkDef(
        tuple(fc.replace(attrs=attrs) if layer.name == "fc1" else layer for layer in net.layers),
        net.edges,
    )
    module = build_module(lazy)
    assert module_tensors(module)["fc1.weight"].shape == (10, 64)


def test_bad_tensors_are_refused() -> None:
    net = digits_cnn()
    with pytest.raises(InvalidInput, match=r"tensor 'fc1.weight' has shape \[3, 3\]"):
        build_module(net, {"fc1.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(InvalidInput, match="'relu1.weight' matches no parameter"):
        build_module(net, {"relu1.weight": np.zeros(3, np.float32)})
    with pytest.raises(InvalidInput, match="no tensors given for"):
        build_module(net, {}, strict=True)
    module = build_module(net, {"other_layer.weight": np.zeros(3, np.float32)})  # ignored
    assert module(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_unbuildable_layers() -> None:
    other = NetworkDef((Layer("x", "Input"), Layer("o", "Other", "", {"op": "Foo"})), (("x", "o"),))
    with pytest.raises(InvalidInput, match="no PyTorch equivalent"):
        build_module(other)
    evil = NetworkDef(
        (
            Layer("x", "Input"),
            Layer(
                "o", "Other", "", {"op": "load", "function": "torch.load", "args": ["/etc/passwd"]}
            ),
        ),
        (("x", "o"),),
    )
    with pytest.raises(InvalidInput, match="'torch.load' is not allowed"):
        build_module(evil)
    bad = NetworkDef(
        (Layer("x", "Input"), Layer("c", "Conv", "", {"kernel_size": [3, 3]})), (("x", "c"),)
    )
    with pytest.raises(InvalidInput, match="lacks attribute 'out_channels'"):
        build_module(bad)
    with pytest.raises(InvalidInput, match="takes 1 input"):
        build_module(digits_cnn())(torch.zeros(1, 1, 8, 8), torch.zeros(1))
