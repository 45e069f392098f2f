r"""A tiny diffusion model for 2-D data (torch): a noise-prediction network, its training, sampling, and
the terms of its ELBO.

The model is DDPM's (Ho et al. 2020) with the closed forms of :mod:`klbook.diffusion`: a network
:math:`\varepsilon_\theta(x_t, t)` predicts the noise in :math:`x_t`, the reverse steps are
:math:`p_\theta(x_{t-1}\mid x_t) = \mathcal N(\mu_\theta(x_t, t), \tilde\beta_t I)` for :math:`t \ge 2` with
:math:`\mu_\theta` from :func:`klbook.diffusion.mean_from_eps`, the decoder is
:math:`p_\theta(x_0\mid x_1) = \mathcal N(\mu_\theta(x_1, 1), \beta_1 I)` and the prior is
:math:`p(x_T) = \mathcal N(0, I)`.

Everything is deterministic on the CPU for a given seed: initial weights, mini-batches and noise come
from ``torch.Generator`` objects seeded by the ``seed`` arguments (the global RNG is not used), and
training runs with one intra-op thread (:func:`klbook.models.single_thread`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .diffusion import _schedule, marginal_coefficients, mean_from_eps, posterior_coefficients
from .gaussian import kl_normal, normal_logpdf
from .models import single_thread

__all__ = ["Denoiser", "train_denoiser", "sample", "ElboTerms", "elbo_terms", "elbo_monte_carlo"]


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _points(name: str, x: Any) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, d) with n >= 1, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


class Denoiser(nn.Module):
    r"""The network :math:`\varepsilon_\theta(x, t)`: an MLP on :math:`x` and sinusoidal features of :math:`t/T`.

    Parameters
    ----------
    dim
        Dimension of the data.
    n_steps
        :math:`T`, to scale the step number.
    hidden
        Width of the two hidden layers (SiLU activations).
    n_freq
        Number of frequencies :math:`2^k\pi`, :math:`k = 0..n_{freq}-1`, in the time features.
    seed
        Seed of the initial weights.
    """

    def __init__(self, dim: int = 2, n_steps: int = 50, *, hidden: int = 128, n_freq: int = 6, seed: int = 0):
        super().__init__()
        self.dim, self.n_steps = _check_int("dim", dim), _check_int("n_steps", n_steps)
        hidden, n_freq = _check_int("hidden", hidden), _check_int("n_freq", n_freq)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32))
        generator = torch.Generator().manual_seed(int(seed))
        sizes = (dim + 2 * n_freq, hidden, hidden, dim)
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            with torch.random.fork_rng(devices=[]):  # the default init would advance the global RNG
                linear = nn.Linear(n_in, n_out)
            bound = 1.0 / math.sqrt(n_in)
            with torch.no_grad():
                linear.weight.uniform_(-bound, bound, generator=generator)
                linear.bias.uniform_(-bound, bound, generator=generator)
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise for points ``x`` (n, dim) at integer steps ``t`` (n,) in 1..T."""
        phase = (t.to(torch.float32) / self.n_steps)[:, None] * self.freqs
        return self.net(torch.cat([x, torch.sin(phase), torch.cos(phase)], dim=1))


