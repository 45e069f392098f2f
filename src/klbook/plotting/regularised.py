"""Figures of the regularised autoencoders of chapter 4: where the hidden units' average activations
land under the sparsity penalty, and how sensitive the codes are under the contractive penalty."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .style import new_figure


def activation_histograms(
    mean_activations: Mapping[str, Any],
    rho: float,
    *,
    bins: int = 50,
    width: float = 6.4,
    height: float = 3.0,
) -> tuple[Any, Any]:
    r"""Histograms of the hidden units' average activations :math:`\hat\rho_j`, one per model, on [0, 1],
    with the sparsity target :math:`\rho` marked by a vertical line. Returns ``(fig, ax)``."""
    fig, ax = new_figure(width=width, height=height)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for name, values in mean_activations.items():
        ax.hist(np.asarray(values, dtype=float), bins=edges, alpha=0.6, label=name)
    ax.axvline(rho, color="black", linestyle="--", linewidth=1, label=rf"target $\rho = {rho:g}$")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(r"average activation $\hat\rho_j$ of a hidden unit over the training images")
    ax.set_ylabel("number of hidden units")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig, ax


def jacobian_norm_histograms(
    norms: Mapping[str, Any],
    *,
    bins: int = 40,
    width: float = 6.4,
    height: float = 3.0,
) -> tuple[Any, Any]:
    r"""Overlaid histograms of :math:`\lVert J_f(x)\rVert_F` over a set of inputs, one per model, on a
    shared logarithmic axis. Returns ``(fig, ax)``."""
    fig, ax = new_figure(width=width, height=height)
    every = np.concatenate([np.asarray(v, dtype=float) for v in norms.values()])
    edges = np.geomspace(every.min(), every.max(), bins + 1)
    for name, values in norms.items():
        ax.hist(np.asarray(values, dtype=float), bins=edges, alpha=0.6, label=name)
    ax.set_xscale("log")
    ax.set_xlabel(r"$\Vert J_f(x)\Vert_F$ of a test image $x$ (log axis)")
    ax.set_ylabel("number of test images")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig, ax
