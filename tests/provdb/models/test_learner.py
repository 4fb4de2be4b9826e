"""The learner: real training on scikit-learn's digits (small, CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from provdb.errors import InvalidInput, TrainingDiverged
from provdb.models.learner import TrainConfig, evaluate, load_dataset, train
from provdb.models.network import Layer, NetworkDef
from provdb.models.zoo import digits_cnn


@pytest.fixture(scope="module")
def trained() -> tuple[NetworkDef, object, list, list]:
    metrics: list[tuple[str, float, int]] = []
    checkpoints: list[int] = []
    config = TrainConfig(iterations=300, base_lr=0.05, eval_every=100, checkpoint_every=100)
    result = train(
        digits_cnn(),
        None,
        config,
        on_metric=lambda name, value, step: metrics.append((name, value, step)),
        on_checkpoint=lambda step, tensors: checkpoints.append(step),
    )
    return digits_cnn(), result, metrics, checkpoints


def test_small_cnn_learns_digits(trained) -> None:
    net, result, metrics, checkpoints = trained
    assert result.final["accuracy"] > 0.9
    assert result.final["top5"] >= result.final["accuracy"]
    assert checkpoints == [100, 200, 300]
    assert [step for name, _, step in metrics if name == "test_accuracy"] == [100, 200, 300]
    assert len([m for m in metrics if m[0] == "train_loss"]) == 30
    assert result.metrics["train_loss"][-1][1] < result.metrics["train_loss"][0][1]
    again = evaluate(net, result.tensors, "builtin:digits")
    assert again["accuracy"] == pytest.approx(result.final["accuracy"])
    assert set(again) == {"accuracy", "top1", "top5", "loss", "n"}


def test_training_is_deterministic(trained) -> None:
    net, result, _, _ = trained
    short = TrainConfig(iterations=20, eval_every=0, log_every=0)
    a, b = train(net, None, short), train(net, None, short)
    assert all(np.array_equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_fine_tune_with_frozen_layers_and_lr_multipliers(trained) -> None:
    net, result, _, _ = trained
    config = TrainConfig.from_dict(
        {
            "iterations": 30,
            "base_lr": 0.01,
            "eval_every": 0,
            "net": {"conv*": {"lr": 0}},
            "lr_mult": {"fc1": 2.0},
        }
    )
    assert config.lr_mult == {"fc1": 2.0, "conv*": 0}
    tuned = train(net, result.tensors, config)
    assert np.array_equal(tuned.tensors["conv1.weight"], result.tensors["conv1.weight"])
    assert not np.array_equal(tuned.tensors["fc1.weight"], result.tensors["fc1.weight"])


def test_npz_data_and_flat_inputs(tmp_path: Path) -> None:
    digits = load_dataset("builtin:digits")
    path = tmp_path / "flat.npz"
    np.savez(
        path,
        x_train=digits.x_train.reshape(-1, 64)[:200],
        y_train=digits.y_train[:200],
        x_test=digits.x_test.reshape(-1, 64)[:50],
        y_test=digits.y_test[:50],
    )
    data = load_dataset(path)
    assert data.x_train.shape == (200, 64)
    assert data.num_classes == 10
    # the CNN's Input is (1, 8, 8): flat samples are reshaped to it
    result = train(
        digits_cnn(), None, TrainConfig(iterations=5, input_data=str(path), eval_every=0)
    )
    assert result.final["n"] == 50
    mlp = NetworkDef(
        (
            Layer("x", "Input", "", {"shape": [64]}),
            Layer("fc", "FC", "", {"in_features": 64, "out_features": 10}),
            Layer("prob", "Softmax", "", {"dim": 1}),
        ),
        (("x", "fc"), ("fc", "prob")),
    )
    assert train(mlp, None, TrainConfig(iterations=5, eval_every=0)).final["loss"] > 0


def test_bad_configs_and_data(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown config keys: lr"):
        TrainConfig.from_dict({"lr": 0.1})
    with pytest.raises(InvalidInput, match="batch_size=0 is out of range"):
        TrainConfig(batch_size=0)
    (tmp_path / "c.json").write_text(json.dumps({"base_lr": 0.2, "iterations": 7}))
    assert TrainConfig.from_file(tmp_path / "c.json").iterations == 7
    with pytest.raises(InvalidInput, match="unknown built-in data set"):
        load_dataset("builtin:imagenet")
    with pytest.raises(InvalidInput, match="no such file"):
        load_dataset(tmp_path / "none.npz")
    np.savez(tmp_path / "part.npz", x_train=np.zeros((2, 3)))
    with pytest.raises(InvalidInput, match="lacks arrays y_train, x_test, y_test"):
        load_dataset(tmp_path / "part.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(InvalidInput, match="not a readable .npz"):
        load_dataset(tmp_path / "junk.npz")
    nan_weights = {"fc1.weight": np.full((10, 64), np.nan, np.float32)}
    with pytest.raises(TrainingDiverged, match="diverged at step 1"):
        train(digits_cnn(), nan_weights, TrainConfig(iterations=5, eval_every=0))
