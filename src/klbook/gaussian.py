"""Closed-form KL divergences between Gaussians.

Each function documents the textbook formula it evaluates; the code evaluates an algebraically equal
form made of non-negative terms (see :mod:`klbook._numerics`), which keeps every digit where the
textbook form cancels. Parameter conventions are part of every name: ``sigma`` is a standard deviation,
``cov`` a covariance matrix, ``logvar`` the natural log of a variance, ln sigma^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ._array import (
    ArrayLike,
    _is_torch,
    detached_numpy,
    in_chunks,
    in_row_chunks,
    is_narrow,
    prepare,
    quiet_floating_point,
    require_positive,
)
from ._linalg import Split, exact_matvec, exact_product, gram_residual, inverse_lower, matvec, solve_lower
from ._numerics import (
    HALF_LOG_2PI,
    all_true,
    half_g_of_exact_diff,
    half_g_of_ratio,
    half_square,
    two_diff,
    where_safe,
)

__all__ = ["kl_normal", "kl_diag_normal", "kl_std_normal", "kl_mvn", "normal_logpdf"]

# A covariance is accepted as symmetric when |C - C^T| <= max(SYMMETRY_RTOL, 32 k eps) * max|C| elementwise
# (k its size, eps that of its dtype), per matrix of a batch.
SYMMETRY_RTOL = 1e-10


def _scaled_difference(xp: Any, mu_p: Any, mu_q: Any, scale_q: Any, *, inverse: bool = False) -> Any:
    """(mu_p - mu_q) / scale_q (or times scale_q with ``inverse``), also when mu_p - mu_q overflows but
    the quotient does not."""

    def scaled(x: Any) -> Any:
        return x * scale_q if inverse else x / scale_q

    diff = mu_p - mu_q
    quotient = scaled(diff)
    if bool(xp.isfinite(xp.sum(quotient))):
        return quotient
    finite = xp.isfinite(diff)
    # Where the difference overflows, halve both means first (exact) and double at the end.
    base = xp.where(finite, diff, 0.5 * mu_p - 0.5 * mu_q)
    doubling = xp.where(finite, xp.ones_like(diff), xp.full_like(diff, 2.0))
    return scaled(base) * doubling


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
    xp, (mu_p, sigma_p, mu_q, sigma_q), finish = prepare(names, mu_p, sigma_p, mu_q, sigma_q, keep_narrow=True)
    require_positive("sigma_p", sigma_p)
    require_positive("sigma_q", sigma_q)
    terms = _normal_terms_narrow if is_narrow(mu_p) else _normal_terms
    arrays = (mu_p, sigma_p, mu_q, sigma_q)
    return finish(in_chunks(xp, partial(terms, xp), arrays, reduces_last_axis=False, gradient=_normal_gradient))


def _normal_terms(xp: Any, mu_p: Any, sigma_p: Any, mu_q: Any, sigma_q: Any) -> Any:
    z = _scaled_difference(xp, mu_p, mu_q, sigma_q)
    return half_g_of_ratio(xp, sigma_p, sigma_q) + half_square(z)


# Inputs of a dtype narrower than float64 (float32, float16, bfloat16) are exact in float64 with 29 or
# more bits to spare, and so are their differences. The short formulas below, evaluated in float64, err
# by at most ~1e-9 relative (rounding sigma_p / sigma_q where it is one float32 ULP from 1; elsewhere
# far less), a small fraction of the narrow dtype's ULP, so the result rounded once is within 1 ULP. They skip the exact-difference machinery the float64 path needs, and convert chunk by chunk,
# which is what makes them fast.
NARROW_SERIES_LIMIT = 2.0**-10


def _narrow_g(xp: Any, u: Any) -> Any:
    """e^u - 1 - u to ~1e-12 relative: expm1(u) - u loses at most ~2^10 ULP of float64 for
    |u| >= 2^-10; below that three Taylor terms are exact to ~1e-11. (Narrow inputs only, which are
    torch tensors: the few entries that need the series are gathered and written back.)"""
    value = xp.expm1(u) - u
    small = xp.abs(u) < NARROW_SERIES_LIMIT
    if bool(xp.any(small)):
        v = u[small]
        value[small] = v * v * (0.5 + v * (1.0 / 6.0 + v * (1.0 / 24.0)))
    return value


# Each returns twice the KL (one multiplication by 1/2 after the sum instead of one per term).


def _twice_normal_terms_narrow(xp: Any, mu_p: Any, sigma_p: Any, mu_q: Any, sigma_q: Any) -> Any:
    # Ratios of narrow floats stay within 1e-83 ... 1e83, so neither they nor their squares overflow;
    # multiplying by 1/sigma_q rounds once more, ~1e-16 relative, far below the narrow ULP.
    inv_sigma_q = 1.0 / sigma_q
    z = (mu_p - mu_q) * inv_sigma_q
    return _narrow_g(xp, 2.0 * xp.log(sigma_p * inv_sigma_q)) + z * z


def _twice_diag_terms_narrow(xp: Any, mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> Any:
    # exp(-logvar_q / 2) overflows float64 below logvar_q = -1419. Below -1400 any nonzero mean
    # difference (>= 1e-45 in a narrow dtype) makes the term exceed every narrow dtype's range, so the
    # clipped value still gives inf there, and 0 for equal means (where an inf would make 0 * inf = NaN).
    z = (mu_p - mu_q) * xp.exp(-0.5 * xp.clip(logvar_q, min=-1400.0))
    return _narrow_g(xp, logvar_p - logvar_q) + z * z


def _normal_terms_narrow(xp: Any, *arrays: Any) -> Any:
    twice = _twice_normal_terms_narrow(xp, *_float64(xp, arrays))
    return xp.astype(0.5 * twice, arrays[0].dtype)


def _diag_kl_narrow(xp: Any, *arrays: Any) -> Any:
    twice = _twice_diag_terms_narrow(xp, *_float64(xp, arrays))
    return xp.astype(0.5 * xp.sum(twice, axis=-1), arrays[0].dtype)


def _std_normal_kl_narrow(xp: Any, mu: Any, logvar: Any) -> Any:
    mu64, logvar64 = _float64(xp, (mu, logvar))
    return xp.astype(0.5 * xp.sum(_narrow_g(xp, logvar64) + mu64 * mu64, axis=-1), mu.dtype)


def _float64(xp: Any, arrays: Any) -> list[Any]:
    return [xp.astype(a, xp.float64) for a in arrays]


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
    xp, arrays, finish = prepare(names, mu_p, logvar_p, mu_q, logvar_q, keep_narrow=True)
    for name, value in zip(names, arrays):
        _check_vector(name, value)
    kl = _diag_kl_narrow if is_narrow(arrays[0]) else _diag_kl
    return finish(in_chunks(xp, partial(kl, xp), arrays, reduces_last_axis=True, gradient=_diag_gradient))


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
    xp, (mu, logvar), finish = prepare(names, mu, logvar, keep_narrow=True)
    for name, value in zip(names, (mu, logvar)):
        _check_vector(name, value)
    kl = _std_normal_kl_narrow if is_narrow(mu) else _std_normal_kl
    return finish(in_chunks(xp, partial(kl, xp), (mu, logvar), reduces_last_axis=True, gradient=_std_normal_gradient))


def _std_normal_kl(xp: Any, mu: Any, logvar: Any) -> Any:
    return xp.sum(half_g_of_exact_diff(xp, logvar, None) + half_square(mu), axis=-1)


# Gradients in closed form (see ``gradient`` in :func:`klbook._array.in_chunks`), evaluated in float64
# (in_chunks rounds them once to the inputs' dtype) with differentiable operations only, so that
# second derivatives come out of autograd.
# With u = logvar_p - logvar_q and z = (mu_p - mu_q) / sigma_q, each term 1/2 (e^u - 1 - u) + 1/2 z^2 has
#   d/dmu_p = -d/dmu_q = z / sigma_q,   d/dlogvar_p = 1/2 expm1(u),   d/dlogvar_q = -1/2 expm1(u) - 1/2 z^2.


def _half_expm1(xp: Any, s: Any, e: Any | None) -> Any:
    """expm1(u) / 2 for u = s + e (e the rounding error of s, or None), also where e^u / 2 is finite
    but e^u overflows (u up to ~710.5)."""
    if e is not None:
        s_mod = where_safe(xp, s <= 700.0, s, 0.0)
        value = 0.5 * xp.expm1(s_mod) + (0.5 * xp.exp(s_mod)) * e
    else:
        value = 0.5 * xp.expm1(s)
    big = s > 700.0
    if not bool(xp.any(big)):
        return value
    half = 0.5 * where_safe(xp, big, s, 0.0)
    big_value = (0.5 * xp.exp(half)) * xp.exp(half) * (1.0 if e is None else 1.0 + e) - 0.5
    return xp.where(big, big_value, value)


def _std_normal_gradient(xp: Any, grad: Any, mu: Any, logvar: Any) -> tuple[Any, Any]:
    grad, mu, logvar = _float64(xp, (grad, mu, logvar))
    return grad * mu, grad * _half_expm1(xp, logvar, None)


def _diag_gradient(xp: Any, grad: Any, mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> tuple[Any, ...]:
    narrow = is_narrow(mu_p)
    grad, mu_p, logvar_p, mu_q, logvar_q = _float64(xp, (grad, mu_p, logvar_p, mu_q, logvar_q))
    # Differences of narrow inputs are exact in float64 (and cannot overflow); float64 ones are carried
    # with their rounding error.
    s, e = (logvar_p - logvar_q, None) if narrow else two_diff(logvar_p, logvar_q)
    d_logvar_p = grad * _half_expm1(xp, s, e)
    # 1/sigma_q = exp(-logvar_q / 2) overflows below logvar_q = -1419: there, equal means give 0.
    inv_sigma_q = xp.exp(-0.5 * logvar_q)
    z = (mu_p - mu_q) * inv_sigma_q if narrow else _scaled_difference(xp, mu_p, mu_q, inv_sigma_q, inverse=True)
    if bool(xp.any(logvar_q <= -1400.0)):
        equal = mu_p == mu_q
        z = xp.where(equal, xp.zeros_like(z), where_safe(xp, ~equal, z, 0.0))
        inv_sigma_q = where_safe(xp, ~equal, inv_sigma_q, 0.0)
    grad_z = grad * z
    d_mu_p = grad_z * inv_sigma_q
    return d_mu_p, d_logvar_p, -d_mu_p, (-0.5 * grad_z) * z - d_logvar_p


def _normal_gradient(xp: Any, grad: Any, mu_p: Any, sigma_p: Any, mu_q: Any, sigma_q: Any) -> tuple[Any, ...]:
    narrow = is_narrow(mu_p)
    grad, mu_p, sigma_p, mu_q, sigma_q = _float64(xp, (grad, mu_p, sigma_p, mu_q, sigma_q))
    if narrow:  # 1/sigma_q of a narrow float is finite, and one more rounding is far below its ULP
        inv_sigma_q = 1.0 / sigma_q
        z = (mu_p - mu_q) * inv_sigma_q
        grad_over_sigma_q = grad * inv_sigma_q
    else:
        z = _scaled_difference(xp, mu_p, mu_q, sigma_q)
        grad_over_sigma_q = grad / sigma_q
    # d/dsigma_p of 1/2 (r^2 - 1 - ln r^2), r = sigma_p / sigma_q, is (r - 1/r) / sigma_q, and
    # r - 1/r = d / sigma_q + d / sigma_p with d = sigma_p - sigma_q (exact where the sigmas are within a
    # factor 2 of each other): two terms of one sign, no cancellation. d/dsigma_q is -r times that,
    # minus z^2 / sigma_q from the mean term.
    d = sigma_p - sigma_q
    r_minus_1 = d * inv_sigma_q if narrow else d / sigma_q
    d_sigma_p = grad_over_sigma_q * (r_minus_1 + d / sigma_p)
    grad_z = grad_over_sigma_q * z
    d_sigma_q = -(d_sigma_p * (r_minus_1 + 1.0) + grad_z * z)
    return grad_z, d_sigma_p, -grad_z, d_sigma_q


def _check_symmetric(name: str, cov: Any, eps: float) -> None:
    """Accept rounding-level asymmetry: per matrix, |C - C^T| <= max(SYMMETRY_RTOL, 32 k eps) max|C|,
    with eps that of the argument's own dtype (a float32 ``A @ A.T`` or ``torch.cov`` is symmetric only
    to ~k eps)."""
    values = detached_numpy(cov)
    if values.ndim < 2 or values.shape[-1] != values.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (or a batch of them), got shape {values.shape}")
    if values.size == 0:
        return
    flat = values.reshape((-1,) + values.shape[-2:])
    asym = np.abs(flat - np.swapaxes(flat, -1, -2)).max(axis=(-2, -1))
    scale = np.abs(flat).max(axis=(-2, -1))
    rtol = max(SYMMETRY_RTOL, 32 * values.shape[-1] * eps)
    worst = int(np.argmax(asym - rtol * scale))
    if asym[worst] > rtol * scale[worst]:
        raise ValueError(
            f"{name} is not symmetric: max |C - C^T| = {asym[worst]:.3g} (scale {scale[worst]:.3g}, "
            f"tolerance {rtol:.1g} relative)"
        )


def _symmetrized(xp: Any, cov: Any) -> Any:
    """(C + C^T) / 2, which is C itself (bit for bit) when C is exactly symmetric."""
    transposed = xp.matrix_transpose(cov)
    if bool(xp.all(cov == transposed)):
        return cov
    return 0.5 * (cov + transposed)


def _eps_of(a: Any) -> float:
    """Machine epsilon of an argument's own floating dtype (float64 for anything else)."""
    dtype = detached_numpy(a).dtype if not is_narrow(a) else None
    if dtype is None:  # narrow torch dtypes, bfloat16 included
        import torch

        return float(torch.finfo(a.dtype).eps)
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else float(np.finfo(np.float64).eps)


