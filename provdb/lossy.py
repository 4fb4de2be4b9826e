"""Lossy float schemes as users name them (``dlv commit --float``, ``float_scheme=``).

The archive (:mod:`storage.codecs`) implements the schemes and records the fitted one in each
tensor's record, so a reader always knows how a tensor was stored. This module maps the
user-facing names to those codecs, decides which tensors a scheme applies to, and names the
scheme a stored record carries. Default: ``lossless`` (bit-exact, no scheme).

A scheme applies to 32- and 64-bit float tensors only; 16- and 8-bit floats, integers and
booleans are always stored losslessly (shape constants of an ONNX graph stay exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from provdb.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

    from storage import Scheme

LOSSLESS = "lossless"

#: User-facing name → (what it stores, worst-case error per element).
FLOAT_SCHEMES: dict[str, tuple[str, str]] = {
    LOSSLESS: ("bit-exact (the default)", "none"),
    "fp16": ("IEEE half precision", "relative 2^-11 (|x| ≤ 65504)"),
    "bf16": ("bfloat16", "relative 2^-8"),
    "fixed16": ("16-bit fixed point, one exponent per tensor", "max|x| · 2^-14"),
    "q8": ("8-bit uniform quantisation to 256 levels", "(max - min) / 510"),
}

#: Largest finite IEEE half-precision value.
FP16_MAX = 65504.0


def check_scheme(name: str | None) -> str:
    """``name`` validated (``None`` is lossless); an unknown name is a one-line error that
    lists the valid ones."""
    chosen = LOSSLESS if name is None else name
    if chosen not in FLOAT_SCHEMES:
        raise InvalidInput(
            f"unknown float scheme {chosen!r}; choose one of {', '.join(FLOAT_SCHEMES)}"
        )
    return chosen


def _codec(name: str) -> Scheme:
    from storage import BFloat16Scheme, FixedPointScheme, Float16Scheme, QuantizeScheme

    codecs: dict[str, Scheme] = {
        "fp16": Float16Scheme(),
        "bf16": BFloat16Scheme(),
        "fixed16": FixedPointScheme(bits=16),
        "q8": QuantizeScheme(bits=8, method="uniform"),
    }
    return codecs[name]


def applies_to(array: np.ndarray) -> bool:
    """Whether a lossy scheme is applied to ``array`` (a 32- or 64-bit float tensor)."""
    return array.dtype.kind == "f" and array.dtype.itemsize >= 4


def schemes_for(
    tensors: Mapping[str, np.ndarray], name: str | None
) -> dict[str, Scheme | None] | None:
    """The archive's per-tensor schemes for ``name`` (``None``: lossless, nothing to pass).
    Refuses fp16 for tensors with values beyond its range (they would become infinite)."""
    import numpy as np

    chosen = check_scheme(name)
    if chosen == LOSSLESS:
        return None
    codec = _codec(chosen)
    out: dict[str, Scheme | None] = {}
    for tname, array in tensors.items():
        if not applies_to(array):
            out[tname] = None
            continue
        finite = array[np.isfinite(array)] if chosen == "fp16" else array[:0]
        if finite.size:
            peak = float(np.abs(finite).max())
            if peak > FP16_MAX:
                raise InvalidInput(
                    f"tensor {tname!r} holds {peak:.4g}, beyond fp16's range (±{FP16_MAX:g}); "
                    "use bf16 or fixed16"
                )
        out[tname] = codec
    return out


def scheme_label(record_scheme: Mapping[str, Any] | None) -> str:
    """The user-facing name of a tensor record's (fitted) scheme dict; ``lossless`` for
    none, the codec's own name for a scheme this module does not offer."""
    if not record_scheme:
        return LOSSLESS
    codec, conf = record_scheme.get("name"), record_scheme.get("configuration") or {}
    if codec == "float16":
        return "fp16"
    if codec == "bfloat16":
        return "bf16"
    if codec == "fixed":
        return f"fixed{conf.get('bits', 16)}"
    if codec == "quantize":
        method = "" if conf.get("method", "uniform") == "uniform" else f"-{conf.get('method')}"
        return f"q{conf.get('bits', 8)}{method}"
    return str(codec)


def summarise(labels: Mapping[str, str]) -> str:
    """One name for a snapshot's tensors: the scheme its lossy tensors share (``lossless``
    when none is lossy, ``mixed`` when they differ)."""
    lossy = {label for label in labels.values() if label != LOSSLESS}
    if not lossy:
        return LOSSLESS
    return lossy.pop() if len(lossy) == 1 else "mixed"
