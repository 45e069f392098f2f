"""Divergences and entropies of discrete distributions.

Conventions (Cover & Thomas, section 2.3): 0 log(0/q) = 0, and p log(p/0) = +inf for p > 0, so
D(p||q) = +inf whenever p puts mass where q has none. No epsilon is ever added.

Probabilities are validated along ``axis``: entries must be finite and non-negative, and each
distribution must sum to 1 within a tolerance that scales with the input's dtype: ``SUM_TOLERANCE``
(1e-6) for float64 inputs (Python numbers and lists included); for narrower floating dtypes (float32,
float16, bfloat16, numpy or torch) the larger of ``SUM_TOLERANCE_LOW_PRECISION`` (1e-4) and ``n * eps``,
for ``n`` outcomes and the dtype's machine epsilon ``eps`` -- a bound on the rounding of a sum of ``n``
terms computed in that dtype (a ``torch.softmax`` output in float16 or bfloat16 is off by up to about
0.4 ``eps``). Outside that a ``ValueError`` names the argument and says by how much it is off. Float64
inputs are not renormalised. Inputs of a narrower dtype are divided by their sums (computed in float64,
where they are exact): the result is the divergence of the distributions they represent, whatever the
rounding of their sums, so it is >= 0 and exactly 0 when p and q are proportional. Each argument is
judged by its own dtype.

Empty batches (a shape such as ``(0, 3)``) give empty results; a distribution with no outcomes (an axis
of length 0 in a non-empty batch) cannot sum to 1 and is refused. Inputs that are not real numbers (None,
strings, complex values, masked arrays) raise a ``TypeError``; see :func:`klbook._array.real_array`.

``base=None`` gives nats; ``base=2`` bits; any base > 0 other than 1 is accepted.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from ._array import ArrayLike, _is_torch, detached_numpy, normalize_axis, prepare, quiet_floating_point
from ._numerics import MODERATE_LIMIT, all_true, half_g_moderate, log_ratio, where_safe

__all__ = ["kl_divergence", "entropy", "cross_entropy", "js_divergence", "mutual_information"]

SUM_TOLERANCE = 1e-6
SUM_TOLERANCE_LOW_PRECISION = 1e-4


def _narrow_eps(a: ArrayLike) -> float | None:
    """Machine epsilon of ``a``'s floating dtype if it is narrower than float64, else None."""
    if _is_torch(a) and a.is_floating_point():
        import torch

        eps = float(torch.finfo(a.dtype).eps)
    elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
        eps = float(np.finfo(a.dtype).eps)
    else:
        return None
    return eps if eps > _FLOAT64_EPS else None


_FLOAT64_EPS = float(np.finfo(np.float64).eps)


def sum_tolerance(a: ArrayLike, n: int) -> float:
    """How far from 1 the sum of a distribution of ``n`` outcomes given as ``a`` may be (module docs)."""
    eps = _narrow_eps(a)
    return SUM_TOLERANCE if eps is None else max(SUM_TOLERANCE_LOW_PRECISION, n * eps)


def _check_distribution(name: str, x: Any, axes: tuple[int, ...], tolerance: float, axis_label: object) -> None:
    values = detached_numpy(x)
    if (values < 0).any():
        raise ValueError(f"{name} must be non-negative; its smallest entry is {float(values.min()):g}")
    if values.size == 0:
        if all(values.shape[a] > 0 for a in axes) or any(
            n == 0 for i, n in enumerate(values.shape) if i not in axes
        ):
            return  # an empty batch: nothing to check
        raise ValueError(
            f"{name} has no outcomes along axis {axis_label} (shape {values.shape}): it cannot sum to 1"
        )
    deviation = float(np.abs(values.sum(axis=axes) - 1.0).max())
    if deviation > tolerance:
        raise ValueError(
            f"{name} must sum to 1 along axis {axis_label}; "
            f"it is off by {deviation:.3g} (tolerance {tolerance:g})"
        )


def _distribution(
    xp: Any, name: str, original: ArrayLike, x: Any, axes: tuple[int, ...], axis_label: object
) -> Any:
    """``x`` (the float64 array made of ``original``) validated, and normalised if ``original`` is narrow."""
    n = math.prod(x.shape[a] for a in axes)
    _check_distribution(name, x, axes, sum_tolerance(original, n), axis_label)
    if _narrow_eps(original) is None or x.shape[axes[0]] == 0:
        return x
    total = x
    for a in sorted(axes, reverse=True):
        total = xp.sum(total, axis=a, keepdims=True)
    return x / total


