"""Tests of klbook.estimators: the k1, k2, k3 Monte Carlo estimators of D(q||p)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from klbook import MCEstimate, k1, k2, k3, kl_normal, mc_kl, normal_logpdf
from klbook.accuracy import ulp_error


def _samples(mu_p: float, n: int = 200_000, seed: int = 0):
    """log q and log p at samples of q = N(0, 1), with p = N(mu_p, 1)."""
    x = np.random.default_rng(seed).standard_normal(n)
    return normal_logpdf(x, 0.0, 1.0), normal_logpdf(x, mu_p, 1.0)


def test_per_sample_formulas():
    log_q, log_p = np.array([-1.0, -2.0]), np.array([-1.5, -0.5])
    ell = log_p - log_q
    np.testing.assert_allclose(k1(log_q, log_p), -ell, rtol=1e-15)
    np.testing.assert_allclose(k2(log_q, log_p), 0.5 * ell**2, rtol=1e-15)
    np.testing.assert_allclose(k3(log_q, log_p), np.expm1(ell) - ell, rtol=1e-14)


@pytest.mark.parametrize("estimator", ["k1", "k3"])
@pytest.mark.parametrize("mu_p", [0.1, 0.5, 1.0])
def test_k1_and_k3_are_unbiased(estimator, mu_p):
    estimate = mc_kl(*_samples(mu_p), estimator=estimator)
    assert abs(estimate.estimate - kl_normal(0.0, 1.0, mu_p, 1.0)) < 4 * estimate.std_error


def test_k2_is_biased_when_the_divergence_is_large():
    # For q = N(0,1), p = N(mu,1): E[k2] = (mu^2 + mu^4 / 4) / 2 > mu^2 / 2 = D(q||p).
    mu_p = 2.0
    estimate = mc_kl(*_samples(mu_p), estimator="k2")
    assert estimate.estimate == pytest.approx(0.5 * (mu_p**2 + mu_p**4 / 4), rel=0.02)
    assert estimate.estimate > kl_normal(0.0, 1.0, mu_p, 1.0) + 10 * estimate.std_error


def test_k3_has_lower_variance_than_k1_when_p_is_close_to_q():
    log_q, log_p = _samples(0.1)
    assert mc_kl(log_q, log_p, estimator="k3").std_error < 0.2 * mc_kl(log_q, log_p, estimator="k1").std_error


def test_k3_is_non_negative_and_k1_can_be_negative():
    log_q, log_p = _samples(0.3, n=1000)
    assert (k3(log_q, log_p) >= 0).all()
    assert (k1(log_q, log_p) < 0).any()


@pytest.mark.parametrize("ell", [1e-12, -3e-9, 1e-5, 0.5, -2.0, 30.0, -700.0])
def test_k3_is_accurate_for_any_log_ratio(ell):
    with mpmath.workdps(50):
        exact = float(mpmath.expm1(mpmath.mpf(ell)) - mpmath.mpf(ell))
    assert ulp_error(k3(0.0, ell), np.array(exact)) <= 4


def test_torch_inputs_and_estimate_type():
    log_q = torch.zeros(10, dtype=torch.float32)
    log_p = torch.linspace(-0.1, 0.1, 10)
    result = mc_kl(log_q, log_p)
    assert isinstance(result, MCEstimate)
    assert result.estimate.dtype == torch.float32


def test_log_p_of_minus_infinity_gives_an_infinite_estimate():
    assert k1([0.0], [-math.inf])[0] == math.inf
    assert k3([0.0], [-math.inf])[0] == math.inf


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mc_kl([0.0, 0.0], [0.1, 0.2], estimator="k4"), r"estimator must be one of \['k1', 'k2', 'k3'\]"),
        (lambda: mc_kl([0.0], [0.1]), r"need at least 2 samples"),
        (lambda: k1([np.nan], [0.0]), r"log_q contains NaN"),
        (lambda: k3([0.0, 0.0], [0.0, 0.0, 0.0]), r"shapes do not broadcast"),
        (lambda: k1([math.inf], [0.0]), r"log_q must be finite"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_two_samples_are_enough_for_an_estimate_and_its_standard_error(estimator):
    log_q, log_p = np.array([0.0, 0.0]), np.array([-0.5, 0.25])
    values = {"k1": k1, "k2": k2, "k3": k3}[estimator](log_q, log_p)
    result = mc_kl(log_q, log_p, estimator=estimator)
    assert result.estimate == pytest.approx(values.mean(), rel=1e-15)
    assert result.std_error == pytest.approx(abs(values[0] - values[1]) / 2, rel=1e-15)  # std (n-1) / sqrt(2)


def test_mc_kl_averages_along_the_given_axis_of_a_three_axis_batch():
    rng = np.random.default_rng(5)
    log_q, log_p = rng.standard_normal((2, 3, 50)), rng.standard_normal((2, 3, 50))
    default = mc_kl(log_q, log_p)
    np.testing.assert_allclose(default.estimate, k3(log_q, log_p).mean(axis=-1), rtol=1e-14)
    moved = mc_kl(np.moveaxis(log_q, -1, 1), np.moveaxis(log_p, -1, 1), axis=1)
    np.testing.assert_allclose(moved.estimate, default.estimate, rtol=1e-14)
    np.testing.assert_allclose(moved.std_error, default.std_error, rtol=1e-14)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_a_sample_where_p_vanishes_gives_an_infinite_estimate_and_standard_error_without_warnings(estimator):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = mc_kl([0.0, 0.0, 0.0], [-math.inf, 0.1, -0.2], estimator=estimator)
    assert result.estimate == math.inf and result.std_error == math.inf


def test_mc_kl_takes_its_log_densities_by_name_and_its_options_only_by_keyword():
    by_name = mc_kl(log_q=[0.0, 0.0], log_p=[-0.5, 0.25], estimator="k1")
    assert by_name == mc_kl([0.0, 0.0], [-0.5, 0.25], estimator="k1")
    with pytest.raises(TypeError):
        mc_kl([0.0, 0.0], [-0.5, 0.25], "k1")
