"""klbook.models: shapes, determinism, the linear AE = PCA subspace, the VAE objective's terms and bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from klbook import kl_std_normal
from klbook.data import DataSplit, load_digits
from klbook.models import (
    VAE,
    Autoencoder,
    add_noise,
    decode_array,
    encode_array,
    importance_log_likelihood,
    kl_per_dimension,
    reconstruction_errors,
    train_autoencoder,
    train_vae,
    vae_terms,
)


@pytest.fixture(scope="module")
def small() -> DataSplit:
    """A small slice of the digits so that every training test takes a fraction of a second."""
    d = load_digits()
    return DataSplit(d.x_train[:192], d.y_train[:192], d.x_test[:64], d.y_test[:64])


def _rounded(history: list[dict[str, float]], digits: int = 6) -> list[dict[str, float]]:
    return [{k: round(v, digits) for k, v in row.items()} for row in history]


# ---------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("linear", [False, True])
def test_autoencoder_maps_have_the_documented_shapes(linear):
    model = Autoencoder(64, 3, (16, 8), linear=linear)
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    z = model.encode(x)
    assert z.shape == (5, 3)
    x_hat = model.decode(z)
    assert x_hat.shape == (5, 64)
    assert torch.equal(model(x), x_hat)
    if linear:
        assert len(model.encoder) == len(model.decoder) == 1  # single affine maps
    else:
        assert bool(((x_hat > 0) & (x_hat < 1)).all())  # sigmoid output


def test_vae_maps_have_the_documented_shapes_and_samples_are_images():
    model = VAE(64, 3, (16, 8))
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    assert z.shape == (5, 3)
    assert model.decode(z).shape == (5, 64)
    images = model.sample(7, generator=torch.Generator().manual_seed(2))
    assert images.shape == (7, 64) and bool(((images > 0) & (images < 1)).all())
    assert torch.equal(images, model.sample(7, generator=torch.Generator().manual_seed(2)))


def test_models_are_built_from_their_seed_without_touching_the_global_rng():
    state = torch.random.get_rng_state()
    a, b, c = Autoencoder(seed=3), Autoencoder(seed=3), Autoencoder(seed=4)
    v1, v2 = VAE(seed=3), VAE(seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.encoder[0].weight, c.encoder[0].weight)
    assert all(torch.equal(p, q) for p, q in zip(v1.parameters(), v2.parameters()))


# --------------------------------------------------------------------------------------- determinism


def test_autoencoder_training_is_deterministic_for_a_seed_and_depends_on_it(small):
    runs = [train_autoencoder(Autoencoder(seed=s), small, epochs=2, seed=s) for s in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert [row["epoch"] for row in runs[0]] == [1, 2]
    assert set(runs[0][0]) == {"epoch", "train_loss", "test_loss"}


def test_vae_training_is_deterministic_for_a_seed_and_depends_on_it(small):
    runs = [train_vae(VAE(seed=s), small, epochs=2, seed=s) for s in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    keys = {"epoch", "beta", "train_reconstruction", "train_kl", "train_elbo"}
    assert set(runs[0][0]) == keys | {"test_reconstruction", "test_kl", "test_elbo"}


def test_training_leaves_the_global_rng_and_the_thread_count_alone(small):
    threads = torch.get_num_threads()
    state = torch.random.get_rng_state()
    train_autoencoder(Autoencoder(), small, epochs=1, noise_std=0.2)
    train_vae(VAE(), small, epochs=1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.get_num_threads() == threads


def test_rounded_training_results_do_not_depend_on_the_number_of_threads(small):
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            ae = train_autoencoder(Autoencoder(), small, epochs=2, noise_std=0.1)
            lin = train_autoencoder(Autoencoder(linear=True), small, epochs=2, optimizer="lbfgs")
            vae = train_vae(VAE(), small, epochs=2, kl_warmup_epochs=1, free_bits=0.5)
            results.append([_rounded(ae), _rounded(lin), _rounded(vae)])
    finally:
        torch.set_num_threads(threads)
    assert results[0] == results[1]


# ------------------------------------------------------------------------------- linear AE and PCA


def test_linear_autoencoder_spans_the_pca_subspace_on_a_small_problem():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    stds = np.array([0.15, 0.08, 0.01, 0.008, 0.005, 0.003])
    x = (0.5 + (rng.normal(size=(200, 6)) * stds) @ basis.T).astype(np.float32)
    y = np.zeros(200, dtype=np.int64)
    data = DataSplit(x[:150], y[:150], x[150:], y[150:])
    model = Autoencoder(6, 2, linear=True).double()
    # 40 epochs left an angle of 1.0e-4 on a Xeon with AMX (4e-5 with ATen's generic kernels); 80 leave
    # 1.2e-5 to 3.3e-5 under every kernel configuration there (2026-12-06).
    train_autoencoder(model, data, epochs=80, optimizer="lbfgs")
    centred = data.x_train.astype(np.float64) - data.x_train.mean(0, dtype=np.float64)
    principal = np.linalg.svd(centred, full_matrices=False)[2][:2].T
    decoder_columns = model.decoder[0].weight.detach().numpy()
    assert subspace_angles(decoder_columns, principal).max() < 1e-4
    # ... but not the principal directions themselves: the columns are an arbitrary basis of the subspace
    gram = decoder_columns.T @ decoder_columns
    assert abs(gram[0, 1]) / math.sqrt(gram[0, 0] * gram[1, 1]) > 1e-3


# ---------------------------------------------------------------------------------------- VAE terms


def test_vae_terms_kl_equals_kl_std_normal_of_the_encoder_outputs_summed_over_dimensions():
    model = VAE(64, 4, (16,), seed=1)
    x = torch.rand(6, 64, generator=torch.Generator().manual_seed(0))
    rec, kl = vae_terms(model, x, generator=torch.Generator().manual_seed(0))
    mu, logvar = model.encode(x)
    assert rec.shape == kl.shape == (6,)
    torch.testing.assert_close(kl, kl_std_normal(mu, logvar))
    by_hand = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)  # summed, not averaged, over 4 dims
    torch.testing.assert_close(kl, by_hand, rtol=1e-5, atol=1e-6)
    per_dim = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0).detach()
    torch.testing.assert_close(kl_per_dimension(model, x), per_dim)


def test_vae_terms_reconstruction_is_the_summed_bernoulli_negative_log_likelihood():
    model = VAE(64, 2, (16,), seed=2)
    x = torch.rand(3, 64, generator=torch.Generator().manual_seed(0))
    rec, _ = vae_terms(model, x, generator=torch.Generator().manual_seed(5))
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    bernoulli = torch.distributions.Bernoulli(logits=model.decode(z), validate_args=False)
    # torch's Bernoulli.log_prob is x log p + (1-x) log(1-p) also for x in (0, 1)
    torch.testing.assert_close(rec, -bernoulli.log_prob(x).sum(-1))


def test_vae_terms_are_differentiable():
    model = VAE(64, 2, (16,))
    rec, kl = vae_terms(model, torch.rand(4, 64, generator=torch.Generator().manual_seed(0)))
    (rec + kl).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli"])
def test_elbo_is_below_the_log_evidence_computed_by_quadrature(likelihood):
    model = VAE(4, 1, (8,), likelihood=likelihood, seed=0).double()
    x = torch.tensor([[1.0, 0.0, 1.0, 0.7]], dtype=torch.float64)
    # log p(x) = log int N(z; 0, 1) p(x | z) dz by a Riemann sum on a fine grid (1-D latent; the integrand
    # is smooth and negligible at +-12, where such a sum converges faster than any power of the step)
    z = torch.linspace(-12, 12, 4801, dtype=torch.float64).unsqueeze(-1)
    with torch.no_grad():
        log_joint = model.log_likelihood(model.decode(z), x.expand(len(z), -1)) - 0.5 * z[:, 0] ** 2
    log_evidence = float(torch.logsumexp(log_joint, 0)) + math.log(24 / 4800) - 0.5 * math.log(2 * math.pi)
    with torch.no_grad():
        rec, kl = vae_terms(model, x, generator=torch.Generator().manual_seed(0), n_samples=4000)
    elbo = -float(rec + kl)
    assert elbo < log_evidence - 1e-3
    estimate = importance_log_likelihood(model, x, n_samples=10000, generator=torch.Generator().manual_seed(1))
    # importance sampling with many samples closes most of the gap (it is a bound only in expectation)
    assert elbo < float(estimate)
    assert abs(float(estimate) - log_evidence) < 1e-2 < log_evidence - elbo


def test_kl_per_dimension_sums_to_the_mean_kl(small):
    model = VAE(latent_dim=3)
    rec, kl = vae_terms(model, small.x_test, generator=torch.Generator().manual_seed(0))
    per_dim = kl_per_dimension(model, small.x_test)
    assert per_dim.shape == (3,)
    torch.testing.assert_close(per_dim.sum(), kl.mean().detach(), rtol=1e-5, atol=1e-6)


def test_kl_warmup_ramps_beta_linearly_from_zero(small):
    history = train_vae(VAE(), small, epochs=5, beta=2.0, kl_warmup_epochs=3)
    assert [row["beta"] for row in history] == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0, 2.0])


def test_reported_kl_is_the_true_kl_even_with_free_bits_and_beta(small):
    model = VAE()
    history = train_vae(model, small, epochs=2, beta=0.5, free_bits=1.0, seed=3)
    rec, kl = vae_terms(model, small.x_test, generator=torch.Generator().manual_seed(3 + 2))
    last = history[-1]
    assert last["test_kl"] == pytest.approx(float(kl.mean().detach()), rel=1e-6)
    assert last["test_elbo"] == pytest.approx(-float((rec.mean() + kl.mean()).detach()), rel=1e-6)
    assert history != train_vae(VAE(), small, epochs=2, beta=0.5, seed=3)  # free bits change training


# ---------------------------------------------------------------------------------- autoencoder utils


def test_denoising_training_and_reconstruction_errors(small):
    model = Autoencoder()
    history = train_autoencoder(model, small, epochs=3, noise_std=0.3)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    errors = reconstruction_errors(model, small.x_test)
    assert errors.shape == (64,) and errors.dtype == np.float64
    noisy = add_noise(small.x_test, 0.3, generator=torch.Generator().manual_seed(0))
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1
    assert not torch.equal(noisy, torch.as_tensor(small.x_test))


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Autoencoder(latent_dim=0), "latent_dim"),
        (lambda: Autoencoder(input_dim=2.5), "input_dim must be an integer"),
        (lambda: Autoencoder(hidden_dims=(8, -1)), "hidden dimension"),
        (lambda: VAE(likelihood="gaussian"), "likelihood must be one of"),
        (lambda: VAE(hidden_dims=3), "hidden_dims"),
    ],
)
def test_bad_model_arguments_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, d: vae_terms(m, torch.rand(3, 10)), r"shape \(batch, 64\)"),
        (lambda m, d: vae_terms(m, torch.full((3, 64), 1.5)), r"\[0, 1\]"),
        (lambda m, d: vae_terms(m, torch.full((3, 64), float("nan"))), "NaN"),
        (lambda m, d: vae_terms(m, torch.rand(3, 64), n_samples=0), "n_samples"),
        (lambda m, d: vae_terms(Autoencoder(), torch.rand(3, 64)), "must be a klbook.models.VAE"),
        (lambda m, d: train_vae(m, d, epochs=-1), "epochs"),
        (lambda m, d: train_vae(m, d, epochs=1, batch_size=0), "batch_size"),
        (lambda m, d: train_vae(m, d, epochs=1, lr=0), "lr"),
        (lambda m, d: train_vae(m, d, epochs=1, beta=-1), "beta"),
        (lambda m, d: train_vae(m, d, epochs=1, free_bits=float("nan")), "free_bits"),
        (lambda m, d: train_vae(m, (d.x_train, d.x_test), epochs=1), "DataSplit"),
        (lambda m, d: train_vae(VAE(input_dim=10), d, epochs=1), r"shape \(batch, 10\)"),
        (lambda m, d: train_autoencoder(m, d, epochs=1), "must be a klbook.models.Autoencoder"),
        (lambda m, d: train_autoencoder(Autoencoder(), d, epochs=1, optimizer="sgd"), "optimizer"),
        (lambda m, d: train_autoencoder(Autoencoder(), d, epochs=1, optimizer="lbfgs", noise_std=0.1), "lbfgs"),
        (lambda m, d: train_autoencoder(Autoencoder(), d, epochs=1, noise_std=-0.1), "noise_std"),
        (lambda m, d: m.sample(0), "n must be >= 1"),
    ],
)
def test_bad_input_raises_value_error_with_a_message(small, call, message):
    with pytest.raises(ValueError, match=message):
        call(VAE(), small)


def test_epochs_zero_returns_an_empty_history(small):
    assert train_vae(VAE(), small, epochs=0) == []
    assert train_autoencoder(Autoencoder(), small, epochs=0) == []


# ------------------------------------------------------------------------------------- array helpers


def test_encode_and_decode_array_match_the_torch_maps_and_return_float64():
    ae, vae = Autoencoder(seed=1), VAE(seed=1)
    x = np.random.default_rng(0).uniform(size=(4, 64)).astype(np.float32)
    with torch.no_grad():
        z_ae, x_ae = ae.encode(torch.from_numpy(x)), ae(torch.from_numpy(x))
        mu, _ = vae.encode(torch.from_numpy(x))
        mean = vae.decode_mean(mu)
    for got, want in [
        (encode_array(ae, x), z_ae),
        (decode_array(ae, encode_array(ae, x)), x_ae),
        (encode_array(vae, x), mu),
        (decode_array(vae, encode_array(vae, x)), mean),
    ]:
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want.double().numpy(), rtol=1e-6, atol=1e-6)


def test_affine_maps_reproduce_the_linear_autoencoder():
    model = Autoencoder(64, 3, linear=True, seed=2)
    w_e, b_e, w_d, b_d = model.affine_maps()
    assert w_e.shape == (3, 64) and w_d.shape == (64, 3)
    x = np.random.default_rng(0).uniform(size=(5, 64))
    by_hand = (x @ w_e.T + b_e) @ w_d.T + b_d
    np.testing.assert_allclose(decode_array(model, encode_array(model, x)), by_hand, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="linear"):
        Autoencoder().affine_maps()
