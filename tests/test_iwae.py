"""Tests of klbook.iwae: the importance-weighted bound on a linear-Gaussian model, where log p(x), the
posterior and the ELBO are known in closed form, and on a small VAE."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from klbook import kl_mvn
from klbook.iwae import iwae_bound, vae_log_weights
from klbook.models import VAE, importance_log_likelihood


def _linear_gaussian(seed: int = 0):
    """z ~ N(0, I_2), x | z ~ N(Wz + b, 0.5^2 I_5): one x, its exact log p(x) and posterior N(m, S)."""
    rng = np.random.default_rng(seed)
    d, k, s = 5, 2, 0.5
    W, b = rng.normal(size=(d, k)), rng.normal(size=d)
    x = W @ rng.normal(size=k) + b + s * rng.normal(size=d)
    log_px = multivariate_normal(b, W @ W.T + s**2 * np.eye(d)).logpdf(x)
    S = np.linalg.inv(np.eye(k) + W.T @ W / s**2)
    m = S @ W.T @ (x - b) / s**2
    return rng, (W, b, s, x), log_px, (m, S)


def _log_weights(model, m_q, S_q, n, rng):
    W, b, s, x = model
    z = rng.multivariate_normal(m_q, S_q, size=n)
    log_joint = (
        multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
        - 0.5 * ((x - z @ W.T - b) ** 2).sum(-1) / s**2
        - 0.5 * len(x) * math.log(2 * math.pi * s**2)
    )
    return log_joint - multivariate_normal(m_q, S_q).logpdf(z)


def _exact_elbo(model, m_q, S_q):
    W, b, s, x = model
    r = x - b - W @ m_q
    expected_loglik = -0.5 * len(x) * math.log(2 * math.pi * s**2) - (
        r @ r + np.trace(W @ S_q @ W.T)
    ) / (2 * s**2)
    return expected_loglik - kl_mvn(m_q, S_q, np.zeros(2), np.eye(2))


def test_k1_is_the_elbo_in_expectation():
    rng, model, _, _ = _linear_gaussian()
    m_q, S_q = np.array([0.3, -0.2]), np.array([[0.5, 0.1], [0.1, 0.4]])
    bound = iwae_bound(_log_weights(model, m_q, S_q, 200_000, rng), 1)
    assert abs(bound.estimate - _exact_elbo(model, m_q, S_q)) < 4 * bound.std_error


def test_bound_rises_with_k_and_stays_below_log_evidence():
    rng, model, log_px, _ = _linear_gaussian()
    m_q, S_q = np.array([0.3, -0.2]), np.array([[0.5, 0.1], [0.1, 0.4]])
    log_w = _log_weights(model, m_q, S_q, 250_000, rng)
    bounds = [iwae_bound(log_w, k) for k in (1, 5, 25, 125)]
    for lower, upper in itertools.pairwise(bounds):
        # each step up is far beyond the Monte Carlo error of the two estimates
        assert upper.estimate - lower.estimate > 4 * math.hypot(
            lower.std_error, upper.std_error
        )
    for b in bounds:
        assert b.estimate < log_px + 4 * b.std_error


def test_bound_approaches_log_evidence():
    rng, model, log_px, (m, S) = _linear_gaussian()
    # a proposal wider than the posterior keeps p/q bounded (the condition of Burda et al.'s Theorem 1)
    log_w = _log_weights(model, m, 2.0 * S, 400_000, rng)
    first, last = iwae_bound(log_w, 1), iwae_bound(log_w, 2000)
    assert log_px - first.estimate > 0.1  # the ELBO of this q is visibly loose
    assert abs(last.estimate - log_px) < 0.01 + 4 * last.std_error


def test_exact_posterior_makes_every_bound_exact():
    # with q = p(z | x) every weight equals p(x): no Monte Carlo error at all, for any K
    rng, model, log_px, (m, S) = _linear_gaussian()
    log_w = _log_weights(model, m, S, 1000, rng)
    for k in (1, 10, 500):
        bound = iwae_bound(log_w, k)
        assert abs(bound.estimate - log_px) < 1e-10 and bound.std_error < 1e-10


def test_huge_and_tiny_weights_neither_overflow_nor_underflow():
    base = np.log([1.0, 2.0, 3.0, 4.0])
    for shift in (-2000.0, 0.0, 2000.0):
        bound = iwae_bound(base + shift, 2)
        expected = shift + np.mean([math.log(1.5), math.log(3.5)])
        assert bound.estimate == pytest.approx(expected, rel=1e-15, abs=1e-12)


def test_batch_axes_and_torch_input():
    log_w = np.random.default_rng(1).normal(size=(3, 4, 20))
    bound = iwae_bound(torch.as_tensor(log_w), 5)
    assert bound.estimate.shape == (3, 4) and bound.std_error.shape == (3, 4)
    assert np.allclose(bound.estimate[1, 2], iwae_bound(log_w[1, 2], 5).estimate)


def test_zero_weights_give_minus_inf_not_nan():
    bound = iwae_bound([-np.inf, -np.inf, 0.0, 0.0], 2)
    assert bound.estimate == -np.inf and not np.isnan(bound.std_error)


@pytest.mark.parametrize(
    ("log_weights", "k", "error", "match"),
    [
        ([0.0, 1.0, 2.0], 2, ValueError, "two groups"),
        ([0.0, 1.0], 2, ValueError, "two groups"),
        ([0.0, 1.0], 0, ValueError, "at least 1"),
        ([0.0, np.nan], 1, ValueError, "NaN"),
        ([0.0, np.inf], 1, ValueError, r"\+inf"),
        (0.0, 1, ValueError, "scalar"),
        ([0.0, 1.0], 1.0, TypeError, "k must be an integer"),
        (["a", "b"], 1, TypeError, "real numbers"),
        ([1j, 2j], 1, TypeError, "real numbers"),
        (None, 1, TypeError, "real numbers"),
    ],
)
def test_bad_input_names_the_argument(log_weights, k, error, match):
    with pytest.raises(error, match=match):
        iwae_bound(log_weights, k)


def test_vae_log_weights_reproduce_importance_log_likelihood():
    model = VAE(latent_dim=3, seed=0)
    x = torch.rand(4, 64, generator=torch.Generator().manual_seed(1))
    log_w = vae_log_weights(model, x, 50, generator=torch.Generator().manual_seed(2))
    assert log_w.shape == (4, 50) and log_w.dtype == torch.float64
    reference = importance_log_likelihood(
        model, x, n_samples=50, generator=torch.Generator().manual_seed(2)
    )
    ours = torch.logsumexp(log_w, dim=1) - math.log(50)
    assert torch.allclose(ours, reference.double(), atol=1e-5)
