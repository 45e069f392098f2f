"""Tests of klbook.gaussian: ULP accuracy against mpmath on hard grids, quadrature, Monte Carlo,
torch.distributions, properties, autograd, return kinds and bad inputs."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from klbook import kl_diag_normal, kl_mvn, kl_normal, kl_std_normal, normal_logpdf
from klbook.accuracy import (
    GRID_FUNCTIONS,
    hard_grids,
    reference_kl_diag_normal,
    reference_kl_mvn,
    reference_kl_normal,
    reference_kl_std_normal,
    ulp_error,
)

FUNCTIONS = {
    "kl_normal": (kl_normal, reference_kl_normal),
    "kl_diag_normal": (kl_diag_normal, reference_kl_diag_normal),
    "kl_std_normal": (kl_std_normal, reference_kl_std_normal),
    "kl_mvn": (kl_mvn, reference_kl_mvn),
}
ULP_BOUND = {"kl_normal": 4, "kl_diag_normal": 4, "kl_std_normal": 4, "kl_mvn": 4}
GAUSSIAN_GRIDS = [g for g in hard_grids() if GRID_FUNCTIONS[g.split(":")[0]] in FUNCTIONS]


@pytest.mark.parametrize("grid", GAUSSIAN_GRIDS)
def test_float64_results_within_a_few_ulp_of_mpmath(grid):
    function = GRID_FUNCTIONS[grid.split(":")[0]]
    fn, reference = FUNCTIONS[function]
    inputs = hard_grids()[grid]
    errors = ulp_error(fn(*inputs.values()), reference(*inputs.values()))
    assert errors.max() <= ULP_BOUND[function], f"{grid}: max error {errors.max():.3g} ULP"


# Rows of a batch large enough to be evaluated in several chunks (klbook._array.CHUNK_ELEMENTS), whose
# exp, expm1, log and log1p are torch's rather than numpy's (klbook._array.numpy_for_torch_views).
LARGE_BATCH_ELEMENTS = 150_000


def _tiled(a: np.ndarray, reps: int) -> np.ndarray:
    return np.tile(np.asarray(a), (reps,) + (1,) * (np.ndim(a) - 1))


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("grid", [g for g in GAUSSIAN_GRIDS if not g.startswith("mvn")])
def test_float64_tensors_of_a_large_batch_within_a_few_ulp_of_mpmath(grid, requires_grad):
    """Large batches of CPU tensors take the chunked path with torch's vectorised transcendental
    functions: the same bound as numpy arrays (each grid repeated, its reference with it)."""
    fn, reference = FUNCTIONS[GRID_FUNCTIONS[grid.split(":")[0]]]
    inputs = [np.asarray(v, dtype=np.float64) for v in hard_grids()[grid].values()]
    reps = -(-LARGE_BATCH_ELEMENTS // inputs[0].size)
    tensors = [torch.tensor(_tiled(v, reps), requires_grad=requires_grad) for v in inputs]
    errors = ulp_error(fn(*tensors).detach().numpy(), _tiled(reference(*inputs), reps))
    assert errors.max() <= ULP_BOUND[GRID_FUNCTIONS[grid.split(":")[0]]], f"{grid}: max error {errors.max():.3g} ULP"


# Grids whose inputs are not representable in float32 or float16 (1e-150, logvar -1400) are float64-only.
NARROW_GRIDS = [g for g in GAUSSIAN_GRIDS if g not in ("normal: extreme ratios", "diag: large logvars")]


def _narrow_errors(function: str, inputs: dict, dtype: type) -> np.ndarray:
    """Errors, in ULP of ``dtype``, of ``function`` on torch tensors of ``dtype`` made from ``inputs``,
    against the exact value for the rounded inputs, itself rounded to ``dtype`` (inf beyond its range)."""
    fn, reference = FUNCTIONS[function]
    narrow = {k: np.asarray(v, dtype=dtype) for k, v in inputs.items()}
    exact = reference(*[v.astype(np.float64) for v in narrow.values()])
    with np.errstate(over="ignore"):
        exact_rounded = exact.astype(dtype).astype(np.float64)
    computed = fn(*[torch.from_numpy(v) for v in narrow.values()])
    assert computed.dtype == torch.from_numpy(np.zeros(1, dtype=dtype)).dtype
    return ulp_error(computed.double(), exact_rounded, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("grid", NARROW_GRIDS)
def test_narrow_results_within_1_ulp_of_the_exact_value(grid, dtype):
    errors = _narrow_errors(GRID_FUNCTIONS[grid.split(":")[0]], hard_grids()[grid], dtype)
    assert errors.max() <= 1, f"{grid}: max error {errors.max():.3g} ULP of {dtype.__name__}"


F32_MAX, F32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).smallest_subnormal)

# Inputs at the edges of float32, where a float64 evaluation of the short formulas could overflow,
# cancel or produce 0 * inf: the narrow path must still round the exact value (inf where it exceeds
# float32's range).
FLOAT32_EXTREMES = {
    "kl_normal": {
        "mu_p": [0.0, 0.0, 1.0, F32_MAX, 0.0, 1e-30],
        "sigma_p": [F32_TINY, F32_MAX, 1.0, F32_TINY, 1.0 - 2.0**-24, 1e-30],
        "mu_q": [0.0, 0.0, -1.0, -F32_MAX, 0.0, 0.0],
        "sigma_q": [F32_MAX, F32_TINY, F32_TINY, 1.0, 1.0, 1e-30 * (1 + 2.0**-23)],
    },
    "kl_diag_normal": {
        "mu_p": [[0.0], [1e-30], [0.0], [F32_TINY], [0.0], [3.0]],
        "logvar_p": [[-F32_MAX], [0.0], [F32_MAX], [-1410.0], [1e-38], [88.0]],
        "mu_q": [[0.0], [0.0], [0.0], [0.0], [0.0], [0.0]],
        "logvar_q": [[F32_MAX], [-1410.0], [-F32_MAX], [-1410.0], [-1e-38], [-88.0]],
    },
    "kl_std_normal": {
        "mu": [[0.0], [F32_MAX], [1e-20], [0.0], [0.0]],
        "logvar": [[-F32_MAX], [0.0], [1e-30], [-1e-7], [89.5]],
    },
}


@pytest.mark.parametrize("function", sorted(FLOAT32_EXTREMES))
def test_float32_extremes_are_rounded_exact_values(function):
    errors = _narrow_errors(function, FLOAT32_EXTREMES[function], np.float32)
    assert errors.max() <= 1, f"{function}: errors {errors} float32 ULP"


@pytest.mark.parametrize("function", sorted(FLOAT32_EXTREMES))
def test_bfloat16_results_are_the_exact_value_rounded_within_1_ulp(function):
    fn, reference = FUNCTIONS[function]
    rng = np.random.default_rng(9)
    inputs = {k: torch.tensor(np.abs(v) if k.startswith("sigma") else v, dtype=torch.bfloat16)
              for k, v in ((k, rng.uniform(0.1, 3.0, (40, 4))) for k in FLOAT32_EXTREMES[function])}
    computed = fn(*inputs.values())
    assert computed.dtype == torch.bfloat16
    exact = torch.from_numpy(np.asarray(reference(*[v.double().numpy() for v in inputs.values()])))
    # bfloat16 has 8 significant bits: its ULP at x is 2^(floor(log2 |x|) - 7)
    spacing = torch.exp2(torch.floor(torch.log2(exact.abs())) - 7)
    assert torch.all((computed.double() - exact).abs() <= spacing)


def test_mixed_float32_and_float64_inputs_are_computed_from_the_float64_values():
    # 0.1 is not a float32: rounding it to float32 first (as a pure-float32 call may) would move the result.
    value = kl_std_normal(torch.tensor([0.0], dtype=torch.float32), torch.tensor([0.1], dtype=torch.float64))
    assert value.dtype == torch.float64
    assert ulp_error(value, reference_kl_std_normal(np.zeros((1, 1)), np.full((1, 1), 0.1))).max() <= 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_narrow_dtype_gradients_match_float64(dtype):
    generator = torch.Generator().manual_seed(3)
    args64 = [torch.randn(6, 3, generator=generator, dtype=torch.float64) for _ in range(4)]
    args64[3] = torch.zeros(6, 3, dtype=torch.float64)  # logvar_q = 0 next to logvar_p ~ 1: no tiny u
    args = [a.to(dtype).requires_grad_() for a in args64]
    kl_diag_normal(*args).sum().backward()
    exact_args = [a.detach().double().requires_grad_() for a in args]
    kl_diag_normal(*exact_args).sum().backward()
    for narrow, exact in zip(args, exact_args):
        assert narrow.grad.dtype == dtype
        torch.testing.assert_close(narrow.grad.double(), exact.grad, rtol=torch.finfo(dtype).eps, atol=0.0)


def test_float32_logvar_near_89_does_not_overflow_early():
    logvar = torch.tensor([[88.5]], dtype=torch.float32)
    value = kl_std_normal(torch.zeros_like(logvar), logvar)
    assert torch.isfinite(value).all()
    exact = reference_kl_std_normal(np.zeros((1, 1)), logvar.double().numpy())
    assert ulp_error(value.double(), exact.astype(np.float32).astype(np.float64), dtype=np.float32).max() <= 1


def test_logvar_just_beyond_exp_overflow_is_still_finite():
    # exp(710) overflows float64 but the KL, ~exp(710)/2, does not.
    value = kl_std_normal([0.0], [710.0])
    assert math.isfinite(value)
    assert ulp_error(value, reference_kl_std_normal([0.0], [710.0])) <= 4


@pytest.mark.parametrize(
    ("mu_p", "sigma_p", "mu_q", "sigma_q"),
    [(0.0, 1.0, 0.0, 2.0), (0.3, 0.5, -1.0, 1.7), (2.0, 3.0, 0.0, 0.8), (0.0, 1.0 + 1e-3, 0.0, 1.0)],
)
def test_kl_normal_matches_quadrature(mu_p, sigma_p, mu_q, sigma_q):
    p, q = stats.norm(mu_p, sigma_p), stats.norm(mu_q, sigma_q)
    value, _ = integrate.quad(
        lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -np.inf, np.inf, epsabs=1e-14, epsrel=1e-12
    )
    assert kl_normal(mu_p, sigma_p, mu_q, sigma_q) == pytest.approx(value, rel=1e-9, abs=1e-13)


def test_kl_diag_normal_matches_monte_carlo():
    rng = np.random.default_rng(5)
    mu_p, logvar_p = np.array([0.5, -0.3, 1.0]), np.array([-0.5, -1.0, 0.4])
    mu_q, logvar_q = np.array([0.0, 0.2, 0.5]), np.array([0.0, 0.3, -0.2])
    sigma_p, sigma_q = np.exp(0.5 * logvar_p), np.exp(0.5 * logvar_q)
    x = mu_p + sigma_p * rng.standard_normal((200_000, 3))
    log_ratio = (normal_logpdf(x, mu_p, sigma_p) - normal_logpdf(x, mu_q, sigma_q)).sum(axis=-1)
    estimate, std_error = log_ratio.mean(), log_ratio.std(ddof=1) / math.sqrt(len(log_ratio))
    assert abs(kl_diag_normal(mu_p, logvar_p, mu_q, logvar_q) - estimate) < 4 * std_error


def test_agrees_with_torch_distributions_where_torch_is_accurate():
    torch.manual_seed(1)
    mu_p, mu_q = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    logvar_p, logvar_q = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    sigma_p, sigma_q = torch.exp(0.5 * logvar_p), torch.exp(0.5 * logvar_q)
    torch.testing.assert_close(
        kl_normal(mu_p, sigma_p, mu_q, sigma_q), kl_divergence(Normal(mu_p, sigma_p), Normal(mu_q, sigma_q))
    )
    expected = kl_divergence(Independent(Normal(mu_p, sigma_p), 1), Independent(Normal(mu_q, sigma_q), 1))
    torch.testing.assert_close(kl_diag_normal(mu_p, logvar_p, mu_q, logvar_q), expected)
    a = torch.randn(20, 3, 3, dtype=torch.float64)
    cov_p = a @ a.mT + torch.eye(3)
    cov_q = cov_p.flip(0)
    expected = kl_divergence(MultivariateNormal(mu_p, cov_p), MultivariateNormal(mu_q, cov_q))
    torch.testing.assert_close(kl_mvn(mu_p, cov_p, mu_q, cov_q), expected)


def test_vae_example_from_the_book():
    mu, logvar = np.array([0.5, -0.3]), np.array([-0.5, -1.0])
    expected = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar))
    assert kl_std_normal(mu, logvar) == pytest.approx(expected, rel=1e-15)


def test_the_three_gaussian_forms_agree():
    rng = np.random.default_rng(6)
    mu_p, mu_q = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    logvar_p, logvar_q = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    diag = kl_diag_normal(mu_p, logvar_p, mu_q, logvar_q)
    univariate = kl_normal(mu_p, np.exp(0.5 * logvar_p), mu_q, np.exp(0.5 * logvar_q)).sum(axis=-1)
    full = kl_mvn(mu_p, np.exp(logvar_p)[..., None] * np.eye(4), mu_q, np.exp(logvar_q)[..., None] * np.eye(4))
    np.testing.assert_allclose(univariate, diag, rtol=1e-14)
    np.testing.assert_allclose(full, diag, rtol=1e-13)
    zeros = np.zeros_like(mu_p)
    np.testing.assert_allclose(kl_std_normal(mu_p, logvar_p), kl_diag_normal(mu_p, logvar_p, zeros, zeros), rtol=1e-15)


finite = st.floats(-5, 5, allow_nan=False)
positive = st.floats(0.05, 20, allow_nan=False)


@given(finite, positive, finite, positive)
def test_kl_normal_is_non_negative_and_zero_iff_equal(mu_p, sigma_p, mu_q, sigma_q):
    value = kl_normal(mu_p, sigma_p, mu_q, sigma_q)
    assert value >= 0
    assert kl_normal(mu_p, sigma_p, mu_p, sigma_p) == 0
    if (mu_p, sigma_p) != (mu_q, sigma_q):
        assert value > 0


@given(st.integers(0, 2**32 - 1))
def test_gaussian_kl_is_invariant_under_a_shared_affine_map(seed):
    rng = np.random.default_rng(seed)
    k = 3
    a, b = rng.standard_normal((k, k)), rng.standard_normal((k, k))
    cov_p, cov_q = a @ a.T + 0.5 * np.eye(k), b @ b.T + 0.5 * np.eye(k)
    mu_p, mu_q = rng.standard_normal(k), rng.standard_normal(k)
    transform = rng.standard_normal((k, k)) + 3 * np.eye(k)
    shift = rng.standard_normal(k)
    mapped = kl_mvn(
        transform @ mu_p + shift, transform @ cov_p @ transform.T, transform @ mu_q + shift, transform @ cov_q @ transform.T
    )
    assert mapped == pytest.approx(kl_mvn(mu_p, cov_p, mu_q, cov_q), rel=1e-8)


def test_kl_normal_is_asymmetric_unless_the_variances_are_equal():
    assert kl_normal(0.0, 1.0, 0.0, 2.0) != pytest.approx(kl_normal(0.0, 2.0, 0.0, 1.0))
    assert kl_normal(0.0, 1.5, 2.0, 1.5) == pytest.approx(kl_normal(2.0, 1.5, 0.0, 1.5), rel=1e-15)


def test_gradcheck_in_float64():
    torch.manual_seed(2)
    args = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    assert torch.autograd.gradcheck(lambda a, b, c, d: kl_normal(a, b.exp(), c, d.exp()), args)
    assert torch.autograd.gradcheck(kl_diag_normal, args)
    assert torch.autograd.gradcheck(kl_std_normal, args[:2])
    m = torch.randn(2, 3, 3, dtype=torch.float64)
    spd = lambda x: x @ x.mT + torch.eye(3, dtype=torch.float64)  # noqa: E731
    far = [args[0][:2], m.clone().requires_grad_(), args[2][:2], m.flip(0).clone().requires_grad_()]
    assert torch.autograd.gradcheck(lambda a, b, c, d: kl_mvn(a, spd(b), c, spd(d)), far)
    close = m.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda b: kl_mvn(args[0][:2], spd(b), args[2][:2], 1.001 * spd(b)), (close,))
    # Close covariances (the series branch, ||D|| ~ 1e-3), not proportional (whose covariance part would
    # not depend on b); the gradients are ~1e-3, so the default atol of 1e-5 would let wrong ones pass.
    # Equal means, so that the mean term's larger gradient does not hide the covariance part's.
    nudge, zeros = 1e-3 * (m[0] + m[0].T), torch.zeros(2, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda b: kl_mvn(zeros, spd(b) + nudge, zeros, spd(b)), (close,), atol=1e-12)


def test_kl_mvn_of_a_pair_does_not_depend_on_its_batch():
    # Close and far pairs take different branches; a mixed batch must give each pair its own value.
    grid = hard_grids()["mvn: condition number up to 1e3, k = 8"]
    batch = kl_mvn(*grid.values())
    for i in range(0, len(batch), 7):
        assert kl_mvn(*(v[i] for v in grid.values())) == batch[i]


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e300, 1e306])
def test_kl_mvn_stays_accurate_at_the_ends_of_the_float_range(scale):
    # Close covariances near 1e-300 differ by subnormal amounts, and the splitting of the exact products
    # would overflow near 1e300: kl_mvn rescales each pair by a power of 2 first.
    rng = np.random.default_rng(8)
    factors = rng.standard_normal((20, 3, 3))
    cov_q = factors @ np.swapaxes(factors, -1, -2) + np.eye(3)
    noise = rng.standard_normal((20, 3, 3))
    perturbation = np.logspace(-14, 0, 20)[:, None, None] * (noise + np.swapaxes(noise, -1, -2)) / 8
    cov_p = cov_q + perturbation * np.linalg.norm(cov_q, axis=(-2, -1), keepdims=True) / 3
    assert np.all(np.linalg.eigvalsh(cov_p) > 0)
    mu_p = rng.standard_normal((20, 3)) * 10.0 ** rng.uniform(-8, 0, (20, 1))
    mu_p[::2] = 0.0  # else the mean term hides the covariance part's errors on close pairs
    inputs = (np.sqrt(scale) * mu_p, scale * cov_p, np.zeros((20, 3)), scale * cov_q)
    assert ulp_error(kl_mvn(*inputs), reference_kl_mvn(*inputs)).max() <= 4


def test_kl_mvn_mean_difference_beyond_the_float_range_is_not_inf():
    value = kl_mvn([1e308], [[1.7e308]], [-1e308], [[1.7e308]])
    assert ulp_error(value, reference_kl_mvn([1e308], [[1.7e308]], [-1e308], [[1.7e308]])) <= 1


@pytest.mark.parametrize("cond", [1e4, 1e5, 1e6])
def test_kl_mvn_of_slightly_different_ill_conditioned_covariances(cond):
    # ||L_q^-1 L_p - I||_F = 5.4e-4 with cond(S_q) up to 1e6: the Cholesky form's corrected value erred
    # by 6 ULP here at cond 1e6 (25 at 1e7), the series for close covariances by at most 1.
    rotation = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    cov_q = rotation @ np.diag([1.0, cond]) @ rotation.T
    cov_q = np.tril(cov_q) + np.tril(cov_q, -1).T
    factor_p = np.linalg.cholesky(cov_q) @ (np.eye(2) + np.array([[3e-4, 0.0], [-4e-4, 2e-4]]))
    cov_p = factor_p @ factor_p.T
    cov_p = np.tril(cov_p) + np.tril(cov_p, -1).T
    inputs = (np.zeros(2), cov_p, np.zeros(2), cov_q)
    assert ulp_error(kl_mvn(*inputs), reference_kl_mvn(*inputs)) <= 2


@pytest.mark.parametrize("k", [2, 8])
def test_kl_mvn_within_4_ulp_up_to_condition_number_1e6(k):
    # Pairs on both sides of the switch between the series for close covariances and the Cholesky form
    # (||L_q^-1 L_p - I||_F ~ NEAR_LIMIT / 2), where the Cholesky form's KL is smallest, and well below
    # it: the second-order remainder of the Cholesky form's correction, ~(k eps cond)^2, would show there
    # (and shows beyond 1e6 anyway).
    rng = np.random.default_rng(k)
    rows = []
    for cond in (1e2, 1e4, 1e6):
        for size in (6e-4, 1e-3, 0.01, 0.02, 0.03, 0.04, 0.2, 1.0):
            rotation = np.linalg.qr(rng.standard_normal((k, k)))[0]
            cov_q = (rotation * np.geomspace(1.0, cond, k)) @ rotation.T
            chol_q = np.linalg.cholesky(cov_q)
            step = np.tril(rng.standard_normal((k, k)))
            factor_p = chol_q @ (np.eye(k) + size * step / np.linalg.norm(step))
            rows.append((np.zeros(k), factor_p @ factor_p.T, np.zeros(k), cov_q))
    mu_p, cov_p, mu_q, cov_q = (np.stack(parts) for parts in zip(*rows))
    cov_p, cov_q = (np.tril(c) + np.swapaxes(np.tril(c, -1), -1, -2) for c in (cov_p, cov_q))  # exactly symmetric
    errors = ulp_error(kl_mvn(mu_p, cov_p, mu_q, cov_q), reference_kl_mvn(mu_p, cov_p, mu_q, cov_q))
    assert errors.max() <= 4, errors


def test_kl_mvn_beyond_the_float_range_is_inf():
    value = kl_mvn(np.full(2, 1e200), 1e-200 * np.eye(2), np.zeros(2), 1e-200 * np.eye(2))
    assert value == np.inf


@pytest.mark.parametrize("logvar", [1e-12, -1e-9, 1e-4, 0.7, -3.0, 50.0, 709.0])
def test_gradients_stay_finite_and_correct_in_hard_regimes(logvar):
    # d/dlogvar of 1/2 (e^l - 1 - l) is expm1(l) / 2, which the textbook gradient loses near l = 0.
    x = torch.tensor([logvar], dtype=torch.float64, requires_grad=True)
    kl_std_normal(torch.zeros(1, dtype=torch.float64), x).backward()
    with mpmath.workdps(50):
        expected = float(mpmath.expm1(mpmath.mpf(logvar)) / 2)
    assert ulp_error(x.grad, np.array([expected])).max() <= 4


def test_gradient_of_kl_normal_near_equal_sigmas():
    sigma = torch.tensor([1.0 + 1e-10], dtype=torch.float64, requires_grad=True)
    kl_normal(0.0, sigma, 0.0, torch.tensor([1.0], dtype=torch.float64)).backward()
    # d/dsigma_p of ln(1/s) + s^2/2 - 1/2 is s - 1/s
    with mpmath.workdps(50):
        s = mpmath.mpf(float(sigma.detach()))
        expected = float(s - 1 / s)
    assert ulp_error(sigma.grad, np.array([expected])).max() <= 8


def test_return_kinds():
    assert isinstance(kl_normal(0.0, 1.0, 0.0, 2.0), np.float64)
    assert isinstance(kl_std_normal([0.1], [0.2]), np.float64)
    assert kl_normal(np.zeros(3), 1.0, 0.0, 2.0).shape == (3,)
    value = kl_std_normal(torch.zeros(5, 2, dtype=torch.float32), torch.zeros(5, 2, dtype=torch.float32))
    assert value.dtype == torch.float32 and value.shape == (5,)
    assert kl_diag_normal(np.zeros((2, 1, 3)), 0.0, np.zeros((4, 3)), 0.0).shape == (2, 4)


def test_inputs_are_not_modified_and_stay_on_the_graph():
    mu = torch.tensor([[0.5, -0.3]], requires_grad=True)
    logvar = torch.tensor([[-0.5, -1.0]], requires_grad=True)
    kl_std_normal(mu, logvar).sum().backward()
    torch.testing.assert_close(mu.grad, mu.detach())
    torch.testing.assert_close(logvar.grad, 0.5 * torch.expm1(logvar.detach()))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kl_normal(0.0, 0.0, 0.0, 1.0), r"sigma_p must be > 0; its smallest value is 0"),
        (lambda: kl_normal(0.0, 1.0, 0.0, -2.0), r"sigma_q must be > 0; its smallest value is -2"),
        (lambda: kl_normal(0.0, np.inf, 0.0, 1.0), r"sigma_p must be finite"),
        (lambda: kl_normal(np.nan, 1.0, 0.0, 1.0), r"mu_p contains NaN"),
        (lambda: kl_normal(np.inf, 1.0, 0.0, 1.0), r"mu_p must be finite"),
        (lambda: kl_normal(np.zeros(2), 1.0, np.zeros(3), 1.0), r"shapes do not broadcast: mu_p \(2,\).*mu_q \(3,\)"),
        (lambda: kl_diag_normal(0.0, 0.0, 0.0, 0.0), r"must have at least one dimension"),
        (lambda: kl_diag_normal([0.0], [np.nan], [0.0], [0.0]), r"logvar_p contains NaN"),
        (lambda: kl_std_normal([0.0], [np.inf]), r"logvar must be finite"),
        (lambda: kl_std_normal(torch.zeros(2), torch.tensor([0.0, float("nan")])), r"logvar contains NaN"),
        (lambda: kl_mvn(np.zeros(2), [[1.0, 0.5], [0.0, 1.0]], np.zeros(2), np.eye(2)), r"cov_p is not symmetric"),
        (lambda: kl_mvn(np.zeros(2), np.eye(2), np.zeros(2), [[1.0, 2.0], [2.0, 1.0]]), r"cov_q is not positive definite"),
        (lambda: kl_mvn(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), r"dimensions do not match"),
        (lambda: kl_mvn(np.zeros(2), np.ones(2), np.zeros(2), np.eye(2)), r"cov_p must be a square matrix"),
        (lambda: kl_mvn(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2)), r"cov_p contains NaN"),
        (lambda: kl_mvn(np.zeros((3, 2)), np.eye(2), np.zeros((4, 2)), np.eye(2)), r"batch shapes do not broadcast"),
        (lambda: normal_logpdf(0.0, 0.0, -1.0), r"sigma must be > 0"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_no_runtime_warning_leaks(recwarn):
    kl_normal(0.0, 1e-300, 0.0, 1e300)
    kl_std_normal([0.0], [720.0])
    kl_diag_normal([1e308], [-1e4], [-1e308], [-1e4])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_normal_logpdf_matches_scipy():
    x = np.linspace(-30, 30, 101)
    np.testing.assert_allclose(normal_logpdf(x, 0.5, 2.0), stats.norm(0.5, 2.0).logpdf(x), rtol=1e-14)


# --- derivatives: closed-form backward passes (issue 12) ---------------------------------------------

GRADIENT_FORMS = {
    "kl_std_normal": lambda mu_p, s_p, mu_q, s_q: kl_std_normal(mu_p, s_p),
    "kl_diag_normal": lambda mu_p, s_p, mu_q, s_q: kl_diag_normal(mu_p, s_p, mu_q, s_q),
    "kl_normal": kl_normal,
}


def _gradient_inputs(rows, cols, dtype, generator, requires_grad=True):
    """mu_p, s_p, mu_q, s_q: the s arguments (log-variances, or sigmas for kl_normal) in 0.1 ... 4.1."""
    args = [torch.randn(rows, cols, generator=generator, dtype=torch.float64) for _ in range(4)]
    args[1], args[3] = 0.1 + args[1].abs(), 0.1 + args[3].abs()
    return [a.to(dtype).requires_grad_(requires_grad) for a in args]


def _graph_size(tensor: torch.Tensor) -> int:
    """Number of autograd nodes behind ``tensor``."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


