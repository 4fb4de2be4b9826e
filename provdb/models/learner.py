"""The learner: train and evaluate a network definition with PyTorch on a CPU.

A :class:`TrainConfig` names the data (``builtin:digits`` — scikit-learn's digits, offline — or
an ``.npz`` with ``x_train, y_train, x_test, y_test``), the SGD settings and per-layer learning
rate multipliers by layer-name glob (``{"conv*": 2.0, "fc8": 10.0}``; a multiplier of 0 freezes
the layer). :func:`train` is deterministic for a given ``seed`` and reports metrics and
checkpoints through callbacks, which the SDK turns into a run's records.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from provdb.errors import InvalidInput, TrainingDiverged
from provdb.models.builder import NetworkModule, build_module, materialize, module_tensors
from provdb.models.network import NetworkDef, layer_of

MetricCallback = Callable[[str, float, int], None]
CheckpointCallback = Callable[[int, dict[str, np.ndarray]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; ``from_dict`` also reads DQL's ``{"net": {"conv*": {"lr": m}}}``."""

    base_lr: float = 0.05
    lr_mult: dict[str, float] = field(default_factory=dict)
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    iterations: int = 300
    seed: int = 0
    input_data: str = "builtin:digits"
    eval_every: int = 100
    log_every: int = 10
    checkpoint_every: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        checks = {
            "base_lr": self.base_lr >= 0,
            "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0,
            "batch_size": self.batch_size > 0,
            "iterations": self.iterations >= 0,
            "eval_every": self.eval_every >= 0,
            "log_every": self.log_every >= 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "num_threads": self.num_threads > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidInput(f"config {name}={getattr(self, name)!r} is out of range")
        if any(not isinstance(v, int | float) or v < 0 for v in self.lr_mult.values()):
            raise InvalidInput(f"lr_mult values must be numbers >= 0, got {self.lr_mult}")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config from a dict; unknown keys raise :class:`InvalidInput`."""
        data = dict(data)
        net = data.pop("net", None) or {}
        lr_mult = dict(data.pop("lr_mult", None) or {})
        for glob, settings in net.items():
            if isinstance(settings, Mapping) and "lr" in settings:
                lr_mult[glob] = settings["lr"]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown config keys: {', '.join(unknown)}")
        try:
            return cls(lr_mult=lr_mult, **data)
        except TypeError as exc:
            raise InvalidInput(f"bad config: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """A config from a JSON file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except OSError as exc:
            raise InvalidInput(f"cannot read config {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise InvalidInput(f"config {path} is not valid JSON: {exc}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays; ``x`` is float32 (N, …), ``y`` int64 class indices."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1


@dataclass
class TrainResult:
    """Trained tensors, metric series ``{name: [(step, value), …]}`` and the final test metrics."""

    tensors: dict[str, np.ndarray]
    metrics: dict[str, list[tuple[int, float]]]
    final: dict[str, float]
    seconds: float


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_dataset(spec: str | os.PathLike[str], *, test_only: bool = False) -> Dataset:
    """``builtin:digits`` (8×8 images, 10 classes, a fixed stratified 75/25 split) or an
    ``.npz`` path with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (with ``test_only``,
    for evaluation, just ``x_test`` and ``y_test``: the train split is then empty)."""
    spec = str(spec)
    if spec == "builtin:digits":
        return _digits()
    if spec.startswith("builtin:"):
        raise InvalidInput(f"unknown built-in data set {spec!r}; available: builtin:digits")
    path = Path(spec)
    if not path.is_file():
        raise InvalidInput(f"data set {spec!r}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            needed = _NPZ_KEYS[2:] if test_only else _NPZ_KEYS
            missing = [k for k in needed if k not in npz.files]
            if missing:
                raise InvalidInput(f"data set {spec!r} lacks arrays {', '.join(missing)}")
            arrays = {k: npz[k] for k in needed}
            if test_only:
                x_test = arrays["x_test"]
                arrays["x_train"] = np.zeros((0, *np.shape(x_test)[1:]), np.float32)
                arrays["y_train"] = np.zeros(0, np.int64)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"data set {spec!r} is not a readable .npz ({exc})") from None
    return _dataset(path.name, **arrays)


def _dataset(name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> Dataset:
    xs = (np.asarray(x_train, dtype=np.float32), np.asarray(x_test, dtype=np.float32))
    ys = (np.asarray(y_train).astype(np.int64), np.asarray(y_test).astype(np.int64))
    for x, y, part in ((xs[0], ys[0], "train"), (xs[1], ys[1], "test")):
        if len(x) != len(y) or y.ndim != 1:
            raise InvalidInput(f"data set {name}: x_{part} and y_{part} do not match")
        if y.size and y.min() < 0:
            raise InvalidInput(f"data set {name}: y_{part} has negative labels")
    if not len(ys[1]):
        raise InvalidInput(f"data set {name}: the test split is empty")
    return Dataset(name, xs[0], ys[0], xs[1], ys[1])


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    return _dataset("builtin:digits", x_train, y_train, x_test, y_test)


# ---- helpers ------------------------------------------------------------------------------


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_input(net: NetworkDef, x: np.ndarray) -> np.ndarray:
    """Reshape samples to the ``Input`` layer's shape when only the layout differs."""
    inputs = net.inputs()
    shape = inputs[0].attrs.get("shape") if len(inputs) == 1 else None
    if not isinstance(shape, list) or None in shape or list(x.shape[1:]) == shape:
        return x
    if math.prod(shape) != math.prod(x.shape[1:]):
        raise InvalidInput(
            f"data samples have shape {list(x.shape[1:])}, network input "
            f"{inputs[0].name!r} expects {shape}"
        )
    return x.reshape(len(x), *shape)


def _loss(net: NetworkDef, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; on probabilities when the network ends in ``Softmax``."""
    if net.outputs()[0].type == "Softmax":
        return F.nll_loss(torch.log(out.clamp_min(1e-12)), y)
    return F.cross_entropy(out, y)


def _param_groups(module: NetworkModule, config: TrainConfig) -> list[dict[str, Any]]:
    groups: dict[float, list[nn.Parameter]] = {}
    names = module.net.names
    for pname, param in module.named_parameters():
        layer = layer_of(pname, names) or pname
        mult = next(
            (float(m) for glob, m in config.lr_mult.items() if fnmatch.fnmatchcase(layer, glob)),
            1.0,
        )
        if mult == 0:
            param.requires_grad_(False)
            continue
        groups.setdefault(mult, []).append(param)
    return [{"params": ps, "lr": config.base_lr * m} for m, ps in groups.items()]


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[start : start + batch_size]


def _module_for(net: NetworkDef, tensors: Mapping[str, Any] | None, x: np.ndarray) -> NetworkModule:
    module = build_module(net, tensors)
    materialize(module, torch.from_numpy(x[:2]))
    return module


# ---- public API ---------------------------------------------------------------------------


def train(
    net: NetworkDef,
    tensors: Mapping[str, Any] | None,
    config: TrainConfig,
    on_metric: MetricCallback | None = None,
    on_checkpoint: CheckpointCallback | None = None,
) -> TrainResult:
    """Train ``net`` (starting from ``tensors``; new layers get default init) with SGD.

    Reports ``train_loss`` every ``log_every`` steps and ``test_loss``/``test_accuracy`` every
    ``eval_every`` steps and at the end through ``on_metric(name, value, step)``; calls
    ``on_checkpoint(step, tensors)`` every ``checkpoint_every`` steps and at the end.
    """
    data = load_dataset(config.input_data)
    x_train = _fit_input(net, data.x_train)
    metrics: dict[str, list[tuple[int, float]]] = {}

    def report(name: str, value: float, step: int) -> None:
        metrics.setdefault(name, []).append((step, value))
        if on_metric is not None:
            on_metric(name, value, step)

    started = time.perf_counter()
    with _threads(config.num_threads):
        torch.manual_seed(config.seed)
        module = _module_for(net, tensors, x_train)
        groups = _param_groups(module, config)
        optimizer = torch.optim.SGD(
            groups or [{"params": []}],
            lr=config.base_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        rng = np.random.default_rng(config.seed)
        x_all, y_all = torch.from_numpy(x_train), torch.from_numpy(data.y_train)
        batches = _batches(len(x_all), config.batch_size, rng)
        for step in range(1, config.iterations + 1):
            module.train()
            idx = torch.from_numpy(next(batches))
            loss = _loss(net, module(x_all[idx]), y_all[idx])
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged at step {step} (loss {loss.item()}); lower base_lr",
                    step=step,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if config.log_every and step % config.log_every == 0:
                report("train_loss", float(loss.item()), step)
            last = step == config.iterations
            if (config.eval_every and step % config.eval_every == 0) or last:
                for name, value in _evaluate_module(module, net, data, (1,)).items():
                    if name in ("loss", "accuracy"):
                        report(f"test_{name}", value, step)
            if on_checkpoint is not None and (
                last or (config.checkpoint_every and step % config.checkpoint_every == 0)
            ):
                on_checkpoint(step, module_tensors(module))
        final = _evaluate_module(module, net, data, (1, 5))
    return TrainResult(module_tensors(module), metrics, final, time.perf_counter() - started)


def evaluate(
    net: NetworkDef,
    tensors: Mapping[str, Any] | None,
    data: Dataset | str | os.PathLike[str],
    top_k: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """Test-split metrics: ``accuracy``, ``top<k>`` for each k, mean ``loss`` and ``n``."""
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    module = _module_for(net, tensors, _fit_input(net, dataset.x_test))
    return _evaluate_module(module, net, dataset, top_k)


def _evaluate_module(
    module: NetworkModule, net: NetworkDef, data: Dataset, top_k: tuple[int, ...]
) -> dict[str, float]:
    x = torch.from_numpy(_fit_input(net, data.x_test))
    y = torch.from_numpy(data.y_test)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = torch.cat([module(x[i : i + 512]) for i in range(0, len(x), 512)])
        if out.ndim != 2 or int(y.max()) >= out.shape[1]:
            classes = out.shape[1] if out.ndim == 2 else "?"
            raise InvalidInput(
                f"data set {data.name}: labels go up to {int(y.max())} but the model "
                f"outputs {classes} classes"
            )
        loss = float(_loss(net, out, y).item())
        ranked = out.argsort(dim=1, descending=True)
    module.train(was_training)
    result: dict[str, float] = {"loss": loss, "n": float(len(y))}
    for k in top_k:
        hits = (ranked[:, :k] == y[:, None]).any(dim=1).float().mean().item()
        result[f"top{k}"] = float(hits)
    result["accuracy"] = float((ranked[:, 0] == y).float().mean().item())
    return result
