"""Tests of klbook.diffusion: the closed forms of the forward chain, its posterior and the ELBO weights."""

import math

import numpy as np
import pytest

from klbook import kl_normal, normal_logpdf
from klbook.diffusion import (
    alpha_bars,
    eps_loss_weights,
    linear_betas,
    marginal_coefficients,
    mean_from_eps,
    posterior_coefficients,
    snr,
)

BETAS = linear_betas(40, 0.01, 0.25)


def test_marginal_matches_the_recursion_of_the_forward_chain():
    mean_coef, sd = marginal_coefficients(BETAS)
    m, v = 1.0, 0.0
    for t, b in enumerate(BETAS):
        m, v = math.sqrt(1 - b) * m, (1 - b) * v + b
        assert m == pytest.approx(mean_coef[t], rel=1e-14)
        assert v == pytest.approx(sd[t] ** 2, rel=1e-14)


def test_posterior_satisfies_bayes_rule_at_every_step():
    mean_coef, sd = marginal_coefficients(BETAS)
    post = posterior_coefficients(BETAS)
    rng = np.random.default_rng(0)
    for t in range(2, BETAS.size + 1):
        x0, xt, xs = 3 * rng.standard_normal(3)
        lhs = normal_logpdf(xs, post.coef_x0[t - 1] * x0 + post.coef_xt[t - 1] * xt, math.sqrt(post.variance[t - 1]))
        rhs = (normal_logpdf(xt, math.sqrt(1 - BETAS[t - 1]) * xs, math.sqrt(BETAS[t - 1]))
               + normal_logpdf(xs, mean_coef[t - 2] * x0, sd[t - 2])
               - normal_logpdf(xt, mean_coef[t - 1] * x0, sd[t - 1]))
        assert lhs == pytest.approx(rhs, abs=1e-10)


def test_posterior_of_the_first_step_is_the_data_point():
    post = posterior_coefficients(BETAS)
    assert post.coef_x0[0] == 1.0 and post.coef_xt[0] == 0.0 and post.variance[0] == 0.0


def test_mean_from_the_true_noise_is_the_posterior_mean():
    mean_coef, sd = marginal_coefficients(BETAS)
    post = posterior_coefficients(BETAS)
    rng = np.random.default_rng(1)
    x0, eps = rng.standard_normal((2, 7, 2))
    t = rng.integers(1, BETAS.size + 1, size=7)
    xt = mean_coef[t - 1, None] * x0 + sd[t - 1, None] * eps
    expected = post.coef_x0[t - 1, None] * x0 + post.coef_xt[t - 1, None] * xt
    np.testing.assert_allclose(mean_from_eps(xt, eps, BETAS, t), expected, atol=1e-12)


def test_weights_turn_the_squared_noise_error_into_the_gaussian_kl():
    # D(q(x_{t-1}|x_t,x_0) || N(mu_theta, tilde beta_t I)) = lambda_t ||eps - eps_theta||^2 (DDPM eq. 12)
    lam = eps_loss_weights(BETAS)
    mean_coef, sd = marginal_coefficients(BETAS)
    post = posterior_coefficients(BETAS)
    rng = np.random.default_rng(2)
    for t in range(2, BETAS.size + 1):
        x0, eps, eps_hat = rng.standard_normal((3, 2))
        xt = mean_coef[t - 1] * x0 + sd[t - 1] * eps
        s = math.sqrt(post.variance[t - 1])
        kl = kl_normal(mean_from_eps(xt, eps, BETAS, t), s, mean_from_eps(xt, eps_hat, BETAS, t), s).sum()
        assert kl == pytest.approx(lam[t - 1] * np.sum((eps - eps_hat) ** 2), rel=1e-9)


def test_weights_equal_the_snr_form_of_vdm():
    ratio = snr(BETAS)
    np.testing.assert_allclose(eps_loss_weights(BETAS)[1:], 0.5 * (ratio[:-1] / ratio[1:] - 1), rtol=1e-13)
    assert np.isnan(eps_loss_weights(BETAS)[0])


def test_general_reverse_variance_reduces_to_the_posterior_variance():
    post = posterior_coefficients(BETAS)
    variance = post.variance.copy()
    variance[0] = BETAS[0]
    np.testing.assert_allclose(eps_loss_weights(BETAS, variance)[1:], eps_loss_weights(BETAS)[1:], rtol=1e-13)


def test_snr_decreases_and_alpha_bar_keeps_relative_accuracy_when_tiny():
    assert np.all(np.diff(snr(BETAS)) < 0)
    import mpmath

    long = np.full(1900, 0.3)  # alpha_bar_T about 1e-294, near the bottom of the normal range
    with mpmath.workdps(40):
        for n in (100, 1000, 1900):
            exact = float((1 - mpmath.mpf(0.3)) ** n)
            assert alpha_bars(long[:n])[-1] == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("betas, match", [
    ([0.1, 1.0], r"\(0, 1\)"),
    ([0.1, 0.0], r"\(0, 1\)"),
    ([0.1, np.nan], "NaN"),
    ([[0.1, 0.2]], "1-D"),
    ([], "non-empty"),
])
def test_bad_schedules_are_refused(betas, match):
    with pytest.raises(ValueError, match=match):
        alpha_bars(betas)


def test_bad_steps_and_lengths_are_refused():
    with pytest.raises(ValueError, match="t must hold"):
        mean_from_eps(np.zeros((1, 2)), np.zeros((1, 2)), BETAS, np.array([0]))
    with pytest.raises(ValueError, match="t must hold"):
        mean_from_eps(np.zeros((1, 2)), np.zeros((1, 2)), BETAS, 41)
    with pytest.raises(ValueError, match="n_steps"):
        linear_betas(2.5, 0.1, 0.2)
    with pytest.raises(ValueError, match="reverse_variance"):
        eps_loss_weights(BETAS, np.zeros(40))
