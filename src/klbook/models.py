r"""Small autoencoders and variational autoencoders (torch) for the book's chapters 4 and 5.

Everything here is deterministic on the CPU for a given ``seed``:

* a model's initial weights are drawn from a ``torch.Generator`` seeded by its ``seed`` argument (the
  global torch RNG is neither used nor advanced);
* training shuffles, draws noise and reparameterisation samples from its own generator seeded by the
  training ``seed``; reported test (and train) metrics use a fresh generator with a fixed seed, so they
  are deterministic too;
* training, :func:`encode_array`, :func:`decode_array` and :func:`reconstruction_errors` run with one
  intra-op thread (the caller's setting is restored afterwards), so on a given machine the results do not
  depend on ``torch.set_num_threads`` or ``OMP_NUM_THREADS``.

Functions with a ``generator`` argument use (and advance) torch's global RNG only when it is ``None``.

Models
------
:class:`Autoencoder`
    A deterministic encoder :math:`z = E_\phi(x)` and decoder :math:`\hat x = D_\theta(z)`, trained by the
    L2 objective :math:`\frac1N\sum_n \lVert x_n - D_\theta(E_\phi(x_n))\rVert^2`. With ``linear=True``
    both maps are single affine maps, the setting in which the optimum spans the principal subspace
    (Baldi & Hornik 1989).
:class:`VAE`
    Gaussian encoder :math:`q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))`,
    prior :math:`p(z) = \mathcal N(0, I)` and a factorised decoder over the pixels, by default
    Bernoulli (see :class:`VAE` for what that means for grey-level pixels).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import DataSplit
from .gaussian import kl_std_normal

__all__ = [
    "Autoencoder",
    "VAE",
    "vae_terms",
    "kl_per_dimension",
    "importance_log_likelihood",
    "train_autoencoder",
    "train_vae",
    "reconstruction_errors",
    "encode_array",
    "decode_array",
    "add_noise",
    "single_thread",
]

_LIKELIHOODS = ("bernoulli", "continuous_bernoulli")
_CHUNK = 1024  # samples of z per batch in importance_log_likelihood


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the enclosed torch code with one intra-op thread and restore the caller's setting afterwards.

    Matrix products split over several threads may sum in a different order, which changes the last bits
    of a result; over hundreds of optimiser steps such differences can grow into visible ones. With one
    thread every run on the same machine gives the same bits.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '>= 1'}, got {value}")
    return value


def _check_nonneg_float(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out) or out < 0 or (positive and out == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return out


def _check_hidden(hidden_dims: Sequence[int]) -> tuple[int, ...]:
    try:
        dims = tuple(hidden_dims)
    except TypeError:
        raise ValueError(f"hidden_dims must be a sequence of positive integers, got {hidden_dims!r}") from None
    return tuple(_check_positive_int("every hidden dimension", h) for h in dims)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` with PyTorch's default initialisation U(-1/sqrt(n_in), 1/sqrt(n_in)) for weights and
    biases, drawn from ``generator`` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        layer = nn.Linear(n_in, n_out)
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


def _mlp(sizes: Sequence[int], generator: torch.Generator) -> nn.Sequential:
    """Affine layers between consecutive ``sizes`` with ELU activations between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(_linear(n_in, n_out, generator))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


def _dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of a model's parameters (float32 unless the caller converted it, e.g. ``.double()``)."""
    return next(model.parameters()).dtype


