"""Build a trainable PyTorch module from a network definition, and read its tensors back.

:func:`build_module` turns a :class:`~provdb.models.network.NetworkDef` into a
:class:`NetworkModule` whose ``state_dict`` keys are the tensor names of the network format
(``<layer>.<param>``); a layer name with dots (``features.0``, as
:func:`provdb.models.importers.from_torch` keeps them) becomes nested sub-modules, so the
keys equal the original model's. The forward pass runs the layers in topological order;
multi-input layers take their inputs in edge order.

``Other`` layers are buildable when the importer recorded how to rebuild them: ``attrs.module``
(a ``torch.nn`` class and its ``init`` keyword arguments) or ``attrs.function`` (an allow-listed
torch/operator function or tensor method with encoded ``args``/``kwargs``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from provdb.errors import InvalidInput
from provdb.models.network import Layer, NetworkDef, layer_of

# ---- encoded call arguments (shared with provdb.models.importers) --------------------------------

#: ``torch`` functions an ``Other`` layer may call (a network definition is data, never code).
TORCH_FUNCTIONS: frozenset[str] = frozenset(
    "abs add amax amin bmm cat chunk clamp div exp flatten log log_softmax matmul max mean min "
    "mul neg permute pow relu reshape sigmoid softmax split sqrt squeeze stack sub sum tanh "
    "transpose unsqueeze where".split()
)
#: Tensor methods an ``Other`` layer may call.
TENSOR_METHODS: frozenset[str] = frozenset(
    "abs add chunk clamp contiguous div exp expand flatten float max mean min mul neg permute pow "
    "relu repeat reshape sigmoid size softmax split sqrt squeeze sub sum tanh transpose unsqueeze "
    "view __getitem__".split()
)
OPERATORS: frozenset[str] = frozenset(
    "add sub mul truediv floordiv matmul neg getitem pow mod".split()
)


def encode_arg(value: Any, input_index: Callable[[Any], int | None]) -> Any:
    """Encode a call argument as JSON; ``input_index`` maps a graph value to its input number.

    Graph values become ``{"$input": i}``; tuples, slices, dtypes and ``...`` get tagged
    objects; anything else that is not JSON raises :class:`InvalidInput`.
    """
    index = input_index(value)
    if index is not None:
        return {"$input": index}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {"$tuple": [encode_arg(v, input_index) for v in value]}
    if isinstance(value, list):
        return [encode_arg(v, input_index) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"$dict": {k: encode_arg(v, input_index) for k, v in value.items()}}
    if isinstance(value, slice):
        return {
            "$slice": [encode_arg(v, input_index) for v in (value.start, value.stop, value.step)]
        }
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if value is Ellipsis:
        return {"$ellipsis": True}
    raise InvalidInput(f"unsupported argument {value!r} of type {type(value).__name__}")


def decode_arg(value: Any, inputs: Sequence[Any]) -> Any:
    """Inverse of :func:`encode_arg`, with ``{"$input": i}`` replaced by ``inputs[i]``."""
    if isinstance(value, list):
        return [decode_arg(v, inputs) for v in value]
    if not isinstance(value, dict):
        return value
    if "$input" in value:
        return inputs[value["$input"]]
    if "$tuple" in value:
        return tuple(decode_arg(v, inputs) for v in value["$tuple"])
    if "$dict" in value:
        return {k: decode_arg(v, inputs) for k, v in value["$dict"].items()}
    if "$slice" in value:
        return slice(*(decode_arg(v, inputs) for v in value["$slice"]))
    if "$dtype" in value:
        dtype = getattr(torch, str(value["$dtype"]), None)
        if not isinstance(dtype, torch.dtype):
            raise InvalidInput(f"unknown dtype {value['$dtype']!r}")
        return dtype
    if "$ellipsis" in value:
        return Ellipsis
    return value


def resolve_function(spec: str) -> Callable[..., Any]:
    """The callable named by ``spec`` (``torch.cat``, ``torch.nn.functional.gelu``,
    ``operator.add``, ``Tensor.view``), only from the allow-lists."""
    module, _, name = spec.rpartition(".")
    if module == "torch.nn.functional" and not name.startswith("_") and hasattr(F, name):
        return getattr(F, name)
    if module == "torch" and name in TORCH_FUNCTIONS:
        return getattr(torch, name)
    if module == "operator" and name in OPERATORS:
        return getattr(operator, name)
    if module == "Tensor" and name in TENSOR_METHODS:
        return lambda self, *args, **kwargs: getattr(self, name)(*args, **kwargs)
    raise InvalidInput(f"function {spec!r} is not allowed in a network definition")


# ---- layer modules ------------------------------------------------------------------------


class _AnyBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over dimension 1 of an input of any rank (ONNX semantics)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002
        if input.dim() < 2:
            raise ValueError(f"expected an input with at least 2 dimensions, got {input.dim()}")


class _Sum(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class _Concat(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


class _GlobalPool(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, x.dim()))
        return x.amax(dims, keepdim=True) if self.mode == "MAX" else x.mean(dims, keepdim=True)


class _Call(nn.Module):
    """An allow-listed function applied to encoded arguments."""

    def __init__(self, spec: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.fn = resolve_function(spec)
        self.args, self.kwargs = args, kwargs

    def forward(self, *inputs: Any) -> Any:
        return self.fn(*decode_arg(self.args, inputs), **decode_arg(self.kwargs, inputs))

    def extra_repr(self) -> str:
        return self.spec


def _tuple(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,) * dims


def _dims(attrs: Mapping[str, Any], key: str = "kernel_size") -> int:
    value = attrs.get(key)
    return len(value) if isinstance(value, list | tuple) else int(attrs.get("dims", 2))


def _pad_hook(pads: Sequence[int], value: float = 0.0) -> Callable[..., Any]:
    """A forward pre-hook applying ONNX-style ``pads`` (all begins, then all ends)."""
    half = len(pads) // 2
    torch_pads: list[int] = []
    for axis in reversed(range(half)):
        torch_pads += [pads[axis], pads[axis + half]]

    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (F.pad(args[0], torch_pads, value=value), *args[1:])

    return hook


def _conv(layer: Layer) -> nn.Module:
    a = layer.attrs
    dims = _dims(a)
    padding = a.get("padding", 0)
    kwargs = {
        "kernel_size": _tuple(a["kernel_size"], dims),
        "stride": _tuple(a.get("stride", 1), dims),
        "padding": padding if isinstance(padding, str) else _tuple(padding, dims),
        "dilation": _tuple(a.get("dilation", 1), dims),
        "groups": int(a.get("groups", 1)),
        "bias": bool(a.get("bias", True)),
    }
    if "pads" in a:
        kwargs["padding"] = 0
    if a.get("in_channels") is None:
        module: nn.Module = getattr(nn, f"LazyConv{dims}d")(a["out_channels"], **kwargs)
    else:
        module = getattr(nn, f"Conv{dims}d")(a["in_channels"], a["out_channels"], **kwargs)
    if "pads" in a:
        module.register_forward_pre_hook(_pad_hook(a["pads"]))
    return module


def _pool(layer: Layer) -> nn.Module:
    a, mode = layer.attrs, layer.mode
    kind = "Max" if mode == "MAX" else "Avg"
    if a.get("global"):
        return _GlobalPool(mode)
    if a.get("adaptive"):
        dims = _dims(a, "output_size")
        return getattr(nn, f"Adaptive{kind}Pool{dims}d")(a["output_size"])
    dims = _dims(a)
    kwargs: dict[str, Any] = {
        "kernel_size": a["kernel_size"],
        "stride": a.get("stride") or a["kernel_size"],
        "padding": a.get("padding", 0),
        "ceil_mode": bool(a.get("ceil_mode", False)),
    }
    if mode == "MAX":
        kwargs["dilation"] = a.get("dilation", 1)
    else:
        kwargs["count_include_pad"] = bool(a.get("count_include_pad", True))
    return getattr(nn, f"{kind}Pool{dims}d")(**kwargs)


def _fc(layer: Layer) -> nn.Module:
    a = layer.attrs
    bias = bool(a.get("bias", True))
    if a.get("in_features") is None:
        return nn.LazyLinear(a["out_features"], bias=bias)
    return nn.Linear(a["in_features"], a["out_features"], bias=bias)


def _batchnorm(layer: Layer) -> nn.Module:
    a = layer.attrs
    kwargs = {
        "eps": a.get("eps", 1e-5),
        "momentum": a.get("momentum", 0.1),
        "affine": bool(a.get("affine", True)),
        "track_running_stats": bool(a.get("track_running_stats", True)),
    }
    if a.get("num_features") is None:
        return getattr(nn, f"LazyBatchNorm{int(a.get('dims', 2))}d")(**kwargs)
    return _AnyBatchNorm(a["num_features"], **kwargs)


def _other(layer: Layer) -> nn.Module:
    a = layer.attrs
    if "module" in a:
        module_path, _, cls_name = str(a["module"]).rpartition(".")
        cls = getattr(nn, cls_name, None)
        if module_path != "torch.nn" or not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise InvalidInput(f"layer {layer.name!r}: {a['module']!r} is not a torch.nn module")
        try:
            return cls(**decode_arg(a.get("init", {}), ()))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"layer {layer.name!r}: cannot build {a['module']}: {exc}") from None
    if "function" in a:
        return _Call(str(a["function"]), a.get("args", []), a.get("kwargs", {}))
    raise InvalidInput(
        f"cannot build layer {layer.name!r}: type Other (op {a.get('op', '?')!r}) "
        "has no PyTorch equivalent"
    )


_FACTORIES: dict[str, Callable[[Layer], nn.Module]] = {
    "Input": lambda layer: nn.Identity(),
    "Identity": lambda layer: nn.Identity(),
    "Conv": _conv,
    "Pool": _pool,
    "ReLU": lambda layer: nn.ReLU(),
    "Sigmoid": lambda layer: nn.Sigmoid(),
    "Tanh": lambda layer: nn.Tanh(),
    "FC": _fc,
    "Dropout": lambda layer: nn.Dropout(layer.attrs.get("p", 0.5)),
    "BatchNorm": _batchnorm,
    "Flatten": lambda layer: nn.Flatten(
        layer.attrs.get("start_dim", 1), layer.attrs.get("end_dim", -1)
    ),
    "Softmax": lambda layer: nn.Softmax(dim=layer.attrs.get("dim", 1)),
    "LRN": lambda layer: nn.LocalResponseNorm(
        layer.attrs["size"],
        layer.attrs.get("alpha", 1e-4),
        layer.attrs.get("beta", 0.75),
        layer.attrs.get("k", 1.0),
    ),
    "Add": lambda layer: _Sum(),
    "Concat": lambda layer: _Concat(layer.attrs.get("dim", 1)),
    "Embedding": lambda layer: nn.Embedding(
        layer.attrs["num_embeddings"],
        layer.attrs["embedding_dim"],
        padding_idx=layer.attrs.get("padding_idx"),
    ),
    "LayerNorm": lambda layer: nn.LayerNorm(
        layer.attrs["normalized_shape"],
        eps=layer.attrs.get("eps", 1e-5),
        elementwise_affine=layer.attrs.get("elementwise_affine", True),
        bias=layer.attrs.get("bias", True),
    ),
    "Other": _other,
}


def _fill(module: nn.Module, filler: str, layer: Layer) -> None:
    """Caffe-style ``weight_filler``: ``msra`` (He normal), ``xavier`` (Glorot uniform)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, nn.Parameter) or isinstance(weight, nn.UninitializedParameter):
        return
    if filler == "msra":
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
    elif filler == "xavier":
        nn.init.xavier_uniform_(weight)
    else:
        raise InvalidInput(
            f"layer {layer.name!r} has unknown weight_filler {filler!r}; "
            "use msra, xavier or default"
        )
    if isinstance(getattr(module, "bias", None), nn.Parameter):
        nn.init.zeros_(module.bias)  # type: ignore[arg-type]


