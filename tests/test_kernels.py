"""klbook._kernels: the compiled loops compute what the array operations of klbook._numerics and
klbook.gaussian compute, bit for bit."""

import numpy as np
import pytest

import array_api_compat.numpy as xp
import array_api_compat.torch as torch_xp
import torch

from klbook import _kernels, gaussian
from klbook.gaussian import NARROW_LOGVAR_CLIP, NARROW_SERIES_LIMIT
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


def _narrow_inputs(seed: int, size: int = 20_000) -> dict[str, np.ndarray]:
    """float32 means, standard deviations and log-variances: equal and nearly equal pairs (the series
    of g below 2^-10), and log-variances down to -1,500 (below the clip at -1,400)."""
    rng = np.random.default_rng(seed)
    logvar_q = rng.uniform(-30, 30, size)
    logvar_q[: size // 10] = rng.uniform(-1_500, -1_350, size // 10)
    step = rng.choice([0.0, 1e-6, 1e-3, 0.1, 3.0], size) * rng.normal(size=size)
    values = {
        "mu_p": rng.normal(size=size) * 10.0 ** rng.uniform(-3, 3, size),
        "logvar_p": logvar_q + step,
        "logvar_q": logvar_q,
        "sigma_p": np.exp(rng.uniform(-30, 30, size)),
        "sigma_q": np.exp(rng.uniform(-30, 30, size)),
    }
    values["mu_q"] = np.where(rng.random(size) < 0.2, values["mu_p"], rng.normal(size=size))
    values["sigma_p"][: size // 2] = values["sigma_q"][: size // 2] * np.exp(step[: size // 2])
    values["logvar"] = step
    return {k: v.astype(np.float32) for k, v in values.items()}


@pytest.mark.parametrize("function", ["normal", "diag", "std"])
def test_narrow_terms_are_bit_identical_to_the_array_operations(function):
    values = _narrow_inputs(0)
    with np.errstate(all="ignore"):
        if function == "normal":
            args = [values[k] for k in ("mu_p", "sigma_p", "mu_q", "sigma_q")]
            compiled = _kernels.twice_narrow_normal_terms(*args, np.log, np.expm1, NARROW_SERIES_LIMIT)
            by_passes = gaussian._twice_normal_terms_narrow(xp, *(a.astype(np.float64) for a in args))
        elif function == "diag":
            args = [values[k] for k in ("mu_p", "logvar_p", "mu_q", "logvar_q")]
            compiled = _kernels.twice_narrow_diag_terms(*args, np.exp, np.expm1, NARROW_SERIES_LIMIT, NARROW_LOGVAR_CLIP)
            by_passes = gaussian._twice_diag_terms_narrow(xp, *(a.astype(np.float64) for a in args))
        else:
            mu, logvar = values["mu_p"], values["logvar"]
            compiled = _kernels.twice_narrow_std_terms(mu, logvar, np.expm1, NARROW_SERIES_LIMIT)
            mu64, logvar64 = mu.astype(np.float64), logvar.astype(np.float64)
            by_passes = gaussian._narrow_g(xp, logvar64) + mu64 * mu64
    u = {
        "normal": 2.0 * np.log(values["sigma_p"] / values["sigma_q"].astype(np.float64)),
        "diag": values["logvar_p"].astype(np.float64) - values["logvar_q"],
        "std": values["logvar"].astype(np.float64),
    }[function]
    assert 100 < (np.abs(u) < NARROW_SERIES_LIMIT).sum() < u.size - 100  # both sides of the series limit
    np.testing.assert_array_equal(compiled, by_passes)


def _torch_function(name: str):
    """torch's ``name`` on numpy float64 arrays, as klbook applies it to chunks of CPU tensors."""
    function = getattr(torch, name)
    return lambda x: function(torch.from_numpy(np.ascontiguousarray(x))).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("function", ["normal", "diag"])
def test_gradients_are_bit_identical_to_the_array_operations(function, dtype):
    # The array operations on torch tensors (the path of tensors off the CPU, and of create_graph)
    # against the loops on numpy arrays, both with torch's exp and expm1.
    values = _narrow_inputs(1, size=8_192)
    names = ("mu_p", "sigma_p", "mu_q", "sigma_q") if function == "normal" else ("mu_p", "logvar_p", "mu_q", "logvar_q")
    keep = values["logvar_q"] > -1_000  # the loops leave logvar_q <= -1400 to the array operations
    args = [values[k][keep].astype(dtype) for k in names]
    if dtype == np.float64:  # all 53 bits, so that differences are not exact (their low parts count)
        rng = np.random.default_rng(3)
        args = [a * (1.0 + 1e-9 * rng.uniform(-1, 1, a.shape)) for a in args]
    if function == "diag":
        args = [a[:4_000].reshape(100, 40) for a in args]  # rows of a latent dimension 40
    grad = np.random.default_rng(2).normal(size=args[0].shape[:-1] + (1,) if function == "diag" else args[0].shape)
    grad = grad.astype(dtype)
    narrow = dtype == np.float32
    with np.errstate(all="ignore"):
        if function == "normal":
            compiled = _kernels.normal_gradient(grad, *args, narrow=narrow)
            by_passes = gaussian._normal_gradient(torch_xp, torch.from_numpy(grad), *map(torch.from_numpy, args))
        else:
            compiled = _kernels.diag_gradient(grad, *args, narrow=narrow, exp=_torch_function("exp"), expm1=_torch_function("expm1"))
            by_passes = gaussian._diag_gradient(torch_xp, torch.from_numpy(grad), *map(torch.from_numpy, args))
    assert compiled is not None
    for ours, theirs in zip(compiled, by_passes):
        np.testing.assert_array_equal(ours, theirs.numpy())


def test_gradient_loops_leave_rare_entries_to_the_array_operations():
    ones = np.ones((2, 3))
    low = np.full((2, 3), -1_500.0)
    assert _kernels.diag_gradient(ones[:, :1], ones, ones, ones, low, narrow=False, exp=np.exp, expm1=np.expm1) is None
    assert _kernels.diag_gradient(ones[:, :1], ones, 800.0 * ones, ones, ones, narrow=False, exp=np.exp, expm1=np.expm1) is None
    huge = np.full(3, 1e308)
    assert _kernels.normal_gradient(np.ones(3), huge, np.ones(3), -huge, np.ones(3), narrow=False) is None


def test_mean_term_is_bit_identical_to_the_array_operations():
    rng = np.random.default_rng(4)
    values = _narrow_inputs(2)
    mu_p, mu_q = (values[k].astype(np.float64) * (1.0 + 1e-9 * rng.uniform(-1, 1, values[k].size)) for k in ("mu_p", "mu_q"))
    mu_q[:2_000] = mu_p[:2_000]  # equal means: a term of 0 without evaluating exp(logvar_q / 2)
    logvar_q = rng.uniform(-60, 60, mu_p.size)
    compiled = _kernels.half_square_of_scaled_difference(mu_p, mu_q, logvar_q, _torch_function("exp"))
    by_passes = gaussian._half_square_of_scaled_difference(torch_xp, *map(torch.from_numpy, (mu_p, mu_q, logvar_q)))
    np.testing.assert_array_equal(compiled, by_passes.numpy())
    overflowing = _kernels.half_square_of_scaled_difference(np.ones(2), np.zeros(2), np.array([0.0, -1_500.0]), np.exp)
    assert overflowing is None  # left to the array operations, which give the same inf
