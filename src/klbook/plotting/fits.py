r"""Figures for the chapter on forward and reverse KL (book/06_forward_reverse).

Every divergence drawn here is computed by :mod:`klbook.mixtures` (never re-typed), so a figure can only
show what the library computes. Each function draws one figure in the book's style and returns
``(fig, ax)`` or ``(fig, axes)``, as :func:`matplotlib.pyplot.subplots` does.

Conventions: a mixture is ``weights, means, stds`` (standard deviations); a Gaussian fit is a triple
``(label, mu, sigma)``; the reverse divergence is :math:`D_{\mathrm{KL}}(q\,\|\,p)` with q the Gaussian
and p the mixture.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.patches import Ellipse

from ..gaussian import normal_logpdf
from ..mixtures import kl_normal_mixture, mixture_logpdf
from .style import (
    TEXT_WIDTH,
    book_style,
    label_contours,
    legend_below,
    legend_beside,
    new_figure,
    on_phone,
    panel_figure,
)

__all__ = [
    "plot_mixture_fits",
    "reverse_kl_grid",
    "plot_reverse_landscape",
    "plot_iterates",
    "plot_separation_scan",
    "plot_factorised_fits",
    "plot_coordinate_ascent",
]

# Fits are drawn in colours C1.. (C0 is the mixture p) and four line styles, both cycled.
_FIT_COLOURS = tuple(f"C{k}" for k in range(1, 10))
_FIT_LINESTYLES = ("-", "--", "-.", ":")

# Default contour levels of plot_reverse_landscape (nats).
_LADDER = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0)


def _fit_styles() -> Iterator[tuple[str, str]]:
    """``(colour, line style)`` of the first, second, ... fit, without end: colours cycle through nine and line
    styles through four, so 36 fits in a row are told apart."""
    for i in itertools.count():
        yield _FIT_COLOURS[i % len(_FIT_COLOURS)], _FIT_LINESTYLES[i % len(_FIT_LINESTYLES)]


def _mixture_range(means: Sequence[float], stds: Sequence[float], pad: float = 4.0) -> tuple[float, float]:
    low = min(m - pad * s for m, s in zip(means, stds))
    high = max(m + pad * s for m, s in zip(means, stds))
    return float(low), float(high)


def plot_mixture_fits(
    weights: Sequence[float],
    means: Sequence[float],
    stds: Sequence[float],
    fits: Sequence[tuple[str, float, float]],
    *,
    x_range: tuple[float, float] | None = None,
    n: int = 801,
) -> tuple[Any, Any]:
    """The mixture density p (shaded) and Gaussian densities ``N(mu, sigma^2)`` drawn over it.

    ``fits`` is a sequence of ``(label, mu, sigma)`` (any number: colours and line styles cycle), listed in
    a legend under the axes; ``n >= 2`` is the number of grid points.
    """
    low, high = x_range if x_range is not None else _mixture_range(means, stds)
    x = np.linspace(low, high, n)
    density = np.exp(mixture_logpdf(x, weights, means, stds))
    with book_style():
        fig, ax = new_figure(width=6.4, height=3.4 + 0.25 * (len(fits) + 1) / 2, layout="constrained")
        ax.fill_between(x, density, color="C0", alpha=0.25, label="$p$ (the mixture)")
        ax.plot(x, density, color="C0", linewidth=1.0)
        for (label, mu, sigma), (color, style) in zip(fits, _fit_styles()):
            ax.plot(x, np.exp(normal_logpdf(x, mu, sigma)), color=color, linestyle=style, linewidth=2, label=label)
        ax.set_xlabel("$x$")
        ax.set_ylabel("density")
        ax.set_ylim(bottom=0.0)
        legend_below(fig, ax)
    return fig, ax


def reverse_kl_grid(
    weights: Sequence[float],
    means: Sequence[float],
    stds: Sequence[float],
    mu_range: tuple[float, float],
    sigma_range: tuple[float, float],
    n: int = 41,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`D_{\mathrm{KL}}(\mathcal N(\mu, \sigma^2)\,\|\,p)` on an ``n`` x ``n`` grid (sigma spaced evenly in
    :math:`\ln\sigma`), by :func:`klbook.mixtures.kl_normal_mixture`.

    Returns
    -------
    mu, sigma, divergence
        Arrays of shape ``(n, n)``; ``mu`` varies along axis 1, ``sigma`` along axis 0.
    """
    mu, sigma = np.meshgrid(np.linspace(*mu_range, n), np.geomspace(*sigma_range, n))
    return mu, sigma, kl_normal_mixture(mu, sigma, weights, means, stds, "reverse")