def layer_module(layer: Layer) -> nn.Module:
    """A fresh PyTorch module for one layer: PyTorch's default initialisation, or the
    ``weight_filler`` attribute (``msra``, ``xavier``) of Conv and FC layers."""
    try:
        module = _FACTORIES[layer.type](layer)
        filler = layer.attrs.get("weight_filler", "default")
        if filler != "default":
            _fill(module, filler, layer)
        return module
    except KeyError as exc:
        raise InvalidInput(f"layer {layer.name!r} ({layer.type}) lacks attribute {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"layer {layer.name!r} ({layer.type}) has bad attributes: {exc}"
        ) from None


# ---- the network module -------------------------------------------------------------------


class NetworkModule(nn.Module):
    """A PyTorch module executing a :class:`NetworkDef` in topological order.

    ``forward(*inputs)`` feeds the root layers (``Input`` layers, or any layer without
    predecessors) in topological order and returns the output layer's value, or a tuple when the
    network has several outputs.
    """

    def __init__(self, net: NetworkDef) -> None:
        super().__init__()
        self.net = net
        self._layers: dict[str, nn.Module] = {}
        for layer in net.layers:
            shared = layer.attrs.get("shared_with")
            if shared is not None and shared in self._layers:
                self._layers[layer.name] = self._layers[shared]
                continue
            module = layer_module(layer)
            self._register(layer.name, module)
            self._layers[layer.name] = module
        self._preds = {layer.name: net.predecessors(layer.name) for layer in net.layers}
        self._roots = [layer.name for layer in net.roots()]
        self._outputs = [layer.name for layer in net.outputs()]

    def _register(self, name: str, module: nn.Module) -> None:
        parts = name.split(".")
        if any(not part for part in parts):
            raise InvalidInput(f"layer name {name!r} has an empty dotted component")
        parent: nn.Module = self
        for i, part in enumerate(parts[:-1]):
            child = parent._modules.get(part)
            if child is None:
                child = nn.Module()
                self._add(parent, part, child, name)
            elif ".".join(parts[: i + 1]) in self._layers:
                raise InvalidInput(f"layer name {name!r} nests inside layer {parts[0]!r}")
            parent = child
        self._add(parent, parts[-1], module, name)

    @staticmethod
    def _add(parent: nn.Module, part: str, module: nn.Module, name: str) -> None:
        if part in parent._modules:
            raise InvalidInput(f"layer name {name!r} clashes with another layer's sub-path")
        try:
            parent.add_module(part, module)
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"layer name {name!r} cannot be a module name: {exc}") from None

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) != len(self._roots):
            raise InvalidInput(
                f"network takes {len(self._roots)} input(s) ({', '.join(self._roots)}), "
                f"got {len(inputs)}"
            )
        values: dict[str, Any] = dict(zip(self._roots, inputs))
        for name, module in self._layers.items():
            if name in values:
                values[name] = module(values[name])
            else:
                values[name] = module(*(values[p] for p in self._preds[name]))
        outs = tuple(values[name] for name in self._outputs)
        return outs[0] if len(outs) == 1 else outs


