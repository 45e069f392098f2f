"""Tests of klbook.regularisers: the sparsity penalty is Ng's Bernoulli KL, the contractive penalty is the
squared Frobenius norm of the encoder's Jacobian, and the small tied sigmoid autoencoder trains."""

import math

import numpy as np
import pytest
import torch

from klbook import kl_divergence
from klbook.regularisers import (
    TiedSigmoidAutoencoder,
    contractive_penalty,
    fit_regularised,
    sparsity_penalty,
)

RNG = np.random.default_rng(15)


def ng_bernoulli_kl(rho, rho_hat):
    """The formula as Ng's notes print it, term by term."""
    return rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))


# ---------------------------------------------------------------- sparsity_penalty


@pytest.mark.parametrize("rho", [0.01, 0.05, 0.5, 0.9])
def test_sparsity_penalty_is_beta_times_the_sum_of_bernoulli_kls(rho):
    rho_hat = RNG.uniform(0.001, 0.999, size=(4, 25))
    for beta in (0.0, 1.0, 3.0):
        expected = beta * ng_bernoulli_kl(rho, rho_hat).sum(axis=-1)
        np.testing.assert_allclose(sparsity_penalty(rho_hat, rho, beta=beta), expected, rtol=1e-12, atol=1e-15)


def test_sparsity_penalty_term_equals_the_kl_of_two_outcome_distributions():
    for rho, rho_hat in [(0.05, 0.2), (0.3, 0.31), (0.9, 0.1)]:
        direct = float(kl_divergence([rho, 1 - rho], [rho_hat, 1 - rho_hat]))
        assert float(sparsity_penalty([rho_hat], rho)) == pytest.approx(direct, rel=1e-14)


def test_sparsity_penalty_is_zero_exactly_when_every_mean_activation_is_rho():
    assert float(sparsity_penalty(np.full(10, 0.05), 0.05, beta=3.0)) == 0.0
    nearly = np.full(10, 0.05)
    nearly[3] = 0.05 + 1e-9
    value = float(sparsity_penalty(nearly, 0.05))
    # no cancellation: about (1e-9)^2 / (2 rho (1 - rho)), not 0 or a rounding residual
    assert value == pytest.approx(1e-18 / (2 * 0.05 * 0.95), rel=1e-6)


def test_sparsity_penalty_is_infinite_where_a_unit_is_always_off_or_always_on():
    assert math.isinf(float(sparsity_penalty([0.0, 0.1], 0.05)))
    assert math.isinf(float(sparsity_penalty([1.0, 0.1], 0.05)))


def test_sparsity_penalty_gradient_is_ngs_and_vanishes_at_rho():
    rho, beta = 0.05, 3.0
    rho_hat = torch.tensor([0.01, 0.05, 0.2, 0.7], dtype=torch.float64, requires_grad=True)
    sparsity_penalty(rho_hat, rho, beta=beta).backward()
    r = rho_hat.detach().numpy()
    expected = beta * (-rho / r + (1 - rho) / (1 - r))
    np.testing.assert_allclose(rho_hat.grad.numpy(), expected, rtol=1e-10)
    assert rho_hat.grad[1].item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(rho_hat.grad).all()


def test_sparsity_penalty_keeps_float32_tensors_differentiable():
    rho_hat = torch.tensor([0.1, 0.2], dtype=torch.float32, requires_grad=True)
    value = sparsity_penalty(rho_hat, 0.05)
    value.backward()
    assert rho_hat.grad is not None and torch.isfinite(rho_hat.grad).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mean_activations": [0.1, 1.2], "rho": 0.05}, "mean_activations"),
        ({"mean_activations": [0.1, -0.1], "rho": 0.05}, "mean_activations"),
        ({"mean_activations": [0.1, math.nan], "rho": 0.05}, "mean_activations"),
        ({"mean_activations": [0.1], "rho": 0.0}, "rho"),
        ({"mean_activations": [0.1], "rho": 1.0}, "rho"),
        ({"mean_activations": [0.1], "rho": math.nan}, "rho"),
        ({"mean_activations": [0.1], "rho": 0.05, "beta": -1.0}, "beta"),
        ({"mean_activations": [0.1], "rho": 0.05, "beta": math.inf}, "beta"),
    ],
)
def test_sparsity_penalty_bad_input_raises_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sparsity_penalty(**kwargs)


def test_sparsity_penalty_non_numbers_raise_type_error():
    with pytest.raises(TypeError, match="mean_activations"):
        sparsity_penalty(None, 0.05)
    with pytest.raises(TypeError, match="rho"):
        sparsity_penalty([0.1], "0.05")


# ---------------------------------------------------------------- contractive_penalty


def test_contractive_penalty_is_the_squared_frobenius_norm_of_the_autograd_jacobian():
    weight = torch.tensor(RNG.normal(size=(5, 7)))
    bias = torch.tensor(RNG.normal(size=5))
    xs = torch.tensor(RNG.uniform(size=(6, 7)))
    encoder = lambda x: torch.sigmoid(weight @ x + bias)
    hidden = torch.stack([encoder(x) for x in xs])
    closed = contractive_penalty(hidden, weight)
    for x, value in zip(xs, closed):
        jacobian = torch.autograd.functional.jacobian(encoder, x)
        assert jacobian.shape == (5, 7)
        assert value.item() == pytest.approx((jacobian**2).sum().item(), rel=1e-12)