def _cholesky(xp: Any, name: str, cov: Any) -> Any:
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


def _power_of_two_scale(xp: Any, cov_p: Any, cov_q: Any) -> Any:
    """Per pair, c = 2^-e with c^2 max|entry| of the two covariances in [1, 4) (a constant for autograd)."""
    cov_p, cov_q = _constant(cov_p), _constant(cov_q)
    largest = xp.maximum(xp.max(xp.abs(cov_p), axis=(-2, -1)), xp.max(xp.abs(cov_q), axis=(-2, -1)))
    # exp2 and log2 are exact on powers of 2, and floor() absorbs log2's rounding elsewhere.
    return xp.exp2(-xp.floor(0.5 * xp.log2(largest)))


@quiet_floating_point
def kl_mvn(mu_p: ArrayLike, cov_p: ArrayLike, mu_q: ArrayLike, cov_q: ArrayLike) -> Any:
    r"""KL divergence between multivariate Gaussians with full covariance matrices.

    .. math::

        D_{\mathrm{KL}}(p\,\|\,q) = \frac12\Big( \operatorname{tr}(\Sigma_q^{-1}\Sigma_p)
        + (\mu_q - \mu_p)^\top \Sigma_q^{-1} (\mu_q - \mu_p) - k
        + \ln\frac{\det\Sigma_q}{\det\Sigma_p} \Big)

    With Cholesky factors :math:`\Sigma = LL^\top` and :math:`M = L_q^{-1}L_p` (lower triangular) this is
    :math:`\tfrac12\sum_{i>j} M_{ij}^2 + \sum_i \tfrac12(M_{ii}^2 - 1 - \ln M_{ii}^2)
    + \tfrac12\lVert L_q^{-1}(\mu_p - \mu_q)\rVert^2`, a sum of non-negative terms. When the covariances
    are close, the covariance part is computed from :math:`D = L_q^{-1}(\Sigma_q - \Sigma_p)L_q^{-\top}`
    instead, as :math:`\sum_{n\ge2}\operatorname{tr}(D^n)/(2n)`. In float64 a first-order correction
    for the rounding errors of the factorisations and solves is added (see ``_rounding_correction``);
    the result is then within a few ULP for condition numbers up to about 1e6, beyond which the
    correction's second-order remainder, ~(k eps cond)^2, grows. Each pair is first rescaled by a power
    of 2 (exactly, and the KL does not change) so that nothing under- or overflows.

    Parameters
    ----------
    mu_p, mu_q
        Means, shape ``(..., k)``.
    cov_p, cov_q
        Symmetric positive definite covariances, shape ``(..., k, k)``; leading axes are a batch.

    Raises
    ------
    ValueError
        For NaN or infinite entries, non-square, non-symmetric or not positive definite covariances, or
        shapes that do not fit together. Asymmetry at the level of rounding errors is accepted (up to
        ``max(SYMMETRY_RTOL, 32 k eps)`` times the matrix's largest entry, eps that of the argument's
        dtype) and removed by using (C + C^T) / 2.
    """
    names = ("mu_p", "cov_p", "mu_q", "cov_q")
    eps_p, eps_q = _eps_of(cov_p), _eps_of(cov_q)
    xp, arrays, finish = prepare(names, mu_p, cov_p, mu_q, cov_q, broadcast=False, keep_narrow=True)
    # Narrow (float32 and lower) inputs are computed in float64 too; the uncorrected float64 value, off
    # by ~k eps cond relative, is far more accurate than their ULP for condition numbers up to ~1e8.
    corrected = not is_narrow(arrays[0])
    mu_p, cov_p, mu_q, cov_q = (xp.astype(a, xp.float64) for a in arrays)
    for name, mu in (("mu_p", mu_p), ("mu_q", mu_q)):
        _check_vector(name, mu)
    for name, cov, eps in (("cov_p", cov_p, eps_p), ("cov_q", cov_q, eps_q)):
        _check_symmetric(name, cov, eps)
    cov_p, cov_q = _symmetrized(xp, cov_p), _symmetrized(xp, cov_q)
    k = cov_p.shape[-1]
    if cov_q.shape[-1] != k or mu_p.shape[-1] != k or mu_q.shape[-1] != k:
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
    mu_p, cov_p, mu_q, cov_q = (
        xp.reshape(xp.broadcast_to(a, batch + tuple(a.shape[-ndim:])), (-1,) + tuple(a.shape[-ndim:]))
        for a, ndim in zip((mu_p, cov_p, mu_q, cov_q), (1, 2, 1, 2))
    )
    # The KL is invariant under x -> c x (covariances times c^2, means times c). With c a power of 2
    # chosen per pair so that the largest covariance entry is in [1, 4), the scaling is exact and no
    # intermediate result (a difference of nearly equal tiny covariances, say) under- or overflows.
    scale = _power_of_two_scale(xp, cov_p, cov_q)
    mu_p, mu_q = mu_p * scale[:, None], mu_q * scale[:, None]
    # Twice by the scale, not once by its square, which overflows for covariances below ~1e-308.
    square = scale[:, None, None]
    cov_p, cov_q = cov_p * square * square, cov_q * square * square
    arrays = [mu_p, cov_p, mu_q, cov_q, _cholesky(xp, "cov_p", cov_p), _cholesky(xp, "cov_q", cov_q)]
    # Half-size blocks (row_elements doubled): the ~150 operations of the correction then each stay at
    # torch's threshold for multithreading (2^15 elements), and on a 2-core machine they run 20-30 %
    # faster than with full-size blocks, which wake the second thread for every operation.
    value = in_row_chunks(xp, partial(_kl_mvn_rows, xp, corrected), arrays, row_elements=2 * k * k)
    return finish(xp.reshape(value, batch))


