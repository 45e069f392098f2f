"""klbook._kernels: the compiled loops compute what the array operations of klbook._numerics compute."""

import numpy as np
import pytest

import array_api_compat.numpy as xp

from klbook import _kernels
from klbook._numerics import (
    SERIES_LIMIT,
    _half_g_of_exact_diff_by_passes,
    _half_g_of_ratio_by_passes,
    half_g_of_exact_diff,
    half_g_of_ratio,
    two_diff,
)


def _ratio_pairs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """sigma_p, sigma_q with ln r^2 from 1e-12 to 40 in size, of both signs, at scales e^-690 ... e^690:
    every kind of entry (common, far ratios, scales near the ends of the float64 range)."""
    rng = np.random.default_rng(seed)
    u = rng.choice([-1.0, 1.0], 40_000) * 10.0 ** rng.uniform(-12, np.log10(40), 40_000)
    sigma_q = np.exp(rng.uniform(-690, 690, u.size))
    sigma_p = sigma_q * np.exp(u / 2)
    keep = (sigma_p > 0) & np.isfinite(sigma_p)
    return sigma_p[keep], sigma_q[keep]


@pytest.mark.parametrize("seed", [0, 1])
def test_half_g_of_ratio_is_bit_identical_to_the_array_operations(seed):
    # The loops perform the same IEEE operations in the same order, without fused multiply-adds, so
    # the results are equal bit for bit (not merely close); with numpy's log1p in both.
    a, b = _ratio_pairs(seed)
    with np.errstate(all="ignore"):
        compiled = half_g_of_ratio(xp, a, b)
        by_passes = _half_g_of_ratio_by_passes(xp, a, b)
    np.testing.assert_array_equal(compiled, by_passes)


def test_every_kind_of_entry_is_exercised():
    a, b = _ratio_pairs(0)
    with np.errstate(all="ignore"):
        _, kind = _kernels.half_g_of_ratio(a, b, np.log1p)
    counts = np.bincount(kind, minlength=3)
    assert counts[[_kernels.COMMON, _kernels.FAR_RATIO, _kernels.OTHER]].min() >= 100


def test_half_g_of_ratio_keeps_the_shape_and_takes_views():
    a, b = _ratio_pairs(1)
    a, b = a[:600].reshape(20, 30), b[:600].reshape(20, 30)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(half_g_of_ratio(xp, a.T, b.T), half_g_of_ratio(xp, a, b).T)


def _log_variance_pairs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """logvar_p, logvar_q whose difference ranges from 1e-12 to 1,400 in size, of both signs."""
    rng = np.random.default_rng(seed)
    u = rng.choice([-1.0, 1.0], 40_000) * 10.0 ** rng.uniform(-12, np.log10(1_400), 40_000)
    logvar_q = rng.uniform(-700, 700, u.size)
    return logvar_q + u, logvar_q


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("with_low_part", [True, False])
def test_half_g_of_exact_diff_is_bit_identical_to_the_array_operations(seed, with_low_part):
    logvar_p, logvar_q = _log_variance_pairs(seed)
    s, e = two_diff(logvar_p, logvar_q)
    e = e if with_low_part else None
    with np.errstate(all="ignore"):
        compiled = half_g_of_exact_diff(xp, s, e)
        by_passes = _half_g_of_exact_diff_by_passes(xp, s, e, SERIES_LIMIT)
    assert np.isinf(compiled).any() and (np.abs(s) <= 0.5).any()  # both ends are reached
    np.testing.assert_array_equal(compiled, by_passes)