def plot_reverse_landscape(
    grid: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    minima: Sequence[tuple[float, float, float]] = (),
    saddles: Sequence[tuple[float, float]] = (),
    paths: Sequence[np.ndarray] = (),
    levels: Sequence[float] | None = None,
) -> tuple[Any, Any]:
    r"""Contour map of the reverse divergence over the mean and standard deviation of q.

    Parameters
    ----------
    grid
        ``(mu, sigma, divergence)`` as returned by :func:`reverse_kl_grid`: finite 2-D arrays of one shape
        (at least 2 x 2), ``sigma`` positive.
    minima
        ``(mu, sigma, divergence)`` of local minima: marked with a star and labelled with the divergence.
    saddles
        ``(mu, sigma)`` of saddle points: marked with a cross.
    paths
        Arrays of shape ``(steps, 2)`` of iterates ``(mu, sigma)``: drawn as lines from a circle (start).
    levels
        Contour levels (nats), finite and increasing; by default the rungs of a fixed ladder (0.3, 0.4, ...,
        20 nats) that lie between the smallest and the largest value on the grid, or, if fewer than two
        rungs do (a landscape zoomed in on a minimum), evenly spaced round levels across its range.
    """
    mu, sigma, div = (np.asarray(a, dtype=float) for a in grid)
    paths = [np.asarray(path, dtype=float) for path in paths]
    low, top = float(np.min(div)), float(np.max(div))
    if levels is None:
        levels = [lv for lv in _LADDER if low < lv < top]
        if len(levels) < 2:
            levels = [float(lv) for lv in mticker.MaxNLocator(nbins=8).tick_values(low, top) if low < lv < top]
    else:
        levels = [float(lv) for lv in levels]
    bottom = min(0.0, low)  # the filled map starts at 0 nats (or below, for round-off below 0)
    with book_style():
        fig, ax = new_figure(width=6.4, height=5.0, layout="constrained")
        filled = ax.contourf(mu, sigma, div, levels=[bottom] + [lv for lv in levels if lv > bottom],
                             cmap="viridis_r", extend="max")
        lines = ax.contour(mu, sigma, div, levels=levels, colors="white", linewidths=0.5)
        label_contours(ax, lines)
        for i, path in enumerate(paths):
            ax.plot(path[:, 0], path[:, 1], color="black", linewidth=1.2,
                    label="gradient-descent paths" if i == 0 else None)
            ax.plot(path[0, 0], path[0, 1], marker="o", color="black", markersize=5, linestyle="none",
                    label="starting points" if i == 0 else None)
        for i, (m, s, d) in enumerate(minima):
            ax.plot(m, s, marker="*", color="red", markersize=14, linestyle="none",
                    label="local minima" if i == 0 else None)
            ax.annotate(f"D = {d:.3f}", (m, s), textcoords="offset points", xytext=(10, -16), color="red",
                        fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
        for i, (m, s) in enumerate(saddles):
            ax.plot(m, s, marker="X", color="orange", markersize=10, linestyle="none",
                    label="saddle point" if i == 0 else None)
        ax.set_yscale("log")
        s_lo, s_hi = float(np.min(sigma)), float(np.max(sigma))
        nice = [t * 10.0**e for e in range(-3, 4) for t in (1.0, 2.0, 5.0)]
        ax.set_yticks([t for t in nice if s_lo <= t <= s_hi])
        ax.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_xlabel(r"mean $\mu$ of $q$")
        ax.set_ylabel(r"standard deviation $\sigma$ of $q$ (log scale)")
        ax.grid(False)
        colorbar = fig.colorbar(filled, ax=ax, format=mticker.FormatStrFormatter("%g"))
        colorbar.set_label(r"$D_{\mathrm{KL}}(q\,\|\,p)$ (nats)")
        if ax.get_legend_handles_labels()[0]:  # minima, saddles or paths were drawn
            legend_below(fig, ax)
    return fig, ax


def plot_iterates(
    weights: Sequence[float],
    means: Sequence[float],
    stds: Sequence[float],
    paths: Sequence[np.ndarray],
    steps: Sequence[int],
    *,
    row_labels: Sequence[str] | None = None,
    x_range: tuple[float, float] | None = None,
    n: int = 401,
) -> tuple[Any, Any]:
    r"""One panel per optimisation run, stacked, each with the iterates at the selected steps overlaid.

    Each panel shows the mixture p (shaded) and the iterates :math:`q_t = \mathcal N(\mu_t, \sigma_t^2)`
    at ``steps`` (orange, later steps darker and solid), with :math:`D_{\mathrm{KL}}(q_t\,\|\,p)` from
    :func:`klbook.mixtures.kl_normal_mixture` in the legend beside the panel. ``paths[i][t]`` is
    ``(mu_t, sigma_t)``; each path is an array of shape ``(steps, 2)``, and ``row_labels`` (the panel
    titles) has one entry per path. Panels are stacked rather than set side by side so that each stays
    wide enough to read on a phone.
    """
    paths = [np.asarray(path, dtype=float) for path in paths]
    low, high = x_range if x_range is not None else _mixture_range(means, stds)
    x = np.linspace(low, high, n)
    density = np.exp(mixture_logpdf(x, weights, means, stds))
    shades = plt.get_cmap("Oranges")(np.linspace(0.45, 1.0, len(steps)))
    with book_style():
        fig, axes = new_figure(len(paths), 1, width=TEXT_WIDTH, height=1.7 * len(paths) + 0.5, sharex=True,
                               sharey=True, squeeze=False)
        axes = axes[:, 0]
        top = float(density.max())
        for i, (ax, path) in enumerate(zip(axes, paths)):
            ax.fill_between(x, density, color="C0", alpha=0.3, linewidth=0, label="$p$")
            for j, step in enumerate(steps):
                mu, sigma = (float(v) for v in path[step])
                q = np.exp(normal_logpdf(x, mu, sigma))
                top = max(top, float(q.max()))
                div = float(kl_normal_mixture(mu, sigma, weights, means, stds, "reverse"))
                ax.plot(x, q, color=shades[j], linewidth=1.8, linestyle="-" if j == len(steps) - 1 else "--",
                        label=f"step {step}: D = {div:.3f}")
            ax.set_title(row_labels[i] if row_labels is not None else f"run {i + 1}", loc="left")
            ax.set_ylabel("density")
            legend_beside(ax)
        axes[-1].set_xlabel("$x$")
        axes[0].set_ylim(0.0, 1.05 * top)
        fig.tight_layout()
    return fig, axes


def plot_separation_scan(
    branches: Sequence[dict[str, Any]],
    *,
    fold: float,
    switch: float,
    bimodal: float,
    asymptote: float,
) -> tuple[Any, Any]:
    r"""Stationary points of the reverse fit to ``0.5 N(-d/2, 1) + 0.5 N(d/2, 1)`` against the separation d.

    Each branch is a dict with keys ``separation``, ``mu``, ``divergence`` (arrays) and ``kind``
    (``"minimum"`` or ``"saddle"``) and ``label``. Left: the fitted mean of each stationary point, with the
    component means :math:`\pm d/2` dotted. Right: the divergence of each branch of minima, the
    separation ``fold`` where the one-mode minima appear, the separation ``switch`` where they become the
    global minimum, the separation ``bimodal`` beyond which p has two modes, and the horizontal
    ``asymptote`` (:math:`\ln 2`) that the one-mode divergence approaches. An optional key ``color`` sets
    a branch's colour.
    """
    branches = [{**b, **{key: np.asarray(b[key], dtype=float) for key in ("separation", "mu", "divergence")}}
                for b in branches]

    def draw(fig: Any, axes: Any) -> None:
        ax = axes[0]
        d_all = np.concatenate([b["separation"] for b in branches])
        d_line = np.linspace(0.0, float(d_all.max()), 2)
        ax.plot(d_line, d_line / 2, color="0.6", linestyle=":", linewidth=1, label=r"component means $\pm d/2$")
        ax.plot(d_line, -d_line / 2, color="0.6", linestyle=":", linewidth=1)
        styles = {"minimum": "-", "saddle": "--"}
        for k, b in enumerate(branches):
            ax.plot(b["separation"], b["mu"], color=b.get("color", f"C{k}"), linestyle=styles[b["kind"]],
                    linewidth=2 if b["kind"] == "minimum" else 1.2, label=b["label"])
        for value, color in ((fold, "C3"), (switch, "C2")):
            ax.axvline(value, color=color, linewidth=0.8)
        ax.set_xlabel("separation $d$ of the component means")
        ax.set_ylabel(r"mean $\mu$ of the stationary $q$")
        ax = axes[1]
        for k, b in enumerate(branches):
            if b["kind"] != "minimum":
                continue
            ax.plot(b["separation"], b["divergence"], color=b.get("color", f"C{k}"), linewidth=2, label=b["label"])
        ax.axhline(asymptote, color="0.5", linestyle=":", linewidth=1, label=r"$\ln 2$")
        ax.axvline(bimodal, color="0.4", linewidth=0.8, linestyle="--", label=f"p bimodal beyond d = {bimodal:g}")
        ax.axvline(fold, color="C3", linewidth=0.8, label=f"one-mode minima appear, d = {fold:.3f}")
        ax.axvline(switch, color="C2", linewidth=0.8, label=f"they become global, d = {switch:.3f}")
        ax.set_xlabel("separation $d$ of the component means")
        ax.set_ylabel(r"$D_{\mathrm{KL}}(q\,\|\,p)$ at the minimum (nats)")
        legend_below(fig, *axes, ncol=1 if on_phone(fig) else 2)

    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=4.6, layout="constrained", phone_height=8.6)
    return fig, axes