# The covariance part is computed from D = Lq^-1 (cov_q - cov_p) Lq^-T where ||D||_F <= NEAR_LIMIT.
# Sixteen terms of sum tr(D^n) / (2n) then leave a relative truncation error below
# 2 rho^15 / (17 (1 - rho) (1 - 2 rho / 3)) ~ 1e-19 (rho = NEAR_LIMIT). In this form every error is
# relative to D. Above it, the Cholesky form is used; after the first-order correction its error is
# of second order, ~(k eps cond)^2 in absolute terms, which is small against a KL of at least
# ~NEAR_LIMIT^2 / 8 for condition numbers up to ~1e5 (see the tests).
NEAR_LIMIT = 2.0**-4
_NEAR_TERMS = 16


@dataclass(frozen=True)
class _MvnTerms:
    """The uncorrected terms of kl_mvn for a batch of pairs, and what the correction reuses."""

    covariance: Any  # covariance part of the KL
    mean: Any  # mean part
    m: Any  # Lq^-1 Lp as computed
    z: Any  # Lq^-1 (mu_p - mu_q) as computed
    diff: tuple[Any, Any]  # mu_p - mu_q as an exact unevaluated sum
    near: Any  # where the covariance part comes from D
    d: Any  # D where near, else 0
    delta: tuple[Any, Any] | None  # cov_q - cov_p (exact unevaluated sum) where near, else 0


