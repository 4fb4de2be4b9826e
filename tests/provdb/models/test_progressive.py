"""Progressive evaluation: answers from the high byte planes equal full-precision answers."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from provdb.models import learner, zoo
from provdb.models.builder import build_module
from provdb.models.importers import from_onnx, from_torch, to_onnx
from provdb.models.network import Layer, NetworkDef
from provdb.models.progressive import (
    ArchiveReader,
    TensorReader,
    check_supported,
    full_precision_predict,
    interval_forward,
    progressive_evaluate,
)
from storage import Archive, MemoryStore


def _chain(layers: list[Layer]) -> NetworkDef:
    return NetworkDef(tuple(layers), tuple((a.name, b.name) for a, b in zip(layers, layers[1:])))


def _plain_forward(net: NetworkDef, tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The oracle: a plain float32 PyTorch forward pass, argmax per input."""
    module = build_module(net, {k: np.asarray(v, np.float32) for k, v in tensors.items()})
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).argmax(dim=1).numpy()


@pytest.fixture(scope="module")
def digits() -> learner.Dataset:
    return learner.load_dataset("builtin:digits")


@pytest.fixture(scope="module")
def demo_cnn() -> tuple[NetworkDef, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The demo's digits CNN trained briefly; also an earlier checkpoint (for XOR deltas)."""
    net = zoo.digits_cnn(channels=(32, 64))
    checkpoints: dict[int, dict[str, np.ndarray]] = {}
    config = learner.TrainConfig(iterations=300, eval_every=0, log_every=0, checkpoint_every=200)
    result = learner.train(net, None, config, on_checkpoint=lambda s, t: checkpoints.update({s: t}))
    return net, checkpoints[200], result.tensors


def test_demo_cnn_through_xor_deltas_equals_full_precision(demo_cnn, digits) -> None:
    net, earlier, tensors = demo_cnn
    archive = Archive(MemoryStore())
    archive.write_snapshot("v/0", earlier)
    archive.write_snapshot("v/1", tensors, bases=["v/0"])
    assert any(r["base"] for r in archive.stats().per_tensor.values())  # stored as deltas
    reader = ArchiveReader(archive, "v/1")
    result = progressive_evaluate(net, reader, digits.x_test)
    expected = _plain_forward(net, tensors, digits.x_test)
    assert (result.predictions == expected).all()
    assert result.fallback is None
    assert [s.planes for s in result.steps] == [1, 2, 3, 4]
    assert result.steps[1].fraction > 0.9  # most inputs need only 2 of 4 planes
    assert result.steps[-1].fraction == 1.0
    read = [s.bytes_read for s in result.steps]
    assert read == sorted(read)
    assert read[0] == reader.bytes_read(1)
    assert reader.bytes_read(1) < reader.full_bytes
    assert result.to_dict()["steps"][0]["planes"] == 1


def test_byte_count_follows_the_delta_chain(demo_cnn) -> None:
    _, earlier, tensors = demo_cnn
    archive = Archive(MemoryStore())
    archive.write_snapshot("v/0", earlier)
    archive.write_snapshot("v/1", tensors, bases=["v/0"])
    per_tensor = archive.stats().per_tensor
    base, top = ArchiveReader(archive, "v/0"), ArchiveReader(archive, "v/1")

    def expected(reader: ArchiveReader, k: int) -> tuple[int, int]:
        """Own planes of each tensor, plus the same planes of its delta base (one hop here:
        with reverse deltas the older snapshot is the delta of the newer one)."""
        stored = {per_tensor[d]["pack"] or d for d in reader.names.values()}  # small: packed
        own = sum(sum(per_tensor[d]["plane_stored"][:k]) for d in stored)
        bases = {per_tensor[d]["base"] for d in stored} - {None}
        chain = sum(sum(per_tensor[b]["plane_stored"][:k]) for b in bases)
        return own + chain, len(bases)

    for k in (1, 2, 4):
        (want_top, deltas_top), (want_base, deltas_base) = expected(top, k), expected(base, k)
        assert deltas_top + deltas_base  # some tensors are XOR deltas of the other snapshot
        assert top.bytes_read(k) == want_top
        assert base.bytes_read(k) == want_base
    assert top.full_bytes == top.bytes_read(4) > top.bytes_read(2) > top.bytes_read(1)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_weights_take_two_planes(demo_cnn, digits, dtype) -> None:
    net, _, tensors = demo_cnn
    cast = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    half = {k: v.astype(cast) if v.dtype.kind == "f" else v for k, v in tensors.items()}
    archive = Archive(MemoryStore())
    archive.write_snapshot("h", half)
    result = progressive_evaluate(net, ArchiveReader(archive, "h"), digits.x_test)
    assert result.total_planes == 2
    assert len(result.steps) == 2
    assert (result.predictions == _plain_forward(net, half, digits.x_test)).all()


def test_top_k_sets_equal_full_precision(demo_cnn, digits) -> None:
    net, _, tensors = demo_cnn
    result = progressive_evaluate(net, TensorReader(tensors), digits.x_test, top_k=3)
    expected = full_precision_predict(net, tensors, digits.x_test, top_k=3)
    assert result.predictions.shape == (len(digits.x_test), 3)
    assert (result.predictions == expected).all()
    assert result.steps[1].certified > 0


class _OnnxNet(nn.Module):
    """Conv + BatchNorm, a residual Add, a Concat, AVG pooling and global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.conv3 = nn.Conv2d(8, 4, 3, padding=2, dilation=2, stride=1)
        self.pool = nn.AvgPool2d(2)
        self.gpool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(12 * 16 + 12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = h + torch.relu(self.conv2(h))
        h = torch.cat([h, torch.tanh(self.conv3(h))], 1)
        pooled = self.pool(h)
        return self.fc(torch.cat([torch.flatten(pooled, 1), torch.flatten(self.gpool(h), 1)], 1))


def test_onnx_model_equals_full_precision(tmp_path: Path, digits) -> None:
    torch.manual_seed(0)
    model = _OnnxNet()
    with torch.no_grad():  # non-trivial running statistics
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 2.0)
    model.eval()
    net, tensors = from_torch(model, torch.zeros(2, 1, 8, 8))
    to_onnx(net, tensors, tmp_path / "m.onnx")
    onnx_net, onnx_tensors = from_onnx(tmp_path / "m.onnx")
    assert check_supported(onnx_net) is None
    result = progressive_evaluate(onnx_net, TensorReader(onnx_tensors), digits.x_test)
    assert result.fallback is None
    with torch.no_grad():
        expected = model(torch.from_numpy(digits.x_test)).argmax(dim=1).numpy()
    assert (result.predictions == expected).all()
    assert result.steps[1].certified > 0  # the interval pass really answered some


def test_one_plane_cannot_certify_but_two_can() -> None:
    # y0 = 1.5 x, y1 = 1.0 x: both weights share the top byte 0x3F ([0.5, 2)); with two
    # planes they are [1.5, 1.508) and [1.0, 1.008).
    net = _chain(
        [
            Layer("data", "Input", "", {"shape": [1]}),
            Layer("fc", "FC", "", {"in_features": 1, "out_features": 2, "bias": False}),
        ]
    )
    tensors = {"fc.weight": np.array([[1.5], [1.0]], np.float32)}
    result = progressive_evaluate(net, TensorReader(tensors), np.ones((1, 1), np.float32))
    assert [s.certified for s in result.steps] == [0, 1, 1, 1]
    assert [s.read for s in result.steps] == [True, True, False, False]
    assert result.predictions.tolist() == [0]
    assert result.planes_used.tolist() == [2]


def test_unsupported_layer_falls_back_with_a_message(digits) -> None:
    layers = list(zoo.alexnet().layers)  # has an LRN layer, norm1
    net = NetworkDef(tuple(layers), zoo.alexnet().edges)
    torch.manual_seed(0)
    from provdb.models.builder import module_tensors

    tensors = module_tensors(build_module(net))
    reason = check_supported(net)
    assert reason is not None
    assert "norm1" in reason
    assert "LRN" in reason
    result = progressive_evaluate(net, TensorReader(tensors), digits.x_test[:50])
    assert result.fallback == reason
    assert (result.planes_used == 4).all()
    assert (result.predictions == _plain_forward(net, tensors, digits.x_test[:50])).all()


# ---- soundness: the boxes contain the exact and the float32 pre-activations --------------------


@st.composite
def _networks(draw: st.DrawFn) -> tuple[NetworkDef, int]:
    """A random small conv/FC network; returns it and its input channel count."""
    cin = draw(st.integers(1, 3))
    layers = [Layer("data", "Input", "", {"shape": [cin, 6, 6]})]
    channels, size = cin, 6
    for i in range(draw(st.integers(1, 2))):
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
        cout = groups * draw(st.integers(1, 3))
        kernel, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, 2))
        span = dilation * (kernel - 1) + 1
        if size + 2 * pad < span:
            pad = span
        attrs = {
            "in_channels": channels,
            "out_channels": cout,
            "kernel_size": [kernel, kernel],
            "stride": [stride, stride],
            "padding": [pad, pad],
            "dilation": [dilation, dilation],
            "groups": groups,
            "bias": draw(st.booleans()),
        }
        layers.append(Layer(f"conv{i}", "Conv", "", attrs))
        size = (size + 2 * pad - span) // stride + 1
        if draw(st.booleans()):
            layers.append(Layer(f"bn{i}", "BatchNorm", "", {"num_features": cout}))
        act = draw(st.sampled_from(["ReLU", "Tanh", "Sigmoid"]))
        layers.append(Layer(f"act{i}", act))
        if size >= 2 and draw(st.booleans()):
            mode = draw(st.sampled_from(["MAX", "AVG"]))
            layers.append(
                Layer(f"pool{i}", "Pool", mode, {"kernel_size": [2, 2], "stride": [2, 2]})
            )
            size //= 2
        channels = cout
    layers.append(Layer("flatten", "Flatten", "", {"start_dim": 1, "end_dim": -1}))
    layers.append(Layer("fc", "FC", "", {"in_features": channels * size * size, "out_features": 4}))
    return _chain(layers), cin


def _layer_outputs(module: nn.Module, net: NetworkDef, x: torch.Tensor) -> dict[str, np.ndarray]:
    seen: dict[str, np.ndarray] = {}
    hooks = [
        module.get_submodule(layer.name).register_forward_hook(
            lambda m, i, o, name=layer.name: seen.__setitem__(name, o.detach().double().numpy())
        )
        for layer in net.layers
    ]
    with torch.no_grad():
        module(x)
    for hook in hooks:
        hook.remove()
    return seen


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_networks(), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_interval_bounds_contain_exact_pre_activations(spec, planes, seed) -> None:
    net, cin = spec
    torch.manual_seed(seed)
    module = build_module(net)
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        nn.init.uniform_(bn.running_mean, -0.5, 0.5)
        nn.init.uniform_(bn.running_var, 0.1, 2.0)
        nn.init.uniform_(bn.weight, -1.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    module.eval()
    tensors = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    x = np.random.default_rng(seed).normal(size=(5, cin, 6, 6)).astype(np.float32)
    boxes = interval_forward(net, TensorReader(tensors)(planes), x)
    float32 = _layer_outputs(module, net, torch.from_numpy(x))
    exact = _layer_outputs(module.double(), net, torch.from_numpy(x).double())
    for name, (lo, hi) in boxes.items():
        for value in (float32[name], exact[name]):
            assert (lo <= value).all(), name
            assert (value <= hi).all(), name


def test_repository_version(tmp_path: Path, demo_cnn, digits) -> None:
    from provdb.models.progressive import evaluate_version
    from provdb.repository import Repository

    net, earlier, tensors = demo_cnn
    with Repository.init(tmp_path) as repo:
        repo.commit("cnn", net, earlier)
        child = repo.commit("cnn-ft", net, tensors, parent="cnn").version.id
        result = evaluate_version(repo, child, digits.x_test, top_k=1)
    assert (result.predictions == _plain_forward(net, tensors, digits.x_test)).all()
    assert result.full_bytes is not None
    assert result.steps[-1].bytes_read is not None
    assert result.steps[-1].bytes_read <= result.full_bytes