def _predict_eps(model: Denoiser, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    with torch.no_grad(), single_thread():
        out = model(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(t))
    return out.double().numpy()


def train_denoiser(
    data: Any,
    betas: Any,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    model_seed: int = 0,
    hidden: int = 128,
) -> tuple[Denoiser, np.ndarray]:
    r"""Train a :class:`Denoiser` with Adam on DDPM's simple loss (Ho et al. 2020, eq. 14).

    Each step draws a mini-batch :math:`x_0` from ``data``, steps :math:`t\sim\mathcal U\{1..T\}` and
    :math:`\varepsilon\sim\mathcal N(0, I)`, and minimises

    .. math::

        L_{\text{simple}} = \frac{1}{|B|}\sum_{n\in B}
        \big\lVert\varepsilon_n - \varepsilon_\theta\big(\sqrt{\bar\alpha_{t_n}}x_{0,n}
        + \sqrt{1-\bar\alpha_{t_n}}\,\varepsilon_n,\ t_n\big)\big\rVert^2 .

    The learning rate decays linearly to zero over the run.

    Parameters
    ----------
    data
        Training points, shape ``(n, d)``.
    betas
        The schedule (:mod:`klbook.diffusion`).
    steps, batch_size, lr
        Optimiser steps, mini-batch size and initial Adam learning rate.
    seed, model_seed
        Seeds of the mini-batches and noise, and of the initial weights.
    hidden
        Width of the network.

    Returns
    -------
    (Denoiser, numpy.ndarray)
        The trained model (in eval mode) and the loss of every step.
    """
    x_all = torch.as_tensor(_points("data", data), dtype=torch.float32)
    b = _schedule(betas)
    steps, batch_size = _check_int("steps", steps), _check_int("batch_size", batch_size)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and positive, got {lr!r}")
    mean_coef, sd = (torch.as_tensor(a, dtype=torch.float32) for a in marginal_coefficients(b))
    model = Denoiser(x_all.shape[1], b.size, hidden=hidden, seed=model_seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda k: 1.0 - k / steps)
    generator = torch.Generator().manual_seed(int(seed))
    losses = np.empty(steps)
    with single_thread():
        for k in range(steps):
            index = torch.randint(x_all.shape[0], (batch_size,), generator=generator)
            t = torch.randint(1, b.size + 1, (batch_size,), generator=generator)
            eps = torch.randn(batch_size, x_all.shape[1], generator=generator)
            x_t = mean_coef[t - 1, None] * x_all[index] + sd[t - 1, None] * eps
            loss = ((eps - model(x_t, t)) ** 2).sum(dim=1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses[k] = loss.item()
    return model.eval(), losses


def sample(model: Denoiser, betas: Any, n: int, *, seed: int = 0) -> np.ndarray:
    r"""Ancestral sampling: :math:`x_T\sim\mathcal N(0,I)`, :math:`x_{t-1}\sim p_\theta(x_{t-1}\mid x_t)` for
    :math:`t = T..2`, and :math:`x_0 = \mu_\theta(x_1, 1)` (the decoder's mean, as DDPM displays samples).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, dim)``.
    """
    b = _schedule(betas)
    n = _check_int("n", n)
    if b.size != model.n_steps:
        raise ValueError(f"betas has {b.size} steps but the model was built for {model.n_steps}")
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(b.size, n, model.dim, generator=generator, dtype=torch.float64).numpy()
    variance = posterior_coefficients(b).variance
    x = noise[0]
    for t in range(b.size, 0, -1):
        steps_t = np.full(n, t)
        mean = mean_from_eps(x, _predict_eps(model, x, steps_t), b, steps_t)
        x = mean + math.sqrt(variance[t - 1]) * noise[b.size - t + 1] if t > 1 else mean
    return x


class ElboTerms(NamedTuple):
    r"""The terms of the negative ELBO per example (nats), :math:`-\mathrm{ELBO} = L_T + \sum_{t\ge2} L_{t-1} + L_0`.

    ``prior``: :math:`L_T = D_{\mathrm{KL}}(q(x_T\mid x_0)\,\Vert\,\mathcal N(0, I))`, shape ``(n,)``.
    ``steps``: shape ``(n, T)``; column 0 holds :math:`L_0 = -\log p_\theta(x_0\mid x_1)`, column
    :math:`t-1` for :math:`t\ge2` holds :math:`L_{t-1} = D_{\mathrm{KL}}(q(x_{t-1}\mid x_t,x_0)\,\Vert\,p_\theta(x_{t-1}\mid x_t))`
    at one draw of :math:`x_t\sim q(x_t\mid x_0)`. ``total``: the sum, shape ``(n,)``.
    """

    prior: np.ndarray
    steps: np.ndarray
    total: np.ndarray


def elbo_terms(model: Denoiser, x0: Any, betas: Any, *, seed: int = 0) -> ElboTerms:
    r"""The terms of the negative ELBO of each point of ``x0``, every KL term in closed form.

    Each :math:`L_{t-1}` is the KL divergence between two Gaussians with the same variance
    :math:`\tilde\beta_t I`, computed with :func:`klbook.kl_normal` per coordinate and summed; only
    :math:`x_t` (one draw per point and step) is sampled. :math:`L_T` is the KL of
    :math:`\mathcal N(\sqrt{\bar\alpha_T}x_0, (1-\bar\alpha_T)I)` from :math:`\mathcal N(0, I)`.
    """
    x = _points("x0", x0)
    b = _schedule(betas)
    if b.size != model.n_steps or x.shape[1] != model.dim:
        raise ValueError("betas and x0 must match the model's number of steps and dimension")
    mean_coef, sd = marginal_coefficients(b)
    post = posterior_coefficients(b)
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(b.size, *x.shape, generator=generator, dtype=torch.float64).numpy()
    n = x.shape[0]
    steps = np.empty((n, b.size))
    for t in range(1, b.size + 1):
        x_t = mean_coef[t - 1] * x + sd[t - 1] * noise[t - 1]
        steps_t = np.full(n, t)
        mu_theta = mean_from_eps(x_t, _predict_eps(model, x_t, steps_t), b, steps_t)
        if t == 1:
            steps[:, 0] = -normal_logpdf(x, mu_theta, math.sqrt(b[0])).sum(axis=1)
        else:
            mu_post = post.coef_x0[t - 1] * x + post.coef_xt[t - 1] * x_t
            s = math.sqrt(post.variance[t - 1])
            steps[:, t - 1] = kl_normal(mu_post, s, mu_theta, s).sum(axis=1)
    prior = kl_normal(mean_coef[-1] * x, sd[-1], 0.0, 1.0).sum(axis=1)
    return ElboTerms(prior, steps, prior + steps.sum(axis=1))


def elbo_monte_carlo(model: Denoiser, x0: Any, betas: Any, *, seed: int = 0) -> np.ndarray:
    r"""One-sample estimates of the ELBO of each point of ``x0`` from a whole forward chain, no KL in closed form.

    Draws :math:`x_{1:T}` step by step from :math:`q(x_t\mid x_{t-1})` and returns

    .. math::

        \log p(x_T) + \sum_{t=2}^{T}\log p_\theta(x_{t-1}\mid x_t) + \log p_\theta(x_0\mid x_1)
        - \sum_{t=1}^{T}\log q(x_t\mid x_{t-1}),

    whose expectation is the ELBO: the definition :math:`\mathbb E_q[\log p_\theta(x_{0:T}) - \log q(x_{1:T}\mid x_0)]`
    used directly, as a check of the decomposition into KL terms (:func:`elbo_terms`).
    """
    x = _points("x0", x0)
    b = _schedule(betas)
    variance = posterior_coefficients(b).variance
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(b.size, *x.shape, generator=generator, dtype=torch.float64).numpy()
    chain = [x]
    log_q = np.zeros(x.shape[0])
    for t in range(1, b.size + 1):
        mean = math.sqrt(1.0 - b[t - 1]) * chain[-1]
        chain.append(mean + math.sqrt(b[t - 1]) * noise[t - 1])
        log_q += normal_logpdf(chain[-1], mean, math.sqrt(b[t - 1])).sum(axis=1)
    log_p = normal_logpdf(chain[-1], 0.0, 1.0).sum(axis=1)
    n = x.shape[0]
    for t in range(b.size, 0, -1):
        steps_t = np.full(n, t)
        mu = mean_from_eps(chain[t], _predict_eps(model, chain[t], steps_t), b, steps_t)
        s = math.sqrt(variance[t - 1]) if t > 1 else math.sqrt(b[0])
        log_p += normal_logpdf(chain[t - 1], mu, s).sum(axis=1)
    return log_p - log_q