def _kl_mvn_rows(
    xp: Any, corrected: bool, mu_p: Any, cov_p: Any, mu_q: Any, cov_q: Any, chol_p: Any, chol_q: Any
) -> Any:
    """kl_mvn for a flat batch of pairs with Cholesky factors given."""
    terms = _mvn_terms(xp, mu_p, cov_p, mu_q, cov_q, chol_p, chol_q)
    value = terms.covariance + terms.mean
    if corrected:
        value = value + _rounding_correction(xp, terms, cov_p, cov_q, chol_p, chol_q)
    return value


def _mvn_terms(xp: Any, mu_p: Any, cov_p: Any, mu_q: Any, cov_q: Any, chol_p: Any, chol_q: Any) -> _MvnTerms:
    k = chol_q.shape[-1]
    diff = two_diff(mu_p, mu_q)
    m = solve_lower(xp, chol_q, chol_p)  # lower triangular: forward substitution keeps Lp's zeros exact
    z = solve_lower(xp, chol_q, diff[0][..., None])[..., 0]
    diagonal = xp.linalg.diagonal(m)
    tril = xp.tril(m, k=-1)
    far = xp.sum(half_g_of_ratio(xp, diagonal, xp.ones_like(diagonal)), axis=-1) + 0.5 * _inner(xp, tril, tril)
    # M M^T = I - D with M lower triangular: ||D||_F <= 2 ||M - I||_F + ||M - I||_F^2, and ||D||_F is at
    # least ~sqrt(2) ||M - I||_F, so the distance of M from I tells close covariances apart.
    near = _frobenius(xp, m - xp.eye(k, dtype=m.dtype)) <= 0.5 * NEAR_LIMIT * (1.0 - NEAR_LIMIT)
    d, delta, covariance = xp.zeros_like(m), None, far
    if bool(xp.any(near)):
        # Zero where not near, so that the unselected branch stays harmless (also for autograd).
        delta = tuple(xp.where(near[..., None, None], x, 0.0) for x in two_diff(cov_q, cov_p))
        d = solve_lower(xp, chol_q, xp.matrix_transpose(solve_lower(xp, chol_q, delta[0])))
        d = 0.5 * (d + xp.matrix_transpose(d))
        covariance = xp.where(near, _trace_series(xp, d), far)
    mean = xp.sum(half_square(z), axis=-1)
    return _MvnTerms(covariance, mean, m, z, diff, near, d, delta)