def build_module(
    net: NetworkDef, tensors: Mapping[str, Any] | None = None, *, strict: bool = False
) -> NetworkModule:
    """A trainable module for ``net``; tensors named ``<layer>.<param>`` are loaded.

    Layers without given tensors keep PyTorch's default initialisation (seed torch's RNG for
    reproducibility). Missing ``in_features``/``in_channels``/``num_features`` are inferred by a
    dry run when the ``Input`` layers have a ``shape``. Tensors of layers not in ``net`` are
    ignored; a tensor naming an unknown parameter of a layer of ``net``, or one with the wrong
    shape, raises :class:`InvalidInput`, as does a missing tensor when ``strict``.
    """
    module = NetworkModule(net)
    _infer_shapes(module, net)
    if tensors is not None:
        load_tensors(module, tensors, strict=strict)
    return module


def _has_lazy(module: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters())


def _infer_shapes(module: NetworkModule, net: NetworkDef) -> None:
    if not _has_lazy(module):
        return
    roots = net.roots()
    if not all(isinstance(layer.attrs.get("shape"), list) for layer in roots):
        return
    materialize(module, *(torch.zeros(2, *layer.attrs["shape"]) for layer in roots))


def materialize(module: nn.Module, *example: torch.Tensor) -> None:
    """Run one no-grad eval-mode forward so lazy layers learn their input sizes."""
    if not _has_lazy(module):
        return
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(*example)
    except RuntimeError as exc:
        raise InvalidInput(f"cannot infer layer shapes: {exc}") from None
    finally:
        module.train(was_training)


