r"""Figures for the chapter on the Gaussian KL (book/03_gaussian_kl).

Every curve is computed with the verified closed forms of :mod:`klbook.gaussian` (never re-typed here), so
a figure can only show what the library computes. Each function draws one figure in the book's style and
returns ``(fig, ax)`` (or ``(fig, axes)``), as :func:`matplotlib.pyplot.subplots` does.

Parameter conventions follow the library: ``sigma`` is a standard deviation; the VAE term is the KL of
:math:`\mathcal N(\mu, \sigma^2)` from :math:`\mathcal N(0, 1)` per latent dimension,
:math:`\tfrac12(\mu^2 + \sigma^2 - 1 - \ln\sigma^2)`.
"""

from __future__ import annotations

from typing import Any

import matplotlib.ticker as mticker
import numpy as np

from ..gaussian import kl_normal, kl_std_normal, normal_logpdf
from .style import TEXT_WIDTH, book_style, label_contours, new_figure, panel_figure

__all__ = [
    "vae_kl_grid",
    "plot_kl_integrand",
    "plot_vae_kl_map",
    "plot_vae_kl_terms",
    "plot_gaussian_kl_asymmetry",
]


def vae_kl_grid(
    mu_range: tuple[float, float] = (-3.0, 3.0),
    sigma_range: tuple[float, float] = (0.05, 3.0),
    n: int = 241,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The one-dimensional VAE KL term on an ``n`` x ``n`` grid of means and standard deviations.

    .. math::

        D(\mu, \sigma) = D_{\mathrm{KL}}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, 1)\big)
        = \tfrac12\big(\mu^2 + \sigma^2 - 1 - \ln\sigma^2\big),

    evaluated with :func:`klbook.kl_std_normal` at ``logvar = 2 ln sigma``. The standard deviations are
    spaced evenly in ``ln sigma``.

    Returns
    -------
    mu, sigma, kl
        Arrays of shape ``(n, n)`` (``mu`` varies along axis 1, ``sigma`` along axis 0).
    """
    mu, sigma = np.meshgrid(np.linspace(*mu_range, n), np.geomspace(*sigma_range, n))
    kl = kl_std_normal(mu[..., None], 2.0 * np.log(sigma)[..., None])
    return mu, sigma, kl


def plot_kl_integrand(
    mu_p: float, sigma_p: float, mu_q: float, sigma_q: float, *, n: int = 801
) -> tuple[Any, Any]:
    r"""The densities p, q and the integrand :math:`p(x)\ln(p(x)/q(x))` whose area is D(p||q).

    Both densities are :math:`\mathcal N(\mu, \sigma^2)` with ``sigma`` a standard deviation. The area
    under the integrand (shaded; negative where q > p) equals :func:`klbook.kl_normal`, which is shown in
    the legend.
    """
    low = min(mu_p - 4.5 * sigma_p, mu_q - 4.5 * sigma_q)
    high = max(mu_p + 4.5 * sigma_p, mu_q + 4.5 * sigma_q)
    x = np.linspace(low, high, n)
    log_p = normal_logpdf(x, mu_p, sigma_p)
    log_q = normal_logpdf(x, mu_q, sigma_q)
    integrand = np.exp(log_p) * (log_p - log_q)
    kl = float(kl_normal(mu_p, sigma_p, mu_q, sigma_q))
    with book_style():
        fig, ax = new_figure(width=TEXT_WIDTH, height=3.4)
        ax.plot(x, np.exp(log_p), color="C0", label=rf"$p = \mathcal{{N}}({mu_p:g}, {sigma_p:g}^2)$")
        ax.plot(x, np.exp(log_q), color="C1", label=rf"$q = \mathcal{{N}}({mu_q:g}, {sigma_q:g}^2)$")
        ax.plot(x, integrand, color="C2", label=r"$p(x)\,\ln\frac{p(x)}{q(x)}$")
        ax.fill_between(x, integrand, color="C2", alpha=0.2, label=f"signed area = {kl:.4f} nats")
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ax.set_xlabel("$x$")
        ax.set_ylabel("density / integrand")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        fig.tight_layout()
    return fig, ax


def plot_vae_kl_map(
    mu_range: tuple[float, float] = (-3.0, 3.0),
    sigma_range: tuple[float, float] = (0.05, 3.0),
    n: int = 241,
) -> tuple[Any, Any]:
    r"""Filled contour map of the one-dimensional VAE KL term over the mean and standard deviation.

    The value is :math:`\tfrac12(\mu^2 + \sigma^2 - 1 - \ln\sigma^2)` nats (see :func:`vae_kl_grid`);
    the standard-deviation axis is logarithmic and the minimum, 0 at :math:`(\mu, \sigma) = (0, 1)`, is
    marked.
    """
    mu, sigma, kl = vae_kl_grid(mu_range, sigma_range, n)
    top = float(kl.max())
    levels = [lv for lv in (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0) if lv < top]
    with book_style():
        fig, ax = new_figure(width=6.4, height=4.2)
        filled = ax.contourf(mu, sigma, kl, levels=levels, cmap="viridis", extend="max")
        lines = ax.contour(mu, sigma, kl, levels=levels[1:], colors="white", linewidths=0.6)
        label_contours(ax, lines)
        ax.plot([0.0], [1.0], marker="*", markersize=12, color="red", linestyle="none")
        ax.set_title(r"red star: the minimum, KL = 0 at $\mu = 0,\ \sigma = 1$")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        ax.set_xlabel(r"mean $\mu$ of $q$")
        ax.set_ylabel(r"standard deviation $\sigma$ of $q$ (log scale)")
        ax.grid(False)
        colorbar = fig.colorbar(filled, ax=ax, ticks=levels, format=mticker.FormatStrFormatter("%g"))
        colorbar.set_label(r"$D_{\mathrm{KL}}(\mathcal{N}(\mu,\sigma^2)\,\|\,\mathcal{N}(0,1))$ (nats)")
        fig.tight_layout()
    return fig, ax


def plot_vae_kl_terms(
    mu_max: float = 3.0, sigma_range: tuple[float, float] = (0.05, 3.0), n: int = 401
) -> tuple[Any, Any]:
    r"""The two terms of the one-dimensional VAE KL as curves, side by side.

    Left: the mean term :math:`\tfrac12\mu^2`. Right: the variance term
    :math:`\tfrac12(\sigma^2 - 1 - \ln\sigma^2)` with its two pieces, :math:`\tfrac12(\sigma^2 - 1)`
    (grows without bound as :math:`\sigma\to\infty`) and :math:`-\tfrac12\ln\sigma^2` (grows without bound as
    :math:`\sigma\to 0`). Both terms come from :func:`klbook.kl_std_normal` with the other parameter at its
    optimum.

    Returns
    -------
    fig, axes
        The figure and its two axes.
    """
    s_lo, s_hi = sigma_range
    mu = np.linspace(-mu_max, mu_max, n)
    sigma = np.linspace(s_lo, s_hi, n)
    mean_term = kl_std_normal(mu[:, None], np.zeros((n, 1)))
    variance_term = kl_std_normal(np.zeros((n, 1)), 2.0 * np.log(sigma)[:, None])

    def draw(fig: Any, axes: Any) -> None:
        ax = axes[0]
        ax.plot(mu, mean_term, color="C0", label=r"mean term $\frac{1}{2}\mu^2$ (at $\sigma = 1$)")
        ax.set_title(r"mean term $\frac{1}{2}\mu^2$ (at $\sigma = 1$)")
        ax.set_xlabel(r"mean $\mu$ of $q$")
        ax.set_ylabel("KL contribution (nats)")
        ax = axes[1]
        ax.plot(sigma, variance_term, color="C1", linewidth=2,
                label=r"variance term $\frac{1}{2}(\sigma^2 - 1 - \ln\sigma^2)$")
        ax.plot(sigma, 0.5 * (sigma**2 - 1.0), color="C2", linestyle="--",
                label=r"$\frac{1}{2}(\sigma^2 - 1)$")
        ax.plot(sigma, -np.log(sigma), color="C3", linestyle=":", label=r"$-\frac{1}{2}\ln\sigma^2$")
        ax.axvline(1.0, color="0.5", linewidth=0.8)
        ax.set_ylim(-1.5, 4.0)
        ax.set_title(r"variance term (at $\mu = 0$)")
        ax.set_xlabel(r"standard deviation $\sigma$ of $q$")
        ax.set_ylabel("KL contribution (nats)")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2)

    # constrained layout: room for the legend under the panels, where it covers no curve
    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=4.0, layout="constrained", phone_height=7.0)
    return fig, axes


def plot_gaussian_kl_asymmetry(
    scale_range: tuple[float, float] = (0.2, 5.0), mean_offset: float = 0.0, n: int = 401
) -> tuple[Any, Any]:
    r"""Both directions of the KL between :math:`p = \mathcal N(0, 1)` and :math:`q = \mathcal N(m, s^2)`.

    Plots :math:`D(p\,\|\,q)` and :math:`D(q\,\|\,p)` against the standard deviation ``s`` (log axis) for
    the mean offset ``m = mean_offset``; the curves meet only at ``s = 1``, where the variances are equal.
    """
    s_lo, s_hi = scale_range
    s = np.geomspace(s_lo, s_hi, n)
    forward = kl_normal(0.0, 1.0, mean_offset, s)
    reverse = kl_normal(mean_offset, s, 0.0, 1.0)
    with book_style():
        fig, ax = new_figure()
        q_text = rf"\mathcal{{N}}({mean_offset:g}, s^2)"
        ax.plot(s, forward, color="C0", label=rf"$D(\mathcal{{N}}(0,1)\,\|\,{q_text})$")
        ax.plot(s, reverse, color="C1", linestyle="--", label=rf"$D({q_text}\,\|\,\mathcal{{N}}(0,1))$")
        ax.axvline(1.0, color="0.5", linewidth=0.8)
        ax.set_xscale("log")
        ticks = [t for t in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0) if s_lo <= t <= s_hi]
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_xlabel(r"standard deviation $s$ of the second Gaussian (log scale)")
        ax.set_ylabel("KL divergence (nats)")
        ax.legend(loc="upper center")
        fig.tight_layout()
    return fig, ax
