"""Progressive evaluation: exact top-1 / top-k answers from the high-order byte planes.

The archive stores every float tensor as byte planes (plane 1 = sign and high exponent bits).
Reading only the top ``k`` planes gives, for every weight, an interval ``[lo, hi]`` holding the
true value. :func:`progressive_evaluate` runs an interval forward pass over those boxes and
*certifies* an input when its answer is the same for every weight vector in the box; the
uncertified inputs (only those) go on to ``k + 1`` planes, and after the last plane they get a
plain full-precision PyTorch forward pass. Every answer therefore equals the full-precision one.

Soundness. The boxes are made to contain not only the exact real-arithmetic value of every
pre-activation but every value PyTorch's float32 forward pass (with the true weights, in any
summation order) can compute:

* accumulation is float64 (numpy matmul, or torch float64 convolution for the window geometry);
* an affine layer with ``n`` terms per output is computed in midpoint-radius form
  (``W = c ± r``, ``x = m ± s``: ``y = c·m ± (|c|·s + r·(|m| + s))``) and its radius is widened
  by ``γ(n) · (|c| + r)·(|m| + s)`` with ``γ(n) = 2γ₃₂(n+2) + 8γ₆₄(n+2)``, ``γ_u(n) = nu/(1-nu)``:
  the classical bound on float32 dot-product rounding (any order, FMA or not), with float64's
  own rounding of the midpoint and radius absorbed in the second term;
* elementwise steps round outward with :func:`numpy.nextafter` and add PyTorch's float32
  rounding of that step (batch norm, average pooling, additions, smooth activations).

The top-1 certificate bounds the difference rows of the last linear layer directly:
``lower((W_c − W_j)·h + b_c − b_j) − γ·(|y_c| + |y_j|) > 0`` for every ``j ≠ c``; top-k
certifies the *set* of the k classes (min lower bound in the set above every other class).

A layer without an interval rule makes the whole evaluation fall back to full precision with a
reason naming the layer (:attr:`ProgressiveResult.fallback`) — never a wrong answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from provdb.errors import InvalidInput
from provdb.models.builder import build_module, decode_arg, layer_module, materialize
from provdb.models.network import Layer, NetworkDef

if TYPE_CHECKING:
    from provdb.repository import Repository
    from storage import Archive
    from storage.records import TensorRecord

Bounds = tuple[np.ndarray, np.ndarray]
#: ``reader(planes) -> {tensor name: (lo, hi)}``; at the last plane ``lo == hi`` (exact).
WeightReader = Callable[[int], Mapping[str, Bounds]]

_U32, _U64 = 2.0**-24, 2.0**-53
_TINY = 2.0**-140  # per-term absolute slack for float32 underflow (subnormal rounding)
_BATCH = 512
#: Activations PyTorch evaluates exactly (piecewise linear with exact breakpoints).
_EXACT_ACTIVATIONS = frozenset({"ReLU", "ReLU6", "Hardtanh"})
#: Monotone non-decreasing ``torch.nn`` activations an ``Other`` layer may hold.
_MONOTONE_MODULES = frozenset(
    {"ReLU", "ReLU6", "Hardtanh", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softplus"}
)
_IDENTITY_TYPES = frozenset({"Input", "Identity", "Dropout"})


def _gamma(n: int) -> float:
    """Relative error allowance for a float32 sum of ``n`` products (plus float64 slack)."""
    a, b = (n + 2) * _U32, (n + 2) * _U64
    return 2 * a / (1 - a) + 8 * b / (1 - b)


class Unsupported(Exception):  # noqa: N818 - a reason, not an error of the caller
    """The interval pass cannot bound this network; ``str()`` names the layer and why."""


class _Unbounded(Exception):  # noqa: N818
    """The weights read so far do not bound some value (an infinite interval end)."""


# ---- weight readers -----------------------------------------------------------------------------


class PlaneReader(Protocol):
    """What :func:`progressive_evaluate` needs from a source of weights.

    ``reader(planes)`` returns ``{name: (lo, hi)}``; ``total_planes`` is the count at which the
    weights are exact; ``bytes_read(planes)`` is the cumulative number of bytes reading the top
    ``planes`` planes costs (or ``None`` when unknown).
    """

    total_planes: int

    def __call__(self, planes: int) -> Mapping[str, Bounds]: ...

    def bytes_read(self, planes: int) -> int | None: ...


def _float_planes(dtype: np.dtype[Any]) -> int:
    return np.dtype(dtype).itemsize if _is_float(dtype) else 1


def _is_float(dtype: np.dtype[Any]) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype.name in ("bfloat16", "float16")


class TensorReader:
    """Byte-plane truncation of in-memory tensors (what the archive would return).

    ``bytes_read(k)`` counts the raw (uncompressed) bytes of the top ``k`` planes.
    """

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        self.tensors = {name: np.ascontiguousarray(t) for name, t in tensors.items()}
        planes = [_float_planes(t.dtype) for t in self.tensors.values()]
        self.total_planes = max(planes, default=1)

    def __call__(self, planes: int) -> dict[str, Bounds]:
        from storage.codecs import bits_view, plane_interval

        out: dict[str, Bounds] = {}
        for name, t in self.tensors.items():
            total = _float_planes(t.dtype)
            if planes >= total:
                out[name] = (t, t)
                continue
            bits = bits_view(t)
            mask = bits.dtype.type(((1 << 8 * planes) - 1) << 8 * (total - planes))
            lo, hi = plane_interval(bits & mask, t.dtype, planes)
            out[name] = (lo.reshape(t.shape), hi.reshape(t.shape))
        return out

    def bytes_read(self, planes: int) -> int:
        return sum(
            t.size * min(planes, _float_planes(t.dtype)) * (t.itemsize // _float_planes(t.dtype))
            for t in self.tensors.values()
        )


class ArchiveReader:
    """Weights of one archive snapshot, read ``planes`` byte planes at a time.

    Bytes are counted from the tensor records (the archive keeps no read counter): reading the
    top ``k`` planes of a tensor costs the stored (compressed, framed) chunk bytes of those
    planes of its own record plus, through an XOR delta chain, the same planes of every base
    down to the materialised root; a ``sub`` delta needs all planes of its whole chain. The
    count is cumulative and counts each chunk once (planes already read are not fetched
    again); manifest and record metadata are not counted. A small tensor stored in its
    snapshot's pack (archive format 3) costs the pack's planes, counted once per reader.
    """

    def __init__(self, archive: Archive, snapshot_id: str) -> None:
        self.archive = archive
        self.snapshot_id = snapshot_id
        self.names: dict[str, str] = dict(archive.manifest(snapshot_id)["tensors"])
        self._records: dict[str, TensorRecord] = {}
        self.total_planes = max((self._record(d).nplanes for d in self.names.values()), default=1)

    def _record(self, digest: str) -> TensorRecord:
        """A tensor's verified record (its planes' stored sizes and delta base)."""
        if digest not in self._records:
            self._records[digest] = self.archive.tensor_record(digest)
        return self._records[digest]

    def _cost(self, digest: str, planes: int, seen: set[tuple[str, int]]) -> int:
        rec = self._record(digest)
        if rec.slot is not None:  # a small tensor stored in its snapshot's pack: read the pack
            return self._cost(rec.slot.pack, planes, seen)
        total = rec.nplanes
        k = min(planes, total)
        delta = rec.delta
        if delta is not None and delta.op != "xor":
            k = total
        cost = 0
        for p in range(k):
            if (digest, p) not in seen:
                seen.add((digest, p))
                cost += int(rec.plane_stored[p])
        if delta is not None:
            cost += self._cost(delta.base, k, seen)
        return cost

    def bytes_read(self, planes: int) -> int:
        seen: set[tuple[str, int]] = set()
        return sum(self._cost(d, planes, seen) for d in self.names.values())

    @property
    def full_bytes(self) -> int:
        """Bytes of reading every plane of every tensor (through delta chains)."""
        return self.bytes_read(self.total_planes)

    def __call__(self, planes: int) -> dict[str, Bounds]:
        if planes >= self.total_planes:
            exact = self.archive.read_snapshot(self.snapshot_id)
            return {name: (t, t) for name, t in exact.items()}
        return {
            name: self.archive.read_interval(self.snapshot_id, name, planes=planes)
            for name in self.names
        }


# ---- interval arithmetic ---------------------------------------------------------------------


def _down(a: np.ndarray) -> np.ndarray:
    return np.nextafter(a, -np.inf)


def _up(a: np.ndarray) -> np.ndarray:
    return np.nextafter(a, np.inf)


@dataclass
class _Box:
    """An interval tensor ``[lo, hi]`` (float64), batch first."""

    lo: np.ndarray
    hi: np.ndarray

    def mid_rad(self) -> tuple[np.ndarray, np.ndarray]:
        """``m ± s`` enclosing the box (``s`` rounded up)."""
        m = self.lo / 2 + self.hi / 2
        s = _up(np.maximum(m - self.lo, self.hi - m))
        return m, s

    def mag(self) -> np.ndarray:
        """``max |x|`` over the box, elementwise."""
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def widen(self, amount: np.ndarray | float) -> _Box:
        return _Box(_down(self.lo - amount), _up(self.hi + amount))


def _from_mid_rad(mid: np.ndarray, rad: np.ndarray) -> _Box:
    return _Box(_down(mid - rad), _up(mid + rad))


def _product(a: _Box, b: _Box) -> _Box:
    """Elementwise interval product (broadcasting), rounded outward."""
    cands = np.stack(np.broadcast_arrays(a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi))
    return _Box(_down(cands.min(axis=0)), _up(cands.max(axis=0)))


def _weight_box(bounds: Bounds, name: str) -> _Box:
    """float64 bounds of a stored tensor; float64 tensors are widened by their float32
    rounding (PyTorch's float32 module rounds them when loading)."""
    lo, hi = (np.asarray(b) for b in bounds)
    if np.dtype(lo.dtype).name == "bfloat16":
        lo, hi = lo.astype(np.float32), hi.astype(np.float32)
    lo64, hi64 = lo.astype(np.float64), hi.astype(np.float64)
    if not (np.isfinite(lo64).all() and np.isfinite(hi64).all()):
        raise _Unbounded(f"tensor {name!r} is not bounded by the planes read")
    box = _Box(lo64, hi64)
    if lo.dtype == np.float64:
        box = box.widen(box.mag() * 2.0**-23 + 2.0**-149)
    return box


@dataclass
class _Affine:
    """A linear map's weights in midpoint-radius form, prepared for one plane count.

    ``rm`` multiplies ``|m|`` and ``rs`` multiplies ``s``; both include the float32 rounding
    allowance ``γ(n)``; ``bias_mid``/``bias_rad`` already include it for the bias term.
    """

    c: np.ndarray
    rm: np.ndarray
    rs: np.ndarray
    mag: np.ndarray  # |c| + r: bounds |w| (for the difference-row certificate)
    bias_mid: np.ndarray
    bias_rad: np.ndarray
    bias_mag: np.ndarray
    gamma: float
    terms: int


def _affine(weight: _Box, bias: _Box | None, terms: int) -> _Affine:
    c, r = weight.mid_rad()
    g = _gamma(terms)
    mag = np.abs(c) + r
    out = weight.lo.shape[0]
    if bias is None:
        bc, br = np.zeros(out), np.zeros(out)
    else:
        bc, br = bias.mid_rad()
    bmag = np.abs(bc) + br
    return _Affine(
        c=c,
        rm=r + g * mag,
        rs=(1 + g) * mag,
        mag=mag,
        bias_mid=bc,
        bias_rad=br + g * bmag + terms * _TINY,
        bias_mag=bmag,
        gamma=g,
        terms=terms,
    )


def _fc_box(x: _Box, a: _Affine) -> _Box:
    m, s = x.mid_rad()
    mid = m @ a.c.T + a.bias_mid
    rad = np.abs(m) @ a.rm.T + a.bias_rad
    if s.any():
        rad = rad + s @ a.rs.T
    return _from_mid_rad(mid, rad)


# ---- the compiled network ------------------------------------------------------------------


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _owner(layer: Layer) -> str:
    return str(layer.attrs.get("shared_with") or layer.name)


class _Step:
    """One layer of the interval pass: ``apply(inputs, weights) -> box``."""

    def __init__(self, layer: Layer, preds: list[str]) -> None:
        self.layer, self.preds = layer, preds

    def prepare(self, weights: Mapping[str, Bounds]) -> Any:
        """Per-plane state computed once from the weights (default: none)."""
        return None

    def apply(self, xs: list[_Box], state: Any) -> _Box:
        raise NotImplementedError

    def _param(self, weights: Mapping[str, Bounds], param: str) -> _Box | None:
        name = f"{_owner(self.layer)}.{param}"
        return _weight_box(weights[name], name) if name in weights else None

    def _required(self, weights: Mapping[str, Bounds], param: str) -> _Box:
        box = self._param(weights, param)
        if box is None:
            raise InvalidInput(
                f"no tensor {_owner(self.layer)}.{param} for layer {self.layer.name!r}"
            )
        return box


class _Identity(_Step):
    def apply(self, xs: list[_Box], state: Any) -> _Box:
        return xs[0]


class _FC(_Step):
    def prepare(self, weights: Mapping[str, Bounds]) -> _Affine:
        w = self._required(weights, "weight")
        bias = self._param(weights, "bias") if self.layer.attrs.get("bias", True) else None
        return _affine(w, bias, w.lo.shape[1] + 1)

    def apply(self, xs: list[_Box], state: _Affine) -> _Box:
        x = xs[0]
        if x.lo.ndim != 2:
            flat = x.lo.shape[:-1]
            y = _fc_box(
                _Box(x.lo.reshape(-1, x.lo.shape[-1]), x.hi.reshape(-1, x.hi.shape[-1])), state
            )
            return _Box(y.lo.reshape(*flat, -1), y.hi.reshape(*flat, -1))
        return _fc_box(x, state)


class _Conv(_Step):
    """Convolution in midpoint-radius form, the window geometry (stride, padding incl.
    ``"same"`` and ONNX ``pads``, dilation, groups) by the builder's own module in float64."""

    def prepare(self, weights: Mapping[str, Bounds]) -> tuple[torch.nn.Module, _Affine, int]:
        w = self._required(weights, "weight")
        bias = self._param(weights, "bias") if self.layer.attrs.get("bias", True) else None
        attrs = dict(self.layer.attrs)
        groups = int(attrs.get("groups", 1))
        attrs["in_channels"] = int(w.lo.shape[1]) * groups
        attrs["out_channels"] = int(w.lo.shape[0])
        attrs["bias"] = False
        module = layer_module(self.layer.replace(attrs=attrs)).double().eval()
        terms = int(np.prod(w.lo.shape[1:])) + 1
        flat = _Box(w.lo.reshape(len(w.lo), -1), w.hi.reshape(len(w.hi), -1))
        a = _affine(flat, bias, terms)
        return module, a, w.lo.ndim - 2

    def apply(self, xs: list[_Box], state: tuple[Any, _Affine, int]) -> _Box:
        module, a, dims = state
        m, s = xs[0].mid_rad()
        kernel = module.weight.shape

        def conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
            params = {"weight": _t(w.reshape(kernel))}
            with torch.no_grad():
                return _np(torch.func.functional_call(module, params, (_t(x),)))

        bshape = (1, -1) + (1,) * dims
        mid = conv(m, a.c) + a.bias_mid.reshape(bshape)
        rad = conv(np.abs(m), a.rm) + a.bias_rad.reshape(bshape)
        if s.any():
            rad = rad + conv(s, a.rs)
        return _from_mid_rad(mid, rad)


class _BatchNorm(_Step):
    """Eval-mode batch norm folded to a per-channel interval scale and shift."""

    def prepare(self, weights: Mapping[str, Bounds]) -> tuple[_Box, _Box, np.ndarray]:
        a = self.layer.attrs
        if not a.get("track_running_stats", True):
            raise Unsupported(
                f"layer {self.layer.name!r} (BatchNorm) uses batch statistics in eval mode"
            )
        mean = self._required(weights, "running_mean")
        var = self._required(weights, "running_var")
        eps = float(a.get("eps", 1e-5))
        if a.get("affine", True):
            w, b = self._required(weights, "weight"), self._required(weights, "bias")
        else:
            w = _Box(np.ones_like(mean.lo), np.ones_like(mean.lo))
            b = _Box(np.zeros_like(mean.lo), np.zeros_like(mean.lo))
        if (var.lo + eps <= 0).any():
            raise _Unbounded(f"running_var of {self.layer.name!r} may be ≤ -eps")
        inv = _Box(
            (1 / np.sqrt(var.hi + eps)) * (1 - 8 * _U64),
            (1 / np.sqrt(var.lo + eps)) * (1 + 8 * _U64),
        )
        scale = _product(w, inv)
        shift = _Box(_down(b.lo - _product(mean, scale).hi), _up(b.hi - _product(mean, scale).lo))
        # PyTorch's float32 rounding: a few operations on terms no larger than these
        mag = (mean.mag() * inv.hi * w.mag(), inv.hi * w.mag(), b.mag())
        return scale, shift, np.stack(mag)

    def apply(self, xs: list[_Box], state: tuple[_Box, _Box, np.ndarray]) -> _Box:
        scale, shift, mag = state
        x = xs[0]
        shape = (1, -1) + (1,) * (x.lo.ndim - 2)

        def ch(b: _Box) -> _Box:
            return _Box(b.lo.reshape(shape), b.hi.reshape(shape))

        y = _product(x, ch(scale))
        y = _Box(_down(y.lo + ch(shift).lo), _up(y.hi + ch(shift).hi))
        size = x.mag() * mag[1].reshape(shape) + (mag[0] + mag[2]).reshape(shape)
        return y.widen(_gamma(16) * size + _TINY)


class _Monotone(_Step):
    """A monotone non-decreasing elementwise activation, through the builder's module."""

    def __init__(self, layer: Layer, preds: list[str], kind: str) -> None:
        super().__init__(layer, preds)
        self.kind = kind
        self.module = layer_module(layer).double().eval()

    def apply(self, xs: list[_Box], state: Any) -> _Box:
        x = xs[0]
        with torch.no_grad():
            lo, hi = _np(self.module(_t(x.lo))), _np(self.module(_t(x.hi)))
        y = _Box(_down(lo), _up(hi))
        if self.kind in _EXACT_ACTIVATIONS:
            return y
        # float32 library functions: a few ulps relative, plus absolute slack near 0
        return y.widen(y.mag() * 2.0**-16 + 2.0**-40)


class _Pool(_Step):
    """MAX / AVG pooling (also adaptive and global) by the builder's own module in float64:
    MAX is exact on each end; AVG is monotone and gets its float32 rounding added."""

    def __init__(self, layer: Layer, preds: list[str]) -> None:
        super().__init__(layer, preds)
        self.module = layer_module(layer).double().eval()

    def apply(self, xs: list[_Box], state: Any) -> _Box:
        x = xs[0]
        with torch.no_grad():
            lo, hi = _np(self.module(_t(x.lo))), _np(self.module(_t(x.hi)))
        if self.layer.mode == "MAX":
            return _Box(lo, hi)
        with torch.no_grad():
            mag = _np(self.module(_t(x.mag())))
        terms = self._window(x.lo.shape[2:])
        return _Box(lo, hi).widen(_gamma(terms) * mag + _TINY)

    def _window(self, spatial: tuple[int, ...]) -> int:
        """An upper bound on the elements one output averages."""
        a = self.layer.attrs
        if a.get("global") or a.get("adaptive"):
            return int(np.prod(spatial))
        kernel = a["kernel_size"]
        kernel = kernel if isinstance(kernel, list | tuple) else [kernel] * len(spatial)
        return int(np.prod(kernel))


class _Flatten(_Step):
    def __init__(self, layer: Layer, preds: list[str]) -> None:
        super().__init__(layer, preds)
        if int(layer.attrs.get("start_dim", 1)) == 0:
            raise Unsupported(f"layer {layer.name!r} (Flatten) flattens the batch dimension")
        self.module = layer_module(layer)

    def apply(self, xs: list[_Box], state: Any) -> _Box:
        x = xs[0]
        return _Box(_np(self.module(_t(x.lo))), _np(self.module(_t(x.hi))))


class _Add(_Step):
    def apply(self, xs: list[_Box], state: Any) -> _Box:
        lo, hi, mag = xs[0].lo, xs[0].hi, xs[0].mag()
        for x in xs[1:]:
            lo, hi, mag = _down(lo + x.lo), _up(hi + x.hi), mag + x.mag()
        return _Box(lo, hi).widen(_gamma(len(xs)) * mag)


class _Concat(_Step):
    def apply(self, xs: list[_Box], state: Any) -> _Box:
        dim = int(self.layer.attrs.get("dim", 1))
        dim = dim if dim >= 0 else dim + xs[0].lo.ndim
        if dim == 0:
            raise Unsupported(f"layer {self.layer.name!r} (Concat) concatenates along the batch")
        return _Box(
            np.concatenate([x.lo for x in xs], axis=dim),
            np.concatenate([x.hi for x in xs], axis=dim),
        )


def _other_activation(layer: Layer) -> str | None:
    """The ``torch.nn`` class of a monotone ``Other`` layer, else ``None``."""
    spec = str(layer.attrs.get("module", ""))
    path, _, cls = spec.rpartition(".")
    if path != "torch.nn" or cls not in _MONOTONE_MODULES:
        return None
    init = decode_arg(layer.attrs.get("init", {}), ())
    if cls == "LeakyReLU" and float(init.get("negative_slope", 0.01)) < 0:
        return None
    if cls == "ELU" and float(init.get("alpha", 1.0)) < 0:
        return None
    return cls


def _step(layer: Layer, preds: list[str]) -> _Step:
    kind = layer.type
    if kind in _IDENTITY_TYPES:
        return _Identity(layer, preds)
    if kind == "FC":
        return _FC(layer, preds)
    if kind == "Conv":
        return _Conv(layer, preds)
    if kind == "BatchNorm":
        return _BatchNorm(layer, preds)
    if kind in ("ReLU", "Sigmoid", "Tanh"):
        return _Monotone(layer, preds, kind)
    if kind == "Pool":
        return _Pool(layer, preds)
    if kind == "Flatten":
        return _Flatten(layer, preds)
    if kind == "Add":
        return _Add(layer, preds)
    if kind == "Concat":
        return _Concat(layer, preds)
    if kind == "Other" and (cls := _other_activation(layer)) is not None:
        return _Monotone(layer, preds, cls)
    detail = f" (op {layer.attrs['op']!r})" if kind == "Other" and "op" in layer.attrs else ""
    reason = "is not at the output" if kind == "Softmax" else "has no interval rule"
    raise Unsupported(f"layer {layer.name!r} ({kind}{detail}) {reason}")


@dataclass
class _Plan:
    """The network compiled for the interval pass."""

    steps: list[_Step]
    root: str
    body_output: str  # the layer whose box feeds the head
    head: _FC | None  # the last linear layer, certified by difference rows
    softmax: bool  # a trailing Softmax (argmax-invariant; needs a strict margin)


def compile_network(net: NetworkDef) -> _Plan:
    """Compile ``net`` for the interval pass; raises :class:`Unsupported` with the reason."""
    roots, outputs = net.roots(), net.outputs()
    if len(roots) != 1 or len(outputs) != 1:
        raise Unsupported(
            f"network has {len(roots)} input(s) and {len(outputs)} output(s); "
            "progressive evaluation needs one of each"
        )
    tail, softmax = outputs[0], False
    while tail.type in ("Softmax", "Dropout", "Identity") and len(net.predecessors(tail.name)) == 1:
        if tail.type == "Softmax":
            if softmax or int(tail.attrs.get("dim", 1)) not in (1, -1):
                raise Unsupported(f"layer {tail.name!r} (Softmax) is not over the class dim")
            softmax = True
        tail = net.layer(net.predecessors(tail.name)[0])
    head: _FC | None = None
    body_output = tail.name
    if tail.type == "FC" and net.predecessors(tail.name):
        head = _FC(tail, net.predecessors(tail.name))
        body_output = head.preds[0]
    order = [layer.name for layer in net.layers]
    stop = order.index(tail.name) + (0 if head is not None else 1)
    steps = [_step(layer, net.predecessors(layer.name)) for layer in net.layers[:stop]]
    if head is None and tail.type == "Softmax":
        raise Unsupported(f"layer {tail.name!r} (Softmax) has nothing to certify before it")
    return _Plan(steps, roots[0].name, body_output, head, softmax)


def check_supported(net: NetworkDef) -> str | None:
    """``None`` when progressive evaluation can bound ``net``, else the reason it cannot."""
    try:
        compile_network(net)
    except Unsupported as exc:
        return str(exc)
    return None


def _forward(plan: _Plan, states: list[Any], x: np.ndarray) -> dict[str, _Box]:
    """The interval pass from an exact input batch up to the head's input: every layer's box."""
    x64 = x.astype(np.float64)
    values: dict[str, _Box] = {plan.root: _Box(x64, x64)}
    for step, state in zip(plan.steps, states):
        name = step.layer.name
        inputs = [values[p] for p in step.preds] if step.preds else [values[name]]
        values[name] = step.apply(inputs, state)
    return values


def interval_forward(
    network: NetworkDef, weights: Mapping[str, Bounds], x: np.ndarray
) -> dict[str, Bounds]:
    """``{layer name: (lo, hi)}`` bounding every layer's output (up to the last linear layer,
    before a trailing Softmax) for exact inputs ``x`` and weights in ``weights``; each box
    holds the exact value and PyTorch's float32 value for every weight vector in the boxes.
    Raises :class:`Unsupported` for a network it cannot bound."""
    plan = compile_network(network)
    states = [step.prepare(weights) for step in plan.steps]
    values = _forward(plan, states, _fit_input(network, x))
    if plan.head is not None:
        values[plan.head.layer.name] = _fc_box(values[plan.body_output], plan.head.prepare(weights))
    return {name: (box.lo, box.hi) for name, box in values.items()}


# ---- certification ----------------------------------------------------------------------------


def _choose(mid: np.ndarray, k: int) -> np.ndarray:
    """The k classes with the largest midpoints, a boolean ``(N, C)`` membership mask."""
    top = np.argsort(-mid, axis=1, kind="stable")[:, :k]
    chosen = np.zeros(mid.shape, bool)
    np.put_along_axis(chosen, top, True, axis=1)
    return chosen


def _softmax_margin(out: _Box) -> np.ndarray:
    """Margin a trailing float32 softmax needs to keep a strict order of probabilities."""
    spread = out.hi.max(axis=1) - out.lo.min(axis=1)
    return 2.0**-16 + 2.0**-20 * spread


def _certify_head(h: _Box, head: _Affine, k: int, softmax: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(certified, chosen)`` by difference rows ``(W_a − W_j)·h + b_a − b_j``."""
    out = _fc_box(h, head)
    chosen = _choose(out.lo / 2 + out.hi / 2, k)
    m, s = h.mid_rad()
    am = np.abs(m)
    size = (am + s) @ head.mag.T + head.bias_mag  # bounds |y| for every weight in the box
    margin = _softmax_margin(out) if softmax else np.zeros(len(m))
    ok = np.ones(len(m), bool)
    for a in range(head.c.shape[0]):
        rows = np.flatnonzero(chosen[:, a] & ok)
        if not len(rows):
            continue
        dm = head.c[a] - head.c
        dr = (head.rm[a] + head.rm) - head.gamma * (head.mag[a] + head.mag)
        lower = m[rows] @ dm.T - am[rows] @ dr.T - s[rows] @ (np.abs(dm) + dr).T
        lower += (head.bias_mid[a] - head.bias_mid) - (head.bias_rad[a] + head.bias_rad)
        lower -= head.gamma * (size[rows, a, None] + size[rows]) * (1 + 4 * _U64)
        lower -= 2 * head.terms * _TINY
        others = ~chosen[rows]
        ok[rows] = np.where(others, lower > margin[rows, None], True).all(axis=1)
    if softmax and k > 1:
        ok &= _softmax_normal(out, chosen)
    return ok, chosen


def _softmax_normal(out: _Box, chosen: np.ndarray) -> np.ndarray:
    """Every chosen class's probability stays far from float32 underflow."""
    low = np.where(chosen, out.lo, np.inf).min(axis=1)
    return low - out.hi.max(axis=1) > -80.0


def _certify_box(out: _Box, k: int, softmax: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(certified, chosen)`` from the output box: min lower in the set > max upper outside."""
    if out.lo.ndim != 2:
        raise Unsupported(f"network output has shape {list(out.lo.shape[1:])}, not (classes,)")
    chosen = _choose(out.lo / 2 + out.hi / 2, k)
    inside = np.where(chosen, out.lo, np.inf).min(axis=1)
    outside = np.where(chosen, -np.inf, out.hi).max(axis=1)
    margin = _softmax_margin(out) if softmax else 0.0
    ok = inside - outside > margin
    if softmax and k > 1:
        ok &= _softmax_normal(out, chosen)
    return ok, chosen


def _labels(chosen: np.ndarray, k: int) -> np.ndarray:
    """Class ids of a membership mask: ``(N,)`` for top-1, ascending ``(N, k)`` sets else."""
    ids = np.sort(np.argsort(~chosen, axis=1, kind="stable")[:, :k], axis=1)
    return ids[:, 0] if k == 1 else ids


def _certify_plane(
    plan: _Plan, weights: Mapping[str, Bounds], x: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(certified mask, labels)`` of the inputs ``x`` with the weights of one plane count."""
    states = [step.prepare(weights) for step in plan.steps]
    head = plan.head.prepare(weights) if plan.head is not None else None
    oks, labels = [], []
    for start in range(0, len(x), _BATCH):
        h = _forward(plan, states, x[start : start + _BATCH])[plan.body_output]
        if head is not None:
            ok, chosen = _certify_head(h, head, k, plan.softmax)
        else:
            ok, chosen = _certify_box(h, k, plan.softmax)
        oks.append(ok)
        labels.append(_labels(chosen, k))
    return np.concatenate(oks), np.concatenate(labels)


# ---- exact fallback ------------------------------------------------------------------------


def _exact_tensors(weights: Mapping[str, Bounds]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, (lo, hi) in weights.items():
        lo, hi = np.asarray(lo), np.asarray(hi)
        if lo.tobytes() != hi.tobytes():
            raise InvalidInput(f"the reader's last plane is not exact for tensor {name!r}")
        out[name] = lo.astype(np.float32) if lo.dtype.name == "bfloat16" else lo
    return out


def full_precision_predict(
    net: NetworkDef, tensors: Mapping[str, np.ndarray], x: np.ndarray, *, top_k: int = 1
) -> np.ndarray:
    """A plain PyTorch forward pass (eval mode, float32, batches of 512; samples reshaped to
    the ``Input`` shape like the learner does): argmax for top-1, else the top-k classes as
    ascending sets."""
    module = build_module(net, tensors)
    xt = torch.from_numpy(_fit_input(net, x))
    materialize(module, xt[:2])
    module.eval()
    with torch.no_grad():
        out = torch.cat([module(xt[i : i + _BATCH]) for i in range(0, len(xt), _BATCH)])
    if top_k == 1:
        return out.argmax(dim=1).numpy()
    return np.sort(out.topk(top_k, dim=1).indices.numpy(), axis=1)


# ---- the public entry point ----------------------------------------------------------------


@dataclass(frozen=True)
class PlaneStep:
    """Cumulative figures after reading ``planes`` byte planes."""

    planes: int
    certified: int  # inputs answered with at most this many planes
    fraction: float
    bytes_read: int | None  # cumulative bytes read from the weight source
    seconds: float  # cumulative wall time (reading + interval passes + fallback)
    read: bool  # whether this plane count was read at all (False: nothing was left)
    note: str = ""  # e.g. why a plane count certified nothing

    def to_dict(self) -> dict[str, Any]:
        return {
            "planes": self.planes,
            "certified": self.certified,
            "fraction": self.fraction,
            "bytes_read": self.bytes_read,
            "seconds": self.seconds,
            "read": self.read,
            "note": self.note,
        }


@dataclass(frozen=True)
class ProgressiveResult:
    """What :func:`progressive_evaluate` found.

    ``predictions`` is ``(N,)`` class ids for top-1, else ``(N, k)`` ascending class sets;
    ``planes_used[i]`` is the plane count that decided input ``i``; ``steps`` has one entry per
    plane count ``1 … total_planes``; ``fallback`` is the reason the interval pass was not used
    (then every input is answered at full precision).
    """

    predictions: np.ndarray
    planes_used: np.ndarray
    steps: tuple[PlaneStep, ...]
    top_k: int
    total_planes: int
    full_bytes: int | None = None
    fallback: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.planes_used)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (predictions as lists)."""
        return {
            "n": self.n,
            "top_k": self.top_k,
            "total_planes": self.total_planes,
            "steps": [s.to_dict() for s in self.steps],
            "full_bytes": self.full_bytes,
            "fallback": self.fallback,
            "seconds": self.seconds,
            "predictions": self.predictions.tolist(),
            "planes_used": self.planes_used.tolist(),
        }


def _fit_input(net: NetworkDef, x: np.ndarray) -> np.ndarray:
    """float32 samples reshaped to the root ``Input`` layer's shape when only the layout differs."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    roots = net.roots()
    shape = roots[0].attrs.get("shape") if len(roots) == 1 else None
    if not isinstance(shape, list) or None in shape or list(x.shape[1:]) == shape:
        return x
    if math.prod(shape) != math.prod(x.shape[1:]):
        raise InvalidInput(f"samples have shape {list(x.shape[1:])}, the network expects {shape}")
    return x.reshape(len(x), *shape)


def progressive_evaluate(
    network: NetworkDef,
    reader: WeightReader,
    x: np.ndarray,
    *,
    top_k: int = 1,
    total_planes: int | None = None,
) -> ProgressiveResult:
    """Answer top-1 (or top-k set) queries for every input of ``x`` reading as few byte planes
    as possible; every answer equals a full-precision PyTorch forward pass.

    ``reader(planes)`` gives ``{tensor name: (lo, hi)}`` (exact at ``total_planes``, which
    defaults to ``reader.total_planes``); ``reader.bytes_read(planes)``, when present, gives
    the cumulative bytes. Plane counts run 1 … total; at each, only the inputs not yet
    certified are evaluated; the last plane answers the rest with PyTorch.
    """
    started = time.perf_counter()
    total = int(total_planes or getattr(reader, "total_planes", 0) or 0)
    if total < 1:
        raise InvalidInput("total_planes is unknown: pass it or give the reader total_planes")
    x = _fit_input(network, x)
    n = len(x)
    num_classes = _num_classes(network)
    if not 1 <= top_k <= max(num_classes, 1):
        raise InvalidInput(f"top_k must be between 1 and {num_classes}, got {top_k}")
    counter = getattr(reader, "bytes_read", None)
    shape = (n,) if top_k == 1 else (n, top_k)
    predictions = np.zeros(shape, np.int64)
    planes_used = np.zeros(n, np.int64)
    fallback = check_supported(network)
    plan = compile_network(network) if fallback is None else None
    steps: list[PlaneStep] = []
    remaining = np.arange(n)
    for planes in range(1, total + 1):
        if not len(remaining):
            last = steps[-1] if steps else PlaneStep(0, 0, 1.0, 0 if counter else None, 0.0, False)
            steps.append(PlaneStep(planes, n, 1.0, last.bytes_read, last.seconds, False))
            continue
        note = ""
        if planes < total and plan is None:
            steps.append(PlaneStep(planes, 0, 0.0, 0 if counter else None, 0.0, False, "fallback"))
            continue
        weights = reader(planes)
        if planes == total:
            tensors = _exact_tensors(weights)
            predictions[remaining] = full_precision_predict(
                network, tensors, x[remaining], top_k=top_k
            )
            planes_used[remaining] = planes
            remaining = remaining[:0]
        else:
            assert plan is not None
            try:
                ok, labels = _certify_plane(plan, weights, x[remaining], top_k)
            except _Unbounded as exc:
                note = str(exc)
                ok = np.zeros(len(remaining), bool)
                labels = predictions[remaining]
            done = remaining[ok]
            predictions[done] = labels[ok]
            planes_used[done] = planes
            remaining = remaining[~ok]
        certified = n - len(remaining)
        steps.append(
            PlaneStep(
                planes,
                certified,
                certified / n if n else 1.0,
                counter(planes) if counter else None,
                time.perf_counter() - started,
                True,
                note,
            )
        )
    full = getattr(reader, "full_bytes", None)
    if full is None and counter:
        full = counter(total)
    return ProgressiveResult(
        predictions=predictions,
        planes_used=planes_used,
        steps=tuple(steps),
        top_k=top_k,
        total_planes=total,
        full_bytes=full,
        fallback=fallback,
        seconds=time.perf_counter() - started,
    )


def _num_classes(net: NetworkDef) -> int:
    """Output width when an FC layer (possibly behind Softmax/Dropout) makes the output."""
    for layer in reversed(net.layers):
        if layer.type == "FC":
            return int(layer.attrs.get("out_features", 0))
        if layer.type not in ("Softmax", "Dropout", "Identity"):
            break
    return 1 << 30


def evaluate_version(
    repo: Repository, ref: str, x: np.ndarray, *, top_k: int = 1
) -> ProgressiveResult:
    """:func:`progressive_evaluate` of a repository version on samples ``x``, reading its
    latest snapshot from the repository's archive."""
    from provdb import versioning as vs

    version = repo.resolve(ref)
    snapshot = vs.latest_snapshot(repo.graph, version.id)
    reader = ArchiveReader(repo.archive, snapshot.id)
    return progressive_evaluate(vs.network_of(version), reader, x, top_k=top_k)
