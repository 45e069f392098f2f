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

On float64 numpy arrays (chunks of CPU tensors included) ``half_g_of_ratio`` and ``half_g_of_exact_diff``
hand their common case to compiled loops (:mod:`klbook._kernels`) that perform the same operations in
the same order, so the results are bit-identical (``tests/test_kernels.py``); the array operations here
remain the definition, and the path of torch tensors on the autograd graph and off the CPU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
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
# relative truncation error for |v| <= 1/2 (chapter 7 checks this), 19 terms for |v| <= 1. Beyond 1/2,
# expm1(v) - v cancels by at most a factor ~4.
_SERIES_COEFFS = {
    limit: [1.0 / (2.0 * math.factorial(k + 2)) for k in range(terms)] for limit, terms in ((0.5, 15), (1.0, 19))
}
_HALF_G_COEFFS = _SERIES_COEFFS[SERIES_LIMIT]


def all_true(xp: Any, mask: Any) -> bool:
    """True if every entry of ``mask`` is; lets the common case skip branches no entry needs."""
    return bool(xp.all(mask))


def where_safe(xp: Any, cond: Any, x: Any, fill: float) -> Any:
    """``x`` where ``cond`` holds, else the harmless constant ``fill`` (keeps unselected branches finite)."""
    return xp.where(cond, x, fill)


