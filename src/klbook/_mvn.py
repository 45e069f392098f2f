"""The engine behind :func:`klbook.kl_mvn`: validation of the covariances, their Cholesky factors, the
KL of a flat batch of pairs from them (a sum of non-negative terms, or a trace series for close
covariances), and the float64 first-order correction for the rounding errors of the linear algebra.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ._array import (
    _is_torch,
    as_tensor_like,
    detached_numpy,
    is_narrow,
    numpy_for_torch_views,
    numpy_views_off_graph,
)
from ._linalg import (
    Solve,
    Split,
    exact_product,
    gram_residual,
    inverse_lower,
    matvec,
    torch_solve_lower,
)
from ._numerics import all_true, half_g_of_ratio, half_square, two_diff

# A covariance is accepted as symmetric when |C - C^T| <= max(SYMMETRY_RTOL, 32 k eps) * max|C| elementwise
# (k its size, eps that of its dtype), per matrix of a batch.
SYMMETRY_RTOL = 1e-10


def symmetric(xp: Any, name: str, cov: Any, eps: float) -> Any:
    """``cov`` checked for symmetry and made exactly symmetric.

    Rounding-level asymmetry is accepted: per matrix, |C - C^T| <= max(SYMMETRY_RTOL, 32 k eps) max|C|,
    with eps that of the argument's own dtype (a float32 ``A @ A.T`` or ``torch.cov`` is symmetric only
    to ~k eps), and removed by returning (C + C^T) / 2. An exactly symmetric C (the common case, told
    apart by one comparison) is returned as it is."""
    values = detached_numpy(cov)
    if values.ndim < 2 or values.shape[-1] != values.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (or a batch of them), got shape {values.shape}")
    flat = values.reshape((-1,) + values.shape[-2:])
    if flat.dtype == np.float64 and flat.flags.c_contiguous:
        from . import _mvn_loops

        if _mvn_loops.is_symmetric(flat):
            return cov
    # One pass over C - C^T both tells an exactly symmetric C apart and measures the asymmetry (NaN is
    # refused before).
    asymmetry = flat - np.swapaxes(flat, -1, -2)
    if not asymmetry.any():
        return cov
    asym = np.abs(asymmetry, out=asymmetry).max(axis=(-2, -1))
    scale = np.abs(flat).max(axis=(-2, -1))
    rtol = max(SYMMETRY_RTOL, 32 * values.shape[-1] * eps)
    worst = int(np.argmax(asym - rtol * scale))
    if asym[worst] > rtol * scale[worst]:
        raise ValueError(
            f"{name} is not symmetric: max |C - C^T| = {asym[worst]:.3g} (scale {scale[worst]:.3g}, "
            f"tolerance {rtol:.1g} relative)"
        )
    return 0.5 * (cov + xp.matrix_transpose(cov))


def eps_of(a: Any) -> float:
    """Machine epsilon of an argument's own floating dtype (float64 for anything else)."""
    dtype = detached_numpy(a).dtype if not is_narrow(a) else None
    if dtype is None:  # narrow torch dtypes, bfloat16 included
        import torch

        return float(torch.finfo(a.dtype).eps)
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else float(np.finfo(np.float64).eps)


def cholesky(xp: Any, name: str, cov: Any) -> Any:
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


def power_of_two_scale(xp: Any, cov_p: Any, cov_q: Any) -> Any:
    """Per pair, c = 2^-e with c^2 max|entry| of the two covariances in [1, 4) (a constant for autograd)."""
    cov_p, cov_q = _constant(cov_p), _constant(cov_q)
    largest = xp.maximum(xp.max(xp.abs(cov_p), axis=(-2, -1)), xp.max(xp.abs(cov_q), axis=(-2, -1)))
    # exp2 and log2 are exact on powers of 2, and floor() absorbs log2's rounding elsewhere.
    return xp.exp2(-xp.floor(0.5 * xp.log2(largest)))


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