def _constant(a: Any) -> Any:
    """``a`` cut from the autograd graph (torch), or as is (numpy)."""
    return a.detach() if _is_torch(a) else a


def _frobenius(xp: Any, a: Any) -> Any:
    return xp.sqrt(_inner(xp, a, a))


def _inner(xp: Any, a: Any, b: Any) -> Any:
    """Frobenius inner product tr(A^T B) over the last two axes."""
    return xp.sum(a * b, axis=(-2, -1))


def _trace_series(xp: Any, d: Any) -> Any:
    r""":math:`-\tfrac12(\operatorname{tr} D + \ln\det(I - D)) = \sum_{n\ge2}\operatorname{tr}(D^n)/(2n)` for
    symmetric D with small norm. The leading term, a sum of squares, carries the result's accuracy."""
    powers = [d, d @ d]  # D^1 ... D^ceil(N/2): tr(D^n) = <D^i, D^(n-i)> for symmetric D
    while len(powers) < (_NEAR_TERMS + 1) // 2:
        powers.append(powers[-1] @ d)
    total = 0.0
    for n in range(_NEAR_TERMS, 1, -1):  # smallest terms first
        i = n // 2
        total = total + _inner(xp, powers[i - 1], powers[n - i - 1]) / (2 * n)
    return total


