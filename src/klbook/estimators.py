"""Monte Carlo estimators of D(q||p) from samples of q (Schulman, "Approximating KL divergence", 2020).

With samples x ~ q and the log-ratio ell = log p(x) - log q(x), three per-sample estimators are

* k1 = -ell                      unbiased, high variance, individual values can be negative;
* k2 = ell^2 / 2                 biased (low bias when p is close to q), always >= 0;
* k3 = (e^ell - 1) - ell         unbiased (since E_q[e^ell] = 1), always >= 0, usually low variance.

Arguments come as log-densities evaluated at the samples, in the order of the divergence: ``log_q`` first
(the distribution the samples come from), then ``log_p``.

``log_q`` must be finite (the samples come from q, so q(x) > 0). ``log_p`` may be -inf, where p vanishes:
then k1, k2 and k3 are +inf, as is D(q||p), and so are the estimate of :func:`mc_kl` and its standard
error. ``log_p = +inf`` is refused with a ``ValueError``: a density is finite, and the limits the formulas
would give (k1 = -inf, k3 = +inf, k2 = +inf) point in different directions, so no estimate built from them
would mean anything (k3 would even evaluate to inf - inf = NaN).
Empty batches give empty results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from ._array import ArrayLike, normalize_axis, prepare, quiet_floating_point
from ._numerics import MODERATE_LIMIT, half_g_moderate, where_safe

__all__ = ["k1", "k2", "k3", "mc_kl", "MCEstimate"]


def _per_sample(body: Callable[[Any, Any], Any]) -> Callable[[ArrayLike, ArrayLike], Any]:
    """Declare a per-sample estimator once: ``body(xp, ell)`` is its formula in the log-ratio
    ``ell = log_p - log_q``; the public function takes ``(log_q, log_p)``, validated as the module docs say."""

    def public(log_q: ArrayLike, log_p: ArrayLike) -> Any:
        xp, (log_q_, log_p_), finish = prepare(
            ("log_q", "log_p"), log_q, log_p, may_be_minus_infinite=("log_p",)
        )
        return finish(body(xp, log_p_ - log_q_))

    estimator = functools.update_wrapper(quiet_floating_point(public), body)
    estimator.__wrapped__ = public  # the public signature is (log_q, log_p), not the body's
    return estimator


@_per_sample
def k1(xp: Any, ell: Any) -> Any:
    r"""Per-sample :math:`k_1 = \log q(x) - \log p(x)`; its mean over x ~ q is unbiased for D(q||p)."""
    return -ell


@_per_sample
def k2(xp: Any, ell: Any) -> Any:
    r"""Per-sample :math:`k_2 = \tfrac12(\log p(x) - \log q(x))^2`; biased, non-negative."""
    return 0.5 * ell * ell


@_per_sample
def k3(xp: Any, ell: Any) -> Any:
    r"""Per-sample :math:`k_3 = (r - 1) - \log r` with :math:`r = p(x)/q(x)`; unbiased, non-negative.

    Evaluated without the cancellation of ``expm1(ell) - ell`` for small ``ell``.
    """
    moderate = xp.abs(ell) <= MODERATE_LIMIT
    ell_mod = where_safe(xp, moderate, ell, 0.0)
    ell_far = where_safe(xp, ~moderate, ell, -2 * MODERATE_LIMIT)
    return xp.where(moderate, 2.0 * half_g_moderate(xp, ell_mod), xp.expm1(ell_far) - ell_far)


class MCEstimate(NamedTuple):
    """A Monte Carlo estimate and its standard error (sample standard deviation / sqrt(n))."""

    estimate: Any
    std_error: Any


_ESTIMATORS = {"k1": k1, "k2": k2, "k3": k3}


@quiet_floating_point
def mc_kl(
    log_q: ArrayLike,
    log_p: ArrayLike,
    *,
    estimator: Literal["k1", "k2", "k3"] = "k3",
    axis: int = -1,
) -> MCEstimate:
    """Monte Carlo estimate of D(q||p) from log-densities at samples x ~ q, averaged along ``axis``.

    Raises
    ------
    ValueError
        For an unknown estimator, NaN inputs, fewer than two samples, or shapes that do not broadcast.
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(_ESTIMATORS)}, got {estimator!r}")
    values = _ESTIMATORS[estimator](log_q, log_p)
    xp, (values_,), finish = prepare(("samples",), values, may_be_infinite=("samples",))
    ax = normalize_axis(axis, values_.ndim, "log_q")
    n = values_.shape[ax]
    if n < 2:
        raise ValueError(f"need at least 2 samples along axis {axis}, got {n}")
    mean = xp.mean(values_, axis=ax)
    # torch warns about the degrees of freedom of an empty batch's std; its (empty) result is known
    std = xp.std(values_, axis=ax, correction=1) if math.prod(values_.shape) else mean
    # An infinite estimate (a sample where p vanishes) has an unbounded spread, not the NaN of inf - inf.
    std = xp.where(mean == math.inf, mean, std)
    return MCEstimate(finish(mean), finish(std / math.sqrt(n)))
