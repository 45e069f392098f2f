"""Figures of chapter 8 (KL divergence in today's generative models).

Each function draws numbers the chapter has already computed and returns ``(fig, axes)`` as
:func:`matplotlib.pyplot.subplots` does, in the book's style (:func:`klbook.plotting.style.book_style`).
Bad input (wrong shapes, lengths that differ, NaN, negative probabilities) raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .style import TEXT_WIDTH, book_style, legend_below, new_figure, on_phone, panel_figure

__all__ = ["plot_elbo_terms", "plot_samples", "plot_policies", "plot_sequence_classes"]


def plot_elbo_terms(step_terms: Any, weights: Any, *, prior: float) -> tuple[Any, Any]:
    r"""The terms of a diffusion model's negative ELBO against the step, and the weights that turn the noise loss into them.

    Parameters
    ----------
    step_terms
        Average :math:`L_{t-1}` for :math:`t = 2, \dots, T` (nats, positive), drawn on a log axis.
    weights
        :math:`\lambda_t` for the same steps (positive), drawn on a log axis in a second panel.
    prior
        The prior term :math:`L_T` (nats), marked as a horizontal line in the first panel if positive.
    """
    terms, lam = np.asarray(step_terms, dtype=float), np.asarray(weights, dtype=float)
    steps = np.arange(2, terms.size + 2)

    def draw(fig: Any, axes: Any) -> None:
        left, right = axes
        left.plot(steps, terms, "o-", ms=3, color="C0", label=r"$L_{t-1}$, step $t$")
        if prior > 0:
            left.axhline(prior, color="C3", linestyle="--", linewidth=1, label=r"prior term $L_T$")
        left.set_yscale("log")
        left.set_xlabel("step $t$")
        left.set_ylabel("nats per point (average)")
        right.plot(steps, lam, "s-", ms=3, color="C1", label=r"$\lambda_t$ (ELBO weight)")
        right.axhline(lam.mean(), color="0.4", linestyle=":", linewidth=1,
                      label=r"equal weights ($L_{\mathrm{simple}}$), same mean")
        right.set_yscale("log")
        right.set_xlabel("step $t$")
        right.set_ylabel(r"weight of $\Vert\varepsilon-\varepsilon_\theta\Vert^2$")
        legend_below(fig, left, right, ncol=1 if on_phone(fig) else 2)

    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=4.0, layout="constrained", phone_height=7.0)
    return fig, tuple(axes)


def plot_samples(data: Any, samples: Any, *, limit: float = 3.0) -> tuple[Any, Any]:
    """Training data and model samples side by side, on the same square axes ``[-limit, limit]^2``."""
    x, s = np.asarray(data, dtype=float), np.asarray(samples, dtype=float)

    def draw(fig: Any, axes: Any) -> None:
        for ax, points, title, color in ((axes[0], x, "training data", "C0"), (axes[1], s, "model samples", "C1")):
            ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, color=color, linewidths=0)
            ax.set_title(title)
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
            ax.set_aspect("equal")
            if ax.get_subplotspec().is_last_row():  # side by side both; stacked (sharing x) the lower one
                ax.set_xlabel("$x_1$")
            if ax.get_subplotspec().is_first_col():  # side by side the left one (sharing y); stacked both
                ax.set_ylabel("$x_2$")
        fig.tight_layout()

    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=3.8, sharex=True, sharey=True, phone_height=8.0)
    return fig, axes


def plot_policies(tokens: Sequence[str], policies: Mapping[str, Any], reward: Any) -> tuple[Any, Any]:
    """Grouped bars of several distributions over the same tokens, with the reward of each token below.

    Parameters
    ----------
    tokens
        Token names, one per bar group.
    policies
        ``label -> probabilities`` (non-negative, one per token).
    reward
        Reward of each token, drawn in a lower panel.
    """
    n = len(tokens)
    r = np.asarray(reward, dtype=float)
    bars = {label: np.asarray(p, dtype=float) for label, p in policies.items()}
    width = 0.8 / len(bars)
    x = np.arange(n)
    with book_style():
        fig, (top, bottom) = new_figure(2, 1, width=TEXT_WIDTH, height=4.4, sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1]})
        for i, (label, arr) in enumerate(bars.items()):
            top.bar(x + (i - (len(bars) - 1) / 2) * width, arr, width, label=label, color=f"C{i}")
        top.set_ylabel("probability")
        top.legend()
        bottom.bar(x, r, 0.5, color="0.5")
        bottom.set_ylabel("reward")
        bottom.set_xticks(x, list(tokens))
        bottom.set_xlabel("token")
        fig.tight_layout()
    return fig, (top, bottom)


def plot_sequence_classes(classes: Sequence[str], fractions: Mapping[str, Any]) -> tuple[Any, Any]:
    """Horizontal stacked bars: for each model, the fraction of its sequences in each class."""
    rows = {label: np.asarray(f, dtype=float) for label, f in fractions.items()}
    with book_style():
        fig, ax = new_figure(width=TEXT_WIDTH, height=0.55 * len(rows) + 1.3)
        y = np.arange(len(rows))[::-1]
        left = np.zeros(len(rows))
        values = np.array(list(rows.values()))
        for j, name in enumerate(classes):
            ax.barh(y, values[:, j], left=left, color=f"C{j}", label=name)
            for yi, l, v in zip(y, left, values[:, j]):
                if v > 0.06:
                    ax.text(l + v / 2, yi, f"{v:.2f}", ha="center", va="center", color="white")
            left += values[:, j]
        ax.set_yticks(y, list(rows))
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of generated sequences")
        ax.set_ylabel("model")
        ax.grid(False)
        ax.legend(ncol=len(classes), loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(rows) < 4 else -0.25))
        fig.tight_layout()
    return fig, ax