def half_g_series(xp: Any, v: Any, limit: float = SERIES_LIMIT) -> Any:
    """(e^v - 1 - v) / 2 by its Taylor series; accurate to a few ULP for |v| <= limit (1/2 or 1)."""
    # Horner's rule in place on a fresh accumulator (never part of an autograd graph: under autograd
    # this runs inside HalfG.forward), so no temporary array is allocated per coefficient.
    coeffs = _SERIES_COEFFS[limit]
    acc = xp.full_like(v, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc *= v
        acc += c
    return acc * v * v


def half_g_moderate(xp: Any, v: Any, series_limit: float = SERIES_LIMIT) -> Any:
    """(e^v - 1 - v) / 2, accurate for |v| <= MODERATE_LIMIT (series for |v| <= ``series_limit``, 1/2
    or 1, expm1 elsewhere).

    Under torch autograd the derivative is supplied in closed form, expm1(v) / 2 (accurate, and one
    node in the graph instead of the series' dozens).
    """
    if _is_torch(v) and v.requires_grad:
        return _half_g_autograd().apply(v, series_limit)
    return _half_g_moderate_values(xp, v, series_limit)


@functools.cache
def _half_g_autograd() -> Any:
    """A torch.autograd.Function for half_g_moderate, defined on first use (torch is optional)."""
    import array_api_compat
    import torch

    class HalfG(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, v: Any, series_limit: float) -> Any:
            ctx.save_for_backward(v)
            return _half_g_moderate_values(array_api_compat.array_namespace(v), v, series_limit)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (v,) = ctx.saved_tensors
            # Written with differentiable ops, so second derivatives work too.
            return grad * (0.5 * torch.expm1(v)), None

    return HalfG


def _half_g_moderate_values(xp: Any, v: Any, series_limit: float) -> Any:
    small = xp.abs(v) <= series_limit
    if all_true(xp, small):
        return half_g_series(xp, v, series_limit)
    value = 0.5 * xp.expm1(v) - 0.5 * v  # |v| <= MODERATE_LIMIT: finite everywhere
    if not bool(xp.any(small)):
        return value
    series = functools.partial(half_g_series, xp, limit=series_limit)
    return overwrite_where(xp, small, value, series, (v, 0.0))


def overwrite_where(
    xp: Any, mask: Any, value: Any, branch: Callable[..., Any], *args_fills: tuple[Any, float]
) -> Any:
    """``value`` where ``mask`` is false, the elementwise ``branch(*args)`` where it is true.

    ``args_fills`` are pairs (argument, harmless value). On a numpy array ``value`` (a fresh result, never
    an input) only the selected entries are computed and written into it: a branch few entries take
    costs little. Elsewhere (torch, scalars) the branch runs on every entry, its arguments replaced by
    their harmless values where ``mask`` is false (so that autograd stays finite), and ``where`` selects.
    Scalar arguments are passed as they are.
    """
    if isinstance(value, np.ndarray) and value.shape == mask.shape and value.flags.c_contiguous:
        # Integer indices, not the boolean mask: numpy's boolean indexing branches on every entry, ~5 ns
        # an entry where the mask is random against ~1.5 ns for finding the indices once and ~0.5 ns
        # for each gather or scatter with them (65,536 entries, AMD EPYC, 2026-12-05).
        index = np.flatnonzero(mask)
        if index.size:
            value.reshape(-1)[index] = branch(*(np.ravel(a).take(index) if np.ndim(a) else a for a, _ in args_fills))
        return value
    args = [where_safe(xp, mask, a, fill) if np.ndim(a) else a for a, fill in args_fills]
    return xp.where(mask, branch(*args), value)


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


def two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """s, e with s = fl(a + b) and s + e = a + b exactly (Knuth's TwoSum)."""
    return two_diff(a, -b)


def _split(a: Any) -> tuple[Any, Any]:
    """Dekker's split: a = high + low exactly, each with at most 26 significant bits (|a| < 2^996)."""
    c = 134217729.0 * a  # 2^27 + 1
    high = c - (c - a)
    return high, a - high


def two_prod(
    a: Any, b: Any, a_parts: tuple[Any, Any] | None = None, b_parts: tuple[Any, Any] | None = None
) -> tuple[Any, Any]:
    """p, e with p = fl(a b) and p + e = a b exactly (Dekker's product; numpy has no fused multiply-add),
    for products and partial products that neither overflow nor underflow. ``a_parts``, ``b_parts``:
    the splits of a and b, if already made (see :func:`_split`)."""
    p = a * b
    a_high, a_low = _split(a) if a_parts is None else a_parts
    b_high, b_low = _split(b) if b_parts is None else b_parts
    return p, ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low


def half_g_of_exact_diff(xp: Any, s: Any, e: Any | None, series_limit: float = SERIES_LIMIT) -> Any:
    """(e^u - 1 - u) / 2 for u = s + e given as an unevaluated sum (e is the rounding error of s).

    ``e=None`` means s is exact. For large positive u the result is ~e^u / 2, which is representable a
    little beyond the point where e^u overflows (u ~ 709.78): it is computed as (exp(u/2)/2) * exp(u/2).
    ``series_limit`` is passed to :func:`half_g_moderate`.

    float64 numpy arrays take the compiled loop of :mod:`klbook._kernels` for |s| <= MODERATE_LIMIT
    with the default series limit (the same operations in one pass), the branches beyond as here.
    """
    if series_limit == SERIES_LIMIT and takes_compiled_loops(s, *(() if e is None else (e,))):
        from . import _kernels

        value, kind = _kernels.half_g_of_exact_diff(s, e, xp.expm1)
        if kind is None:
            return value
        e = 0.0 if e is None else e
        big = functools.partial(_half_g_big, xp)
        value = overwrite_where(xp, kind == _kernels.BIG, value, big, (s, 2 * MODERATE_LIMIT), (e, 0.0))
        negative = functools.partial(_half_g_negative, xp)
        return overwrite_where(xp, kind == _kernels.NEGATIVE, value, negative, (s, -2 * MODERATE_LIMIT), (e, 0.0))
    return _half_g_of_exact_diff_by_passes(xp, s, e, series_limit)


def _half_g_of_exact_diff_by_passes(xp: Any, s: Any, e: Any | None, series_limit: float) -> Any:
    """:func:`half_g_of_exact_diff` by array operations (any namespace, autograd included)."""
    moderate = xp.abs(s) <= MODERATE_LIMIT
    # d/du of (e^u - 1 - u)/2 is expm1(u)/2 = (e^u - 1 - u)/2 + u/2: a first-order correction for the
    # low part e from the value itself, without another pass of expm1. The correction is below ~2 ULP
    # of the result, so the few ULP this sum may lose (it cancels for negative u) do not show.
    if all_true(xp, moderate):
        value = half_g_moderate(xp, s, series_limit)
        return value if e is None else value + (value + 0.5 * s) * e
    s_mod = where_safe(xp, moderate, s, 0.0)
    value = half_g_moderate(xp, s_mod, series_limit)
    if e is not None:
        value = value + (value + 0.5 * s_mod) * e
    e = 0.0 if e is None else e
    # The outer branches only where some entry needs them (see overwrite_where).
    big = s > MODERATE_LIMIT
    if bool(xp.any(big)):
        big_branch = functools.partial(_half_g_big, xp)
        value = overwrite_where(xp, big, value, big_branch, (s, 2 * MODERATE_LIMIT), (e, 0.0))
    neg = s < -MODERATE_LIMIT
    if bool(xp.any(neg)):
        negative_branch = functools.partial(_half_g_negative, xp)
        value = overwrite_where(xp, neg, value, negative_branch, (s, -2 * MODERATE_LIMIT), (e, 0.0))
    return value


def _half_g_big(xp: Any, s: Any, e: Any) -> Any:
    """(e^u - 1 - u) / 2 for u = s + e > MODERATE_LIMIT (e the low part of u); computed as
    (exp(u/2) / 2) exp(u/2), which stays finite a little beyond the point where e^u overflows."""
    root = xp.exp(0.5 * s)
    return (0.5 * root) * root * (1.0 + e) - 0.5 * (1.0 + s + e)


def _half_g_negative(xp: Any, s: Any, e: Any) -> Any:
    """(e^u - 1 - u) / 2 for u = s + e < -MODERATE_LIMIT, where nothing cancels."""
    return 0.5 * (xp.exp(s) * (1.0 + e) + (-1.0 - s)) - 0.5 * e


# The ratios r with |ln r^2| <= MODERATE_LIMIT.
_MODERATE_RATIOS = (math.exp(-MODERATE_LIMIT / 2), math.exp(MODERATE_LIMIT / 2))


def half_g_of_ratio(xp: Any, a: Any, b: Any) -> Any:
    """(r^2 - 1 - log r^2) / 2 with r = a / b, for positive finite a, b, accurate to 3 ULP.

    Where |log r^2| <= MODERATE_LIMIT the terms are carried in double-double (a value and its rounding
    error): t = r - 1 = (a - b) / b, ln r^2 = 2 log1p(t) and r^2 - 1 = t^2 + 2t. For -1 <= ln r^2 <= 1/2
    the result is the series in u = ln r^2 with u's low part as a first-order correction
    (:func:`half_g_of_exact_diff`), elsewhere (r^2 - 1) - ln r^2, which cancels by at most a factor ~4
    there. Rounding u = 2 log(r) once and evaluating (e^u - 1 - u) / 2 instead reaches 5 ULP: the
    result's sensitivity to u grows to ~4.3 at u = 4. Beyond, r^2 / 2 - 1/2 - log r.

    float64 numpy arrays (chunks of CPU tensors included) take the compiled loops of
    :mod:`klbook._kernels` for the entries of the common case: the same operations in one pass.
    """
    if takes_compiled_loops(a, b):
        from . import _kernels

        value, kind = _kernels.half_g_of_ratio(a, b, xp.log1p)
        if kind is None:
            return value
        far = functools.partial(_half_g_of_normal_far_ratio, xp)
        value = overwrite_where(xp, kind == _kernels.FAR_RATIO, value, far, (a, 1.0), (b, 1.0))
        general = functools.partial(_half_g_of_ratio_by_passes, xp)
        return overwrite_where(xp, kind == _kernels.OTHER, value, general, (a, 1.0), (b, 1.0))
    return _half_g_of_ratio_by_passes(xp, a, b)


def _half_g_of_normal_far_ratio(xp: Any, a: Any, b: Any) -> Any:
    """:func:`_half_g_of_far_ratio` where r = a / b is a normal float (so log_ratio is log(r))."""
    ratio = a / b
    return (0.5 * ratio) * ratio - 0.5 - xp.log(ratio)


def takes_compiled_loops(*arrays: Any, dtype: Any = np.float64) -> bool:
    """True for numpy arrays of ``dtype`` and one shape, which the loops of :mod:`klbook._kernels` take."""
    shape = np.shape(arrays[0])
    return all(isinstance(a, np.ndarray) and a.dtype == dtype and a.shape == shape for a in arrays)


def _half_g_of_ratio_by_passes(xp: Any, a: Any, b: Any) -> Any:
    """:func:`half_g_of_ratio` by array operations (any namespace, autograd included)."""
    ratio = a / b
    moderate = (ratio >= _MODERATE_RATIOS[0]) & (ratio <= _MODERATE_RATIOS[1])
    if all_true(xp, moderate):
        return _half_g_of_moderate_ratio(xp, a, b)
    value = _half_g_of_moderate_ratio(xp, where_safe(xp, moderate, a, 1.0), where_safe(xp, moderate, b, 1.0))
    far = functools.partial(_half_g_of_far_ratio, xp)
    return overwrite_where(xp, ~moderate, value, far, (a, 1.0), (b, 1.0), (ratio, 1.0))


def _half_g_of_far_ratio(xp: Any, a: Any, b: Any, ratio: Any) -> Any:
    """:func:`half_g_of_ratio` where |log r^2| > MODERATE_LIMIT: r^2 / 2 - 1/2 - log r, nothing cancels."""
    return (0.5 * ratio) * ratio - 0.5 - log_ratio(xp, a, b)


def _half_g_of_moderate_ratio(xp: Any, a: Any, b: Any) -> Any:
    """:func:`half_g_of_ratio` for e^-2 <= a / b <= e^2."""
    if not all_true(xp, (b <= 2.0**500) & (b >= 2.0**-500)):
        # An exact power-of-two rescaling of both (the ratio is unchanged) keeps Dekker's splits and
        # partial products of b away from overflow and underflow.
        down, up = xp.full_like(b, 2.0**-600), xp.full_like(b, 2.0**600)  # float64, as every caller's b
        scale = xp.where(b > 2.0**500, down, xp.where(b < 2.0**-500, up, xp.ones_like(b)))
        a, b = a * scale, b * scale
    s, e = two_diff(a, b)
    t = s / b
    t_parts = _split(t)
    p, p_err = two_prod(t, b, t_parts)
    t_low = ((s - p) - p_err + e) / b  # t + t_low = (a - b) / b to ~2^-100 relative
    u = 2.0 * xp.log1p(t)
    u_low = 2.0 * t_low / (1.0 + t)
    series = (u >= -1.0) & (u <= 0.5)
    if all_true(xp, series):
        return half_g_of_exact_diff(xp, u, u_low, series_limit=1.0)
    square, square_err = two_prod(t, t, t_parts, t_parts)
    a_high, a_err = two_sum(square, 2.0 * t)  # r^2 - 1 = t^2 + 2t
    a_low = a_err + square_err + 2.0 * t_low * (1.0 + t)
    far = 0.5 * ((a_high - u) + (a_low - u_low))
    if not bool(xp.any(series)):
        return far
    # the series (some forty passes) only on the entries that take it where possible
    near = functools.partial(half_g_of_exact_diff, xp, series_limit=1.0)
    return overwrite_where(xp, series, far, near, (u, 0.0), (u_low, 0.0))


def half_square(z: Any) -> Any:
    """z^2 / 2 without overflowing when z^2 does but z^2 / 2 does not."""
    return (0.5 * z) * z
