"""Tests of klbook.kl_penalty: the optimum of the KL-regularised objective, the other direction's optimum, and
the expected gradients of the six implementations of the penalty."""

import math

import numpy as np
import pytest
import torch
from scipy import optimize
from scipy.special import softmax

from klbook import kl_divergence
from klbook.kl_penalty import (
    PENALTY_IMPLEMENTATIONS,
    forward_penalty_optimum,
    kl_regularized_objective,
    kl_regularized_optimum,
    penalty_gradients,
)

PI_REF = np.array([0.30, 0.25, 0.20, 0.15, 0.09, 0.01])
REWARD = np.array([0.0, 0.3, 0.5, 0.2, 0.6, 1.0])


@pytest.mark.parametrize("beta", [0.05, 0.2, 1.0, 10.0])
def test_objective_is_log_partition_minus_kl_to_the_optimum(beta):
    star = kl_regularized_optimum(PI_REF, REWARD, beta)
    log_z = beta * math.log(PI_REF @ np.exp(REWARD / beta))
    rng = np.random.default_rng(0)
    for pi in rng.dirichlet(np.ones(6), size=10):
        value = kl_regularized_objective(pi, PI_REF, REWARD, beta)
        assert value == pytest.approx(log_z - beta * kl_divergence(pi, star), abs=1e-12)
        assert value <= kl_regularized_objective(star, PI_REF, REWARD, beta) + 1e-15


def test_optimum_is_zero_off_the_reference_support_and_does_not_overflow():
    ref = np.array([0.5, 0.5, 0.0])
    star = kl_regularized_optimum(ref, [0.0, 1.0, 5.0], 1e-3)  # r / beta = 5000 would overflow exp
    assert star[2] == 0.0 and star[1] == pytest.approx(1.0) and np.isfinite(star).all()


def _numerical_forward_optimum(ref, reward, beta):
    found = optimize.minimize(lambda z: -(softmax(z) @ reward - beta * kl_divergence(ref, softmax(z))),
                              np.log(ref), method="BFGS", options={"gtol": 1e-11})
    return softmax(found.x)


@pytest.mark.parametrize("beta", [0.05, 0.2, 1.0])
def test_forward_penalty_optimum_is_the_numerical_maximiser(beta):
    np.testing.assert_allclose(forward_penalty_optimum(PI_REF, REWARD, beta),
                               _numerical_forward_optimum(PI_REF, REWARD, beta), atol=1e-5)


def test_forward_penalty_gives_free_mass_to_a_rewarding_outcome_off_the_support():
    ref = np.array([0.5, 0.5, 0.0])
    pi = forward_penalty_optimum(ref, [0.0, 0.1, 1.0], 0.2)
    # stationarity with lambda = r_0 = 1: pi(y) = beta pi_ref(y) / (1 - r(y)) on the support
    np.testing.assert_allclose(pi[:2], 0.2 * 0.5 / (1 - np.array([0.0, 0.1])), rtol=1e-12)
    assert pi[2] == pytest.approx(1 - pi[:2].sum()) and pi[2] > 0.5


def _autograd_expectation(theta, ref, name, use):
    pi = softmax(theta)
    total = np.zeros_like(theta)
    for y in range(theta.size):
        logits = torch.tensor(theta, requires_grad=True)
        log_pi = torch.log_softmax(logits, dim=0)[y]
        ell = log_pi - math.log(ref[y])
        k = {"k1": ell, "k2": 0.5 * ell**2, "k3": torch.expm1(-ell) + ell}[name]
        (grad,) = torch.autograd.grad(k if use == "loss" else k.detach() * log_pi, logits)
        total += pi[y] * grad.numpy()
    return total


def test_expected_gradients_are_those_autograd_computes_sample_by_sample():
    rng = np.random.default_rng(1)
    theta = rng.standard_normal(6)
    exact = penalty_gradients(theta, PI_REF)
    for name, use in PENALTY_IMPLEMENTATIONS:
        np.testing.assert_allclose(exact[(name, use)], _autograd_expectation(theta, PI_REF, name, use), atol=1e-13)


def test_expected_gradients_have_the_closed_forms_of_the_docstring():
    theta = np.random.default_rng(2).standard_normal(6)
    g = penalty_gradients(theta, PI_REF)
    pi = softmax(theta)
    reverse = torch.autograd.functional.jacobian(
        lambda z: (torch.softmax(z, 0) * (torch.log_softmax(z, 0) - torch.log(torch.tensor(PI_REF)))).sum(),
        torch.tensor(theta)).numpy()
    forward = pi - PI_REF
    np.testing.assert_allclose(g[("exact", "reverse")], reverse, atol=1e-14)
    np.testing.assert_allclose(g[("k1", "reward")], reverse, atol=1e-14)
    np.testing.assert_allclose(g[("k2", "loss")], reverse, atol=1e-14)
    np.testing.assert_allclose(g[("k1", "loss")], 0.0, atol=1e-15)
    np.testing.assert_allclose(g[("k3", "loss")], forward, atol=1e-15)
    np.testing.assert_allclose(g[("k3", "reward")], reverse - forward, atol=1e-14)


def test_gradients_stay_finite_when_a_probability_underflows():
    theta = np.array([0.0, 0.0, 0.0, 0.0, 0.0, -800.0])  # pi_ref / pi = e^800 overflows
    g = penalty_gradients(theta, PI_REF)
    assert all(np.isfinite(v).all() for v in g.values())


@pytest.mark.parametrize("call, match", [
    (lambda: kl_regularized_optimum([0.5, 0.6], [0, 1], 1.0), "sum to 1"),
    (lambda: kl_regularized_optimum([0.5, 0.5], [0, 1], 0.0), "beta"),
    (lambda: kl_regularized_optimum([0.5, 0.5], [0, np.nan], 1.0), "reward"),
    (lambda: penalty_gradients([0.0, 0.0], [1.0, 0.0]), "positive"),
    (lambda: penalty_gradients([0.0, np.inf], [0.5, 0.5]), "logits"),
    (lambda: kl_regularized_objective([1.0, 0.0], [0.2, 0.3, 0.5], [0, 0, 0], 1.0), "same length"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
