r"""The KL penalty of RL fine-tuning on a categorical "vocabulary": its optimum and its gradient estimators.

A policy :math:`\pi` over :math:`V` outcomes is tuned to maximise

.. math::

    J(\pi) = \mathbb E_{y\sim\pi}[r(y)] - \beta\,D_{\mathrm{KL}}(\pi\,\Vert\,\pi_{\mathrm{ref}}),

whose maximiser is :math:`\pi^*(y) = \pi_{\mathrm{ref}}(y)\,e^{r(y)/\beta}/Z` with
:math:`Z = \sum_y\pi_{\mathrm{ref}}(y)e^{r(y)/\beta}` and maximum :math:`\beta\log Z` (the identity
:math:`J(\pi) = \beta\log Z - \beta D_{\mathrm{KL}}(\pi\,\Vert\,\pi^*)` holds for every :math:`\pi`;
Rafailov et al. 2023, eq. 4 and appendix A.1).

The gradient functions take the policy as softmax logits :math:`\theta`, for which
:math:`\nabla_\theta\log\pi(y) = e_y - \pi`, and return exact expectations over :math:`y\sim\pi` of the
per-sample gradients that implementations use (Schulman's estimators :math:`k_1, k_2, k_3` of
:math:`D_{\mathrm{KL}}(\pi\,\Vert\,\pi_{\mathrm{ref}})`, with :math:`\ell = \log\pi(y) - \log\pi_{\mathrm{ref}}(y)`:
:math:`k_1 = \ell`, :math:`k_2 = \ell^2/2`, :math:`k_3 = e^{-\ell} - 1 + \ell`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import logsumexp, softmax

from .discrete import kl_divergence

__all__ = [
    "kl_regularized_optimum",
    "kl_regularized_objective",
    "forward_penalty_optimum",
    "penalty_gradients",
    "PENALTY_IMPLEMENTATIONS",
]

# (estimator, usage): "loss" differentiates k(y) through log pi(y) with y held fixed; "reward" multiplies the
# detached value k(y) by the score grad log pi(y), as a policy-gradient method does with a reward.
PENALTY_IMPLEMENTATIONS = tuple((k, use) for use in ("reward", "loss") for k in ("k1", "k2", "k3"))


def _distribution(name: str, p: Any, *, positive: bool = False) -> np.ndarray:
    array = np.asarray(p, dtype=np.float64)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 probabilities, got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must hold finite non-negative probabilities")
    if abs(array.sum() - 1.0) > 1e-9:
        raise ValueError(f"{name} must sum to 1, got {array.sum()!r}")
    if positive and (array == 0).any():
        raise ValueError(f"{name} must be positive everywhere (log {name} appears in the estimators)")
    return array


def _reward(reward: Any, size: int) -> np.ndarray:
    array = np.asarray(reward, dtype=np.float64)
    if array.shape != (size,) or not np.isfinite(array).all():
        raise ValueError(f"reward must hold {size} finite numbers, got {reward!r}")
    return array


def _beta(beta: Any) -> float:
    value = float(beta)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"beta must be finite and positive, got {beta!r}")
    return value


def kl_regularized_optimum(pi_ref: Any, reward: Any, beta: float) -> np.ndarray:
    r"""The maximiser :math:`\pi^* \propto \pi_{\mathrm{ref}}\,e^{r/\beta}` of :math:`\mathbb E_\pi[r] - \beta D_{\mathrm{KL}}(\pi\Vert\pi_{\mathrm{ref}})`.

    Evaluated in log space, :math:`\log\pi^* = \log\pi_{\mathrm{ref}} + r/\beta - \operatorname{logsumexp}(\cdot)`,
    so large :math:`r/\beta` does not overflow; outcomes with :math:`\pi_{\mathrm{ref}} = 0` get exactly 0.
    """
    ref = _distribution("pi_ref", pi_ref)
    r, b = _reward(reward, ref.size), _beta(beta)
    with np.errstate(divide="ignore"):
        logits = np.log(ref) + r / b
    return np.exp(logits - logsumexp(logits))


def kl_regularized_objective(pi: Any, pi_ref: Any, reward: Any, beta: float) -> float:
    r""":math:`J(\pi) = \sum_y\pi(y)r(y) - \beta D_{\mathrm{KL}}(\pi\,\Vert\,\pi_{\mathrm{ref}})` (``-inf`` if :math:`\pi` leaves the support of :math:`\pi_{\mathrm{ref}}`)."""
    p, ref = _distribution("pi", pi), _distribution("pi_ref", pi_ref)
    if p.size != ref.size:
        raise ValueError(f"pi and pi_ref must have the same length, got {p.size} and {ref.size}")
    r, b = _reward(reward, ref.size), _beta(beta)
    return float(p @ r - b * kl_divergence(p, ref))


def forward_penalty_optimum(pi_ref: Any, reward: Any, beta: float) -> np.ndarray:
    r"""The maximiser of :math:`\mathbb E_\pi[r] - \beta D_{\mathrm{KL}}(\pi_{\mathrm{ref}}\,\Vert\,\pi)`: the penalty in the *other* direction.

    Stationarity with a multiplier :math:`\lambda` for :math:`\sum_y\pi(y) = 1` gives, on the support of
    :math:`\pi_{\mathrm{ref}}`,

    .. math::

        \pi(y) = \frac{\beta\,\pi_{\mathrm{ref}}(y)}{\lambda - r(y)},\qquad \lambda > \max_{\pi_{\mathrm{ref}}>0} r,

    with :math:`\lambda` the root of :math:`\sum_y\beta\pi_{\mathrm{ref}}(y)/(\lambda - r(y)) = 1` (found by
    Brent's method; the left side decreases from :math:`+\infty` to 0). The objective is concave, so this
    is the maximum. Outcomes outside the support cost nothing in this direction: if the best of them has
    a reward :math:`r_0 \ge \lambda`, the maximiser sets :math:`\lambda = r_0` and gives that outcome the
    mass :math:`1 - \sum_{\pi_{\mathrm{ref}}>0}\beta\pi_{\mathrm{ref}}/(r_0 - r)`.
    """
    ref = _distribution("pi_ref", pi_ref)
    r, b = _reward(reward, ref.size), _beta(beta)
    support = ref > 0
    r_in, ref_in = r[support], ref[support]
    top = r_in.max()

    def excess(lam: float) -> float:
        return float(np.sum(b * ref_in / (lam - r_in)) - 1.0)

    high = top + b
    while excess(high) > 0:
        high = top + 2 * (high - top)
    lam = optimize.brentq(excess, top + 1e-300 + 1e-12 * max(1.0, abs(top)), high, xtol=1e-15, rtol=1e-15)
    pi = np.zeros_like(ref)
    if (~support).any():
        outside = np.flatnonzero(~support)
        best = outside[np.argmax(r[outside])]
        if r[best] >= lam:
            pi[support] = b * ref_in / (r[best] - r_in)
            pi[best] = 1.0 - pi[support].sum()
            return pi
    pi[support] = b * ref_in / (lam - r_in)
    return pi / pi.sum()


def penalty_gradients(logits: Any, pi_ref: Any) -> dict[tuple[str, str], np.ndarray]:
    r"""Exact expected gradients, with respect to the logits, of the six ways of implementing the KL penalty.

    With :math:`\pi = \operatorname{softmax}(\theta)`, :math:`\ell(y) = \log\pi(y) - \log\pi_{\mathrm{ref}}(y)`,
    :math:`D = D_{\mathrm{KL}}(\pi\,\Vert\,\pi_{\mathrm{ref}})` and :math:`\nabla_\theta\log\pi(y) = e_y - \pi`:

    ========================  ===================================================  ==============================================
    implementation            per-sample gradient                                  expectation over :math:`y\sim\pi`
    ========================  ===================================================  ==============================================
    ``("k1", "reward")``      :math:`\ell(y)\,(e_y - \pi)`                         :math:`\pi\odot(\ell - D)` (the true gradient)
    ``("k2", "reward")``      :math:`\tfrac12\ell(y)^2\,(e_y - \pi)`               :math:`\pi\odot(\tfrac12\ell^2 - \mathbb E_\pi[\tfrac12\ell^2])`
    ``("k3", "reward")``      :math:`k_3(y)\,(e_y - \pi)`                          :math:`\pi\odot(\ell - D) - (\pi - \pi_{\mathrm{ref}})`
    ``("k1", "loss")``        :math:`\nabla\ell(y) = e_y - \pi`                    :math:`0`
    ``("k2", "loss")``        :math:`\ell(y)\,(e_y - \pi)`                         :math:`\pi\odot(\ell - D)` (the true gradient)
    ``("k3", "loss")``        :math:`(1 - e^{-\ell(y)})\,(e_y - \pi)`              :math:`\pi - \pi_{\mathrm{ref}} = \nabla_\theta D_{\mathrm{KL}}(\pi_{\mathrm{ref}}\Vert\pi)`
    ========================  ===================================================  ==============================================

    The true gradient of :math:`D` is :math:`\pi\odot(\ell - D)`, returned under ``("exact", "reverse")``.
    The table is computed here as the sum :math:`\sum_y\pi(y)\,g(y)` of the per-sample gradients (with
    :math:`\pi(y)e^{-\ell(y)}` written as :math:`\pi_{\mathrm{ref}}(y)`, which cannot overflow), not from the
    right-hand column, so that a test can compare the two.
    """
    theta = np.asarray(logits, dtype=np.float64)
    if theta.ndim != 1 or not np.isfinite(theta).all():
        raise ValueError(f"logits must be a finite 1-D array, got {logits!r}")
    ref = _distribution("pi_ref", pi_ref, positive=True)
    if ref.size != theta.size:
        raise ValueError(f"logits and pi_ref must have the same length, got {theta.size} and {ref.size}")
    shifted = theta - theta.max()
    log_pi = shifted - np.log(np.exp(shifted).sum())
    pi = np.exp(log_pi)
    ell = log_pi - np.log(ref)
    # pi(y) times the per-sample coefficient of grad log pi(y): k(y) in the reward, k'(ell(y)) as a loss.
    # For k3, e^{-ell} = pi_ref / pi overflows where pi underflows; pi e^{-ell} = pi_ref does not.
    weighted = {
        ("k1", "reward"): pi * ell,
        ("k2", "reward"): pi * 0.5 * ell**2,
        ("k3", "reward"): (ref - pi) + pi * ell,
        ("k1", "loss"): pi,
        ("k2", "loss"): pi * ell,
        ("k3", "loss"): pi - ref,
    }
    score = np.eye(theta.size) - pi  # row y: e_y - pi
    out: dict[tuple[str, str], np.ndarray] = {}
    for key in PENALTY_IMPLEMENTATIONS:
        out[key] = weighted[key] @ score
    out[("exact", "reverse")] = pi * (ell - pi @ ell)
    return out
