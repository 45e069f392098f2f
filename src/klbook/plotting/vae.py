"""Figures of chapter 5 (the VAE and its ELBO).

Each function draws one figure in the book's style (:func:`klbook.plotting.style.book_style`) and returns
``(fig, axes)`` so that a notebook cell is one call. Nothing here computes a result the text relies on:
the numbers are computed in the chapter and passed in.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .style import TEXT_WIDTH, book_style, legend_below, new_figure, panel_figure

__all__ = [
    "plot_mc_elbo",
    "plot_gradient_spread",
    "plot_training_curves",
    "plot_image_rows",
    "plot_kl_per_dimension",
    "plot_rate_distortion",
    "plot_aggregate_posterior",
]


# Colours of the estimators in plot_mc_elbo, cycled; C3 is kept for the log p(x) line.
_ESTIMATOR_COLOURS = ("C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9")

# The per-epoch terms plot_training_curves draws, as keys of a train_vae history entry.
_HISTORY_KEYS = ("train_reconstruction", "test_reconstruction", "train_kl", "test_kl")


def plot_mc_elbo(
    n_samples: Sequence[int],
    estimates: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    elbo: float,
    log_evidence: float,
) -> tuple[Any, Any]:
    r"""Monte Carlo ELBO estimates against the number of samples, with :math:`\pm 2` standard errors.

    Parameters
    ----------
    n_samples
        Sample sizes (x axis, log scale), positive.
    estimates
        ``label -> (means, standard_errors)``, at least one estimator, each array finite and of the length of
        ``n_samples`` (standard errors non-negative). Colours cycle if there are many estimators.
    elbo, log_evidence
        The exact ELBO and :math:`\log p(x)`, drawn as horizontal lines (finite).
    """
    n = np.asarray(n_samples, dtype=float)
    curves = {label: (np.asarray(m, dtype=float), np.asarray(e, dtype=float)) for label, (m, e) in estimates.items()}
    with book_style():
        fig, ax = new_figure(width=6.4, height=3.6)
        for (label, (means, errors)), colour in zip(curves.items(), itertools.cycle(_ESTIMATOR_COLOURS)):
            ax.plot(n, means, "o-", color=colour, ms=3, label=label)
            ax.fill_between(n, means - 2 * errors, means + 2 * errors, color=colour, alpha=0.2)
        ax.axhline(elbo, color="k", ls="--", lw=1, label="exact ELBO")
        ax.axhline(log_evidence, color="C3", ls=":", lw=1.5, label=r"$\log p(x)$")
        ax.set_xscale("log")
        ax.set_xlabel("number of samples $z \\sim q$")
        ax.set_ylabel("ELBO estimate (nats)")
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig, ax


def plot_gradient_spread(
    dims: Sequence[int], std_reparam: Sequence[float], std_score: Sequence[float]
) -> tuple[Any, Any]:
    """Standard deviation of single-sample gradient estimates against the latent dimension (log-log).

    All three arrays have one length; both axes are logarithmic.
    """
    d, score, reparam = (np.asarray(a, dtype=float) for a in (dims, std_score, std_reparam))
    with book_style():
        fig, ax = new_figure(width=5.2, height=3.4)
        ax.loglog(d, score, "s-", label="score function")
        ax.loglog(d, reparam, "o-", label="reparameterisation")
        ax.set_xlabel("latent dimension $k$")
        ax.set_ylabel(r"std of one-sample estimate of $\partial/\partial\mu_1$")
        ax.legend()
        fig.tight_layout()
    return fig, ax


def plot_training_curves(history: Sequence[Mapping[str, float]]) -> tuple[Any, Any]:
    """Per-epoch reconstruction and KL terms (train and test) from a ``train_vae`` history.
    """
    terms = {key: np.array([entry[key] for entry in history], dtype=float) for key in _HISTORY_KEYS}
    epochs = np.arange(1, len(history) + 1)

    def draw(fig: Any, axes: Any) -> None:
        for ax, term, title in zip(
            axes,
            ("reconstruction", "kl"),
            (r"reconstruction $-\mathbb{E}_q[\log p(x\mid z)]$", r"KL term $D(q(z\mid x)\,\|\,p(z))$"),
        ):
            for split, style in (("train", "-"), ("test", "--")):
                ax.plot(epochs, terms[f"{split}_{term}"], style, label=split)
            ax.set_xlabel("epoch")
            ax.set_ylabel("nats per example")
            ax.set_title(title)
            ax.legend()
        fig.tight_layout()

    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=3.2, phone_height=6.0)
    return fig, axes


def plot_image_rows(
    rows: Mapping[str, np.ndarray], *, image_shape: tuple[int, int] = (8, 8), width: float | None = None
) -> tuple[Any, Any]:
    """Rows of small grey-scale images, one labelled row per entry of ``rows``, drawn as one mosaic.

    Parameters
    ----------
    rows
        ``label -> array of shape (m, prod(image_shape))`` with values in ``[0, 1]``; all rows the same
        ``m >= 1``.
    image_shape
        Shape each flattened image is reshaped to.
    width
        Figure width in inches (default: from the number of images per row).
    """
    arrays = {label: np.asarray(images, dtype=float) for label, images in rows.items()}
    m = len(next(iter(arrays.values())))
    h, w = image_shape
    gap = 1
    mosaic = np.full((len(arrays) * (h + gap) - gap, m * (w + gap) - gap), np.nan)
    for r, images in enumerate(arrays.values()):
        for c in range(m):
            mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[c].reshape(h, w)
    fig_width = width if width is not None else 0.5 * m + 1.8
    with book_style():
        fig, ax = new_figure(width=fig_width, height=0.55 * len(arrays) + 0.3)
        cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
        ax.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(len(arrays))])
        ax.set_yticklabels(list(arrays))
        ax.set_xticks([])
        ax.tick_params(length=0)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.tight_layout()
    return fig, ax


def plot_kl_per_dimension(
    kl_by_run: Mapping[str, Sequence[float]],
    *,
    threshold: float | None = None,
    xlabel: str = "latent dimension",
) -> tuple[Any, Any]:
    """Grouped bars of the average KL of each latent dimension (nats, symmetric-log scale), one bar colour
    per run; ``threshold`` draws the activity threshold as a dotted line.

    Every run holds one value per latent dimension.
    """
    runs = {label: np.asarray(values, dtype=float) for label, values in kl_by_run.items()}
    n_dims = len(next(iter(runs.values())))
    width = 0.8 / len(runs)
    with book_style():
        fig, ax = new_figure(width=TEXT_WIDTH, height=3.4)
        for i, (label, values) in enumerate(runs.items()):
            ax.bar(np.arange(n_dims) + (i - (len(runs) - 1) / 2) * width, values, width, label=label)
        if threshold is not None:
            ax.axhline(threshold, color="k", ls=":", lw=1, label=f"{threshold:g} nats")
        ax.set_xticks(np.arange(n_dims))
        ax.set_xticklabels([str(j + 1) for j in range(n_dims)])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("average KL per dimension (nats)")
        ax.set_yscale("symlog", linthresh=0.01)
        top = max(float(np.max(v)) for v in runs.values())
        ax.set_ylim(0.0, max(top, threshold or 0.0) * 8.0)
        ax.legend(ncol=3, loc="upper center")
        fig.tight_layout()
    return fig, ax


def plot_rate_distortion(
    rates: Sequence[float], distortions: Sequence[float], betas: Sequence[float]
) -> tuple[Any, Any]:
    r"""Test-set rate (KL term) against distortion (reconstruction term), one labelled point per :math:`\beta`.

    Dotted lines of slope :math:`-1` are lines of constant ELBO (:math:`-\text{ELBO} = D + R`).

    The three arrays have one length.
    """
    r, dist, b = (np.asarray(a, dtype=float) for a in (rates, distortions, betas))
    with book_style():
        fig, ax = new_figure(width=5.6, height=3.8)
        ax.plot(r, dist, "o-", color="C0", label=r"$\beta$-VAE runs (test set)")
        for ri, di, bi in zip(r, dist, b):
            ax.annotate(f"β={bi:g}", (ri, di), textcoords="offset points", xytext=(5, 4))
        total = r + dist
        span = np.linspace(0.0, r.max() * 1.05, 50)
        for level in (total.min(), np.median(total)):
            ax.plot(span, level - span, ":", color="grey", lw=1)
        ax.plot([], [], ":", color="grey", label="constant ELBO")
        ax.set_xlim(0.0, r.max() * 1.1)
        ax.set_ylim(dist.min() - 0.1 * np.ptp(dist) - 1, dist.max() + 0.1 * np.ptp(dist) + 1)
        ax.set_xlabel("rate $R$ = KL term (nats per example)")
        ax.set_ylabel("distortion $D$ (nats per example)")
        ax.legend()
        fig.tight_layout()
    return fig, ax


def plot_aggregate_posterior(
    codes: np.ndarray, labels: np.ndarray | None = None, *, limit: float = 4.0
) -> tuple[Any, Any]:
    r"""Scatter of codes drawn from the aggregate posterior, over contours of the prior :math:`\mathcal N(0, I_2)`.

    The contours are drawn at the radii that hold 39%, 86% and 99% of the prior's mass (1, 2 and 3
    standard deviations in every direction).

    Parameters
    ----------
    codes
        Finite array of shape ``(n, 2)``, ``n >= 1``.
    labels
        Optional ``n`` class labels (0..9), used as colours.
    limit
        Half-width of the square window, positive.
    """
    z = np.asarray(codes, dtype=float)
    with book_style():
        fig, ax = new_figure(width=5.0, height=4.8, layout="constrained")
        if labels is None:
            ax.scatter(z[:, 0], z[:, 1], s=3, alpha=0.5, label=r"$z \sim q(z)$")
        else:
            scatter = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.6)
            fig.colorbar(scatter, ax=ax, label="digit class", ticks=range(10))
        t = np.linspace(0, 2 * np.pi, 200)
        for radius in (1.0, 2.0, 3.0):
            ax.plot(radius * np.cos(t), radius * np.sin(t), "k-", lw=0.8, alpha=0.7)
        ax.plot([], [], "k-", lw=0.8, label=r"prior $\mathcal{N}(0, I)$: radius 1, 2, 3")
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
        legend_below(fig, ax)
    return fig, ax
