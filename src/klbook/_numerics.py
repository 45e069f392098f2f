"""Accurate building blocks for the closed forms.

Every KL in this package reduces to sums of non-negative terms of the form

    g(v) = e^v - 1 - v  >= 0,    v = log of a ratio,

which the textbook formulas evaluate by subtracting nearly equal numbers (``sigma**2 - 1 - log(sigma**2)``
near sigma = 1, ``1 + logvar - exp(logvar)`` near logvar = 0). Here:

* the log of a ratio a/b is computed without first rounding a/b when a is close to b (``log_ratio``);
* g(v) is a Taylor series where it would cancel, ``expm1(v) - v`` where it does not (``half_g_moderate``),
  and callers switch to a form that uses the ratio itself when |v| is large, because ``exp`` amplifies
  the absolute error of its argument;
* a difference of two floats is carried with its exact rounding error (``two_diff``) where ``exp`` of it
  must be accurate.

All functions take the array namespace ``xp`` and float64 arrays, and are written so that autograd
gradients stay finite: a branch that is not selected is fed a harmless value, never inf or NaN.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ._array import _is_torch

TINY = float(np.finfo(np.float64).tiny)
# 1/2 ln(2 pi), the normalising constant of every Gaussian log-density in the package.
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
HUGE = float(np.finfo(np.float64).max)

# |v| <= SERIES_LIMIT uses the series; SERIES_LIMIT < |v| <= MODERATE_LIMIT uses expm1(v) - v;
# beyond MODERATE_LIMIT the callers use the ratio directly.
SERIES_LIMIT = 0.5
MODERATE_LIMIT = 4.0

# Taylor coefficients of (e^v - 1 - v) / (2 v^2) = sum_k v^k / (2 (k+2)!); 15 terms give < 1e-17
# relative truncation error for |v| <= 1/2. Beyond 1/2, expm1(v) - v cancels by at most a factor ~4.
_HALF_G_COEFFS = [1.0 / (2.0 * math.factorial(k + 2)) for k in range(15)]


def all_true(xp: Any, mask: Any) -> bool:
    """True if every entry of ``mask`` is; lets the common case skip branches no entry needs."""
    return bool(xp.all(mask))


def where_safe(xp: Any, cond: Any, x: Any, fill: float) -> Any:
    """``x`` where ``cond`` holds, else the harmless constant ``fill`` (keeps unselected branches finite)."""
    return xp.where(cond, x, fill)


def half_g_series(xp: Any, v: Any) -> Any:
    """(e^v - 1 - v) / 2 by its Taylor series; accurate to a few ULP for |v| <= SERIES_LIMIT."""
    # Horner's rule in place on a fresh accumulator (never part of an autograd graph: under autograd
    # this runs inside HalfG.forward), so no temporary array is allocated per coefficient.
    acc = xp.full_like(v, _HALF_G_COEFFS[-1])
    for c in reversed(_HALF_G_COEFFS[:-1]):
        acc *= v
        acc += c
    return acc * v * v


def half_g_moderate(xp: Any, v: Any) -> Any:
    """(e^v - 1 - v) / 2, accurate for |v| <= MODERATE_LIMIT (series near 0, expm1 elsewhere).

    Under torch autograd the derivative is supplied in closed form, expm1(v) / 2 (accurate, and one
    node in the graph instead of the series' dozens).
    """
    if _is_torch(v) and v.requires_grad:
        return _half_g_autograd().apply(v)
    return _half_g_moderate_values(xp, v)


@functools.cache
def _half_g_autograd() -> Any:
    """A torch.autograd.Function for half_g_moderate, defined on first use (torch is optional)."""
    import array_api_compat
    import torch

    class HalfG(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, v: Any) -> Any:
            ctx.save_for_backward(v)
            return _half_g_moderate_values(array_api_compat.array_namespace(v), v)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (v,) = ctx.saved_tensors
            # Written with differentiable ops, so second derivatives work too.
            return grad * (0.5 * torch.expm1(v))

    return HalfG


def _half_g_moderate_values(xp: Any, v: Any) -> Any:
    small = xp.abs(v) <= SERIES_LIMIT
    if all_true(xp, small):
        return half_g_series(xp, v)
    if not bool(xp.any(small)):
        return 0.5 * xp.expm1(v) - 0.5 * v
    v_small = where_safe(xp, small, v, 0.0)
    v_mid = where_safe(xp, ~small, v, 2.0)
    return xp.where(small, half_g_series(xp, v_small), 0.5 * xp.expm1(v_mid) - 0.5 * v_mid)


def log_ratio(xp: Any, a: Any, b: Any) -> Any:
    """log(a / b) for positive finite a, b, accurate even when a / b is close to 1 or over/underflows.

    When b/2 <= a <= 2b the difference a - b is exact (Sterbenz), so log1p((a - b) / b) keeps every digit
    that log(a / b) would lose to the rounding of a / b.
    """
    ratio = a / b
    near = (ratio >= 0.5) & (ratio <= 2.0)
    if all_true(xp, near):
        return xp.log1p((a - b) / b)
    near_value = xp.log1p(where_safe(xp, near, (a - b) / b, 0.0))
    normal = (ratio >= TINY) & (ratio <= HUGE)
    if all_true(xp, normal):
        return xp.where(near, near_value, xp.log(ratio))
    far_value = xp.where(normal, xp.log(where_safe(xp, normal, ratio, 1.0)), xp.log(a) - xp.log(b))
    return xp.where(near, near_value, far_value)


def two_diff(a: Any, b: Any) -> tuple[Any, Any]:
    """s, e with s = fl(a - b) and s + e = a - b exactly (Knuth's TwoSum applied to a and -b)."""
    s = a - b
    bb = s - a
    e = (a - (s - bb)) - (b + bb)
    return s, e


def half_g_of_exact_diff(xp: Any, s: Any, e: Any | None) -> Any:
    """(e^u - 1 - u) / 2 for u = s + e given as an unevaluated sum (e is the rounding error of s).

    ``e=None`` means s is exact. For large positive u the result is ~e^u / 2, which is representable a
    little beyond the point where e^u overflows (u ~ 709.78): it is computed as (exp(u/2)/2) * exp(u/2).
    """
    moderate = xp.abs(s) <= MODERATE_LIMIT
    # d/du of (e^u - 1 - u)/2 is expm1(u)/2: first-order correction for the low part e.
    if all_true(xp, moderate):
        value = half_g_moderate(xp, s)
        return value if e is None else value + 0.5 * xp.expm1(s) * e
    e = xp.zeros_like(s) if e is None else e
    big = s > MODERATE_LIMIT
    neg = ~moderate & ~big
    s_mod = where_safe(xp, moderate, s, 0.0)
    value = half_g_moderate(xp, s_mod) + 0.5 * xp.expm1(s_mod) * e
    # Each outer branch is evaluated only if some entry needs it (on masked inputs, so autograd stays finite).
    if bool(xp.any(big)):
        s_big = where_safe(xp, big, s, 2 * MODERATE_LIMIT)
        half_exp = 0.5 * xp.exp(0.5 * s_big)
        big_value = half_exp * xp.exp(0.5 * s_big) * (1.0 + e) - 0.5 * (1.0 + s_big + e)
        value = xp.where(big, big_value, value)
    if bool(xp.any(neg)):
        s_neg = where_safe(xp, neg, s, -2 * MODERATE_LIMIT)
        neg_value = 0.5 * (xp.exp(s_neg) * (1.0 + e) + (-1.0 - s_neg)) - 0.5 * e
        value = xp.where(neg, neg_value, value)
    return value


def half_g_of_ratio(xp: Any, a: Any, b: Any) -> Any:
    """(r^2 - 1 - log r^2) / 2 with r = a / b, for positive finite a, b, accurate to a few ULP."""
    log_r = log_ratio(xp, a, b)
    u = 2.0 * log_r
    moderate = xp.abs(u) <= MODERATE_LIMIT
    if all_true(xp, moderate):
        return half_g_moderate(xp, u)
    r = where_safe(xp, ~moderate, a / b, 1.0)
    big_value = (0.5 * r) * r - 0.5 - log_r
    return xp.where(moderate, half_g_moderate(xp, where_safe(xp, moderate, u, 0.0)), big_value)


def half_square(z: Any) -> Any:
    """z^2 / 2 without overflowing when z^2 does but z^2 / 2 does not."""
    return (0.5 * z) * z
