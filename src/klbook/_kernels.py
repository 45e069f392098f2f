"""Compiled loops (numba) for the common case of the closed forms' hottest building blocks.

:mod:`klbook._numerics` writes each building block as array operations, one pass over the data per
operation: a double-double evaluation of (r^2 - 1 - ln r^2) / 2 takes about seventy such passes, and on
a batch of 4,096 x 64 they took twice what ``torch.distributions`` takes for its whole forward and
backward pass (2026-12-05). Here the same operations, in the same order, run in one loop over the
entries, with no temporaries; numba compiles the loop for the CPU at hand (SIMD included) on first use
and caches it.

The loops do not branch on the data: both sides of a choice are computed and one is selected, which
lets the compiler vectorise them. They cover the entries that the common case handles and report how many
others there are (extreme ratios, scales near the float64 range); the caller evaluates those few with
the array operations of :mod:`klbook._numerics`. ``log1p`` is applied between two loops by the caller's
array namespace (vectorised in torch, see :func:`klbook._array.numpy_for_torch_views`).

No operation is contracted into a fused multiply-add (numba passes no fast-math flags unless asked),
so Dekker's products stay exact and what the loops compute does not depend on the CPU; the functions
applied between them (torch's or numpy's ``exp``, ``expm1``, ``log``, ``log1p``) may differ in the last
bit between CPUs, as they do for the array operations. ``tests/test_kernels.py`` checks that the results
are bit-identical to the array operations'.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

# 1 / (2 (k + 2)!): the Taylor series of (e^u - 1 - u) / (2 u^2), 15 terms for |u| <= 1/2 and 19 for
# |u| <= 1 (klbook._numerics._SERIES_COEFFS). Global arrays are frozen into the compiled code as
# constants, and a loop over them with a fixed count is unrolled (a loop over a tuple was not, and kept
# the compiler from vectorising: 39 against 3.3 ns an entry).
_HALF_G_COEFFS_HALF = np.array([1.0 / (2.0 * math.factorial(k + 2)) for k in range(15)])
_HALF_G_COEFFS_1 = np.array([1.0 / (2.0 * math.factorial(k + 2)) for k in range(19)])

# The ratios r = a / b with |ln r^2| <= 4, and the range of b in which Dekker's splits of b and of its
# partial products neither overflow nor underflow (klbook._numerics._half_g_of_moderate_ratio).
_RATIO_LOW, _RATIO_HIGH = math.exp(-2.0), math.exp(2.0)
_SCALE_LOW, _SCALE_HIGH = 2.0**-500, 2.0**500
_SPLITTER = 134217729.0  # 2^27 + 1

# The kinds of entries: the loops handle COMMON ones. half_g_of_ratio: FAR_RATIO, OTHER;
# half_g_of_exact_diff: BIG, NEGATIVE (|u| > 4, see klbook._numerics.MODERATE_LIMIT).
COMMON, FAR_RATIO, OTHER = 0, 1, 2
BIG, NEGATIVE = 1, 2
_MODERATE_LIMIT = 4.0
_TINY, _HUGE = float(np.finfo(np.float64).tiny), float(np.finfo(np.float64).max)


def _compile(function: Callable[..., Any]) -> Any:
    """Compile ``function`` on first use, caching the machine code next to this file (or in numba's
    user-wide cache) so that later processes load it instead of compiling again (~1 s a function)."""
    try:
        return numba.njit(nogil=True, error_model="numpy", cache=True)(function)
    except RuntimeError:  # no writable cache location: compile in every process instead
        return numba.njit(nogil=True, error_model="numpy")(function)


@_compile
def _ratio_minus_one(a: np.ndarray, b: np.ndarray, t: np.ndarray, t_low: np.ndarray, kind: np.ndarray) -> int:
    """t + t_low = a / b - 1 in double-double, each entry's kind, and the number outside the common case.

    The operations of ``_half_g_of_moderate_ratio`` up to ``t_low``: s + e = a - b exactly
    (TwoSum), t = s / b, and t_low from the exact residual s - t b (Dekker's product). ``kind`` is
    COMMON, FAR_RATIO (|ln r^2| > 4 and r a normal float) or OTHER (r subnormal or overflowing, or b
    so close to the float64 range's ends that Dekker's splits need a rescaling).
    """
    rare = 0
    for i in range(a.size):
        ai, bi = a[i], b[i]
        ratio = ai / bi
        far = not (_RATIO_LOW <= ratio <= _RATIO_HIGH)
        other = not (_TINY <= ratio <= _HUGE) if far else not (_SCALE_LOW <= bi <= _SCALE_HIGH)
        kind[i] = OTHER if other else (FAR_RATIO if far else COMMON)
        rare += far or other
        s = ai - bi
        bb = s - ai
        e = (ai - (s - bb)) - (bi + bb)
        ti = s / bi
        c = _SPLITTER * ti
        t_high = c - (c - ti)
        t_rest = ti - t_high
        c = _SPLITTER * bi
        b_high = c - (c - bi)
        b_rest = bi - b_high
        p = ti * bi
        p_err = ((t_high * b_high - p) + t_high * b_rest + t_rest * b_high) + t_rest * b_rest
        t[i] = ti
        t_low[i] = ((s - p) - p_err + e) / bi
    return rare


@_compile
def _half_g_of_moderate_ratio(t: np.ndarray, t_low: np.ndarray, log1p_t: np.ndarray, out: np.ndarray) -> None:
    """(r^2 - 1 - ln r^2) / 2 from r - 1 = t + t_low and log1p(t), as ``_half_g_of_moderate_ratio``.

    u + u_low = ln r^2. For -1 <= u <= 1/2 the series in u with u_low as a first-order correction
    (``half_g_of_exact_diff``), else ((r^2 - 1) - u) / 2 with r^2 - 1 = t^2 + 2t in double-double.
    """
    coeffs = _HALF_G_COEFFS_1
    for i in range(t.size):
        ti, ti_low = t[i], t_low[i]
        u = 2.0 * log1p_t[i]
        u_low = 2.0 * ti_low / (1.0 + ti)
        acc = coeffs[18]
        for k in range(17, -1, -1):
            acc = acc * u + coeffs[k]
        series = acc * u * u
        near = series + (series + 0.5 * u) * u_low
        c = _SPLITTER * ti
        t_high = c - (c - ti)
        t_rest = ti - t_high
        square = ti * ti
        square_err = ((t_high * t_high - square) + t_high * t_rest + t_rest * t_high) + t_rest * t_rest
        twice = 2.0 * ti
        a_high = square + twice
        bb = a_high - square
        a_err = (square - (a_high - bb)) + (twice - bb)
        a_low = a_err + square_err + 2.0 * ti_low * (1.0 + ti)
        far = 0.5 * ((a_high - u) + (a_low - u_low))
        out[i] = near if -1.0 <= u <= 0.5 else far


def half_g_of_ratio(
    a: np.ndarray, b: np.ndarray, log1p: Callable[[np.ndarray], Any]
) -> tuple[np.ndarray, np.ndarray | None]:
    """(r^2 - 1 - ln r^2) / 2 with r = a / b for float64 arrays of one shape where the entry is of kind
    COMMON, and the kinds (None if every entry is COMMON). Other entries' values are meaningless: the
    caller replaces them.

    ``log1p`` is the caller's (numpy's, or torch's on the same memory).
    """
    a_flat, b_flat = np.ravel(a), np.ravel(b)
    t, t_low, out = np.empty_like(a_flat), np.empty_like(a_flat), np.empty_like(a_flat)
    kind = np.empty(a_flat.shape, dtype=np.int8)
    rare = _ratio_minus_one(a_flat, b_flat, t, t_low, kind)
    _half_g_of_moderate_ratio(t, t_low, np.asarray(log1p(t), dtype=np.float64), out)
    shape = np.shape(a)
    return out.reshape(shape), (kind.reshape(shape) if rare else None)


@_compile
def _half_g_of_moderate_diff(
    s: np.ndarray, e: np.ndarray, has_low: bool, expm1_s: np.ndarray, out: np.ndarray, kind: np.ndarray
) -> int:
    """(e^u - 1 - u) / 2 for u = s + e with |s| <= 4, as ``half_g_of_exact_diff`` with its default
    series limit: the series for |s| <= 1/2, (expm1(s) - s) / 2 beyond, and e (if ``has_low``) as a
    first-order correction. Each entry's kind (BIG, NEGATIVE beyond), and the number of those.
    """
    coeffs = _HALF_G_COEFFS_HALF
    rare = 0
    for i in range(s.size):
        si = s[i]
        acc = coeffs[14]
        for k in range(13, -1, -1):
            acc = acc * si + coeffs[k]
        series = acc * si * si
        moderate = 0.5 * expm1_s[i] - 0.5 * si
        value = series if abs(si) <= 0.5 else moderate
        if has_low:
            value = value + (value + 0.5 * si) * e[i]
        out[i] = value
        big, negative = si > _MODERATE_LIMIT, si < -_MODERATE_LIMIT
        kind[i] = BIG if big else (NEGATIVE if negative else COMMON)
        rare += big or negative
    return rare


def half_g_of_exact_diff(
    s: np.ndarray, e: np.ndarray | None, expm1: Callable[[np.ndarray], Any]
) -> tuple[np.ndarray, np.ndarray | None]:
    """(e^u - 1 - u) / 2 for u = s + e (e the rounding error of s, or None) for float64 arrays of one
    shape where the entry is COMMON (|s| <= 4), and the kinds (None if every entry is COMMON); other
    entries' values are meaningless. ``expm1`` is the caller's."""
    s_flat = np.ravel(s)
    e_flat = s_flat if e is None else np.ravel(e)
    out, kind = np.empty_like(s_flat), np.empty(s_flat.shape, dtype=np.int8)
    expm1_s = np.asarray(expm1(s_flat), dtype=np.float64)
    rare = _half_g_of_moderate_diff(s_flat, e_flat, e is not None, expm1_s, out, kind)
    shape = np.shape(s)
    return out.reshape(shape), (kind.reshape(shape) if rare else None)


# Inputs narrower than float64 (float32 chunks of CPU tensors): the short float64 formulas of
# klbook.gaussian's narrow kernels, the same operations, with log, exp and expm1 applied by the caller
# between the loops. Each returns twice the KL term (as those do).


@_compile
def _narrow_g(u: float, expm1_u: float, series_limit: float) -> float:
    """e^u - 1 - u for a float64 u from a narrow input (klbook.gaussian._narrow_g)."""
    series = u * u * (0.5 + u * (1.0 / 6.0 + u * (1.0 / 24.0)))
    return series if abs(u) < series_limit else expm1_u - u


@_compile
def _narrow_sigma_ratio(sigma_p: np.ndarray, sigma_q: np.ndarray, ratio: np.ndarray, inv_sigma_q: np.ndarray) -> None:
    for i in range(ratio.size):
        inv = 1.0 / np.float64(sigma_q[i])
        ratio[i], inv_sigma_q[i] = np.float64(sigma_p[i]) * inv, inv


@_compile
def _twice_narrow_terms(
    mu_p: np.ndarray, mu_q: np.ndarray, scale: np.ndarray, u: np.ndarray, expm1_u: np.ndarray,
    series_limit: float, out: np.ndarray,
) -> None:
    """g(u) + z^2 with z = (mu_p - mu_q) scale: the narrow normal form (scale 1/sigma_q) and the
    narrow diagonal one (scale e^{-logvar_q/2})."""
    for i in range(out.size):
        z = (np.float64(mu_p[i]) - np.float64(mu_q[i])) * scale[i]
        out[i] = _narrow_g(u[i], expm1_u[i], series_limit) + z * z


def twice_narrow_normal_terms(
    mu_p: np.ndarray, sigma_p: np.ndarray, mu_q: np.ndarray, sigma_q: np.ndarray,
    log: Callable[[np.ndarray], Any], expm1: Callable[[np.ndarray], Any], series_limit: float,
) -> np.ndarray:
    """g(2 ln(sigma_p / sigma_q)) + ((mu_p - mu_q) / sigma_q)^2 in float64, g(u) = e^u - 1 - u, for
    narrow arrays of one shape (klbook.gaussian._twice_normal_terms_narrow)."""
    flat = [np.ravel(a) for a in (mu_p, sigma_p, mu_q, sigma_q)]
    ratio, inv_sigma_q = np.empty(flat[0].shape), np.empty(flat[0].shape)
    _narrow_sigma_ratio(flat[1], flat[3], ratio, inv_sigma_q)
    u = 2.0 * np.asarray(log(ratio), dtype=np.float64)
    out = np.empty_like(ratio)
    _twice_narrow_terms(flat[0], flat[2], inv_sigma_q, u, np.asarray(expm1(u), dtype=np.float64), series_limit, out)
    return out.reshape(np.shape(mu_p))


@_compile
def _narrow_log_variance_parts(
    logvar_p: np.ndarray, logvar_q: np.ndarray, clip: float, u: np.ndarray, half: np.ndarray
) -> None:
    for i in range(u.size):
        p, q = np.float64(logvar_p[i]), np.float64(logvar_q[i])
        u[i] = p - q
        half[i] = -0.5 * max(q, clip)


def twice_narrow_diag_terms(
    mu_p: np.ndarray, logvar_p: np.ndarray, mu_q: np.ndarray, logvar_q: np.ndarray,
    exp: Callable[[np.ndarray], Any], expm1: Callable[[np.ndarray], Any], series_limit: float, clip: float,
) -> np.ndarray:
    """g(logvar_p - logvar_q) + ((mu_p - mu_q) e^{-max(logvar_q, clip) / 2})^2 in float64 for narrow
    arrays of one shape (klbook.gaussian._twice_diag_terms_narrow)."""
    flat = [np.ravel(a) for a in (mu_p, logvar_p, mu_q, logvar_q)]
    u, half = np.empty(flat[0].shape), np.empty(flat[0].shape)
    _narrow_log_variance_parts(flat[1], flat[3], clip, u, half)
    out = np.empty_like(u)
    exp_half, expm1_u = (np.asarray(f(x), dtype=np.float64) for f, x in ((exp, half), (expm1, u)))
    _twice_narrow_terms(flat[0], flat[2], exp_half, u, expm1_u, series_limit, out)
    return out.reshape(np.shape(mu_p))


@_compile
def _twice_narrow_std_terms(mu: np.ndarray, u: np.ndarray, expm1_u: np.ndarray, series_limit: float, out: np.ndarray) -> None:
    for i in range(out.size):
        m = np.float64(mu[i])
        out[i] = _narrow_g(u[i], expm1_u[i], series_limit) + m * m


def twice_narrow_std_terms(
    mu: np.ndarray, logvar: np.ndarray, expm1: Callable[[np.ndarray], Any], series_limit: float
) -> np.ndarray:
    """g(logvar) + mu^2 in float64 for narrow arrays of one shape (klbook.gaussian._std_normal_kl_narrow)."""
    u = np.ravel(logvar).astype(np.float64)
    out = np.empty_like(u)
    _twice_narrow_std_terms(np.ravel(mu), u, np.asarray(expm1(u), dtype=np.float64), series_limit, out)
    return out.reshape(np.shape(mu))


# The closed-form gradients of klbook.gaussian (_normal_gradient, _diag_gradient), float64 results for
# float64 or narrow inputs. Where an entry needs a branch the loops do not take (a
# mean difference that overflows, u > 700, logvar_q <= -1400) they return None and the caller uses the
# array operations for the chunk.
_EXPM1_LIMIT = 700.0
_LOGVAR_Q_FLOOR = -1400.0


def _flat_gradient(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The incoming gradient as a flat array of one entry per element of ``shape`` (it may be broadcast
    to it, or be of its size in another shape: the output of a 0-d result is returned as 1-d)."""
    if np.size(grad) == math.prod(shape):
        return np.ravel(grad)
    return np.ravel(np.broadcast_to(grad, shape))


@_compile
def _normal_gradient(
    grad: np.ndarray, mu_p: np.ndarray, sigma_p: np.ndarray, mu_q: np.ndarray, sigma_q: np.ndarray,
    narrow: bool, d_mu_p: np.ndarray, d_sigma_p: np.ndarray, d_mu_q: np.ndarray, d_sigma_q: np.ndarray,
) -> bool:
    finite = True
    for i in range(d_mu_p.size):
        g, sp, sq = np.float64(grad[i]), np.float64(sigma_p[i]), np.float64(sigma_q[i])
        diff, d = np.float64(mu_p[i]) - np.float64(mu_q[i]), sp - sq
        if narrow:
            inv_sigma_q = 1.0 / sq
            z, grad_over_sigma_q, r_minus_1 = diff * inv_sigma_q, g * inv_sigma_q, d * inv_sigma_q
        else:
            z, grad_over_sigma_q, r_minus_1 = diff / sq, g / sq, d / sq
        finite &= abs(z) <= _HUGE
        dsp = grad_over_sigma_q * (r_minus_1 + d / sp)
        grad_z = grad_over_sigma_q * z
        d_mu_p[i], d_sigma_p[i], d_mu_q[i] = grad_z, dsp, -grad_z
        d_sigma_q[i] = -(dsp * (r_minus_1 + 1.0) + grad_z * z)
    return finite


def normal_gradient(grad: np.ndarray, *arrays: np.ndarray, narrow: bool) -> tuple[np.ndarray, ...] | None:
    """klbook.gaussian._normal_gradient (mu_p, sigma_p, mu_q, sigma_q), or None (see above)."""
    shape = np.shape(arrays[0])
    flat = [np.ravel(a) for a in arrays]
    parts = [np.empty(flat[0].shape) for _ in range(4)]
    if not _normal_gradient(_flat_gradient(grad, shape), *flat, narrow, *parts):
        return None
    return tuple(p.reshape(shape) for p in parts)


@_compile
def _diag_gradient_parts(
    logvar_p: np.ndarray, logvar_q: np.ndarray, narrow: bool, s: np.ndarray, e: np.ndarray, half: np.ndarray
) -> bool:
    """s + e = logvar_p - logvar_q (e = 0 for narrow inputs, whose difference is exact) and
    -logvar_q / 2; False if an entry needs a branch the loops do not take."""
    plain = True
    for i in range(s.size):
        p, q = np.float64(logvar_p[i]), np.float64(logvar_q[i])
        si = p - q
        bb = si - p
        s[i], e[i], half[i] = si, 0.0 if narrow else (p - (si - bb)) - (q + bb), -0.5 * q
        plain &= (si <= _EXPM1_LIMIT) & (q > _LOGVAR_Q_FLOOR)
    return plain


@_compile
def _diag_gradient(
    grad: np.ndarray, mu_p: np.ndarray, mu_q: np.ndarray, e: np.ndarray, expm1_s: np.ndarray,
    inv_sigma_q: np.ndarray, narrow: bool,
    d_mu_p: np.ndarray, d_logvar_p: np.ndarray, d_mu_q: np.ndarray, d_logvar_q: np.ndarray,
) -> bool:
    finite = True
    rows, width = d_mu_p.shape
    for r in range(rows):
        g = np.float64(grad[r])
        for j in range(width):
            half_expm1 = 0.5 * expm1_s[r, j]
            # _half_expm1: with the low part e for float64 inputs, without it for narrow ones
            d_lp = g * (0.5 * expm1_s[r, j] if narrow else half_expm1 + (0.5 + half_expm1) * e[r, j])
            z = (np.float64(mu_p[r, j]) - np.float64(mu_q[r, j])) * inv_sigma_q[r, j]
            finite &= abs(z) <= _HUGE
            grad_z = g * z
            dmp = grad_z * inv_sigma_q[r, j]
            d_mu_p[r, j], d_logvar_p[r, j], d_mu_q[r, j] = dmp, d_lp, -dmp
            d_logvar_q[r, j] = (-0.5 * grad_z) * z - d_lp
    return finite


def diag_gradient(
    grad: np.ndarray, mu_p: np.ndarray, logvar_p: np.ndarray, mu_q: np.ndarray, logvar_q: np.ndarray, *,
    narrow: bool, exp: Callable[[np.ndarray], Any], expm1: Callable[[np.ndarray], Any],
) -> tuple[np.ndarray, ...] | None:
    """klbook.gaussian._diag_gradient (the last axis is the latent one; ``grad`` has length 1 there),
    or None (see above)."""
    shape = np.shape(mu_p)
    rows = [np.reshape(a, (-1, shape[-1])) for a in (mu_p, logvar_p, mu_q, logvar_q)]
    s, e, half = (np.empty(rows[0].shape) for _ in range(3))
    if not _diag_gradient_parts(rows[1].ravel(), rows[3].ravel(), narrow, s.ravel(), e.ravel(), half.ravel()):
        return None
    expm1_s, inv_sigma_q = (np.asarray(f(x), dtype=np.float64) for f, x in ((expm1, s), (exp, half)))
    parts = [np.empty(rows[0].shape) for _ in range(4)]
    row_grad = _flat_gradient(grad, shape[:-1] + (1,))
    if not _diag_gradient(row_grad, rows[0], rows[2], e, expm1_s, inv_sigma_q, narrow, *parts):
        return None
    return tuple(p.reshape(shape) for p in parts)


@_compile
def _half_log_variance_where_means_differ(mu_p: np.ndarray, mu_q: np.ndarray, logvar_q: np.ndarray, half: np.ndarray) -> None:
    for i in range(half.size):
        half[i] = 0.5 * (logvar_q[i] if mu_p[i] != mu_q[i] else 0.0)


@_compile
def _half_square_of_scaled_difference(
    mu_p: np.ndarray, mu_q: np.ndarray, sigma_q: np.ndarray, out: np.ndarray
) -> bool:
    finite = True
    for i in range(out.size):
        z = 0.0 if mu_p[i] == mu_q[i] else (mu_p[i] - mu_q[i]) / sigma_q[i]
        finite &= abs(z) <= _HUGE
        out[i] = (0.5 * z) * z
    return finite


def half_square_of_scaled_difference(
    mu_p: np.ndarray, mu_q: np.ndarray, logvar_q: np.ndarray, exp: Callable[[np.ndarray], Any]
) -> np.ndarray | None:
    """((mu_p - mu_q) / e^{logvar_q / 2})^2 / 2 (0 where the means are equal) for float64 arrays of one
    shape (klbook.gaussian._diag_terms), or None where a quotient overflows (see above)."""
    flat = [np.ravel(a) for a in (mu_p, mu_q, logvar_q)]
    half, out = np.empty(flat[0].shape), np.empty(flat[0].shape)
    _half_log_variance_where_means_differ(*flat, half)
    if not _half_square_of_scaled_difference(flat[0], flat[1], np.asarray(exp(half), dtype=np.float64), out):
        return None
    return out.reshape(np.shape(mu_p))
