"""Figures of bounds on the evidence (chapter 5): the decomposition log p(x) = ELBO + KL as stacked bars,
and the importance-weighted bound against its number of samples.

Each function draws one figure in the book's style and returns ``(fig, axes)``; the numbers are computed
in the chapter and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .style import book_style, new_figure, panel_figure

__all__ = ["plot_evidence_bars", "plot_iwae_curve"]


def plot_evidence_bars(
    labels: Sequence[str],
    elbos: Sequence[float],
    gaps: Sequence[float],
    *,
    log_evidence: float,
) -> tuple[Any, Any]:
    r"""Stacked bars of :math:`-\log p(x) = -\operatorname{ELBO}(q) - D_{\mathrm{KL}}(q\,\|\,p(z\mid x))`,
    drawn as losses (positive nats): for each :math:`q` a bar of height :math:`-\operatorname{ELBO}(q)`
    split into :math:`-\log p(x)` (the same for every :math:`q`) and the gap on top of it.

    Parameters
    ----------
    labels
        One name per :math:`q`.
    elbos, gaps
        :math:`\operatorname{ELBO}(q)` and :math:`D_{\mathrm{KL}}(q\,\|\,p(z\mid x))` per :math:`q`, in nats.
    log_evidence
        :math:`\log p(x)`.
    """
    nll = -float(log_evidence)
    x = np.arange(len(labels))
    fig, ax = new_figure(width=6.4, height=3.4)
    with book_style():
        ax.bar(
            x,
            [nll] * len(labels),
            width=0.55,
            color="0.75",
            label=r"$-\log p(x)$, fixed by the model",
        )
        ax.bar(
            x,
            gaps,
            bottom=nll,
            width=0.55,
            color="C3",
            label=r"gap $D_{\mathrm{KL}}(q\,\|\,p(z\mid x))$",
        )
        for xi, elbo, gap in zip(x, elbos, gaps, strict=True):
            ax.text(xi, nll + gap, f"{-elbo:.2f}", ha="center", va="bottom")
            if gap > 0.08 * (nll + max(gaps)):
                ax.text(
                    xi,
                    nll + gap / 2,
                    f"{gap:.2f}",
                    ha="center",
                    va="center",
                    color="white",
                )
        ax.text(x[-1] + 0.45, nll / 2, f"{nll:.2f}", ha="left", va="center")
        ax.axhline(nll, color="0.3", lw=0.8, ls=":")
        ax.set_xticks(x)
        ax.set_xticklabels(labels)
        ax.set_xlim(-0.5, len(labels) - 0.1)
        ax.set_ylim(0, 1.25 * (nll + max(gaps)))
        ax.set_ylabel(r"$-\mathrm{ELBO}(q)$ (nats)")
        ax.set_xlabel("approximate posterior $q$")
        ax.legend(loc="upper right", frameon=True)
        fig.tight_layout()
    return fig, ax


def plot_iwae_curve(
    ks: Sequence[int],
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    *,
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[Any, Any]:
    r"""The importance-weighted bound :math:`\mathcal L_K` against :math:`K` (logarithmic axis), one panel
    per entry of ``panels`` (``title -> {label: (estimates, standard errors)}``), with :math:`\pm 2`
    standard-error bars, and dashed horizontal lines from ``references`` (``title -> {label: value}``,
    e.g. :math:`\log p(x)`).
    """

    def draw(fig: Any, axes: Any) -> None:
        for ax, (title, curves) in zip(axes, panels.items(), strict=True):
            for i, (label, (means, errors)) in enumerate(curves.items()):
                ax.errorbar(
                    ks,
                    means,
                    yerr=2 * np.asarray(errors),
                    marker="o",
                    capsize=3,
                    color=f"C{i}",
                    label=label,
                )
            for j, (label, value) in enumerate(
                ((references or {}).get(title) or {}).items()
            ):
                ax.axhline(value, color=f"C{3 + j}", ls="--", lw=1.2, label=label)
            ax.set_xscale("log")
            ax.set_xticks(list(ks))
            ax.set_xticklabels([str(k) for k in ks])
            ax.minorticks_off()
            ax.set_title(title)
            ax.set_xlabel("samples $K$")
            ax.legend(loc="lower right", frameon=True)
        for ax in axes:
            if ax.get_subplotspec().is_first_col():  # side by side the left panel, stacked every panel
                ax.set_ylabel(r"$\mathcal{L}_K$ (nats)")
        fig.tight_layout()

    fig, axes = panel_figure(draw, len(panels), width=6.4, height=3.2)
    return fig, axes