def _ellipse(center: np.ndarray, cov: np.ndarray, radius: float, **kwargs: Any) -> Ellipse:
    eigval, eigvec = np.linalg.eigh(cov)
    angle = float(np.degrees(np.arctan2(eigvec[1, 1], eigvec[0, 1])))
    width, height = 2 * radius * np.sqrt(eigval[1]), 2 * radius * np.sqrt(eigval[0])
    return Ellipse(tuple(center), width, height, angle=angle, **kwargs)


def _gaussian_2d(mean: Any, cov: Any) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``cov`` of a 2-D Gaussian as float arrays."""
    mean = np.asarray(mean, dtype=float)
    cov = np.asarray(cov, dtype=float)
    return mean, cov


def plot_factorised_fits(
    mean: Sequence[float],
    cov: np.ndarray,
    fits: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    radii: Sequence[float] = (2.0,),
) -> tuple[Any, Any]:
    r"""Contours of a 2-D Gaussian :math:`p = \mathcal N(\mu, \Sigma)` and of factorised Gaussian fits.

    Each contour is the ellipse :math:`(x-\mu)^\top\Sigma^{-1}(x-\mu) = r^2` for r in ``radii`` (by
    default r = 2, which encloses :math:`1 - e^{-2}\approx 86\%` of the mass in two dimensions).
    ``fits`` is a sequence of ``(label, mean, variances)`` of diagonal Gaussians, any number of them
    (colours and line styles cycle).
    """
    mean, cov = _gaussian_2d(mean, cov)
    radii = np.asarray(radii, dtype=float)
    checked = [(label, np.asarray(m, dtype=float), np.asarray(v, dtype=float)) for label, m, v in fits]
    with book_style():
        fig, ax = new_figure(width=TEXT_WIDTH, height=4.4)
        for k, r in enumerate(radii):
            ax.add_patch(_ellipse(mean, cov, r, facecolor="C0", alpha=0.25 if k == 0 else 0.1,
                                  edgecolor="C0", linewidth=1.5,
                                  label=r"$p = \mathcal{N}(\mu, \Sigma)$" if k == 0 else None))
        for (label, m, variances), (color, style) in zip(checked, _fit_styles()):
            for k, r in enumerate(radii):
                ax.add_patch(_ellipse(m, np.diag(variances), r,
                                      fill=False, edgecolor=color, linestyle=style, linewidth=2,
                                      label=label if k == 0 else None))
        extent = radii.max() * np.sqrt(np.max(np.concatenate([np.diag(cov)] + [v for _, _, v in checked])))
        ax.set_xlim(mean[0] - 1.15 * extent, mean[0] + 1.15 * extent)
        ax.set_ylim(mean[1] - 1.15 * extent, mean[1] + 1.15 * extent)
        ax.set_aspect("equal")
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
        legend_beside(ax)
        fig.tight_layout()
    return fig, ax


def plot_coordinate_ascent(
    mean: Sequence[float],
    cov: np.ndarray,
    path: np.ndarray,
    variances: Sequence[float],
    *,
    ellipse_steps: Sequence[int] = (0, -1),
    radius: float = 2.0,
) -> tuple[Any, Any]:
    r"""Mean-field coordinate ascent on a 2-D Gaussian :math:`p = \mathcal N(\mu, \Sigma)`.

    Draws the contour of p at Mahalanobis radius ``radius`` (shaded), the path of the means of the
    factorised :math:`q = \mathcal N(m_1, v_1)\,\mathcal N(m_2, v_2)` (``path`` has one row per iterate,
    the start first; each coordinate update moves one entry, so the path runs parallel to the axes), and
    the contours of q at the iterates listed in ``ellipse_steps`` (negative indices count from the end),
    all with the fixed ``variances`` the updates give, :math:`v_j = 1/\Lambda_{jj}`.
    """
    mean, cov = _gaussian_2d(mean, cov)
    path = np.asarray(path, dtype=float)
    variances = np.asarray(variances, dtype=float)
    steps = [step % len(path) for step in ellipse_steps]
    with book_style():
        fig, ax = new_figure(width=5.6, height=5.2)
        ax.add_patch(_ellipse(mean, cov, radius, facecolor="C0", alpha=0.25, edgecolor="C0", linewidth=1.5,
                              label=r"$p = \mathcal{N}(\mu, \Sigma)$"))
        for k, step in enumerate(steps):
            # later iterates darker, so the eye follows the order
            shade = 0.35 + 0.65 * (k + 1) / len(steps)
            ax.add_patch(_ellipse(path[step], np.diag(variances), radius, fill=False, edgecolor="C1",
                                  alpha=shade, linestyle="--" if k < len(steps) - 1 else "-", linewidth=2,
                                  label="$q$ at the start" if step == 0 else f"$q$ after {step} updates"))
        ax.plot(path[:, 0], path[:, 1], color="k", marker="o", markersize=3, linewidth=1,
                label="means of $q$, one factor updated per step")
        ax.plot(*mean, marker="+", color="C3", markersize=12, markeredgewidth=2, linestyle="none",
                label=r"mean $\mu$ of $p$")
        corners = [path]
        for centre, c in [(mean, cov)] + [(path[s], np.diag(variances)) for s in steps]:
            half = radius * np.sqrt(np.diag(c))
            corners.append(np.array([centre - half, centre + half]))
        corners = np.concatenate(corners)
        low, high = corners.min(axis=0), corners.max(axis=0)
        pad = 0.08 * (high - low).max()
        ax.set_xlim(low[0] - pad, high[0] + pad)
        ax.set_ylim(low[1] - pad, high[1] + pad)
        ax.set_aspect("equal")
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
        # below the axes: inside, it would cover the ellipses
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        fig.tight_layout()
    return fig, ax
