r"""An equal-weight mixture of isotropic Gaussians in the plane: samples and the exact log-density.

.. math::

    p(x) = \frac1K\sum_{k=1}^K\mathcal N(x;\ m_k,\ s^2 I_2),\qquad
    \log p(x) = \operatorname{logsumexp}_k\Big(-\frac{\lVert x - m_k\rVert^2}{2s^2}\Big) - \log K - \log(2\pi s^2).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

__all__ = ["mixture_sample", "mixture_logpdf"]


def _check(means: Any, std: float) -> tuple[np.ndarray, float]:
    m = np.asarray(means, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 2 or m.shape[0] == 0 or not np.isfinite(m).all():
        raise ValueError(f"means must be a finite array of shape (K, 2), got {m.shape}")
    s = float(std)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"std must be finite and positive, got {std!r}")
    return m, s


def mixture_sample(means: Any, std: float, n: int, *, seed: int) -> np.ndarray:
    """``n`` points from the mixture (a component uniformly at random, then Gaussian noise), shape ``(n, 2)``."""
    m, s = _check(means, std)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    component = rng.integers(m.shape[0], size=n)
    return m[component] + s * rng.standard_normal((n, 2))


def mixture_logpdf(x: Any, means: Any, std: float) -> np.ndarray:
    """The exact log-density of the mixture at the rows of ``x`` (shape ``(n, 2)``), by log-sum-exp."""
    m, s = _check(means, std)
    points = np.asarray(x, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise ValueError(f"x must be a finite array of shape (n, 2), got {points.shape}")
    sq = ((points[:, None, :] - m[None, :, :]) ** 2).sum(axis=-1)
    return logsumexp(-sq / (2 * s * s), axis=1) - np.log(m.shape[0]) - np.log(2 * np.pi * s * s)
