"""Compiled loops (numba) for :func:`klbook.kl_mvn`: its float64 rounding correction in the Cholesky
form (:func:`klbook._mvn.rounding_correction`), one pair at a time, and the check for exactly
symmetric covariances.

By array operations the correction takes fourteen batched k x k products and ~150 elementwise passes
per block of pairs: twice the time of the uncorrected value, and the reason ``kl_mvn`` in float64 took
3.2 times as long as ``torch.distributions`` (2,000 pairs of 16 x 16). Here all of one pair is computed
while its matrices are in the cache, and the correction adds ~0.6 times the uncorrected value's time
(``benchmarks/RESULTS.md``, the ``kl_mvn`` table; ``make benchmark`` measures it). Products run a row at a time over full-length rows, which the compiler
vectorises (the zeros of triangular factors add exact zeros); the residuals are sums of three
independent dot products, which the CPU overlaps.

The residuals (Σ - L L^T, L_p - L_q M, (μ_p - μ_q) - L_q z) are computed as in :mod:`klbook._linalg`:
each factor is split into a high part, aligned per row (or column) so that the products of high parts
add up exactly in any order, and a low part. They keep the same few correct digits as the array
operations'. The other quantities are first-order terms in plain float64, added in other orders than
BLAS's: the correction agrees with the array operations' to ~1e-7 of its size, not bit for bit
(``tests/test_mvn_loops.py``). As in :mod:`klbook._kernels`, nothing is contracted into fused
multiply-adds, so the splits stay exact.
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import _compile
from ._linalg import _split_bits

_HUGE = float(np.finfo(np.float64).max)


@_compile
def _split_rows(a: np.ndarray, sigma_factor: float, high: np.ndarray, low: np.ndarray) -> None:
    """high + low = a (exactly), each row's high parts multiples of one power of two with about
    ``_split_bits(k)`` bits (:meth:`klbook._linalg.Split.along`): their products add up exactly."""
    rows, columns = a.shape
    for i in range(rows):
        largest = 0.0
        for j in range(columns):
            largest = max(largest, abs(a[i, j]))
        # 2^e with largest < 2^e <= 2 largest (frexp's exponent), as Split.along takes it
        sigma = sigma_factor * math.ldexp(1.0, math.frexp(largest)[1])
        for j in range(columns):
            h = a[i, j] + sigma
            h -= sigma
            high[i, j], low[i, j] = h, a[i, j] - h


@_compile
def _inverse_lower(lower: np.ndarray, inverse: np.ndarray) -> None:
    """lower^-1 by forward substitution, a whole row at a time (row i is e_i minus a combination of the
    rows above, over L_ii): full-length rows, whose zeros above the diagonal stay exact zeros, make
    loops that the compiler vectorises."""
    k = lower.shape[0]
    for i in range(k):
        for j in range(k):
            inverse[i, j] = 0.0
        for l in range(i):
            a = lower[i, l]
            for j in range(k):
                inverse[i, j] -= a * inverse[l, j]
        inverse[i, i] += 1.0
        d = lower[i, i]
        for j in range(k):
            inverse[i, j] /= d


@_compile
def _transpose(a: np.ndarray, out: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j, i] = a[i, j]


@_compile
def _transposed_times(a: np.ndarray, b: np.ndarray, a_is_lower: bool, out: np.ndarray) -> None:
    """out = a^T b, a row at a time: out_i = sum_l a_li b_l (full-length rows of b, which the compiler
    vectorises), from l = i on for lower-triangular a."""
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            out[i, j] = 0.0
        for l in range(i if a_is_lower else 0, a.shape[0]):
            weight = a[l, i]
            for j in range(b.shape[1]):
                out[i, j] += weight * b[l, j]


@_compile
def _residual(target: float, a_high: np.ndarray, a_low: np.ndarray, b_high: np.ndarray, b_low: np.ndarray,
              b: np.ndarray, start: int, stop: int) -> float:
    """target - sum_l a_l b_l over l in [start, stop) for row-split vectors a and b, to a few digits
    even where it is rounding noise: the high products add up exactly (three independent sums, which
    the CPU overlaps)."""
    exact, rest_1, rest_2 = 0.0, 0.0, 0.0
    for l in range(start, stop):
        exact += a_high[l] * b_high[l]
        rest_1 += a_high[l] * b_low[l]
        rest_2 += a_low[l] * b[l]
    return (target - exact) - (rest_1 + rest_2)


@_compile
def _far_correction(
    cov_p: np.ndarray, cov_q: np.ndarray, chol_p: np.ndarray, chol_q: np.ndarray, m: np.ndarray,
    z: np.ndarray, diff_hi: np.ndarray, diff_lo: np.ndarray, sigma_factor: float, out: np.ndarray,
) -> None:
    pairs, k = m.shape[0], m.shape[1]
    scratch = np.empty((14, k, k))  # reused for every pair
    q_high, q_low, p_high, p_low = scratch[0], scratch[1], scratch[2], scratch[3]
    m_t, m_t_high, m_t_low = scratch[4], scratch[5], scratch[6]  # M^T, split by rows (M by columns)
    w_q, w_p, pulled, pulled_t = scratch[7], scratch[8], scratch[9], scratch[10]  # Lq^-1, Lp^-1, P = Lq^-T M
    inv_cov_q, inv_cov_p, pulled_gram = scratch[11], scratch[12], scratch[13]  # W^T W for both, P P^T
    vectors = np.empty((4, k))
    z_high, z_low, y, r = vectors[0:1], vectors[1:2], vectors[2], vectors[3]
    for n in range(pairs):
        lq, lp, mn, zn = chol_q[n], chol_p[n], m[n], z[n]
        _split_rows(lq, sigma_factor, q_high, q_low)
        _split_rows(lp, sigma_factor, p_high, p_low)
        _transpose(mn, m_t)
        _split_rows(m_t, sigma_factor, m_t_high, m_t_low)
        _split_rows(zn.reshape((1, k)), sigma_factor, z_high, z_low)  # z as one column
        _inverse_lower(lq, w_q)
        _inverse_lower(lp, w_p)
        _transposed_times(w_q, w_q, True, inv_cov_q)  # Sq^-1 = W^T W
        _transposed_times(w_p, w_p, True, inv_cov_p)
        _transposed_times(w_q, mn, True, pulled)  # P = W^T M
        _transpose(pulled, pulled_t)
        _transposed_times(pulled_t, pulled_t, False, pulled_gram)  # P P^T
        for i in range(k):
            # r = (mu_p - mu_q) - Lq z (its high part diff_hi enters the exact residual, diff_lo after)
            r[i] = _residual(diff_hi[n, i], q_high[i], q_low[i], z_high[0], z_low[0], zn, 0, i + 1) + diff_lo[n, i]
            y[i] = 0.0
            for l in range(i, k):
                y[i] += w_q[l, i] * zn[l]  # y = W^T z

        # <dKL/dM, W R> = <P, R> - sum_i (W R)_ii / M_ii, with R = Lp - Lq M lower triangular and
        # (W R)_ii = R_ii / (Lq)_ii; 1/2 <Sq^-1 - Sp^-1, Fp> + 1/2 <Sq^-1 - P P^T - y y^T, Fq> (the last
        # for the mean part's -1/2 y^T Fq y), each from the lower triangles.
        covariance, halves, mean = 0.0, 0.0, 0.0
        for i in range(k):
            mean += y[i] * r[i]
            for j in range(i + 1):
                residual_q = _residual(cov_q[n, i, j], q_high[i], q_low[i], q_high[j], q_low[j], lq[j], 0, j + 1)
                residual_p = _residual(cov_p[n, i, j], p_high[i], p_low[i], p_high[j], p_low[j], lp[j], 0, j + 1)
                residual_m = _residual(lp[i, j], q_high[i], q_low[i], m_t_high[j], m_t_low[j], m_t[j], j, i + 1)
                covariance += pulled[i, j] * residual_m
                if i == j:
                    covariance -= residual_m / (lq[i, i] * mn[i, i])
                weight = 1.0 if i == j else 2.0
                halves += weight * (
                    (inv_cov_q[i, j] - inv_cov_p[i, j]) * residual_p
                    + (inv_cov_q[i, j] - pulled_gram[i, j] - y[i] * y[j]) * residual_q
                )
        total = covariance + 0.5 * halves + mean
        out[n] = total if abs(total) <= _HUGE else 0.0


@_compile
def _is_symmetric(flat: np.ndarray) -> bool:
    for n in range(flat.shape[0]):
        for i in range(flat.shape[1]):
            for j in range(i):
                if flat[n, i, j] != flat[n, j, i]:
                    return False
    return True


def is_symmetric(flat: np.ndarray) -> bool:
    """Whether every matrix of a C-contiguous float64 batch (pairs, k, k) equals its transpose exactly:
    one pass over each matrix in the cache, where C != C^T by array operations reads the batch
    transposed (~4 ms for 2,000 matrices of 16 x 16)."""
    return bool(_is_symmetric(flat))


def far_correction(
    cov_p: np.ndarray, cov_q: np.ndarray, chol_p: np.ndarray, chol_q: np.ndarray, m: np.ndarray,
    z: np.ndarray, diff_hi: np.ndarray, diff_lo: np.ndarray,
) -> np.ndarray:
    """:func:`klbook._mvn.rounding_correction` in the Cholesky form, for a flat batch of float64 pairs
    (0 where it is not finite); the caller replaces the pairs in the series branch."""
    k = m.shape[-1]
    sigma_factor = 1.5 * 2.0 ** (52 - _split_bits(k))
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (cov_p, cov_q, chol_p, chol_q, m, z, diff_hi, diff_lo)]
    out = np.empty(m.shape[0])
    _far_correction(*arrays, sigma_factor, out)
    return out