def load_tensors(
    module: NetworkModule, tensors: Mapping[str, Any], *, strict: bool = False
) -> None:
    """Copy ``tensors`` (numpy arrays or torch tensors) into ``module`` by name."""
    state = module.state_dict(keep_vars=True)
    names = module.net.names
    chosen: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        owner = layer_of(name, names)
        if owner is None:
            continue
        if name not in state:
            raise InvalidInput(f"tensor {name!r} matches no parameter of layer {owner!r}")
        tensor = value if torch.is_tensor(value) else torch.from_numpy(np.array(value))
        target = state[name]
        lazy = isinstance(target, nn.parameter.UninitializedTensorMixin)  # type: ignore[attr-defined]
        if not lazy and tuple(tensor.shape) != tuple(target.shape):
            raise InvalidInput(
                f"tensor {name!r} has shape {list(tensor.shape)}, layer {owner!r} expects "
                f"{list(target.shape)}"
            )
        chosen[name] = tensor
    missing = sorted(set(state) - set(chosen))
    if strict and missing:
        raise InvalidInput(f"no tensors given for {', '.join(missing)}")
    module.load_state_dict(chosen, strict=False)


def module_tensors(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's ``state_dict`` as numpy arrays (copies); bfloat16 is widened to float32."""
    out: dict[str, np.ndarray] = {}
    for name, value in module.state_dict().items():
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        out[name] = tensor.numpy().copy()
    return out
