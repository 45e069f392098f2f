r"""The importance-weighted bound (IWAE) of Burda, Grosse and Salakhutdinov (2016).

For an observation :math:`x`, a joint density :math:`p(x, z)` and a proposal :math:`q(z)` (in a VAE the
encoder's :math:`q_\phi(z\mid x)`), the *importance weights* are :math:`w = p(x, z)/q(z)` with
:math:`z\sim q`, and :math:`\mathbb E_q[w] = p(x)`. The :math:`K`-sample bound is

.. math::

    \mathcal L_K = \mathbb E_{z_1,\dots,z_K\sim q}\Big[\log\frac1K\sum_{k=1}^K w_k\Big]
    \le \log p(x),

with :math:`\mathcal L_1 = \operatorname{ELBO}(q)` and :math:`\mathcal L_K\le\mathcal L_{K+1}` (their
Theorem 1). This module estimates :math:`\mathcal L_K` from log-weights (:func:`iwae_bound`), and computes
the log-weights of a :class:`klbook.models.VAE` (:func:`vae_log_weights`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch


class IWAEBound(NamedTuple):
    """A Monte Carlo estimate of :math:`\\mathcal L_K` and its standard error (same shapes)."""

    estimate: np.ndarray
    std_error: np.ndarray


def _log_weights(log_weights: Any) -> np.ndarray:
    if isinstance(log_weights, torch.Tensor):
        log_weights = log_weights.detach().cpu().to(torch.float64).numpy()
    if isinstance(log_weights, (np.ma.MaskedArray, str, bytes)) or log_weights is None:
        raise TypeError("log_weights must be real numbers (an array or tensor)")
    array = np.asarray(log_weights)
    if (
        array.dtype == object
        or np.iscomplexobj(array)
        or not np.issubdtype(array.dtype, np.number)
    ):
        raise TypeError(f"log_weights must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim == 0:
        raise ValueError("log_weights must have a last axis of samples, got a scalar")
    if np.isnan(array).any() or np.isposinf(array).any():
        raise ValueError("log_weights must not contain NaN or +inf")
    return array


def iwae_bound(log_weights: Any, k: int) -> IWAEBound:
    r"""Estimate the importance-weighted bound :math:`\mathcal L_K` from log importance weights.

    The textbook formula, for independent :math:`z_1,\dots,z_K\sim q`:

    .. math::

        \mathcal L_K = \mathbb E\Big[\log\frac1K\sum_{k=1}^K\frac{p(x, z_k)}{q(z_k)}\Big].

    The last axis of ``log_weights`` holds :math:`S` independent values :math:`\log w_s =
    \log p(x, z_s) - \log q(z_s)`; ``S`` must be a multiple of ``k`` with at least two groups. The samples
    are split into :math:`m = S/K` consecutive groups of :math:`K`; each group gives one unbiased estimate
    :math:`\hat{\mathcal L}_K^{(i)} = \operatorname{logsumexp}_k(\log w_k) - \log K` (evaluated with the
    maximum subtracted first, so huge or tiny weights neither overflow nor underflow), and the result is
    their mean, with standard error :math:`\operatorname{sd}(\hat{\mathcal L}_K^{(i)})/\sqrt m`.

    Parameters
    ----------
    log_weights : array_like or torch.Tensor, shape ``(..., S)``
        Log importance weights; ``-inf`` (a weight of zero) is allowed.
    k : int
        The number of samples :math:`K` per bound.

    Returns
    -------
    IWAEBound
        ``estimate`` and ``std_error``, float64 arrays of shape ``(...)``.

    Raises
    ------
    TypeError
        If ``log_weights`` is not real numbers or ``k`` is not an integer.
    ValueError
        If ``log_weights`` contains NaN or ``+inf``, or ``S`` is not a multiple of ``k`` with
        ``S // k >= 2``.
    """
    array = _log_weights(log_weights)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    k = int(k)
    n = array.shape[-1]
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n % k or n // k < 2:
        raise ValueError(
            f"the last axis of log_weights ({n} samples) must hold at least two groups of k = {k} samples"
        )
    groups = array.reshape(*array.shape[:-1], n // k, k)
    top = groups.max(axis=-1, keepdims=True)
    finite_top = np.where(
        np.isfinite(top), top, 0.0
    )  # a group of zero weights gives -inf, not NaN
    with np.errstate(divide="ignore"):
        per_group = (
            np.log(np.exp(groups - finite_top).sum(axis=-1))
            + finite_top[..., 0]
            - math.log(k)
        )
    m = per_group.shape[-1]
    estimate = per_group.mean(axis=-1)
    with np.errstate(
        invalid="ignore"
    ):  # a group of zero weights: the estimate is -inf, its error inf
        std_error = per_group.std(axis=-1, ddof=1) / math.sqrt(m)
    std_error = np.where(np.isneginf(estimate), np.inf, std_error)
    return IWAEBound(
        np.asarray(estimate, dtype=np.float64), np.asarray(std_error, dtype=np.float64)
    )


def vae_log_weights(
    model: Any, x: Any, n_samples: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Log importance weights of a VAE with its encoder as proposal, shape ``(batch, n_samples)``.

    .. math::

        \log w_s = \log p_\theta(x\mid z_s) + \log p(z_s) - \log q_\phi(z_s\mid x),\qquad
        z_s = \mu_\phi(x) + \sigma_\phi(x)\odot\varepsilon_s,\ \varepsilon_s\sim\mathcal N(0, I),

    with :math:`p(z) = \mathcal N(0, I)`. Evaluated in the model's dtype, without gradient, and returned
    as float64. ``iwae_bound(vae_log_weights(model, x, S), k)`` estimates :math:`\mathcal L_K` per example;
    the noise is drawn in the same order as :func:`klbook.models.importance_log_likelihood`, so with
    ``S = k`` and the same generator state one group reproduces that function's value.
    """
    from klbook import models

    model = models._check_vae(model)
    x = models._as_batch(x, model.input_dim, dtype=models._dtype(model))
    n_samples = models._check_positive_int("n_samples", n_samples)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        chunks = []
        for start in range(0, n_samples, models._CHUNK):
            size = min(models._CHUNK, n_samples - start)
            eps = torch.randn(
                (size, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device
            )
            z = mu + std * eps
            log_q = (-0.5 * eps**2 - 0.5 * logvar - half_log_2pi).sum(-1)
            log_prior = (-0.5 * z**2 - half_log_2pi).sum(-1)
            log_lik = model.log_likelihood(model.decode(z), x.expand(size, *x.shape))
            chunks.append(log_lik + log_prior - log_q)
        return torch.cat(chunks).to(torch.float64).T.contiguous()
