"""Tests of klbook._linalg: the splitting behind exact products, exact_product and gram_residual
against exact rational arithmetic, and the batched triangular solve."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg
import torch

from klbook._linalg import Split, exact_product, gram_residual, inverse_lower, solve_lower


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> list[list[Fraction]]:
    """The product of two float64 matrices in exact rational arithmetic."""
    fa = [[Fraction(float(x)) for x in row] for row in a]
    fb = [[Fraction(float(x)) for x in row] for row in b]
    return [[sum(fa[i][m] * fb[m][j] for m in range(len(fb))) for j in range(len(fb[0]))] for i in range(len(fa))]


def _badly_scaled(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    # Rows and entries spread over many binades, signs mixed: splitting and cancellation both matter.
    row_scales = 10.0 ** rng.uniform(-8, 8, (rows, 1))
    return rng.standard_normal((rows, cols)) * row_scales * 10.0 ** rng.uniform(-2, 2, (rows, cols))


@pytest.mark.parametrize("seed", range(5))
def test_split_parts_add_up_and_high_parts_multiply_exactly(seed):
    rng = np.random.default_rng(seed)
    a, b = _badly_scaled(rng, 6, 16), _badly_scaled(rng, 5, 16).T
    left, right = Split.left(np, a), Split.right(np, b)
    assert np.array_equal(left.high + left.low, a) and np.array_equal(right.high + right.low, b)
    assert np.all(np.abs(left.low) <= np.abs(a)) and np.all(np.abs(right.low) <= np.abs(b))
    exact = _exact_matmul(left.high, right.high)
    computed = left.high @ right.high
    assert all(Fraction(float(computed[i, j])) == exact[i][j] for i in range(6) for j in range(5))


@pytest.mark.parametrize("inner", [16, 64])
def test_high_parts_multiply_exactly_at_the_bound(inner):
    # Same-sign entries just below each row's (column's) maximum fill every bit the split allows, so
    # two bits more in _split_bits (one is spare) make these products inexact.
    rng = np.random.default_rng(inner)
    a = (1 - 2.0**-20 * rng.random((6, inner))) * 2.0 ** rng.integers(-30, 30, (6, 1))
    b = (1 - 2.0**-20 * rng.random((inner, 5))) * 2.0 ** rng.integers(-30, 30, (1, 5))
    left, right = Split.left(np, a), Split.right(np, b)
    exact = _exact_matmul(left.high, right.high)
    computed = left.high @ right.high
    assert all(Fraction(float(computed[i, j])) == exact[i][j] for i in range(6) for j in range(5))


@pytest.mark.parametrize("seed", range(5))
def test_exact_product_is_far_more_accurate_than_a_float64_matmul(seed):
    rng = np.random.default_rng(seed)
    a, b = _badly_scaled(rng, 6, 16), _badly_scaled(rng, 5, 16).T
    exact, rest = exact_product(Split.left(np, a), Split.right(np, b))
    truth = _exact_matmul(a, b)
    # A float64 matmul errs by up to ~k eps max|a_i.| max|b_.j| = 2^-49 max|a_i.| max|b_.j| here.
    scale = np.abs(a).max(axis=1)[:, None] * np.abs(b).max(axis=0)[None, :]
    for i in range(6):
        for j in range(5):
            error = abs(Fraction(float(exact[i, j])) + Fraction(float(rest[i, j])) - truth[i][j])
            assert error <= Fraction(2.0**-66) * Fraction(float(scale[i, j]))


def test_gram_residual_matches_exact_arithmetic():
    rng = np.random.default_rng(7)
    factors = rng.standard_normal((8, 8, 8))
    covariances = factors @ np.swapaxes(factors, -1, -2) + 8 * np.eye(8)
    chol = np.linalg.cholesky(covariances)
    residual = gram_residual(np, covariances, Split.left(np, chol))
    for c, l, r in zip(covariances, chol, residual):
        product = _exact_matmul(l, l.T)
        truth = np.array([[float(Fraction(float(c[i, j])) - product[i][j]) for j in range(8)] for i in range(8)])
        # The residual is at the level of float64 rounding; it must still be right to ~6 digits.
        assert np.abs(truth).max() > 0
        np.testing.assert_allclose(r, truth, rtol=0, atol=1e-6 * np.abs(truth).max())


def test_numpy_solve_lower_broadcasts_and_matches_scipy():
    rng = np.random.default_rng(3)
    lower = np.tril(rng.standard_normal((3, 1, 5, 5))) + 5 * np.eye(5)
    rhs = rng.standard_normal((1, 4, 5, 2))
    solved = solve_lower(np, lower, rhs)
    assert solved.shape == (3, 4, 5, 2)
    for i in range(3):
        for j in range(4):
            expected = scipy.linalg.solve_triangular(lower[i, 0], rhs[0, j], lower=True)
            np.testing.assert_allclose(solved[i, j], expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("namespace", ["numpy", "torch"])
def test_inverse_lower_is_a_lower_triangular_inverse(namespace):
    rng = np.random.default_rng(4)
    lower = np.tril(rng.standard_normal((2, 6, 6))) + 6 * np.eye(6)
    if namespace == "torch":
        import array_api_compat

        lower_t = torch.from_numpy(lower)
        inverse = inverse_lower(array_api_compat.array_namespace(lower_t), lower_t).numpy()
    else:
        inverse = inverse_lower(np, lower)
    assert np.array_equal(inverse, np.tril(inverse))
    np.testing.assert_allclose(inverse @ lower, np.broadcast_to(np.eye(6), (2, 6, 6)), atol=1e-14)
