"""Closed-form KL divergences between Gaussians.

Each function documents the textbook formula it evaluates; the code evaluates an algebraically equal
form made of non-negative terms (see :mod:`klbook._numerics`), which keeps every digit where the
textbook form cancels. Parameter conventions are part of every name: ``sigma`` is a standard deviation,
``cov`` a covariance matrix, ``logvar`` the natural log of a variance, ln sigma^2.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ._array import (
    ArrayLike,
    as_tensor_like,
    in_chunks,
    in_row_chunks,
    is_narrow,
    numpy_for_torch_views,
    numpy_views_off_graph,
    prepare,
    quiet_floating_point,
    require_positive,
    torch_threads,
)
from ._linalg import solve_lower, torch_solve_lower
from ._mvn import (
    SYMMETRY_RTOL,  # noqa: F401  (re-exported: kl_mvn's docstring refers to it)
    cholesky,
    eps_of,
    kl_mvn_rows,
    power_of_two_scale,
    symmetric,
)
from ._numerics import (
    HALF_LOG_2PI,
    half_g_of_exact_diff,
    half_g_of_ratio,
    half_square,
    overwrite_where,
    takes_compiled_loops,
    two_diff,
    where_safe,
)

__all__ = ["kl_diag_normal", "kl_mvn", "kl_normal", "kl_std_normal", "normal_logpdf"]



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


# Inputs of a dtype narrower than float64 (float32, float16, bfloat16) are exact in float64 with 29 or
# more bits to spare, and so are their differences. The short formulas below, evaluated in float64, err
# by at most ~1e-9 relative (rounding sigma_p / sigma_q where it is one float32 ULP from 1; elsewhere
# far less), a small fraction of the narrow dtype's ULP, so the result rounded once is within 1 ULP. They skip the exact-difference machinery the float64 path needs, and convert chunk by chunk,
# which is what makes them fast.
NARROW_SERIES_LIMIT = 2.0**-10
NARROW_LOGVAR_CLIP = -1400.0  # see _twice_diag_terms_narrow


def _narrow_g(xp: Any, u: Any) -> Any:
    """e^u - 1 - u to ~1e-12 relative: expm1(u) - u loses at most ~2^10 ULP of float64 for
    |u| >= 2^-10; below that three Taylor terms are exact to ~1e-11, computed only on the few entries
    that need them (``u`` is a fresh float64 array, never on an autograd graph)."""
    value = xp.expm1(u) - u
    small = xp.abs(u) < NARROW_SERIES_LIMIT
    if bool(xp.any(small)):
        value = overwrite_where(xp, small, value, _narrow_series, (u, 0.0))
    return value


def _narrow_series(v: Any) -> Any:
    return v * v * (0.5 + v * (1.0 / 6.0 + v * (1.0 / 24.0)))


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
    z = (mu_p - mu_q) * xp.exp(-0.5 * xp.clip(logvar_q, min=NARROW_LOGVAR_CLIP))
    return _narrow_g(xp, logvar_p - logvar_q) + z * z


# float32 numpy arrays (chunks of CPU tensors) take klbook._kernels' loops, which perform the same
# operations in a few passes (tests/test_kernels.py checks that the results are bit-identical).


def _normal_terms_narrow(xp: Any, *arrays: Any) -> Any:
    if takes_compiled_loops(*arrays, dtype=np.float32):
        from . import _kernels

        twice = _kernels.twice_narrow_normal_terms(*arrays, xp.log, xp.expm1, NARROW_SERIES_LIMIT)
    else:
        twice = _twice_normal_terms_narrow(xp, *_float64(xp, arrays))
    return xp.astype(0.5 * twice, arrays[0].dtype)


def _diag_kl_narrow(xp: Any, *arrays: Any) -> Any:
    if takes_compiled_loops(*arrays, dtype=np.float32):
        from . import _kernels

        twice = _kernels.twice_narrow_diag_terms(*arrays, xp.exp, xp.expm1, NARROW_SERIES_LIMIT, NARROW_LOGVAR_CLIP)
    else:
        twice = _twice_diag_terms_narrow(xp, *_float64(xp, arrays))
    return xp.astype(0.5 * xp.sum(twice, axis=-1), arrays[0].dtype)


def _std_normal_kl_narrow(xp: Any, mu: Any, logvar: Any) -> Any:
    if takes_compiled_loops(mu, logvar, dtype=np.float32):
        from . import _kernels

        twice = _kernels.twice_narrow_std_terms(mu, logvar, xp.expm1, NARROW_SERIES_LIMIT)
    else:
        mu64, logvar64 = _float64(xp, (mu, logvar))
        twice = _narrow_g(xp, logvar64) + mu64 * mu64
    return xp.astype(0.5 * xp.sum(twice, axis=-1), mu.dtype)


def _float64(xp: Any, arrays: Any) -> list[Any]:
    # ndarray.astype directly: the array-API wrapper's checks cost more than the cast on small chunks
    return [a.astype(np.float64, copy=False) if isinstance(a, np.ndarray) else xp.astype(a, xp.float64) for a in arrays]


def _diag_terms(xp: Any, mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> Any:
    """Per-dimension KL terms of diagonal Gaussians given by log-variances (all >= 0)."""
    s, e = two_diff(logvar_p, logvar_q)
    return half_g_of_exact_diff(xp, s, e) + _half_square_of_scaled_difference(xp, mu_p, mu_q, logvar_q)


def _half_square_of_scaled_difference(xp: Any, mu_p: Any, mu_q: Any, logvar_q: Any) -> Any:
    """(mu_p - mu_q)^2 / sigma_q^2 / 2 = ((mu_p - mu_q) / exp(logvar_q / 2))^2 / 2; halving logvar is
    exact. Where the means are equal the exponential is skipped: it may overflow where the term is 0."""
    if takes_compiled_loops(mu_p, mu_q, logvar_q):
        from . import _kernels

        value = _kernels.half_square_of_scaled_difference(mu_p, mu_q, logvar_q, xp.exp)
        if value is not None:
            return value
    equal = mu_p == mu_q
    sigma_q = xp.exp(0.5 * where_safe(xp, ~equal, logvar_q, 0.0))
    z = xp.where(equal, xp.zeros_like(mu_p), _scaled_difference(xp, mu_p, mu_q, sigma_q))
    return half_square(z)


def _check_vector(name: str, x: Any) -> None:
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the latent dimension is the last axis)")


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
        # e^s as 1 + expm1(s): off by at most ~1e-16 absolute, and e is below 1e-16 relative to s
        half_expm1 = 0.5 * xp.expm1(s_mod)
        value = half_expm1 + (0.5 + half_expm1) * e
    else:
        value = 0.5 * xp.expm1(s)
    big = s > 700.0
    if not bool(xp.any(big)):
        return value
    half = 0.5 * where_safe(xp, big, s, 0.0)
    big_value = (0.5 * xp.exp(half)) * xp.exp(half) * (1.0 if e is None else 1.0 + e) - 0.5
    return xp.where(big, big_value, value)


def _gradient_takes_compiled_loops(grad: Any, *arrays: Any) -> bool:
    """True for numpy arrays (chunks of CPU tensors) of float32 or float64, which klbook._kernels'
    gradient loops take (performing the same operations; tests/test_kernels.py)."""
    dtype = getattr(arrays[0], "dtype", None)
    return (
        isinstance(grad, np.ndarray)
        and dtype in (np.float32, np.float64)
        and takes_compiled_loops(*arrays, dtype=dtype)
    )


def _std_normal_gradient(xp: Any, grad: Any, mu: Any, logvar: Any) -> tuple[Any, Any]:
    grad, mu, logvar = _float64(xp, (grad, mu, logvar))
    return grad * mu, grad * _half_expm1(xp, logvar, None)


def _diag_gradient(xp: Any, grad: Any, mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> tuple[Any, ...]:
    narrow = is_narrow(mu_p)
    if _gradient_takes_compiled_loops(grad, mu_p, logvar_p, mu_q, logvar_q):
        from . import _kernels

        parts = _kernels.diag_gradient(grad, mu_p, logvar_p, mu_q, logvar_q, narrow=narrow, exp=xp.exp, expm1=xp.expm1)
        if parts is not None:
            return parts
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
    if _gradient_takes_compiled_loops(grad, mu_p, sigma_p, mu_q, sigma_q):
        from . import _kernels

        parts = _kernels.normal_gradient(grad, mu_p, sigma_p, mu_q, sigma_q, narrow=narrow)
        if parts is not None:
            return parts
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


def _gaussian_function(
    names: tuple[str, ...],
    *,
    vectors: bool,
    narrow: Callable[..., Any],
    gradient: Callable[..., tuple[Any, ...]],
    positive: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a public Gaussian KL once (as :mod:`torch.distributions.kl` declares its pairs).

    ``names`` are its arguments in order; with ``vectors`` the last axis is the latent dimension, summed
    over (each argument at least 1-D), else the KL is elementwise; ``positive`` names the arguments that
    must be > 0. The decorated ``body(xp, *arrays)`` is the float64 formula; ``narrow(xp, *arrays)`` the one
    for torch inputs narrower than float64 (see :func:`klbook._array.is_narrow`), and ``gradient`` the
    closed-form derivatives (see :func:`klbook._array.in_chunks`). Validation, conversion and chunking are
    done here, the same for every function.
    """
    signature = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="ArrayLike") for n in names],
        return_annotation="Any",
    )

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @quiet_floating_point
        def public(*args: Any, **kwargs: Any) -> Any:
            if kwargs or len(args) != len(names):  # binding costs microseconds: only when needed
                bound = signature.bind(*args, **kwargs)
                args = tuple(bound.arguments[n] for n in names)
            xp, arrays, finish = prepare(names, *args, keep_narrow=True)
            for name, value in zip(names, arrays):
                if name in positive:
                    require_positive(name, value)
                if vectors:
                    _check_vector(name, value)
            kernel = narrow if is_narrow(arrays[0]) else body
            return finish(in_chunks(xp, kernel, arrays, reduces_last_axis=vectors, gradient=gradient))

        functools.update_wrapper(public, body)
        del public.__wrapped__  # the public signature is this one, not the body's
        public.__signature__ = signature
        return public

    return decorate


