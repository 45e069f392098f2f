r"""Closed forms of a Gaussian diffusion model (Ho et al. 2020, "DDPM"; Kingma et al. 2021, "VDM").

A variance schedule :math:`\beta_1, \dots, \beta_T \in (0, 1)` defines the forward (noising) chain

.. math::

    q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{\alpha_t}\,x_{t-1},\ \beta_t I\big),
    \qquad \alpha_t = 1 - \beta_t,\qquad \bar\alpha_t = \prod_{s=1}^t \alpha_s ,

whose marginals and posteriors are Gaussian in closed form:

.. math::

    q(x_t \mid x_0) &= \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1 - \bar\alpha_t) I\big),\\
    q(x_{t-1} \mid x_t, x_0) &= \mathcal N\big(a_t x_0 + b_t x_t,\ \tilde\beta_t I\big),\quad
    a_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t},\
    b_t = \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t},\
    \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t

(DDPM eqs. 4, 6, 7). Steps are numbered :math:`t = 1, \dots, T` as in the papers; arrays returned
here hold step :math:`t` at index ``t - 1``. Every function takes and returns numpy float64 arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "linear_betas",
    "alpha_bars",
    "snr",
    "marginal_coefficients",
    "PosteriorCoefficients",
    "posterior_coefficients",
    "mean_from_eps",
    "eps_loss_weights",
]


def _schedule(betas: Any) -> np.ndarray:
    """``betas`` as a 1-D float64 array of values in (0, 1); ``ValueError`` naming the problem otherwise."""
    array = np.asarray(betas, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"betas must be a non-empty 1-D array, got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError("betas contains NaN")
    if not ((array > 0) & (array < 1)).all():
        bad = array[~((array > 0) & (array < 1))][0]
        raise ValueError(f"every beta must lie in (0, 1) (a variance of the added noise), got {bad}")
    return array


def linear_betas(n_steps: int, beta_first: float, beta_last: float) -> np.ndarray:
    r"""The linear schedule of DDPM: :math:`\beta_t` evenly spaced from ``beta_first`` to ``beta_last``.

    Parameters
    ----------
    n_steps
        Number of steps :math:`T \ge 1`.
    beta_first, beta_last
        :math:`\beta_1` and :math:`\beta_T`, each in (0, 1).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_steps,)``.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    return _schedule(np.linspace(beta_first, beta_last, int(n_steps)))


def alpha_bars(betas: Any) -> np.ndarray:
    r""":math:`\bar\alpha_t = \prod_{s\le t}(1 - \beta_s)` for :math:`t = 1, \dots, T`.

    Evaluated as ``exp(cumsum(log1p(-betas)))``, which keeps relative accuracy when
    :math:`\bar\alpha_t` becomes tiny.
    """
    return np.exp(np.cumsum(np.log1p(-_schedule(betas))))


def snr(betas: Any) -> np.ndarray:
    r"""Signal-to-noise ratio of :math:`q(x_t\mid x_0)`: :math:`\mathrm{SNR}(t) = \bar\alpha_t/(1-\bar\alpha_t)`.

    :math:`1 - \bar\alpha_t` is evaluated as ``-expm1(cumsum(log1p(-betas)))`` (no cancellation for small
    :math:`t`). The sequence is strictly decreasing in :math:`t` (VDM, section 3).
    """
    log_abar = np.cumsum(np.log1p(-_schedule(betas)))
    return np.exp(log_abar) / -np.expm1(log_abar)