def _rounding_correction(
    xp: Any, terms: _MvnTerms, cov_p: Any, cov_q: Any, chol_p: Any, chol_q: Any
) -> Any:
    r"""First-order correction of kl_mvn's float64 value for the rounding errors of its linear algebra.

    The uncorrected value is the KL of a nearby problem, in which every computed factor is exact:
    :math:`\hat\Sigma_q = L_qL_q^\top`, :math:`\hat\Sigma_p = L_pL_p^\top`, :math:`L_q^{-1}L_p = M` and
    :math:`L_q^{-1}(\mu_p - \mu_q) = z` as computed. With the residuals
    :math:`F_q = \Sigma_q - \hat\Sigma_q`, :math:`F_p = \Sigma_p - \hat\Sigma_p`, :math:`R = L_p - L_qM` and
    :math:`r = (\mu_p - \mu_q) - L_q z`, all computed with :func:`exact_product` (in plain float64 they
    are rounding noise), the gradient of the KL gives the correction

    .. math::

        \langle \partial_M, L_q^{-1}R\rangle
        + \tfrac12\langle \hat\Sigma_q^{-1} - \hat\Sigma_p^{-1}, F_p\rangle
        + \tfrac12\langle \hat\Sigma_q^{-1} - \hat\Sigma_q^{-1}\hat\Sigma_p\hat\Sigma_q^{-1}, F_q\rangle
        + z^\top L_q^{-1} r - \tfrac12 (L_q^{-\top}z)^\top F_q (L_q^{-\top}z),

    where :math:`\partial_M` has :math:`M_{ij}` below the diagonal and :math:`M_{ii} - 1/M_{ii}` on it.
    Where the covariances are close, the covariance part is corrected through D instead: with
    :math:`G = L_q^{-1}F_qL_q^{-\top}` the exact Cholesky factor of :math:`\Sigma_q` is
    :math:`L_q(I + \Phi)` to first order (:math:`\Phi` = strict lower triangle of G plus half its
    diagonal), so the exact D is :math:`D + L_q^{-1}(\Delta - L_qDL_q^\top)L_q^{-\top} - \Phi D - D\Phi^\top`,
    and the series' derivative is :math:`\tfrac12(D + D^2 + \dots) = \tfrac12(I - D)^{-1}D`. What is left
    is of second order: ~(k eps cond)^2 relative to D's size in the series form, but ~(k eps cond)^2 in
    absolute terms in the Cholesky form, which is why that form is kept for KLs that are not small.

    A constant for autograd: gradients come from the uncorrected value, accurate to ~k eps cond.
    Where it is not finite (where the KL itself overflows), it is 0.
    """
    cov_p, cov_q, chol_p, chol_q, m, z, d = (
        _constant(a) for a in (cov_p, cov_q, chol_p, chol_q, terms.m, terms.z, terms.d)
    )
    transpose = xp.matrix_transpose
    split_q = Split.left(xp, chol_q)
    inv_chol_q = inverse_lower(xp, chol_q)
    residual_q = gram_residual(xp, cov_q, split_q)

    covariance = 0.0
    if not all_true(xp, terms.near):
        inv_cov_q = transpose(inv_chol_q) @ inv_chol_q
        exact, rest = exact_product(split_q, Split.right(xp, m))
        change_m = inv_chol_q @ ((chol_p - exact) - rest)
        diagonal = xp.linalg.diagonal(m)
        inv_chol_p = inverse_lower(xp, chol_p)
        residual_p = gram_residual(xp, cov_p, Split.left(xp, chol_p))
        sandwich = transpose(m) @ inv_chol_q  # M^T Lq^-1; its Gram matrix is Sq^-1 Sp Sq^-1
        covariance = (
            # <dKL/dM, change_m>: M_ij below the diagonal, M_ii - 1/M_ii on it (both are lower triangular)
            _inner(xp, m, change_m)
            - xp.sum(xp.linalg.diagonal(change_m) / diagonal, axis=-1)
            + 0.5 * _inner(xp, inv_cov_q - transpose(inv_chol_p) @ inv_chol_p, residual_p)
            + 0.5 * _inner(xp, inv_cov_q - transpose(sandwich) @ sandwich, residual_q)
        )
    if terms.delta is not None:
        delta_hi, delta_lo = (_constant(a) for a in terms.delta)
        product, product_rest = exact_product(split_q, Split.right(xp, d))
        exact, rest = exact_product(Split.left(xp, product), split_q.transpose(xp))
        residual_d = ((delta_hi - exact) - rest) + delta_lo - product_rest @ transpose(chol_q)
        g = inv_chol_q @ residual_q @ transpose(inv_chol_q)
        phi = xp.tril(g, k=-1) + 0.5 * g * xp.eye(g.shape[-1], dtype=g.dtype)
        change_d = inv_chol_q @ residual_d @ transpose(inv_chol_q) - phi @ d - d @ transpose(phi)
        # d/dD of the series is (D + D^2 + ...) / 2 = (I - D)^-1 D / 2
        eye = xp.eye(d.shape[-1], dtype=d.dtype)
        gradient = 0.5 * xp.linalg.solve(eye - d, d)
        covariance = xp.where(terms.near, _inner(xp, gradient, change_d), covariance)

    diff_hi, diff_lo = (_constant(a) for a in terms.diff)
    exact, rest = exact_matvec(xp, split_q, Split.along(xp, z, -1))
    r = ((diff_hi - exact) - rest) + diff_lo
    y = matvec(xp, transpose(inv_chol_q), z)
    mean = xp.sum(z * matvec(xp, inv_chol_q, r), axis=-1) - 0.5 * xp.sum(y * matvec(xp, residual_q, y), axis=-1)
    correction = covariance + mean
    return xp.where(xp.isfinite(correction), correction, 0.0)


@quiet_floating_point
def normal_logpdf(x: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> Any:
    r"""Log density of :math:`\mathcal N(\mu, \sigma^2)` at ``x``:
    :math:`-\tfrac12\ln(2\pi) - \ln\sigma - \tfrac12((x-\mu)/\sigma)^2`."""
    names = ("x", "mu", "sigma")
    xp, (x, mu, sigma), finish = prepare(names, x, mu, sigma)
    require_positive("sigma", sigma)
    z = (x - mu) / sigma
    return finish(-HALF_LOG_2PI - xp.log(sigma) - half_square(z))