# The public functions: each declares its inputs, and its body is the formula.


@_gaussian_function(
    ("mu_p", "sigma_p", "mu_q", "sigma_q"),
    vectors=False,
    positive=("sigma_p", "sigma_q"),
    narrow=_normal_terms_narrow,
    gradient=_normal_gradient,
)
def kl_normal(xp: Any, mu_p: Any, sigma_p: Any, mu_q: Any, sigma_q: Any) -> Any:
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
    z = _scaled_difference(xp, mu_p, mu_q, sigma_q)
    return half_g_of_ratio(xp, sigma_p, sigma_q) + half_square(z)


@_gaussian_function(
    ("mu_p", "logvar_p", "mu_q", "logvar_q"), vectors=True, narrow=_diag_kl_narrow, gradient=_diag_gradient
)
def kl_diag_normal(xp: Any, mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> Any:
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
    return xp.sum(_diag_terms(xp, mu_p, logvar_p, mu_q, logvar_q), axis=-1)


@_gaussian_function(("mu", "logvar"), vectors=True, narrow=_std_normal_kl_narrow, gradient=_std_normal_gradient)
def kl_std_normal(xp: Any, mu: Any, logvar: Any) -> Any:
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
    return xp.sum(half_g_of_exact_diff(xp, logvar, None) + half_square(mu), axis=-1)


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
    for the rounding errors of the factorisations and solves is added (see ``rounding_correction``);
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
    eps_p, eps_q = eps_of(cov_p), eps_of(cov_q)
    xp, arrays, finish = prepare(names, mu_p, cov_p, mu_q, cov_q, broadcast=False, keep_narrow=True)
    # Narrow (float32 and lower) inputs are computed in float64 too; the uncorrected float64 value, off
    # by ~k eps cond relative, is far more accurate than their ULP for condition numbers up to ~1e8.
    corrected = not is_narrow(arrays[0])
    mu_p, cov_p, mu_q, cov_q = (xp.astype(a, xp.float64, copy=False) for a in arrays)
    for name, mu in (("mu_p", mu_p), ("mu_q", mu_q)):
        _check_vector(name, mu)
    cov_p, cov_q = symmetric(xp, "cov_p", cov_p, eps_p), symmetric(xp, "cov_q", cov_q, eps_q)
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
    scale = power_of_two_scale(xp, cov_p, cov_q)
    mu_p, mu_q = mu_p * scale[:, None], mu_q * scale[:, None]
    # Twice by the scale, not once by its square, which overflows for covariances below ~1e-308.
    square = scale[:, None, None]
    cov_p, cov_q = cov_p * square * square, cov_q * square * square
    arrays = [mu_p, cov_p, mu_q, cov_q, cholesky(xp, "cov_p", cov_p), cholesky(xp, "cov_q", cov_q)]
    solve = partial(solve_lower, xp)
    # CPU tensors off the autograd graph are evaluated through numpy views (numpy's fixed cost per
    # operation is a fraction of torch's, and the formula is ~200 short operations per block), with
    # torch's batched triangular solve, which numpy lacks.
    views = numpy_views_off_graph(arrays)
    threads = 1
    if views is not None:
        like, xp, arrays, solve = arrays[0], numpy_for_torch_views(), views, torch_solve_lower
        threads = torch_threads()
    # Half-size blocks (row_elements doubled; 128 pairs of 16 x 16): in torch the ~150 operations of the
    # correction then each stay at its threshold for multithreading (2^15 elements), 20-30 % faster on 2
    # cores than full-size blocks. On the numpy path (2,000 pairs of 16 x 16, 2026-12-05) 64 to 256
    # pairs per block were within 10 % of each other, 16 pairs 2x slower (fixed costs per operation),
    # the whole batch at once 1.4x (its temporaries leave the cache and are page-faulted in).
    rows = partial(kl_mvn_rows, xp, corrected, solve)
    value = in_row_chunks(xp, rows, arrays, row_elements=2 * k * k, threads=threads)
    value = xp.reshape(value, batch)
    return finish(value if views is None else as_tensor_like(value, like))


@quiet_floating_point
def normal_logpdf(x: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> Any:
    r"""Log density of :math:`\mathcal N(\mu, \sigma^2)` at ``x``:
    :math:`-\tfrac12\ln(2\pi) - \ln\sigma - \tfrac12((x-\mu)/\sigma)^2`."""
    names = ("x", "mu", "sigma")
    xp, (x, mu, sigma), finish = prepare(names, x, mu, sigma)
    require_positive("sigma", sigma)
    z = (x - mu) / sigma
    return finish(-HALF_LOG_2PI - xp.log(sigma) - half_square(z))