def _log_base(base: float | None) -> float:
    if base is None:
        return 1.0
    if not isinstance(base, numbers.Real) or isinstance(base, bool) or not base > 0 or base == 1:
        raise ValueError(f"base must be a number > 0 other than 1 (or None for nats), got {base!r}")
    return math.log(base)


@quiet_floating_point
def kl_terms(xp: Any, p: Any, q: Any) -> Any:
    r"""Elementwise :math:`p\ln(p/q) - p + q \ge 0`; its sum is D(p||q) when p and q both sum to 1.

    Adding :math:`q - p` (which sums to 0) makes every term non-negative, so the sum cannot cancel when
    p is close to q. With :math:`v = \ln(q/p)` the term is :math:`p\,(e^v - 1 - v)`, evaluated without
    cancellation; far from 1 the ratio is used directly, so a tiny p next to a large q cannot overflow.
    """
    positive = (p > 0) & (q > 0)
    if all_true(xp, positive):
        v = log_ratio(xp, q, p)
        moderate = xp.abs(v) <= MODERATE_LIMIT
        if all_true(xp, moderate):
            return 2.0 * p * half_g_moderate(xp, v)
    p_safe = where_safe(xp, positive, p, 1.0)
    q_safe = where_safe(xp, positive, q, 1.0)
    v = log_ratio(xp, q_safe, p_safe)
    moderate = xp.abs(v) <= MODERATE_LIMIT
    v_mod = where_safe(xp, moderate, v, 0.0)
    both = xp.where(
        moderate,
        2.0 * p_safe * half_g_moderate(xp, v_mod),
        xp.where(v > 0, (q_safe - p_safe) - p_safe * v, p_safe * (-1.0 - v) + q_safe),
    )
    inf = xp.full_like(p, math.inf)
    return xp.where(positive, both, xp.where(p > 0, inf, q))