def test_contractive_penalty_numpy_matches_torch_and_a_single_code_gives_a_scalar():
    weight = RNG.normal(size=(3, 4))
    hidden = RNG.uniform(size=(2, 3))
    np.testing.assert_allclose(
        contractive_penalty(hidden, weight), contractive_penalty(torch.tensor(hidden), torch.tensor(weight)).numpy()
    )
    assert np.ndim(contractive_penalty(hidden[0], weight)) == 0


def test_contractive_penalty_is_zero_for_saturated_units_and_differentiable():
    weight = torch.tensor(RNG.normal(size=(3, 4)), requires_grad=True)
    assert contractive_penalty(np.array([0.0, 1.0, 1.0]), weight.detach().numpy()) == 0.0
    hidden = torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float64, requires_grad=True)
    contractive_penalty(hidden, weight).sum().backward()
    # d/dW_ji of (h_j(1-h_j))^2 W_ji^2 = 2 (h_j(1-h_j))^2 W_ji
    h = hidden.detach().numpy()[0]
    np.testing.assert_allclose(weight.grad.numpy(), 2 * ((h * (1 - h)) ** 2)[:, None] * weight.detach().numpy())


@pytest.mark.parametrize(
    "hidden, weight, name",
    [
        ([[0.5, 1.5]], np.ones((2, 3)), "hidden"),
        ([[0.5, math.nan]], np.ones((2, 3)), "hidden"),
        ([[0.5, 0.5]], np.ones(3), "weight"),
        ([[0.5, 0.5]], np.full((2, 3), math.inf), "weight"),
        ([[0.5, 0.5, 0.5]], np.ones((2, 3)), "hidden"),
    ],
)
def test_contractive_penalty_bad_input_raises_value_error_naming_the_argument(hidden, weight, name):
    with pytest.raises(ValueError, match=name):
        contractive_penalty(hidden, weight)


# ---------------------------------------------------------------- the model and its training


def test_tied_autoencoder_decodes_with_the_transposed_encoder_weights():
    model = TiedSigmoidAutoencoder(4, 3, seed=1)
    x = torch.tensor(RNG.uniform(size=(2, 4)))
    h = torch.sigmoid(x @ model.weight.T + model.bias)
    torch.testing.assert_close(model.encode(x), h)
    torch.testing.assert_close(model(x), torch.sigmoid(h @ model.weight + model.out_bias))
    assert model.weight.dtype == torch.float64


def test_sparsity_penalty_moves_the_mean_activations_to_rho():
    x = RNG.uniform(size=(200, 10)) ** 3
    plain, sparse = TiedSigmoidAutoencoder(10, 6, seed=0), TiedSigmoidAutoencoder(10, 6, seed=0)
    fit_regularised(plain, x, iterations=60)
    result = fit_regularised(sparse, x, rho=0.1, beta=3.0, iterations=60)
    with torch.no_grad():
        rho_plain = plain.encode(torch.tensor(x)).mean(0).numpy()
        rho_sparse = sparse.encode(torch.tensor(x)).mean(0).numpy()
    assert np.abs(rho_sparse - 0.1).max() < 0.02 < np.abs(rho_plain - 0.1).min()
    assert result["sparsity"] == pytest.approx(float(sparsity_penalty(rho_sparse, 0.1)), rel=1e-9)


def test_contractive_training_lowers_the_jacobian_norm():
    x = RNG.uniform(size=(200, 10)) ** 3
    plain, cae = TiedSigmoidAutoencoder(10, 6, seed=0), TiedSigmoidAutoencoder(10, 6, seed=0)
    plain_terms = fit_regularised(plain, x, iterations=60)
    cae_terms = fit_regularised(cae, x, contraction=0.5, iterations=60)
    assert cae_terms["contraction"] < 0.5 * plain_terms["contraction"]
    assert cae_terms["reconstruction"] > plain_terms["reconstruction"]  # the price of contraction
    assert cae_terms["objective"] == pytest.approx(cae_terms["reconstruction"] + 0.5 * cae_terms["contraction"], rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"x": np.ones((3, 5))}, "x"),
        ({"x": np.full((3, 4), math.nan)}, "x"),
        ({"x": np.ones((3, 4)), "rho": 1.5}, "rho"),
        ({"x": np.ones((3, 4)), "beta": -1}, "beta"),
        ({"x": np.ones((3, 4)), "contraction": -0.1}, "contraction"),
        ({"x": np.ones((3, 4)), "weight_decay": math.nan}, "weight_decay"),
        ({"x": np.ones((3, 4)), "iterations": 0}, "iterations"),
    ],
)
def test_fit_regularised_bad_input_raises_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        fit_regularised(TiedSigmoidAutoencoder(4, 2), **kwargs)
