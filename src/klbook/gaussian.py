"""Closed-form KL divergences between Gaussians.

Each function documents the textbook formula it evaluates; the code evaluates an algebraically equal
form made of non-negative terms (see :mod:`klbook._numerics`), which keeps every digit where the
textbook form cancels. Parameter conventions are part of every name: ``sigma`` is a standard deviation,
``cov`` a covariance matrix, ``logvar`` the natural log of a variance, ln sigma^2.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ._array import (
    ArrayLike,
    _is_torch,
    detached_numpy,
    in_chunks,
    prepare,
    quiet_floating_point,
    require_positive,
)
from ._numerics import (
    half_g_moderate,
    half_g_of_exact_diff,
    half_g_of_ratio,
    half_square,
    two_diff,
    where_safe,
)

__all__ = ["kl_normal", "kl_diag_normal", "kl_std_normal", "kl_mvn", "normal_logpdf"]

# A covariance is accepted as symmetric when |C - C^T| <= SYMMETRY_RTOL * max|C| elementwise.
SYMMETRY_RTOL = 1e-10


def _scaled_difference(xp: Any, mu_p: Any, mu_q: Any, scale_q: Any) -> Any:
    """(mu_p - mu_q) / scale_q, also when mu_p - mu_q overflows but the quotient does not."""
    diff = mu_p - mu_q
    quotient = diff / scale_q
    if bool(xp.isfinite(xp.sum(quotient))):
        return quotient
    finite = xp.isfinite(diff)
    # Where the difference overflows, halve both means first (exact) and double at the end.
    base = xp.where(finite, diff, 0.5 * mu_p - 0.5 * mu_q)
    doubling = xp.where(finite, xp.ones_like(diff), xp.full_like(diff, 2.0))
    return base / scale_q * doubling


@quiet_floating_point
def kl_normal(mu_p: ArrayLike, sigma_p: ArrayLike, mu_q: ArrayLike, sigma_q: ArrayLike) -> Any:
    r"""KL divergence between univariate Gaussians given by their standard deviations.

    .. math::

        D_{\mathrm{KL}}\big(\mathcal N(\mu_p, \sigma_p^2)\,\|\,\mathcal N(\mu_q, \sigma_q^2)\big)
        = \ln\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2\sigma_q^2} - \frac12

    evaluated as :math:`\tfrac12\big(r^2 - 1 - \ln r^2\big) + \tfrac12\big((\mu_p-\mu_q)/\sigma_q\big)^2`
    with :math:`r = \sigma_p/\sigma_q`: two non-negative terms, the first computed without cancellation.

    Parameters
    ----------
    mu_p, sigma_p, mu_q, sigma_q
        Means and standard deviations (``sigma > 0``); floats, numpy arrays or torch tensors that
        broadcast together.

    Returns
    -------
    The elementwise divergence in nats, of the kind of the inputs.

    Raises
    ------
    ValueError
        For NaN, infinite means, ``sigma <= 0`` or infinite sigma, or shapes that do not broadcast.
    """
    names = ("mu_p", "sigma_p", "mu_q", "sigma_q")
    xp, (mu_p, sigma_p, mu_q, sigma_q), finish = prepare(names, mu_p, sigma_p, mu_q, sigma_q)
    require_positive("sigma_p", sigma_p)
    require_positive("sigma_q", sigma_q)
    return finish(in_chunks(xp, partial(_normal_terms, xp), (mu_p, sigma_p, mu_q, sigma_q), reduces_last_axis=False))


def _normal_terms(xp: Any, mu_p: Any, sigma_p: Any, mu_q: Any, sigma_q: Any) -> Any:
    z = _scaled_difference(xp, mu_p, mu_q, sigma_q)
    return half_g_of_ratio(xp, sigma_p, sigma_q) + half_square(z)


def _diag_terms(xp: Any, mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> Any:
    """Per-dimension KL terms of diagonal Gaussians given by log-variances (all >= 0)."""
    s, e = two_diff(logvar_p, logvar_q)
    variance_term = half_g_of_exact_diff(xp, s, e)
    # (mu_p - mu_q)^2 / sigma_q^2 = ((mu_p - mu_q) / exp(logvar_q / 2))^2; halving logvar is exact.
    # Where the means are equal the exponential is skipped: it may overflow where the term is 0.
    equal = mu_p == mu_q
    sigma_q = xp.exp(0.5 * where_safe(xp, ~equal, logvar_q, 0.0))
    z = xp.where(equal, xp.zeros_like(mu_p), _scaled_difference(xp, mu_p, mu_q, sigma_q))
    return variance_term + half_square(z)


def _check_vector(name: str, x: Any) -> None:
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the latent dimension is the last axis)")


@quiet_floating_point
def kl_diag_normal(
    mu_p: ArrayLike, logvar_p: ArrayLike, mu_q: ArrayLike, logvar_q: ArrayLike
) -> Any:
    r"""KL divergence between Gaussians with diagonal covariances, summed over the last axis.

    .. math::

        D_{\mathrm{KL}}(p\,\|\,q) = \frac12 \sum_j \Big( \frac{\sigma_{p,j}^2}{\sigma_{q,j}^2}
        + \frac{(\mu_{p,j} - \mu_{q,j})^2}{\sigma_{q,j}^2} - 1
        - \ln\frac{\sigma_{p,j}^2}{\sigma_{q,j}^2} \Big),
        \qquad \ln\sigma_{\cdot,j}^2 = \text{logvar}_{\cdot,j}

    Each term is evaluated as :math:`\tfrac12(e^u - 1 - u) + \tfrac12 z^2` with
    :math:`u = \text{logvar}_p - \text{logvar}_q` carried exactly and
    :math:`z = (\mu_p - \mu_q)\,e^{-\text{logvar}_q/2}`, so nothing cancels and ``exp`` never overflows
    before the true result does.

    Parameters
    ----------
    mu_p, logvar_p, mu_q, logvar_q
        Means and log-variances (natural log of the variance, not of the standard deviation), at least
        1-D; the last axis is the dimension summed over, leading axes are a batch.

    Returns
    -------
    The divergence in nats with the last axis summed out.

    Raises
    ------
    ValueError
        For NaN or infinite inputs, 0-d inputs, or shapes that do not broadcast.
    """
    names = ("mu_p", "logvar_p", "mu_q", "logvar_q")
    xp, arrays, finish = prepare(names, mu_p, logvar_p, mu_q, logvar_q)
    for name, value in zip(names, arrays):
        _check_vector(name, value)
    return finish(in_chunks(xp, partial(_diag_kl, xp), arrays, reduces_last_axis=True))


def _diag_kl(xp: Any, *arrays: Any) -> Any:
    return xp.sum(_diag_terms(xp, *arrays), axis=-1)


@quiet_floating_point
def kl_std_normal(mu: ArrayLike, logvar: ArrayLike) -> Any:
    r"""The VAE KL term :math:`D_{\mathrm{KL}}(\mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})\,\|\,\mathcal N(0, I))`.

    .. math::

        D_{\mathrm{KL}} = \frac12 \sum_j \big( \mu_j^2 + \sigma_j^2 - 1 - \ln \sigma_j^2 \big)
        = -\frac12 \sum_j \big( 1 + \text{logvar}_j - \mu_j^2 - e^{\text{logvar}_j} \big)

    summed over the last axis (the latent dimensions); average the result over the batch yourself.
    Evaluated as :math:`\tfrac12\mu_j^2 + \tfrac12(e^{\ell} - 1 - \ell)` with the second term computed
    without cancellation: the textbook form loses every digit for ``|logvar| < 1e-8``.

    Raises
    ------
    ValueError
        For NaN or infinite inputs, 0-d inputs, or shapes that do not broadcast.
    """
    names = ("mu", "logvar")
    xp, (mu, logvar), finish = prepare(names, mu, logvar)
    for name, value in zip(names, (mu, logvar)):
        _check_vector(name, value)
    return finish(in_chunks(xp, partial(_std_normal_kl, xp), (mu, logvar), reduces_last_axis=True))


def _std_normal_kl(xp: Any, mu: Any, logvar: Any) -> Any:
    return xp.sum(half_g_of_exact_diff(xp, logvar, None) + half_square(mu), axis=-1)


def _cholesky(xp: Any, name: str, cov: Any) -> Any:
    values = detached_numpy(cov)
    if values.ndim < 2 or values.shape[-1] != values.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (or a batch of them), got shape {values.shape}")
    asym = np.abs(values - np.swapaxes(values, -1, -2)).max(initial=0.0)
    scale = np.abs(values).max(initial=0.0)
    if asym > SYMMETRY_RTOL * scale:
        raise ValueError(f"{name} is not symmetric: max |C - C^T| = {asym:.3g} (scale {scale:.3g})")
    if _is_torch(cov):
        import torch

        chol, info = torch.linalg.cholesky_ex(cov)
        ok = bool((info == 0).all())
    else:
        try:
            chol = np.linalg.cholesky(cov)
            ok = bool(np.isfinite(chol).all())
        except np.linalg.LinAlgError:
            ok = False
    if not ok:
        raise ValueError(f"{name} is not positive definite (its Cholesky factorisation fails)")
    return chol


def _solve_lower(xp: Any, lower: Any, rhs: Any) -> Any:
    if _is_torch(lower):
        import torch

        return torch.linalg.solve_triangular(lower, rhs, upper=False)
    from scipy.linalg import solve_triangular

    if lower.ndim == 2 and rhs.ndim == 2:
        return solve_triangular(lower, rhs, lower=True)
    batch = np.broadcast_shapes(lower.shape[:-2], rhs.shape[:-2])
    lower_b = np.broadcast_to(lower, batch + lower.shape[-2:]).reshape(-1, *lower.shape[-2:])
    rhs_b = np.broadcast_to(rhs, batch + rhs.shape[-2:]).reshape(-1, *rhs.shape[-2:])
    solved = np.stack([solve_triangular(l_, r_, lower=True) for l_, r_ in zip(lower_b, rhs_b)])
    return solved.reshape(batch + solved.shape[-2:])


@quiet_floating_point
def kl_mvn(mu_p: ArrayLike, cov_p: ArrayLike, mu_q: ArrayLike, cov_q: ArrayLike) -> Any:
    r"""KL divergence between multivariate Gaussians with full covariance matrices.

    .. math::

        D_{\mathrm{KL}}(p\,\|\,q) = \frac12\Big( \operatorname{tr}(\Sigma_q^{-1}\Sigma_p)
        + (\mu_q - \mu_p)^\top \Sigma_q^{-1} (\mu_q - \mu_p) - k
        + \ln\frac{\det\Sigma_q}{\det\Sigma_p} \Big)

    With Cholesky factors :math:`\Sigma = LL^\top` and :math:`M = L_q^{-1}L_p` (lower triangular) this is
    :math:`\tfrac12\sum_{i>j} M_{ij}^2 + \sum_i \tfrac12(M_{ii}^2 - 1 - \ln M_{ii}^2)
    + \tfrac12\lVert L_q^{-1}(\mu_p - \mu_q)\rVert^2`, a sum of non-negative terms.

    Parameters
    ----------
    mu_p, mu_q
        Means, shape ``(..., k)``.
    cov_p, cov_q
        Symmetric positive definite covariances, shape ``(..., k, k)``; leading axes are a batch.

    Raises
    ------
    ValueError
        For NaN or infinite entries, non-square, non-symmetric (beyond ``SYMMETRY_RTOL``) or not positive
        definite covariances, or shapes that do not fit together.
    """
    names = ("mu_p", "cov_p", "mu_q", "cov_q")
    xp, (mu_p, cov_p, mu_q, cov_q), finish = prepare(names, mu_p, cov_p, mu_q, cov_q, broadcast=False)
    for name, mu in (("mu_p", mu_p), ("mu_q", mu_q)):
        _check_vector(name, mu)
    chol_p = _cholesky(xp, "cov_p", cov_p)
    chol_q = _cholesky(xp, "cov_q", cov_q)
    k = chol_p.shape[-1]
    if chol_q.shape[-1] != k or mu_p.shape[-1] != k or mu_q.shape[-1] != k:
        raise ValueError(
            f"dimensions do not match: mu_p {tuple(mu_p.shape)}, cov_p {tuple(cov_p.shape)}, "
            f"mu_q {tuple(mu_q.shape)}, cov_q {tuple(cov_q.shape)}"
        )
    try:
        batch = np.broadcast_shapes(
            tuple(mu_p.shape[:-1]), tuple(mu_q.shape[:-1]), tuple(cov_p.shape[:-2]), tuple(cov_q.shape[:-2])
        )
    except ValueError:
        raise ValueError(
            f"batch shapes do not broadcast: mu_p {tuple(mu_p.shape)}, cov_p {tuple(cov_p.shape)}, "
            f"mu_q {tuple(mu_q.shape)}, cov_q {tuple(cov_q.shape)}"
        ) from None
    diff = xp.broadcast_to(mu_p - mu_q, batch + (k,))
    m = _solve_lower(xp, chol_q, chol_p)
    z = _solve_lower(xp, chol_q, diff[..., None])[..., 0]
    diag_p = xp.linalg.diagonal(chol_p)
    diag_q = xp.linalg.diagonal(chol_q)
    variance_terms = xp.sum(half_g_of_ratio(xp, *xp.broadcast_arrays(diag_p, diag_q)), axis=-1)
    tril = xp.tril(m, k=-1)
    off_diagonal = 0.5 * xp.sum(xp.sum(tril * tril, axis=-1), axis=-1)
    # When the covariances are close, the separately rounded Cholesky factors no longer carry their
    # difference: use the exact difference instead (see _close_covariance_terms).
    close_terms, close = _close_covariance_terms(xp, chol_q, cov_p, cov_q)
    covariance_terms = xp.where(close, close_terms, variance_terms + off_diagonal)
    mean_term = xp.sum(half_square(z), axis=-1)
    return finish(covariance_terms + mean_term)


def _close_covariance_terms(xp: Any, chol_q: Any, cov_p: Any, cov_q: Any) -> tuple[Any, Any]:
    r"""The covariance part of the KL, accurate when cov_p is close to cov_q.

    With :math:`\Delta = \Sigma_q - \Sigma_p` (exact where the entries are within a factor 2) and
    :math:`D = L_q^{-1}\Delta L_q^{-\top}`, the eigenvalues of :math:`L_q^{-1}\Sigma_p L_q^{-\top}` are
    :math:`s_i = 1 - \lambda_i(D)`, and the covariance part of the KL is
    :math:`\tfrac12\sum_i (s_i - 1 - \ln s_i)`, evaluated through ``log1p(-lambda)``. Returned with a
    mask of the batch entries where every :math:`|\lambda_i| \le 1/2`, the range where this is accurate.
    """
    solved = _solve_lower(xp, chol_q, cov_q - cov_p)
    d = _solve_lower(xp, chol_q, xp.matrix_transpose(solved))
    d = 0.5 * (d + xp.matrix_transpose(d))
    eigenvalues = xp.linalg.eigvalsh(d)
    close = xp.max(xp.abs(eigenvalues), axis=-1) <= 0.5
    safe = where_safe(xp, close[..., None], eigenvalues, 0.0)
    terms = half_g_moderate(xp, xp.log1p(-safe))
    return xp.sum(terms, axis=-1), close


@quiet_floating_point
def normal_logpdf(x: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> Any:
    r"""Log density of :math:`\mathcal N(\mu, \sigma^2)` at ``x``:
    :math:`-\tfrac12\ln(2\pi) - \ln\sigma - \tfrac12((x-\mu)/\sigma)^2`."""
    names = ("x", "mu", "sigma")
    xp, (x, mu, sigma), finish = prepare(names, x, mu, sigma)
    require_positive("sigma", sigma)
    z = (x - mu) / sigma
    return finish(-0.5 * np.log(2 * np.pi) - xp.log(sigma) - half_square(z))