def _distribution_function(*names: str, table: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a public function of distributions once: its arguments ``names`` and what it sums over.

    The decorated ``body(xp, *arrays)`` is the formula: it receives the arguments validated and converted
    (see the module docs; narrow dtypes normalised), with the outcomes on the last axis (on the last two
    for a joint ``table``), and returns the divergence in nats. The public function takes the arguments
    in the order of ``names``, and the keywords ``axis`` (the axis of outcomes; not for tables, which use
    their last two) and ``base``.
    """

    keyword = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="ArrayLike") for n in names]
        + ([] if table else [inspect.Parameter("axis", keyword, default=-1, annotation="int")])
        + [inspect.Parameter("base", keyword, default=None, annotation="float | None")],
        return_annotation="Any",
    )

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @quiet_floating_point
        def public(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = [bound.arguments[n] for n in names]
            scale = _log_base(bound.arguments["base"])
            xp, arrays, finish = prepare(names, *given)
            ndim = arrays[0].ndim
            if table:
                if ndim < 2:
                    raise ValueError(
                        f"{names[0]} must be a 2-D table (or a batch of them), got shape {tuple(arrays[0].shape)}"
                    )
                axes, label = (ndim - 2, ndim - 1), "(-2, -1)"
            else:
                axis = bound.arguments["axis"]
                arrays = [xp.moveaxis(a, normalize_axis(axis, ndim, names[0]), -1) for a in arrays]
                axes, label = (ndim - 1,), axis
            arrays = [_distribution(xp, n, arg, a, axes, label) for n, arg, a in zip(names, given, arrays)]
            return finish(body(xp, *arrays) / scale)

        functools.update_wrapper(public, body)
        del public.__wrapped__  # the public signature is this one, not the body's
        public.__signature__ = signature
        return public

    return decorate


@_distribution_function("p", "q")
def kl_divergence(xp: Any, p: Any, q: Any) -> Any:
    r"""Kullback-Leibler divergence of discrete distributions, :math:`D_{\mathrm{KL}}(p\,\|\,q)`.

    .. math::

        D_{\mathrm{KL}}(p\,\|\,q) = \sum_i p_i \log\frac{p_i}{q_i}

    with 0 log(0/q) = 0 and p log(p/0) = +inf. The expectation is under p (the first argument).
    Evaluated as the sum of the non-negative terms of :func:`kl_terms`.

    Parameters
    ----------
    p, q
        Probability vectors along ``axis``; other axes broadcast and are a batch.
    axis
        The axis that indexes outcomes.
    base
        Logarithm base: None for nats, 2 for bits.

    Raises
    ------
    ValueError
        For NaN, negative or infinite entries, distributions that do not sum to 1 (see module docs),
        shapes that do not broadcast, an out-of-range axis or an invalid base.
    TypeError
        For inputs that are not real numbers (see module docs).
    """
    return xp.sum(kl_terms(xp, p, q), axis=-1)


@_distribution_function("p")
def entropy(xp: Any, p: Any) -> Any:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log p_i`, with 0 log 0 = 0.

    Takes ``axis`` and ``base`` as :func:`kl_divergence`.

    Raises
    ------
    ValueError, TypeError
        As :func:`kl_divergence`, for ``p``.
    """
    positive = p > 0
    return xp.sum(xp.where(positive, -p * xp.log(where_safe(xp, positive, p, 1.0)), xp.zeros_like(p)), axis=-1)


@_distribution_function("p", "q")
def cross_entropy(xp: Any, p: Any, q: Any) -> Any:
    r"""Cross-entropy :math:`H(p, q) = -\sum_i p_i \log q_i = H(p) + D_{\mathrm{KL}}(p\,\|\,q)`.

    0 log q = 0 for p_i = 0; +inf when p_i > 0 = q_i. Takes ``axis`` and ``base`` as :func:`kl_divergence`.

    Raises
    ------
    ValueError, TypeError
        As :func:`kl_divergence`.
    """
    positive, q_pos = p > 0, q > 0
    safe_q = where_safe(xp, positive & q_pos, q, 1.0)
    terms = xp.where(positive, xp.where(q_pos, -p * xp.log(safe_q), xp.full_like(p, math.inf)), xp.zeros_like(p))
    return xp.sum(terms, axis=-1)


@_distribution_function("p", "q")
def js_divergence(xp: Any, p: Any, q: Any) -> Any:
    r"""Jensen-Shannon divergence, :math:`\tfrac12 D(p\,\|\,m) + \tfrac12 D(q\,\|\,m)` with :math:`m = (p+q)/2`.

    Symmetric, always finite, and at most :math:`\ln 2` nats (1 bit); its square root is a metric
    (Endres & Schindelin 2003). Takes ``axis`` and ``base`` as :func:`kl_divergence`.

    Raises
    ------
    ValueError, TypeError
        As :func:`kl_divergence`.
    """
    m = 0.5 * p + 0.5 * q
    # Halving the smallest subnormals rounds to 0; there p + q (exact) keeps m > 0 where p or q is,
    # and the affected terms are far below the float64 range anyway.
    m = xp.where(m > 0, m, p + q)
    return xp.sum(0.5 * kl_terms(xp, p, m) + 0.5 * kl_terms(xp, q, m), axis=-1)


@_distribution_function("joint", table=True)
def mutual_information(xp: Any, joint: Any) -> Any:
    r"""Mutual information from a joint probability table, :math:`I(X;Y) = D_{\mathrm{KL}}(p_{XY}\,\|\,p_X\otimes p_Y)`.

    .. math::

        I(X;Y) = \sum_{x,y} p(x,y) \log\frac{p(x,y)}{p(x)\,p(y)}

    Parameters
    ----------
    joint
        Array of shape ``(..., n_x, n_y)`` summing to 1 over its last two axes; leading axes are a batch.
    base
        Logarithm base: None for nats, 2 for bits.

    Raises
    ------
    ValueError
        If ``joint`` has fewer than 2 dimensions, or as :func:`kl_divergence`.
    """
    p_x = xp.sum(joint, axis=-1)
    p_y = xp.sum(joint, axis=-2)
    terms = kl_terms(xp, joint, p_x[..., :, None] * p_y[..., None, :])
    return xp.sum(xp.sum(terms, axis=-1), axis=-1)