def marginal_coefficients(betas: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean factor and standard deviation of :math:`q(x_t\mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}x_0, (1-\bar\alpha_t)I)`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        :math:`\sqrt{\bar\alpha_t}` and :math:`\sqrt{1-\bar\alpha_t}`, each of shape ``(T,)``.
    """
    log_abar = np.cumsum(np.log1p(-_schedule(betas)))
    return np.exp(0.5 * log_abar), np.sqrt(-np.expm1(log_abar))


class PosteriorCoefficients(NamedTuple):
    r""":math:`q(x_{t-1}\mid x_t, x_0) = \mathcal N(a_t x_0 + b_t x_t, \tilde\beta_t I)`, arrays over :math:`t = 1..T`."""

    coef_x0: np.ndarray
    coef_xt: np.ndarray
    variance: np.ndarray


def posterior_coefficients(betas: Any) -> PosteriorCoefficients:
    r"""The forward-process posterior :math:`q(x_{t-1}\mid x_t, x_0)` (DDPM eqs. 6-7).

    .. math::

        a_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t},\qquad
        b_t = \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t},\qquad
        \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t ,

    with :math:`\bar\alpha_0 = 1`, so that at :math:`t = 1` the posterior is the point mass at
    :math:`x_0` (:math:`a_1 = 1`, :math:`b_1 = 0`, :math:`\tilde\beta_1 = 0`).

    Returns
    -------
    PosteriorCoefficients
        ``coef_x0`` (:math:`a_t`), ``coef_xt`` (:math:`b_t`) and ``variance`` (:math:`\tilde\beta_t`),
        each of shape ``(T,)``.
    """
    b = _schedule(betas)
    log_abar = np.cumsum(np.log1p(-b))
    log_abar_prev = np.concatenate([[0.0], log_abar[:-1]])
    one_minus = -np.expm1(log_abar)
    one_minus_prev = -np.expm1(log_abar_prev)
    coef_x0 = np.exp(0.5 * log_abar_prev) * b / one_minus
    coef_xt = np.sqrt(1.0 - b) * one_minus_prev / one_minus
    variance = one_minus_prev / one_minus * b
    return PosteriorCoefficients(coef_x0, coef_xt, variance)


def mean_from_eps(x_t: Any, eps: Any, betas: Any, t: Any) -> np.ndarray:
    r"""The mean :math:`\mu = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon\big)` (DDPM eq. 11).

    With the true noise :math:`\varepsilon` of :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon`
    this is the posterior mean :math:`a_t x_0 + b_t x_t`; with a network's prediction
    :math:`\varepsilon_\theta(x_t, t)` it is the reverse-process mean :math:`\mu_\theta(x_t, t)`.

    Parameters
    ----------
    x_t, eps
        Arrays of shape ``(n, d)`` (or broadcastable to it).
    betas
        The schedule.
    t
        Step numbers in ``1..T``, an integer or an integer array of shape ``(n,)``.
    """
    b = _schedule(betas)
    steps = np.asarray(t)
    if steps.dtype.kind not in "iu" or (steps < 1).any() or (steps > b.size).any():
        raise ValueError(f"t must hold integer steps in 1..{b.size}, got {t!r}")
    _, sd = marginal_coefficients(b)
    beta_t, sd_t = b[steps - 1], sd[steps - 1]
    if steps.ndim == 1:
        beta_t, sd_t = beta_t[:, None], sd_t[:, None]
    x = np.asarray(x_t, dtype=np.float64)
    e = np.asarray(eps, dtype=np.float64)
    return (x - beta_t / sd_t * e) / np.sqrt(1.0 - beta_t)


def eps_loss_weights(betas: Any, reverse_variance: Any | None = None) -> np.ndarray:
    r"""Weights :math:`\lambda_t` with :math:`D_{\mathrm{KL}}\big(q(x_{t-1}\mid x_t,x_0)\,\Vert\,p_\theta(x_{t-1}\mid x_t)\big) = \lambda_t\lVert\varepsilon-\varepsilon_\theta\rVert^2 + c_t`.

    For a reverse step :math:`p_\theta(x_{t-1}\mid x_t) = \mathcal N(\mu_\theta, \sigma_t^2 I)` with
    :math:`\mu_\theta` from :func:`mean_from_eps` (DDPM eq. 12),

    .. math::

        \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)},

    and :math:`c_t = 0` when :math:`\sigma_t^2 = \tilde\beta_t` (the default), where the weight simplifies to
    :math:`\lambda_t = \frac{\beta_t}{2\alpha_t(1-\bar\alpha_{t-1})} = \tfrac12\big(\mathrm{SNR}(t-1)/\mathrm{SNR}(t) - 1\big)`
    (VDM eq. 13 written for the noise). Defined for :math:`t = 2, \dots, T`; the entry for
    :math:`t = 1` is ``nan`` when :math:`\sigma_1^2 = \tilde\beta_1 = 0`.

    Parameters
    ----------
    betas
        The schedule.
    reverse_variance
        :math:`\sigma_t^2`, shape ``(T,)``, positive; ``None`` for :math:`\tilde\beta_t`.

    Returns
    -------
    numpy.ndarray
        :math:`\lambda_t` for :math:`t = 1..T` (index ``t - 1``).
    """
    b = _schedule(betas)
    log_abar = np.cumsum(np.log1p(-b))
    if reverse_variance is None:
        log_abar_prev = np.concatenate([[0.0], log_abar[:-1]])
        one_minus_prev = -np.expm1(log_abar_prev)
        with np.errstate(divide="ignore"):
            weights = b / (2.0 * (1.0 - b) * one_minus_prev)
        weights[0] = np.nan
        return weights
    sigma2 = np.asarray(reverse_variance, dtype=np.float64)
    if sigma2.shape != b.shape or not (np.isfinite(sigma2) & (sigma2 > 0)).all():
        raise ValueError(f"reverse_variance must be {b.size} finite positive variances, got {reverse_variance!r}")
    return b**2 / (2.0 * sigma2 * (1.0 - b) * -np.expm1(log_abar))
