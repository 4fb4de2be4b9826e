"""Small standard network definitions: a digits CNN and AlexNet-like variants for DQL.

Both take 8×8 single-channel inputs by default (scikit-learn's digits) and stay tiny, so tests
and demos train them in seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from provdb.errors import InvalidInput
from provdb.models.network import Layer, NetworkDef


def _chain(layers: list[Layer]) -> NetworkDef:
    edges = tuple((a.name, b.name) for a, b in zip(layers, layers[1:]))
    return NetworkDef(tuple(layers), edges)


def _conv(name: str, cin: int, cout: int, kernel: int = 3) -> Layer:
    pad = kernel // 2
    return Layer(
        name,
        "Conv",
        "",
        {
            "in_channels": cin,
            "out_channels": cout,
            "kernel_size": [kernel, kernel],
            "stride": [1, 1],
            "padding": [pad, pad],
            "dilation": [1, 1],
            "groups": 1,
            "bias": True,
        },
    )


def _pool(name: str, mode: str) -> Layer:
    return Layer(name, "Pool", mode, {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]})


def _fc(name: str, cin: int, cout: int) -> Layer:
    return Layer(name, "FC", "", {"in_features": cin, "out_features": cout, "bias": True})


def digits_cnn(
    channels: tuple[int, int] = (8, 16),
    num_classes: int = 10,
    input_shape: Sequence[int] = (1, 8, 8),
) -> NetworkDef:
    """``data → conv1 → relu1 → pool1 → conv2 → relu2 → pool2 → flatten → fc1`` for digits."""
    c, h, w = input_shape
    if h % 4 or w % 4:
        raise InvalidInput(f"digits_cnn needs a height and width divisible by 4, got {h}×{w}")
    return _chain(
        [
            Layer("data", "Input", "", {"shape": [c, h, w]}),
            _conv("conv1", c, channels[0]),
            Layer("relu1", "ReLU"),
            _pool("pool1", "MAX"),
            _conv("conv2", channels[0], channels[1]),
            Layer("relu2", "ReLU"),
            _pool("pool2", "MAX"),
            Layer("flatten", "Flatten", "", {"start_dim": 1, "end_dim": -1}),
            _fc("fc1", channels[1] * (h // 4) * (w // 4), num_classes),
        ]
    )


def alexnet(
    pools: str | Sequence[str | None] = "MAX",
    *,
    channels: Sequence[int] = (8, 16, 16, 16, 16),
    hidden: int = 32,
    num_classes: int = 10,
    input_shape: Sequence[int] = (1, 8, 8),
    lrn: bool = True,
    weight_filler: str = "msra",
) -> NetworkDef:
    """An AlexNet-shaped network with the pooling mode after conv1, conv3 and conv5 chosen.

    ``pools`` is one mode for all three places or three entries (``"MAX"``, ``"AVG"`` or
    ``None`` for no pooling). The layers are ``data, conv1, pool1, [norm1], conv2, relu2, conv3,
    pool3, conv4, relu4, conv5, pool5, flatten, fc6, relu6, drop6, fc7, relu7, drop7, fc8``:
    conv1/3/5 are followed directly by their pool (so ``m["conv[1,3,5]"].next has POOL(...)``
    matches, and DQL's construct can insert ``relu$1`` between them); a conv without a pool gets
    a ReLU ``relu<k>`` instead. Every pool halves height and width (2×2, stride 2). Conv and FC
    layers carry ``weight_filler`` (He init by default: this deep, mostly linear stack does not
    train from PyTorch's default init).
    """
    modes = [pools] * 3 if isinstance(pools, str) or pools is None else list(pools)
    if len(modes) != 3 or any(m not in ("MAX", "AVG", None) for m in modes):
        raise InvalidInput(f"pools must be MAX, AVG or None, once or three times, got {pools!r}")
    if len(channels) != 5:
        raise InvalidInput(f"alexnet needs 5 channel counts, got {len(channels)}")
    c, h, w = input_shape
    layers = [Layer("data", "Input", "", {"shape": [c, h, w]})]
    cin = c
    for k, cout in enumerate(channels, start=1):
        layers.append(_conv(f"conv{k}", cin, cout))
        mode = modes[(k - 1) // 2] if k % 2 else None
        if mode is None:
            layers.append(Layer(f"relu{k}", "ReLU"))
        else:
            layers.append(_pool(f"pool{k}", mode))
            h, w = h // 2, w // 2
            if k == 1 and lrn:
                layers.append(
                    Layer("norm1", "LRN", "", {"size": 3, "alpha": 1e-4, "beta": 0.75, "k": 1.0})
                )
        cin = cout
    if h < 1 or w < 1:
        raise InvalidInput(f"input {list(input_shape)} is too small for the pooling chosen")
    layers += [
        Layer("flatten", "Flatten", "", {"start_dim": 1, "end_dim": -1}),
        _fc("fc6", cin * h * w, hidden),
        Layer("relu6", "ReLU"),
        Layer("drop6", "Dropout", "", {"p": 0.5}),
        _fc("fc7", hidden, hidden),
        Layer("relu7", "ReLU"),
        Layer("drop7", "Dropout", "", {"p": 0.5}),
        _fc("fc8", hidden, num_classes),
    ]
    if weight_filler != "default":
        layers = [
            layer.replace(attrs={**layer.attrs, "weight_filler": weight_filler})
            if layer.type in ("Conv", "FC")
            else layer
            for layer in layers
        ]
    return _chain(layers)