@pytest.mark.parametrize("form", sorted(GRADIENT_FORMS))
def test_autograd_graph_does_not_grow_with_the_batch(form):
    # Chunked inputs used to be sliced on the graph, one node (and one full-size gradient) per chunk:
    # backward time grew with the square of the batch.
    sizes = {}
    for rows in (4, 20_000):  # one chunk, and ~20 chunks of 2^16 elements
        args = _gradient_inputs(rows, 64, torch.float32, torch.Generator().manual_seed(4))
        sizes[rows] = _graph_size(GRADIENT_FORMS[form](*args))
    assert sizes[20_000] == sizes[4]


@pytest.mark.parametrize("form", sorted(GRADIENT_FORMS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_narrow_gradients_are_the_float64_gradients_rounded(form, dtype):
    generator = torch.Generator().manual_seed(5)
    args = _gradient_inputs(3_000, 64, dtype, generator)
    GRADIENT_FORMS[form](*args).sum().backward()
    exact = [a.detach().double().requires_grad_() for a in args]
    GRADIENT_FORMS[form](*exact).sum().backward()
    for narrow, wide in zip(args, exact):
        if wide.grad is None:
            continue
        assert narrow.grad.dtype == dtype
        # The exact gradient of the narrow inputs, rounded once.
        torch.testing.assert_close(narrow.grad.double(), wide.grad, rtol=torch.finfo(dtype).eps, atol=0.0)


def test_gradcheck_and_gradgradcheck_in_float64_also_at_equal_means_and_on_chunked_batches():
    generator = torch.Generator().manual_seed(6)
    for form in GRADIENT_FORMS.values():
        small = _gradient_inputs(3, 4, torch.float64, generator)
        with torch.no_grad():
            small[2][0] = small[0][0]  # equal means in the first row, where second derivatives were 0
        assert torch.autograd.gradcheck(form, small)
        assert torch.autograd.gradgradcheck(form, small)
    # A batch of several chunks: the chunked backward against a finite-difference column.
    args = _gradient_inputs(3_000, 64, torch.float64, generator)
    for form in GRADIENT_FORMS.values():
        value = form(*args).sum()
        grads = torch.autograd.grad(value, args, allow_unused=True)
        for a, g in zip(args, grads):
            if g is None:
                continue
            step = torch.zeros_like(a)
            step[2_345, 17] = 1e-6
            with torch.no_grad():  # the row's own KL: the batch's sum would drown the difference
                numeric = (form(*[x + step if x is a else x for x in args]).reshape(3_000, -1)[2_345].sum()
                           - form(*[x - step if x is a else x for x in args]).reshape(3_000, -1)[2_345].sum()) / 2e-6
            assert float(g[2_345, 17]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)


def test_hessian_at_p_equals_q_is_the_fisher_information():
    # D(p_theta || p_theta0) = 1/2 (theta - theta0)^T I(theta0) (theta - theta0) + O(|theta - theta0|^3):
    # in (mu, logvar) coordinates the Fisher information of N(mu, e^logvar) is diag(e^-logvar, 1/2), and in
    # (mu, sigma) coordinates diag(1/sigma^2, 2/sigma^2).
    mu = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    logvar = torch.tensor([-0.7, 0.0, 1.5], dtype=torch.float64)
    k = mu.numel()

    def diag_of_p(theta):
        return kl_diag_normal(theta[:k], theta[k:], mu, logvar)

    expected = torch.diag(torch.cat([torch.exp(-logvar), torch.full((k,), 0.5, dtype=torch.float64)]))
    hessian = torch.autograd.functional.hessian(diag_of_p, torch.cat([mu, logvar]))
    torch.testing.assert_close(hessian, expected, rtol=1e-12, atol=1e-14)
    # With respect to the means alone, on both sides (the mixed block is -Fisher).
    means = torch.autograd.functional.hessian(lambda m_p, m_q: kl_diag_normal(m_p, logvar, m_q, logvar), (mu, mu))
    torch.testing.assert_close(means[0][0], torch.diag(torch.exp(-logvar)), rtol=1e-14, atol=0.0)
    torch.testing.assert_close(means[0][1], -torch.diag(torch.exp(-logvar)), rtol=1e-14, atol=0.0)
    # kl_std_normal at mu = 0, logvar = 0 (the prior): identity on mu, 1/2 on logvar.
    zeros = torch.zeros(2 * k, dtype=torch.float64)
    std = torch.autograd.functional.hessian(lambda theta: kl_std_normal(theta[:k], theta[k:]), zeros)
    torch.testing.assert_close(std, torch.diag(torch.cat([torch.ones(k), torch.full((k,), 0.5)])).double())
    sigma = torch.exp(0.5 * logvar)
    normal = torch.autograd.functional.hessian(
        lambda theta: kl_normal(theta[:k], theta[k:], mu, sigma).sum(), torch.cat([mu, sigma])
    )
    torch.testing.assert_close(normal, torch.diag(torch.cat([sigma**-2, 2 * sigma**-2])), rtol=1e-12, atol=0.0)
    # float32 and a chunked batch too (the mean block, where 0 used to come out).
    rows = torch.tensor(np.random.default_rng(1).normal(size=(2_000, 64)), dtype=torch.float32)
    lv = rows.flip(0)
    m_p = rows.clone().requires_grad_()
    (g,) = torch.autograd.grad(kl_diag_normal(m_p, lv, rows, lv).sum(), m_p, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), m_p)
    torch.testing.assert_close(h, torch.exp(-lv.double()).float(), rtol=2e-7, atol=0.0)


@pytest.mark.parametrize(("logvar_q", "diff"), [(-480.0, 1.0), (-700.0, 0.5), (-1000.0, 3e-217), (-1410.0, 1e-306)])
def test_gradient_wrt_a_very_negative_logvar_q_is_finite_and_right(logvar_q, diff):
    # Where the value is finite, so are its derivatives: d/dlogvar_q = -expm1(u) / 2 - z^2 / 2 and
    # d/dmu_p = (mu_p - mu_q) e^-logvar_q. Autograd through (mu_p - mu_q) / exp(logvar_q / 2) multiplied
    # z by (mu_p - mu_q) / sigma_q^2 first, which overflowed below logvar_q ~ -473 for mean differences ~1.
    args = [torch.tensor([x], dtype=torch.float64, requires_grad=True) for x in (diff, logvar_q - 0.25, 0.0, logvar_q)]
    value = kl_diag_normal(*args)
    assert torch.isfinite(value).all()
    value.backward()
    with mpmath.workdps(60):
        lp, lq = mpmath.mpf(logvar_q - 0.25), mpmath.mpf(logvar_q)
        u, z2 = lp - lq, mpmath.mpf(diff) ** 2 * mpmath.exp(-lq)
        expected = [float(mpmath.mpf(diff) * mpmath.exp(-lq)), float(mpmath.expm1(u) / 2),
                    -float(mpmath.mpf(diff) * mpmath.exp(-lq)), float(-mpmath.expm1(u) / 2 - z2 / 2)]
    for a, e in zip(args, expected):
        assert ulp_error(a.grad, np.array([e])).max() <= 4


@pytest.mark.parametrize("size", [1, LARGE_BATCH_ELEMENTS])
@pytest.mark.parametrize(("logvar_p", "logvar_q"), [(50.0, 0.0), (0.3, 1e-9), (709.5, 0.0), (-30.0, 1.0)])
def test_float64_gradients_within_a_few_ulp(logvar_p, logvar_q, size):
    """One pair, and a batch of it large enough for the chunked backward pass (torch's transcendental
    functions on numpy views)."""
    mu_p, mu_q = 0.7, -0.2
    args = [torch.full((size, 1), x, dtype=torch.float64, requires_grad=True) for x in (mu_p, logvar_p, mu_q, logvar_q)]
    kl_diag_normal(*args).sum().backward()
    with mpmath.workdps(60):
        u = mpmath.mpf(logvar_p) - mpmath.mpf(logvar_q)
        d = (mpmath.mpf(mu_p) - mpmath.mpf(mu_q)) * mpmath.exp(-mpmath.mpf(logvar_q))
        z2 = (mpmath.mpf(mu_p) - mpmath.mpf(mu_q)) ** 2 * mpmath.exp(-mpmath.mpf(logvar_q))
        expected = [float(d), float(mpmath.expm1(u) / 2), float(-d), float(-mpmath.expm1(u) / 2 - z2 / 2)]
    for a, e in zip(args, expected):
        assert ulp_error(a.grad, np.array([e])).max() <= 4



@pytest.mark.parametrize(("logvar_p", "logvar_q"), [(50.1, -0.3), (40.7, -0.35)])
def test_gradient_wrt_logvar_p_carries_the_rounding_error_of_the_log_variance_difference(logvar_p, logvar_q):
    """d/dlogvar_p = expm1(logvar_p - logvar_q) / 2 from the difference s + e carried exactly: here
    logvar_p - logvar_q rounds by 12.75 and -6.5 ULP of 1 (e), which e^s / 2 amplifies to ~13 and ~7 ULP of
    the result; dropping or doubling the term e^s e / 2 breaks the bound (a mutant that did survived)."""
    args = [torch.tensor([x], dtype=torch.float64, requires_grad=True) for x in (0.0, logvar_p, 0.0, logvar_q)]
    kl_diag_normal(*args).backward()
    with mpmath.workdps(60):
        expected = float(mpmath.expm1(mpmath.mpf(logvar_p) - mpmath.mpf(logvar_q)) / 2)
    assert ulp_error(args[1].grad, np.array([expected])).max() <= 2


# --- inputs that training produces, and extremes (issue 12) ------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_covariances_made_in_floating_point_are_accepted(dtype):
    # A @ A.T + eps I and torch.cov are symmetric only up to rounding in their own dtype (float32: ~1e-7
    # relative), which a fixed 1e-10 tolerance refused; the result is that of the symmetrised matrix.
    # Whether either comes out asymmetric depends on the BLAS kernels (on an AMD EPYC torch.cov did, on a
    # Xeon with AMX neither does), so a copy with an asymmetry of a few ULP in every upper entry is made
    # explicitly too.
    generator = torch.Generator().manual_seed(11)
    a = torch.randn(6, 6, generator=generator, dtype=dtype)
    made = (a @ a.mT + 1e-3 * torch.eye(6, dtype=dtype)).expand(8, 6, 6)
    samples = torch.randn(8, 6, 40, generator=generator, dtype=dtype)
    sampled = torch.stack([torch.cov(x) for x in samples])
    upper = torch.ones(6, 6, dtype=torch.bool).triu(1)
    rounded = torch.where(upper, sampled * (1 + 4 * torch.finfo(dtype).eps), sampled)
    assert float((rounded - rounded.mT).abs().max()) > 0
    means = torch.zeros(8, 6, dtype=dtype)
    for cov in (made, sampled, rounded):
        value = kl_mvn(means, cov, means, torch.eye(6, dtype=dtype))
        symmetric = (0.5 * (cov + cov.mT)).double()
        expected = kl_mvn(means.double(), symmetric, means.double(), torch.eye(6, dtype=torch.float64))
        torch.testing.assert_close(value.double(), expected, rtol=torch.finfo(dtype).eps, atol=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_really_asymmetric_covariance_is_still_refused(dtype):
    cov = torch.eye(3, dtype=dtype).repeat(2, 1, 1)
    cov[1, 0, 2] = 1e-3  # one matrix of the batch, asymmetric far beyond rounding
    with pytest.raises(ValueError, match=r"cov_q is not symmetric: max \|C - C\^T\| = 0.001"):
        kl_mvn(torch.zeros(2, 3, dtype=dtype), torch.eye(3, dtype=dtype), torch.zeros(2, 3, dtype=dtype), cov)


@pytest.mark.parametrize("scale", [1e-310, 1e-318])
def test_kl_mvn_of_covariances_below_the_normal_range(scale):
    # The power-of-2 rescaling multiplied by its square, 2^1030 and more here, which overflowed.
    cov_p = scale * np.array([[2.0, 1.0], [1.0, 2.0]])
    value = kl_mvn(np.zeros(2), cov_p, np.zeros(2), scale * np.eye(2))
    # Subnormal entries are exact multiples of 2^-1074: the pair is exactly proportional to the one at 1.
    expected = reference_kl_mvn(np.zeros(2), cov_p / cov_p[1, 1], np.zeros(2), np.eye(2) * scale / cov_p[1, 1])
    assert ulp_error(value, expected) <= 4


def test_empty_batches_give_empty_results():
    for kind in (np.zeros, torch.zeros):
        assert kl_normal(kind(0), kind(0) + 1.0, kind(0), kind(0) + 1.0).shape == (0,)
        assert kl_std_normal(kind((0, 3)), kind((0, 3))).shape == (0,)
        assert kl_diag_normal(*(kind((0, 3)) for _ in range(4))).shape == (0,)
        assert kl_mvn(kind((0, 2)), kind((0, 2, 2)), kind((0, 2)), kind((0, 2, 2))).shape == (0,)
    empty = torch.zeros(0, 3, requires_grad=True)
    kl_diag_normal(empty, empty, empty, empty).sum().backward()
    assert empty.grad.shape == (0, 3)


def test_kl_normal_is_within_3_ulp_for_moderate_ratios_at_every_scale():
    # For |2 ln(sigma_p / sigma_q)| <= 4 the variance term is carried in double-double (see
    # klbook._numerics.half_g_of_ratio). Rounding u = 2 ln r once and evaluating (expm1(u) - u) / 2, as
    # klbook did before, reached 5 ULP on these pairs. Scales from e^-700 to e^700 exercise the
    # power-of-two rescaling that keeps Dekker's splits from overflowing or underflowing.
    rng = np.random.default_rng(0)
    u = rng.uniform(-4, 4, 20_000)
    sigma_q = np.exp(rng.uniform(-700, 700, u.size))
    sigma_p = sigma_q * np.exp(u / 2)
    zeros = np.zeros(u.size)
    errors = ulp_error(kl_normal(zeros, sigma_p, zeros, sigma_q), reference_kl_normal(zeros, sigma_p, zeros, sigma_q))
    assert errors.max() <= 3
    assert errors.mean() <= 0.5


def test_kl_normal_is_within_3_ulp_for_ratios_of_every_closeness_to_1():
    # |2 ln(sigma_p / sigma_q)| from 1e-8 to 4: where it is small the result is the series with the
    # low part of u = ln r^2 as a first-order correction, (expm1(u) / 2) u_low, which klbook computes
    # as (value + u / 2) u_low. Halving the u / 2 there reaches 4 ULP on these pairs.
    rng = np.random.default_rng(1)
    u = rng.uniform(-4, 4, 20_000) * 10.0 ** rng.uniform(-8, 0, 20_000)
    sigma_q = np.exp(rng.uniform(-20, 20, u.size))
    sigma_p = sigma_q * np.exp(u / 2)
    zeros = np.zeros(u.size)
    errors = ulp_error(kl_normal(zeros, sigma_p, zeros, sigma_q), reference_kl_normal(zeros, sigma_p, zeros, sigma_q))
    assert errors.max() <= 3


# --- tests that kill the survivors of the 2026-12-05 mutation sample of gaussian.py (tests/MUTATION.md) ---


@pytest.mark.parametrize(
    ("mu_p", "mu_q", "sigma_p", "sigma_q", "logvar_p", "logvar_q"),
    [
        (1e308, -1e308, 1e200, 3e200, 720.0, 721.0),
        (1.5e308, -1.7e308, 1e200, 3e200, 800.0, 1000.0),
        (-1.2e308, 1.6e308, 1e160, 2e160, 730.0, 725.0),
    ],
)
def test_mean_difference_beyond_the_float_range_gives_the_finite_kl(mu_p, mu_q, sigma_p, sigma_q, logvar_p, logvar_q):
    """mu_p - mu_q overflows to +-inf while (mu_p - mu_q) / sigma_q, the KL and its gradient are finite:
    both means are halved first (exactly) and the quotient doubled. kl_normal and kl_diag_normal, values
    and the gradient with respect to mu_p ((mu_p - mu_q) / sigma_q^2), within 4 ULP of mpmath."""
    normal = [np.array([x]) for x in (mu_p, sigma_p, mu_q, sigma_q)]
    diag = [np.array([[x]]) for x in (mu_p, logvar_p, mu_q, logvar_q)]
    assert ulp_error(kl_normal(*normal), reference_kl_normal(*normal)).max() <= 4
    assert ulp_error(kl_diag_normal(*diag), reference_kl_diag_normal(*diag)).max() <= 4
    with mpmath.workdps(60):
        d = mpmath.mpf(mu_p) - mpmath.mpf(mu_q)
        expected = [float(d / mpmath.mpf(sigma_q) ** 2), float(d * mpmath.exp(-mpmath.mpf(logvar_q)))]
    for function, args, e in ((kl_normal, normal, expected[0]), (kl_diag_normal, diag, expected[1])):
        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        function(*tensors).sum().backward()
        assert ulp_error(tensors[0].grad, np.full(tensors[0].shape, e)).max() <= 4


@pytest.mark.parametrize(
    ("logvar_p", "logvar_q"),
    # s = fl(logvar_p - logvar_q) just below 700 (699.3), exactly 700 (with e = 0, -4.5e-14, -2.3e-14),
    # above it (705.4, 704.8) and beyond exp's overflow at ~709.78 (710.35, 710.4), e ~ 2-5e-14 in magnitude.
    [(699.6, 0.3), (700.0, 0.0), (700.3, 0.3), (699.9, -0.1), (705.1, -0.3), (705.1, 0.3), (709.9, -0.45),
     (710.3, -0.1)],
)
def test_gradient_wrt_logvar_p_is_right_on_both_sides_of_and_at_the_large_difference_branch(logvar_p, logvar_q):
    """d/dlogvar_p = expm1(u) / 2, u = logvar_p - logvar_q = s + e, switches at s = 700 to a form in which
    e^s / 2 is computed as (e^(s/2) / 2) e^(s/2) and the rounding error e enters as the factor (1 + e).
    At s = 700 exactly the first form must still be used, and beyond it the factor (1 + e) matters:
    e ~ 2-5e-14 is 100-400 ULP of the result."""
    args = [torch.tensor([x], dtype=torch.float64, requires_grad=True) for x in (0.5, logvar_p, -0.5, logvar_q)]
    kl_diag_normal(*args).backward()
    with mpmath.workdps(60):
        expected = float(mpmath.expm1(mpmath.mpf(logvar_p) - mpmath.mpf(logvar_q)) / 2)
    assert ulp_error(args[1].grad, np.array([expected])).max() <= 4


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("grid", [name for name in hard_grids() if name.startswith("mvn:")])
def test_kl_mvn_of_float64_tensors_within_4_ulp(grid, requires_grad):
    """Torch tensors take other paths than numpy arrays: off the autograd graph the whole computation
    runs on numpy views with torch's triangular solve; on it, the terms stay in torch and the rounding
    correction is computed in numpy."""
    inputs = hard_grids()[grid]
    tensors = [torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=requires_grad) for v in inputs.values()]
    value = kl_mvn(*tensors)
    assert value.dtype == torch.float64 and value.requires_grad == requires_grad
    errors = ulp_error(value.detach().numpy(), reference_kl_mvn(*inputs.values()))
    assert errors.max() <= 4, f"{grid}: max error {errors.max():.3g} ULP"


@pytest.mark.parametrize("function", ["kl_std_normal", "kl_diag_normal", "kl_normal"])
def test_chunks_on_two_threads_give_the_one_thread_results(function):
    """A batch of many chunks is evaluated on torch's threads (klbook._array._for_each_start): values
    and gradients must not depend on it."""
    fn = FUNCTIONS[function][0]
    generator = torch.Generator().manual_seed(1)
    count = 2 if function == "kl_std_normal" else 4
    inputs = [torch.randn(10_000, 64, dtype=torch.float64, generator=generator) for _ in range(count)]
    if function == "kl_normal":
        inputs[1], inputs[3] = inputs[1].exp(), inputs[3].exp()
    results = []
    saved = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            leaves = [x.clone().requires_grad_() for x in inputs]
            value = fn(*leaves)
            value.sum().backward()
            results.append([value.detach(), *(leaf.grad for leaf in leaves)])
    finally:
        torch.set_num_threads(saved)
    for one, two in zip(*results):
        assert torch.equal(one, two)
