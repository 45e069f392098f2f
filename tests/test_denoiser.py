"""Tests of klbook.denoiser: determinism, and the ELBO terms against an exact denoiser and Monte Carlo."""

import math

import numpy as np
import pytest
import torch

from klbook.denoiser import Denoiser, elbo_monte_carlo, elbo_terms, sample, train_denoiser
from klbook.diffusion import linear_betas, marginal_coefficients

BETAS = linear_betas(10, 0.05, 0.5)
POINT = np.array([0.7, -0.4])


class ExactDenoiser(Denoiser):
    """The optimal noise prediction when the data are the single point POINT: eps = (x_t - a x_0) / s."""

    def __init__(self):
        super().__init__(2, BETAS.size, hidden=4)
        a, s = marginal_coefficients(BETAS)
        self.a, self.s = torch.tensor(a), torch.tensor(s)

    def forward(self, x, t):
        x0 = torch.tensor(POINT, dtype=x.dtype)
        return (x - self.a[t - 1, None].to(x.dtype) * x0) / self.s[t - 1, None].to(x.dtype)


def test_kl_terms_vanish_for_the_exact_denoiser_of_a_point_mass():
    terms = elbo_terms(ExactDenoiser(), np.tile(POINT, (5, 1)), BETAS, seed=0)
    np.testing.assert_allclose(terms.steps[:, 1:], 0.0, atol=1e-8)
    np.testing.assert_allclose(terms.total, terms.prior + terms.steps.sum(axis=1), rtol=1e-14)
    # L_0 = -log N(x_0; x_0, beta_1 I): the decoder's mean is exact
    np.testing.assert_allclose(terms.steps[:, 0], math.log(2 * math.pi * BETAS[0]), atol=1e-6)


def test_sampling_the_exact_denoiser_returns_the_point():
    np.testing.assert_allclose(sample(ExactDenoiser(), BETAS, 4, seed=1), np.tile(POINT, (4, 1)), atol=1e-5)


def test_monte_carlo_elbo_agrees_with_the_kl_terms():
    model = Denoiser(2, BETAS.size, hidden=16, seed=3)
    x = np.random.default_rng(0).standard_normal((4000, 2))
    kl_based = -elbo_terms(model, x, BETAS, seed=1).total
    chains = elbo_monte_carlo(model, x, BETAS, seed=2)
    se = math.hypot(kl_based.std(), chains.std()) / math.sqrt(len(x))
    assert abs(kl_based.mean() - chains.mean()) < 4 * se


def test_models_and_training_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = Denoiser(seed=7), Denoiser(seed=7)
    train_denoiser(np.zeros((10, 2)), BETAS, steps=2, batch_size=4, hidden=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_training_is_deterministic_for_a_seed_and_reduces_the_loss():
    x = np.random.default_rng(1).standard_normal((200, 2))
    runs = [train_denoiser(x, BETAS, steps=60, batch_size=32, seed=5, hidden=16) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][1][-20:].mean() < runs[0][1][:20].mean()


@pytest.mark.parametrize("call, match", [
    (lambda: train_denoiser(np.zeros(5), BETAS, steps=1), r"shape \(n, d\)"),
    (lambda: train_denoiser(np.zeros((5, 2)), BETAS, steps=0), "steps"),
    (lambda: train_denoiser(np.full((5, 2), np.nan), BETAS, steps=1), "finite"),
    (lambda: train_denoiser(np.zeros((5, 2)), BETAS, steps=1, lr=-1.0), "lr"),
    (lambda: sample(Denoiser(2, 5), BETAS, 3), "steps"),
    (lambda: elbo_terms(Denoiser(3, BETAS.size), np.zeros((2, 2)), BETAS), "dimension"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