def kl_mvn_rows(
    xp: Any, corrected: bool, solve: Solve, mu_p: Any, cov_p: Any, mu_q: Any, cov_q: Any, chol_p: Any, chol_q: Any
) -> Any:
    """kl_mvn for a flat batch of pairs with Cholesky factors given; ``solve(lower, rhs)`` is the batched
    triangular solve for ``xp``'s arrays (see :func:`klbook._linalg.torch_solve_lower`)."""
    terms = _mvn_terms(xp, solve, mu_p, cov_p, mu_q, cov_q, chol_p, chol_q)
    value = terms.covariance + terms.mean
    if not corrected:
        return value
    constants = [cov_p, cov_q, chol_p, chol_q]
    views = numpy_views_off_graph([_constant(a) for a in constants])
    if views is None or not _is_torch(value):
        return value + rounding_correction(xp, solve, terms, *constants)
    # Terms on torch's autograd graph (CPU): the correction, a constant, is computed in numpy.
    numpy_terms = _MvnTerms(
        *(None if a is None else _constant(a).numpy() for a in (terms.covariance, terms.mean, terms.m, terms.z)),
        tuple(_constant(a).numpy() for a in terms.diff),
        _constant(terms.near).numpy(),
        _constant(terms.d).numpy(),
        None if terms.delta is None else tuple(_constant(a).numpy() for a in terms.delta),
    )
    correction = rounding_correction(numpy_for_torch_views(), torch_solve_lower, numpy_terms, *views)
    return value + as_tensor_like(correction, value)


def _mvn_terms(
    xp: Any, solve: Solve, mu_p: Any, cov_p: Any, mu_q: Any, cov_q: Any, chol_p: Any, chol_q: Any
) -> _MvnTerms:
    k = chol_q.shape[-1]
    diff = two_diff(mu_p, mu_q)
    m = solve(chol_q, chol_p)  # lower triangular: forward substitution keeps Lp's zeros exact
    z = solve(chol_q, diff[0][..., None])[..., 0]
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
        d = solve(chol_q, xp.matrix_transpose(solve(chol_q, delta[0])))
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