def _as_batch(
    x: Any, input_dim: int, *, name: str = "x", unit_interval: bool = True, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A tensor of shape (batch, input_dim) and the given dtype, checked."""
    if isinstance(x, torch.Tensor):
        t = x if x.dtype == dtype else x.to(dtype)
    else:
        try:
            t = torch.as_tensor(np.asarray(x), dtype=dtype)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array of shape (batch, {input_dim})") from None
    if t.ndim != 2 or t.shape[1] != input_dim:
        raise ValueError(f"{name} must have shape (batch, {input_dim}), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if unit_interval and (bool((t < 0).any()) or bool((t > 1).any())):
        raise ValueError(f"{name} must lie in [0, 1] (got [{float(t.min()):g}, {float(t.max()):g}])")
    return t


def _check_split(data: Any, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, DataSplit):
        raise ValueError(f"data must be a klbook.data.DataSplit, got {type(data).__name__}")
    dim, dtype = model.input_dim, _dtype(model)
    return (
        _as_batch(data.x_train, dim, name="data.x_train", dtype=dtype),
        _as_batch(data.x_test, dim, name="data.x_test", dtype=dtype),
    )


def encode_array(model: Autoencoder | VAE, x: Any) -> np.ndarray:
    r"""Codes of a batch as a float64 numpy array ``(batch, latent_dim)``, without gradient: :math:`E_\phi(x)`
    for an :class:`Autoencoder`, the posterior mean :math:`\mu_\phi(x)` for a :class:`VAE`. Computed with
    one thread (see :func:`single_thread`), so the result does not depend on the thread setting."""
    if not isinstance(model, (Autoencoder, VAE)):
        raise ValueError(f"model must be an Autoencoder or a VAE, got {type(model).__name__}")
    t = _as_batch(x, model.input_dim, unit_interval=False, dtype=_dtype(model))
    with torch.no_grad(), single_thread():
        z = model.encode(t)
        z = z[0] if isinstance(z, tuple) else z
    return z.to(torch.float64).numpy()


def decode_array(model: Autoencoder | VAE, z: Any) -> np.ndarray:
    r"""Images decoded from codes, float64 numpy ``(batch, input_dim)``, without gradient: :math:`D_\theta(z)`
    for an :class:`Autoencoder`, the mean image :math:`\mathbb E[x\mid z]` for a :class:`VAE`. One thread."""
    if not isinstance(model, (Autoencoder, VAE)):
        raise ValueError(f"model must be an Autoencoder or a VAE, got {type(model).__name__}")
    t = _as_batch(z, model.latent_dim, name="z", unit_interval=False, dtype=_dtype(model))
    with torch.no_grad(), single_thread():
        out = model.decode(t) if isinstance(model, Autoencoder) else model.decode_mean(t)
    return out.to(torch.float64).numpy()


def add_noise(x: Any, noise_std: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Corrupt images with Gaussian noise and clip back to the pixel range:
    :math:`\tilde x = \operatorname{clip}(x + \sigma\varepsilon, 0, 1)`, :math:`\varepsilon\sim\mathcal N(0, I)`.

    Parameters
    ----------
    x
        Images of shape ``(batch, d)`` in ``[0, 1]`` (tensor or array).
    noise_std
        The noise standard deviation :math:`\sigma \ge 0`.
    generator
        Source of the noise; ``None`` uses (and advances) torch's global RNG.

    Returns
    -------
    torch.Tensor
        A tensor of the shape of ``x`` (its floating dtype, float32 for arrays).
    """
    sigma = _check_nonneg_float("noise_std", noise_std)
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if sigma == 0:
        return t.clone()
    noise = torch.randn(t.shape, generator=generator, dtype=t.dtype)
    return (t + sigma * noise).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------


class Autoencoder(nn.Module):
    r"""A deterministic autoencoder :math:`\hat x = D_\theta(E_\phi(x))`.

    Parameters
    ----------
    input_dim
        Number of pixels :math:`d`.
    latent_dim
        Size :math:`k` of the code :math:`z = E_\phi(x)`.
    hidden_dims
        Widths of the encoder's hidden layers; the decoder mirrors them. Ignored when ``linear=True``.
    linear
        If true, :math:`E_\phi(x) = W_e x + b_e` and :math:`D_\theta(z) = W_d z + b_d` (single affine maps,
        identity output): trained by L2 this learns the ``k``-dimensional principal subspace of the
        (centred) data. Otherwise multilayer perceptrons with ELU activations, a linear code layer and a
        sigmoid output, so :math:`\hat x \in (0, 1)^d`.
    seed
        Seed of the ``torch.Generator`` that draws the initial weights (PyTorch's default
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)) scheme).

    Raises
    ------
    ValueError
        For non-positive dimensions.
    """

    def __init__(
        self,
        input_dim: int = 64,
        latent_dim: int = 2,
        hidden_dims: Sequence[int] = (64, 32),
        *,
        linear: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.input_dim = _check_positive_int("input_dim", input_dim)
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        self.hidden_dims = () if linear else _check_hidden(hidden_dims)
        self.linear = bool(linear)
        generator = _generator(seed)
        sizes = (self.input_dim, *self.hidden_dims, self.latent_dim)
        self.encoder = _mlp(sizes, generator)
        self.decoder = _mlp(sizes[::-1], generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code :math:`z = E_\\phi(x)`, shape ``(batch, latent_dim)``: one point per input."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction :math:`D_\\theta(z)`, shape ``(batch, input_dim)``; in ``(0, 1)`` unless linear."""
        out = self.decoder(z)
        return out if self.linear else torch.sigmoid(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\hat x = D_\\theta(E_\\phi(x))`."""
        return self.decode(self.encode(x))

    def affine_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r"""For ``linear=True``: the encoder and decoder as float64 arrays ``(W_e, b_e, W_d, b_d)`` with
        :math:`z = W_e x + b_e` (``W_e`` of shape ``(latent_dim, input_dim)``) and
        :math:`\hat x = W_d z + b_d` (``W_d`` of shape ``(input_dim, latent_dim)``).

        Raises
        ------
        ValueError
            If the autoencoder is not linear.
        """
        if not self.linear:
            raise ValueError("affine_maps() needs a linear autoencoder (linear=True)")
        enc, dec = self.encoder[0], self.decoder[0]
        return tuple(  # type: ignore[return-value]
            t.detach().to(torch.float64).numpy().copy() for t in (enc.weight, enc.bias, dec.weight, dec.bias)
        )


class VAE(nn.Module):
    r"""A variational autoencoder with a diagonal-Gaussian encoder and a factorised pixel decoder.

    * Encoder :math:`q_\phi(z\mid x) = \mathcal N\big(\mu_\phi(x), \operatorname{diag}(e^{\ell_\phi(x)})\big)`,
      with ``logvar`` :math:`\ell = \ln\sigma^2`.
    * Prior :math:`p(z) = \mathcal N(0, I_k)`.
    * Decoder logits :math:`\eta_\theta(z)`, :math:`\lambda = \operatorname{sigmoid}(\eta)`, and a likelihood
      chosen by ``likelihood``:

      ``"bernoulli"`` (default)
          :math:`\log p_\theta(x\mid z) = \sum_i x_i\ln\lambda_i + (1-x_i)\ln(1-\lambda_i)`, i.e. minus the
          binary cross-entropy. For binary pixels this is an exact log-probability. The 8x8 digits are grey
          levels in ``[0, 1]``, not bits: evaluated there the expression is still maximised at
          :math:`\lambda_i = x_i` (so the decoder mean is a sensible reconstruction), but
          :math:`\prod_i \lambda_i^{x_i}(1-\lambda_i)^{1-x_i}` is not a normalised density over
          :math:`[0, 1]^d`: it integrates to :math:`\prod_i 1/C(\lambda_i) \le 2^{-d}`, where :math:`C` is
          the continuous-Bernoulli normaliser (Loaiza-Ganem & Cunningham 2019). The resulting "ELBO" is
          therefore a lower bound on :math:`\log\int p(z)\prod_i\lambda_i^{x_i}(1-\lambda_i)^{1-x_i}\,dz`,
          which is itself at least :math:`d\ln 2` below the log-density of the properly normalised
          continuous-Bernoulli model with the same decoder: a valid but loose bound, not a log-likelihood
          of the grey-level images. It is the objective of Kingma & Welling (2013) and most tutorials.
      ``"continuous_bernoulli"``
          The normalised continuous Bernoulli :math:`C(\lambda_i)\lambda_i^{x_i}(1-\lambda_i)^{1-x_i}`: a
          proper density on ``[0, 1]``, so the ELBO bounds a genuine log-density of the grey-level data.
          Its mean is not :math:`\lambda`; :meth:`decode_mean` returns the true mean.

    Parameters
    ----------
    input_dim, latent_dim
        Number of pixels :math:`d` and latent dimensions :math:`k`.
    hidden_dims
        Widths of the encoder's hidden layers (ELU activations); the decoder mirrors them.
    likelihood
        ``"bernoulli"`` or ``"continuous_bernoulli"``, see above.
    seed
        Seed of the ``torch.Generator`` that draws the initial weights.

    Raises
    ------
    ValueError
        For non-positive dimensions or an unknown likelihood.
    """

    def __init__(
        self,
        input_dim: int = 64,
        latent_dim: int = 2,
        hidden_dims: Sequence[int] = (128, 64),
        *,
        likelihood: str = "bernoulli",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.input_dim = _check_positive_int("input_dim", input_dim)
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        self.hidden_dims = _check_hidden(hidden_dims)
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
        self.likelihood = likelihood
        generator = _generator(seed)
        # The encoder's last layer outputs (mu, logvar) side by side.
        self.encoder = _mlp((self.input_dim, *self.hidden_dims, 2 * self.latent_dim), generator)
        self.decoder = _mlp((self.latent_dim, *self.hidden_dims[::-1], self.input_dim), generator)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of :math:`q_\\phi(z\\mid x)`: ``(mu, logvar)``, each ``(batch, latent_dim)``,
        with logvar = ln sigma^2."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r""":math:`z = \mu + e^{\ell/2}\odot\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`: a draw from
        :math:`\mathcal N(\mu, \operatorname{diag} e^{\ell})` that is differentiable in ``mu`` and ``logvar``.

        ``generator=None`` uses (and advances) torch's global RNG.
        """
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits :math:`\\eta_\\theta(z)`, shape ``(batch, input_dim)``; ``sigmoid`` gives lambda."""
        return self.decoder(z)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        r"""The mean image :math:`\mathbb E[x\mid z]`: :math:`\lambda` for the Bernoulli decoder, the
        continuous-Bernoulli mean otherwise."""
        logits = self.decode(z)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(logits)
        return torch.distributions.ContinuousBernoulli(logits=logits, validate_args=False).mean

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p_\\theta(x\\mid z)` summed over pixels, per example (see the class docstring)."""
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return torch.distributions.ContinuousBernoulli(logits=logits, validate_args=False).log_prob(x).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``n`` images :math:`\mathbb E[x\mid z]` for :math:`z\sim\mathcal N(0, I)` (mean images, not pixel
        noise), shape ``(n, input_dim)``, without gradient. ``generator=None`` uses torch's global RNG."""
        n = _check_positive_int("n", n)
        with torch.no_grad():
            z = torch.randn((n, self.latent_dim), generator=generator, dtype=_dtype(self))
            return self.decode_mean(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mean reconstruction :math:`\\mathbb E[x\\mid z=\\mu_\\phi(x)]` (no sampling)."""
        mu, _ = self.encode(x)
        return self.decode_mean(mu)


# ----------------------------------------------------------------------------------------------------
# VAE objective
# ----------------------------------------------------------------------------------------------------


def _check_vae(model: Any) -> VAE:
    if not isinstance(model, VAE):
        raise ValueError(f"model must be a klbook.models.VAE, got {type(model).__name__}")
    return model


def vae_terms(
    model: VAE, x: Any, *, generator: torch.Generator | None = None, n_samples: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two terms of the negative ELBO, per example.

    .. math::

        \text{reconstruction}(x) = -\mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big]
        \approx -\frac1S\sum_{s=1}^S \log p_\theta(x\mid z_s),\qquad z_s = \mu + \sigma\odot\varepsilon_s,

        \text{kl}(x) = D_{\mathrm{KL}}\big(q_\phi(z\mid x)\,\|\,\mathcal N(0, I)\big)
        = \tfrac12\sum_{j=1}^k\big(\mu_j^2 + \sigma_j^2 - 1 - \ln\sigma_j^2\big)

    (the log-likelihood summed over pixels, the KL summed, not averaged, over latent dimensions, by
    :func:`klbook.kl_std_normal`). The ELBO of ``x`` is ``-(reconstruction + kl)``; average over the batch
    yourself. Differentiable in the model's parameters.

    Parameters
    ----------
    model
        A :class:`VAE`.
    x
        A batch of shape ``(batch, input_dim)`` in ``[0, 1]``.
    generator
        Source of the reparameterisation noise; ``None`` uses torch's global RNG.
    n_samples
        Number :math:`S` of Monte Carlo samples of :math:`z` per example.

    Returns
    -------
    (reconstruction, kl)
        Two tensors of shape ``(batch,)``, in nats.

    Raises
    ------
    ValueError
        If ``model`` is not a VAE, ``x`` has the wrong shape or values outside ``[0, 1]``, or
        ``n_samples < 1``.
    """
    model = _check_vae(model)
    x = _as_batch(x, model.input_dim, dtype=_dtype(model))
    n_samples = _check_positive_int("n_samples", n_samples)
    mu, logvar = model.encode(x)
    # All S samples at once, shape (S, batch, k); for S = 1 the same draws as reparameterize(mu, logvar).
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_lik = model.log_likelihood(model.decode(z), x.expand(n_samples, *x.shape))
    reconstruction = -log_lik.mean(0)
    kl = kl_std_normal(mu, logvar)
    return reconstruction, kl


def kl_per_dimension(model: VAE, x: Any) -> torch.Tensor:
    r"""Average KL of each latent dimension over the data,
    :math:`\frac1N\sum_n \tfrac12(\mu_{nj}^2+\sigma_{nj}^2-1-\ln\sigma_{nj}^2)`, shape ``(latent_dim,)``.

    A dimension whose value is near 0 has collapsed to the prior: its posterior is (nearly) the prior for
    every input, so it carries (almost) no information about ``x``. This is not the book's test of an
    *active* unit, which follows Burda et al. (2016, §5.2) and looks at the encoder mean only: dimension
    ``j`` is active when :math:`A_j = \operatorname{Cov}_x(\mathbb E_{q_\phi(z\mid x)}[z_j])`, the variance of
    :math:`\mu_j(x)` over the data, exceeds a threshold (glossary, chapter 5). The two can disagree: a
    constant mean with :math:`\sigma_j \ne 1` is inactive yet has a KL well above 0. The entries sum to the
    mean of ``vae_terms(...)[1]``. Computed without gradient.
    """
    model = _check_vae(model)
    x = _as_batch(x, model.input_dim, dtype=_dtype(model))
    with torch.no_grad():
        mu, logvar = model.encode(x)
        per_dim = kl_std_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1))
    return per_dim.mean(0)


def importance_log_likelihood(
    model: VAE, x: Any, *, n_samples: int = 256, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Importance-sampling estimate of :math:`\log p_\theta(x) = \log\int p(z)\,p_\theta(x\mid z)\,dz`,
    with the encoder as proposal (Burda et al. 2016):

    .. math::

        \log p_\theta(x) \approx \log\frac1K\sum_{k=1}^K
        \frac{p(z_k)\,p_\theta(x\mid z_k)}{q_\phi(z_k\mid x)},\qquad z_k\sim q_\phi(z\mid x).

    Its expectation is itself a lower bound on :math:`\log p_\theta(x)` that tightens as ``n_samples``
    grows and equals the ELBO for ``n_samples=1``. Per example, shape ``(batch,)``, without gradient. (With
    the Bernoulli likelihood on grey-level pixels, :math:`p_\theta(x)` is the unnormalised quantity
    described in :class:`VAE`.)
    """
    model = _check_vae(model)
    x = _as_batch(x, model.input_dim, dtype=_dtype(model))
    n_samples = _check_positive_int("n_samples", n_samples)
    from ._numerics import HALF_LOG_2PI as half_log_2pi  # defined once for the library
    with torch.no_grad():
        mu, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        log_w = []
        for start in range(0, n_samples, _CHUNK):  # chunks of samples bound the memory
            size = min(_CHUNK, n_samples - start)
            eps = torch.randn((size, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
            z = mu + std * eps
            log_q = (-0.5 * eps**2 - 0.5 * logvar - half_log_2pi).sum(-1)
            log_prior = (-0.5 * z**2 - half_log_2pi).sum(-1)
            log_lik = model.log_likelihood(model.decode(z), x.expand(size, *x.shape))
            log_w.append(log_lik + log_prior - log_q)
        stacked = torch.cat(log_w).to(torch.float64)
        return (torch.logsumexp(stacked, dim=0) - math.log(n_samples)).to(x.dtype)


# ----------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------


def _check_training(epochs: Any, batch_size: Any, lr: Any) -> tuple[int, int, float]:
    return (
        _check_positive_int("epochs", epochs, allow_zero=True),
        _check_positive_int("batch_size", batch_size),
        _check_nonneg_float("lr", lr, positive=True),
    )


def reconstruction_errors(model: Autoencoder, x: Any) -> np.ndarray:
    r"""Per-example mean squared reconstruction error :math:`\frac1d\lVert x - D_\theta(E_\phi(x))\rVert^2`
    as a float64 numpy array of shape ``(batch,)`` (no gradient). Works for any model whose ``forward``
    returns a reconstruction (for a :class:`VAE`, the mean reconstruction at :math:`z = \mu_\phi(x)`)."""
    if not isinstance(model, (Autoencoder, VAE)):
        raise ValueError(f"model must be an Autoencoder or a VAE, got {type(model).__name__}")
    x = _as_batch(x, model.input_dim, unit_interval=False, dtype=_dtype(model))
    with torch.no_grad(), single_thread():
        return ((model(x) - x) ** 2).mean(-1).to(torch.float64).numpy()


def train_autoencoder(
    model: Autoencoder,
    data: DataSplit,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
    noise_std: float = 0.0,
    optimizer: str = "adam",
    lbfgs_iter: int = 20,
) -> list[dict[str, float]]:
    r"""Train an :class:`Autoencoder` in place on the L2 objective, with Adam or full-batch L-BFGS.

    Each step minimises the mean squared error per pixel over a mini-batch :math:`B`,
    :math:`\frac{1}{|B|d}\sum_{n\in B}\lVert x_n - D_\theta(E_\phi(\tilde x_n))\rVert^2`, where
    :math:`\tilde x_n = x_n` or, for a denoising autoencoder (``noise_std > 0``),
    :math:`\tilde x_n = \operatorname{clip}(x_n + \sigma\varepsilon, 0, 1)` with fresh noise at every step
    (see :func:`add_noise`). The target is always the clean :math:`x_n`.

    With ``optimizer="lbfgs"`` each epoch is instead one call of full-batch L-BFGS (``lbfgs_iter``
    iterations with a strong-Wolfe line search) on the whole training set: slower per epoch but it reaches
    the minimum to float32 precision, which is what a comparison of the linear autoencoder with PCA needs
    (mini-batch Adam keeps jittering around the minimum).

    Parameters
    ----------
    model
        The autoencoder; its ``input_dim`` must match the data.
    data
        A :class:`klbook.data.DataSplit`.
    epochs
        Number of passes over the training set (``0`` returns an empty history).
    batch_size, lr
        Mini-batch size (Adam only) and learning rate (default ``3e-3`` for Adam, ``1.0`` for L-BFGS).
    seed
        Seed of the generator that shuffles the batches and draws the training noise.
    noise_std
        Standard deviation of the input corruption (0: a plain autoencoder; Adam only).
    optimizer, lbfgs_iter
        ``"adam"`` (mini-batch) or ``"lbfgs"`` (full batch, ``lbfgs_iter`` iterations per epoch).

    Returns
    -------
    list of dict
        One entry per epoch: ``{"epoch", "train_loss", "test_loss"}``, both losses the mean squared error
        per pixel on the whole train / test set after that epoch (for a denoising model, from inputs
        corrupted by noise drawn with a fixed seed, the same at every epoch, so the numbers are
        deterministic and comparable across epochs).

    Raises
    ------
    ValueError
        For a wrong model type, mismatched data, non-positive ``batch_size`` / ``lr``, an unknown
        optimizer, or L-BFGS with ``noise_std > 0``.
    """
    if not isinstance(model, Autoencoder):
        raise ValueError(f"model must be a klbook.models.Autoencoder, got {type(model).__name__}")
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    if lr is None:
        lr = 3e-3 if optimizer == "adam" else 1.0
    epochs, batch_size, lr = _check_training(epochs, batch_size, lr)
    noise_std = _check_nonneg_float("noise_std", noise_std)
    lbfgs_iter = _check_positive_int("lbfgs_iter", lbfgs_iter)
    if optimizer == "lbfgs" and noise_std > 0:
        raise ValueError("optimizer='lbfgs' is full-batch and deterministic: use 'adam' for noise_std > 0")
    x_train, x_test = _check_split(data, model)
    generator = _generator(seed)
    # Fixed corrupted copies for evaluation (identical at every epoch).
    eval_train = add_noise(x_train, noise_std, generator=_generator(seed + 1))
    eval_test = add_noise(x_test, noise_std, generator=_generator(seed + 2))
    history: list[dict[str, float]] = []
    with single_thread():
        if optimizer == "lbfgs":
            lbfgs = torch.optim.LBFGS(
                model.parameters(),
                lr=lr,
                max_iter=lbfgs_iter,
                history_size=20,
                line_search_fn="strong_wolfe",
                tolerance_grad=1e-12,
                tolerance_change=1e-15,
            )
            # L-BFGS is invariant to the scale of the loss except for its hard-coded curvature threshold
            # (it skips a memory update when y's <= 1e-10), which a loss of order 1e-4 would trip at every
            # step. Dividing by the per-pixel variance of the data (the loss of the best constant
            # reconstruction) makes the objective the fraction of unexplained variance, of order 1.
            scale = float(x_train.var(dim=0, unbiased=False).mean()) or 1.0

            def closure() -> torch.Tensor:
                lbfgs.zero_grad()
                loss = F.mse_loss(model(x_train), x_train) / scale
                loss.backward()
                return loss

        else:
            adam = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
        n = x_train.shape[0]
        for epoch in range(1, epochs + 1):
            if optimizer == "lbfgs":
                lbfgs.step(closure)
            else:
                order = torch.randperm(n, generator=generator)
                for start in range(0, n, batch_size):
                    batch = x_train[order[start : start + batch_size]]
                    noisy = add_noise(batch, noise_std, generator=generator) if noise_std > 0 else batch
                    loss = F.mse_loss(model(noisy), batch)
                    adam.zero_grad()
                    loss.backward()
                    adam.step()
            with torch.no_grad():
                train_loss = F.mse_loss(model(eval_train), x_train).item()
                test_loss = F.mse_loss(model(eval_test), x_test).item()
            history.append({"epoch": epoch, "train_loss": train_loss, "test_loss": test_loss})
    return history


def _vae_metrics(model: VAE, x: torch.Tensor, seed: int, n_samples: int) -> tuple[float, float, float]:
    with torch.no_grad():
        rec, kl = vae_terms(model, x, generator=_generator(seed), n_samples=n_samples)
        rec_mean, kl_mean = rec.mean().item(), kl.mean().item()
    return rec_mean, kl_mean, -(rec_mean + kl_mean)


def train_vae(
    model: VAE,
    data: DataSplit,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    beta: float = 1.0,
    kl_warmup_epochs: int = 0,
    free_bits: float = 0.0,
    eval_samples: int = 1,
) -> list[dict[str, float]]:
    r"""Train a :class:`VAE` in place with Adam on the (optionally modified) negative ELBO.

    Each step minimises, over a mini-batch :math:`B`,

    .. math::

        \frac1{|B|}\sum_{n\in B}\text{reconstruction}(x_n)
        + \beta_e \sum_{j=1}^k \max\Big(\lambda,\ \frac1{|B|}\sum_{n\in B}\text{KL}_j(x_n)\Big)

    with one reparameterised sample per example, :math:`\text{KL}_j` the KL of latent dimension :math:`j`,
    and

    * :math:`\beta_e = \beta\min\big(1, (e-1)/W\big)` in epoch :math:`e = 1, 2, \dots` when
      ``kl_warmup_epochs`` :math:`= W > 0` (KL annealing, Bowman et al. 2016: 0 in the first epoch, the
      full :math:`\beta` from epoch :math:`W+1` on), else :math:`\beta_e = \beta` (``beta`` :math:`\ne 1`
      is the beta-VAE of Higgins et al. 2017);
    * :math:`\lambda` = ``free_bits`` nats per dimension (Kingma et al. 2016): a dimension whose
      batch-averaged KL is below :math:`\lambda` gets no gradient pushing it further toward the prior.
      With ``free_bits=0`` the KL term is the plain sum.

    These modifications change the training objective only: every reported ELBO is the true one
    (:math:`\beta = 1`, no free bits).

    Parameters
    ----------
    model, data
        The VAE (its ``input_dim`` must match) and a :class:`klbook.data.DataSplit`.
    epochs, batch_size, lr, seed
        Passes over the data, mini-batch size, Adam learning rate and the seed of the generator that
        shuffles and draws the reparameterisation noise.
    beta, kl_warmup_epochs, free_bits
        See above.
    eval_samples
        Number of samples of :math:`z` per example in the reported reconstruction terms.

    Returns
    -------
    list of dict
        One entry per epoch with keys ``"epoch"``, ``"beta"`` (the :math:`\beta_e` used),
        ``"train_reconstruction"``, ``"train_kl"``, ``"train_elbo"``, ``"test_reconstruction"``,
        ``"test_kl"``, ``"test_elbo"``: averages per example over the whole train / test set after the epoch,
        in nats, from :func:`vae_terms` with a generator of fixed seed (deterministic, the same noise at
        every epoch); ``elbo = -(reconstruction + kl)``.

    Raises
    ------
    ValueError
        For a wrong model type, mismatched data, or invalid hyper-parameters.
    """
    model = _check_vae(model)
    epochs, batch_size, lr = _check_training(epochs, batch_size, lr)
    beta = _check_nonneg_float("beta", beta)
    warmup = _check_positive_int("kl_warmup_epochs", kl_warmup_epochs, allow_zero=True)
    free_bits = _check_nonneg_float("free_bits", free_bits)
    eval_samples = _check_positive_int("eval_samples", eval_samples)
    x_train, x_test = _check_split(data, model)
    generator = _generator(seed)
    history: list[dict[str, float]] = []
    with single_thread():
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
        n = x_train.shape[0]
        for epoch in range(1, epochs + 1):
            beta_e = beta * min(1.0, (epoch - 1) / warmup) if warmup > 0 else beta
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                batch = x_train[order[start : start + batch_size]]
                mu, logvar = model.encode(batch)
                z = model.reparameterize(mu, logvar, generator)
                reconstruction = -model.log_likelihood(model.decode(z), batch).mean()
                kl_dims = kl_std_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1)).mean(0)
                if free_bits > 0:
                    kl_dims = torch.clamp(kl_dims, min=free_bits)
                loss = reconstruction + beta_e * kl_dims.sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            train = _vae_metrics(model, x_train, seed + 1, eval_samples)
            test = _vae_metrics(model, x_test, seed + 2, eval_samples)
            history.append(
                {
                    "epoch": epoch,
                    "beta": beta_e,
                    "train_reconstruction": train[0],
                    "train_kl": train[1],
                    "train_elbo": train[2],
                    "test_reconstruction": test[0],
                    "test_kl": test[1],
                    "test_elbo": test[2],
                }
            )
    return history
