"""Figures for the chapters on the definition and the properties of the KL divergence.

Every function takes numbers the chapter has already computed with :mod:`klbook` and only draws them, so
the computation stays visible in the notebook. Each returns ``(fig, axes)`` as :func:`matplotlib.pyplot.subplots`
does, drawn in the book's style (:func:`klbook.plotting.style.book_style`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import Normalize

from .style import TEXT_WIDTH, book_style, label_contours, new_figure, panel_figure

__all__ = [
    "plot_pointwise_integrand",
    "plot_bernoulli_kl",
    "plot_asymmetry",
    "plot_f_generators",
    "plot_pinsker",
    "plot_epsilon_dependence",
]


def plot_pointwise_integrand(
    x: Any,
    p: Any,
    q: Any,
    *,
    p_label: str = "$p(x)$",
    q_label: str = "$q(x)$",
    x_label: str = "$x$",
) -> tuple[Any, Any]:
    r"""Two densities (top) and the integrand :math:`p(x)\ln\frac{p(x)}{q(x)}` of their KL divergence (bottom).

    The area under the bottom curve is :math:`D_{\mathrm{KL}}(P\,\|\,Q)` in nats; where
    :math:`q(x) > p(x) > 0` the integrand is negative, and those stretches are shaded in a second colour.

    Parameters
    ----------
    x
        Increasing grid of points (finite).
    p, q
        The two densities on the grid, finite and strictly positive.
    p_label, q_label, x_label
        Legend entries and the horizontal axis label.

    """
    x_, p_, q_ = (np.asarray(a, dtype=float) for a in (x, p, q))
    integrand = p_ * np.log(p_ / q_)
    with book_style():
        fig, (top, bottom) = new_figure(2, 1, height=5.0, sharex=True)
        top.plot(x_, p_, label=p_label, color="C0")
        top.plot(x_, q_, label=q_label, color="C1", linestyle="--")
        top.set_ylabel("density")
        top.legend(loc="upper right")
        bottom.plot(x_, integrand, color="k", linewidth=1.2, label=r"$p\,\ln(p/q)$")
        bottom.fill_between(x_, integrand, 0.0, where=integrand >= 0, color="C2", alpha=0.4,
                            interpolate=True, label="positive part")
        bottom.fill_between(x_, integrand, 0.0, where=integrand < 0, color="C3", alpha=0.4,
                            interpolate=True, label="negative part")
        bottom.axhline(0.0, color="0.4", linewidth=0.8)
        bottom.set_xlabel(x_label)
        bottom.set_ylabel("integrand (nats per unit $x$)")
        bottom.legend(loc="upper right")
        fig.tight_layout()
    return fig, (top, bottom)


def plot_bernoulli_kl(
    grid: Any,
    table: Any,
    *,
    rows: Sequence[int],
    vmax: float = 3.0,
) -> tuple[Any, Any]:
    r"""Heat map of :math:`D_{\mathrm{KL}}(\mathrm{Bern}(a)\,\|\,\mathrm{Bern}(b))` and a few of its rows as curves.

    Parameters
    ----------
    grid
        Success probabilities, used for both ``a`` (rows) and ``b`` (columns).
    table
        Square array, ``table[i, j] = D(Bern(grid[i]) || Bern(grid[j]))`` in nats, finite.
    rows
        Indices ``i`` of the rows (fixed ``a``) drawn as curves against ``b`` in the right panel: a sequence
        or a 1-D integer array, each in ``0 .. len(grid) - 1``.
    vmax
        Upper end of the colour scale in nats; larger values are drawn in the top colour.

    """
    grid_, table_ = np.asarray(grid, dtype=float), np.asarray(table, dtype=float)
    rows_ = np.asarray(rows)

    def draw(fig: Any, axes: Any) -> None:
        left, right = axes
        left.grid(False)
        image = left.pcolormesh(grid_, grid_, table_, shading="nearest", cmap="viridis",
                                norm=Normalize(vmin=0.0, vmax=vmax))
        contours = left.contour(grid_, grid_, table_, levels=[0.1, 0.5, 1.0, 2.0], colors="white",
                                linewidths=0.8)
        label_contours(left, contours, "%.1f")
        left.set_xlabel("$b$ (for $Q$)")
        left.set_ylabel("$a$ (for $P$)")
        left.set_title(r"$D_{\mathrm{KL}}(\mathrm{Bern}(a)\,\|\,\mathrm{Bern}(b))$")
        colorbar = fig.colorbar(image, ax=left)
        colorbar.set_label("nats")
        for index in rows_:
            right.plot(grid_, table_[index], label=f"$a = {grid_[index]:.2f}$")
        right.set_ylim(0.0, vmax)
        right.set_xlabel("$b$")
        right.set_ylabel("divergence (nats)")
        right.set_title("rows of the heat map")
        right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
        fig.tight_layout()

    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=3.4, phone_height=7.4)
    return fig, tuple(axes)


def plot_asymmetry(
    x: Any,
    forward: Any,
    reverse: Any,
    *,
    forward_label: str,
    reverse_label: str,
    x_label: str,
    log_x: bool = True,
) -> tuple[Any, Any]:
    """Two divergences of the same family of pairs, one in each direction, against a parameter.

    Parameters
    ----------
    x
        The parameter that indexes the pairs (finite; positive when ``log_x``).
    forward, reverse
        The two directions of the divergence, in nats, finite.
    forward_label, reverse_label, x_label
        Legend entries and the horizontal axis label.
    log_x
        Draw the horizontal axis on a log scale.

    """
    x_, f_, r_ = (np.asarray(a, dtype=float) for a in (x, forward, reverse))
    with book_style():
        fig, ax = new_figure(width=6.0, height=3.6)
        ax.plot(x_, f_, label=forward_label, color="C0")
        ax.plot(x_, r_, label=reverse_label, color="C1", linestyle="--")
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel("divergence (nats)")
        ax.legend()
        fig.tight_layout()
    return fig, ax


def plot_f_generators(t: Any, curves: Mapping[str, Any]) -> tuple[Any, Any]:
    r"""Generators :math:`f` of f-divergences, each a convex function with :math:`f(1) = 0`.

    Parameters
    ----------
    t
        Grid of likelihood ratios :math:`t = p/q > 0`, finite.
    curves
        Legend entry -> values of :math:`f` on the grid (finite).

    """
    t_ = np.asarray(t, dtype=float)
    arrays = {label: np.asarray(values, dtype=float) for label, values in curves.items()}
    with book_style():
        fig, ax = new_figure(width=6.0, height=3.8)
        for index, (label, values_) in enumerate(arrays.items()):
            ax.plot(t_, values_, label=label, linestyle=["-", "--", "-.", ":"][index % 4])
        ax.axvline(1.0, color="0.5", linewidth=0.8)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        ax.set_xlabel("likelihood ratio $t = p(x)/q(x)$")
        ax.set_ylabel("$f(t)$")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        fig.tight_layout()
    return fig, ax


def plot_pinsker(kl: Any, tv: Any, *, kl_max: float | None = None) -> tuple[Any, Any]:
    r"""Total variation against KL divergence for many pairs, with Pinsker's bound :math:`\sqrt{D/2}`.

    Parameters
    ----------
    kl
        KL divergences :math:`D_{\mathrm{KL}}(P\,\|\,Q)` in nats, finite.
    tv
        Total variation distances of the same pairs, finite.
    kl_max
        Right end of the horizontal axis, positive (default: the largest KL value).

    """
    kl_, tv_ = np.asarray(kl, dtype=float), np.asarray(tv, dtype=float)
    right_end = float(kl_.max()) if kl_max is None else float(kl_max)
    d = np.linspace(0.0, right_end, 400)
    with book_style():
        fig, ax = new_figure(width=6.0, height=3.8)
        ax.scatter(kl_, tv_, s=6, alpha=0.5, color="C0", label="random pairs $(P, Q)$")
        ax.plot(d, np.sqrt(d / 2.0), color="C3", label=r"Pinsker bound $\sqrt{D/2}$")
        ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle=":", label="TV $\\leq 1$")
        ax.set_xlim(0.0, right_end)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(r"$D_{\mathrm{KL}}(P\,\|\,Q)$ (nats)")
        ax.set_ylabel("total variation $\\mathrm{TV}(P, Q)$")
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig, ax


def plot_epsilon_dependence(
    eps: Any, values: Any, *, slope_label: str | None = None, note: str | None = None
) -> tuple[Any, Any]:
    """A divergence that should be infinite, made finite by smoothing with ``eps``, against ``eps``.

    Parameters
    ----------
    eps
        The smoothing constants (finite and positive), drawn on a log axis.
    values
        The finite divergences obtained for each ``eps``, in nats.
    slope_label
        Optional legend entry for the curve.
    note
        Optional text written in the lower right corner (for example the true, infinite value).

    """
    eps_, values_ = np.asarray(eps, dtype=float), np.asarray(values, dtype=float)
    with book_style():
        fig, ax = new_figure(width=6.0, height=3.4)
        ax.plot(eps_, values_, marker="o", color="C3", label=slope_label or "smoothed divergence")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel(r"smoothing constant $\varepsilon$ (smaller to the right)")
        ax.set_ylabel("reported divergence (nats)")
        ax.legend(loc="upper left")
        if note:
            ax.text(0.98, 0.06, note, transform=ax.transAxes, ha="right", va="bottom",
                    bbox={"facecolor": "white", "edgecolor": "0.7"})
        fig.tight_layout()
    return fig, ax