def rounding_correction(
    xp: Any, solve: Solve, terms: _MvnTerms, cov_p: Any, cov_q: Any, chol_p: Any, chol_q: Any
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

    Form evaluated (with :math:`W = L_q^{-1}`), so that few batched products do all the work: every
    exact product with :math:`L_q` on the left is one product, :math:`L_q[L_q^\top \mid M \mid D \mid z]`
    (column by column, the split of a concatenation is that of its parts), and one plain product
    :math:`W^\top[W \mid M \mid z]` gives :math:`\hat\Sigma_q^{-1}`, :math:`W^\top M` and
    :math:`y = W^\top z`. Then :math:`\langle \partial_M, WR\rangle = \langle W^\top M, R\rangle -
    \sum_i (WR)_{ii}/M_{ii}`, :math:`\hat\Sigma_q^{-1}\hat\Sigma_p\hat\Sigma_q^{-1} = (W^\top M)(W^\top M)^\top`
    and :math:`z^\top W r = y^\top r`.

    A constant for autograd: gradients come from the uncorrected value, accurate to ~k eps cond.
    Where it is not finite (where the KL itself overflows), it is 0.

    For float64 numpy arrays (chunks of CPU tensors included) the pairs outside the series branch take
    a compiled loop (:func:`klbook._mvn_loops.far_correction`), ~4 times faster than these array
    operations, with which it agrees to a few digits of the correction (``tests/test_mvn_loops.py``).
    """
    constants = [_constant(a) for a in (cov_p, cov_q, chol_p, chol_q, terms.m, terms.z, *terms.diff)]
    compiled = all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in constants)
    if not compiled or all_true(np, terms.near):
        return _rounding_correction_by_passes(xp, solve, terms, cov_p, cov_q, chol_p, chol_q)
    from . import _mvn_loops

    correction = _mvn_loops.far_correction(*constants)
    if terms.delta is not None:
        near = np.flatnonzero(terms.near)
        matrices = (a[near] for a in constants[:4])
        correction[near] = _rounding_correction_by_passes(xp, solve, _pairs(terms, near), *matrices)
    return correction


def _pairs(terms: _MvnTerms, index: Any) -> _MvnTerms:
    """The terms of some pairs of a batch (numpy arrays)."""

    def pick(a: Any) -> Any:
        if isinstance(a, tuple):
            return tuple(map(pick, a))
        return None if a is None else a[index]

    return _MvnTerms(*(pick(getattr(terms, field.name)) for field in fields(terms)))


def _rounding_correction_by_passes(
    xp: Any, solve: Solve, terms: _MvnTerms, cov_p: Any, cov_q: Any, chol_p: Any, chol_q: Any
) -> Any:
    """:func:`rounding_correction` by array operations (any namespace; every branch)."""
    cov_p, cov_q, chol_p, chol_q, m, z, d = (
        _constant(a) for a in (cov_p, cov_q, chol_p, chol_q, terms.m, terms.z, terms.d)
    )
    transpose = xp.matrix_transpose
    k = chol_q.shape[-1]
    far, near = not all_true(xp, terms.near), terms.delta is not None
    # Lq [Lq^T | M | D | z] in one exact product; the split of Lq^T (by columns) is that of Lq by rows.
    blocks = [transpose(chol_q)] + ([m] if far else []) + ([d] if near else []) + [z[..., None]]
    right = Split.right(xp, xp.concat(blocks, axis=-1))
    split_q_t = Split(*(a[..., :k] for a in (right.value, right.high, right.low)))
    exact, rest = exact_product(split_q_t.transpose(xp), right)

    def residual(target: Any, block: int) -> Any:
        """target - (Lq times the block-th part of the right factor), from the exact product."""
        columns = slice(block * k, (block + 1) * k)
        return (target - exact[..., columns]) - rest[..., columns]

    residual_q = residual(cov_q, 0)
    inv_chol_q = inverse_lower(xp, chol_q, solve)
    # W^T [W | M | z]: Sq^-1 (of the computed factor), W^T M and y = W^T z
    stacked = transpose(inv_chol_q) @ xp.concat([inv_chol_q] + ([m] if far else []) + [z[..., None]], axis=-1)
    inv_cov_q, y = stacked[..., :k], stacked[..., -1]

    covariance = 0.0
    if far:
        pulled = stacked[..., k : 2 * k]  # W^T M; its Gram matrix (W^T M)(W^T M)^T is Sq^-1 Sp Sq^-1
        residual_m = residual(chol_p, 1)  # R = Lp - Lq M
        inv_chol_p = inverse_lower(xp, chol_p, solve)
        residual_p = gram_residual(xp, cov_p, Split.left(xp, chol_p))
        covariance = (
            # <dKL/dM, W R> = <W^T M, R> - sum_i (W R)_ii / M_ii
            _inner(xp, pulled, residual_m)
            - xp.sum(xp.sum(inv_chol_q * transpose(residual_m), axis=-1) / xp.linalg.diagonal(m), axis=-1)
            + 0.5 * _inner(xp, inv_cov_q, residual_p + residual_q)
            - 0.5 * _inner(xp, transpose(inv_chol_p) @ inv_chol_p, residual_p)
            - 0.5 * _inner(xp, pulled @ transpose(pulled), residual_q)
        )
    if near:
        delta_hi, delta_lo = (_constant(a) for a in terms.delta)
        columns = slice((1 + far) * k, (2 + far) * k)
        product, product_rest = exact[..., columns], rest[..., columns]  # Lq D
        exact_d, rest_d = exact_product(Split.left(xp, product), split_q_t)
        residual_d = ((delta_hi - exact_d) - rest_d) + delta_lo - product_rest @ transpose(chol_q)
        g = inv_chol_q @ residual_q @ transpose(inv_chol_q)
        phi = xp.tril(g, k=-1) + 0.5 * g * xp.eye(k, dtype=g.dtype)
        change_d = inv_chol_q @ residual_d @ transpose(inv_chol_q) - phi @ d - d @ transpose(phi)
        # d/dD of the series is (D + D^2 + ...) / 2 = (I - D)^-1 D / 2
        gradient = 0.5 * xp.linalg.solve(xp.eye(k, dtype=d.dtype) - d, d)
        covariance = xp.where(terms.near, _inner(xp, gradient, change_d), covariance)

    diff_hi, diff_lo = (_constant(a) for a in terms.diff)
    r = ((diff_hi - exact[..., -1]) - rest[..., -1]) + diff_lo
    mean = xp.sum(y * r, axis=-1) - 0.5 * xp.sum(y * matvec(xp, residual_q, y), axis=-1)
    correction = covariance + mean
    return xp.where(xp.isfinite(correction), correction, 0.0)
