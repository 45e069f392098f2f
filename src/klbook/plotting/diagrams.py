"""Diagrams drawn with matplotlib (so that they appear alike in the HTML, the PDF and the notebooks).

:func:`plot_reparameterisation_graph`: the computation graph of a VAE's objective before and after the
reparameterisation trick, after Kingma and Welling (2019), Fig. 2.3. Returns ``(fig, axes)``.
"""

from __future__ import annotations

from typing import Any

from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from .style import panel_figure

__all__ = ["plot_reparameterisation_graph"]

_DETERMINISTIC = "#cfe2f3"  # pale blue boxes
_RANDOM = "#f9cb9c"  # pale orange circles
_RADIUS = 0.11


def _node(ax, xy, label, *, random):
    x, y = xy
    if random:
        ax.add_patch(Circle(xy, _RADIUS, facecolor=_RANDOM, edgecolor="0.2", lw=1.2))
    else:
        ax.add_patch(
            FancyBboxPatch(
                (x - _RADIUS, y - _RADIUS),
                2 * _RADIUS,
                2 * _RADIUS,
                boxstyle="round,pad=0.0,rounding_size=0.03",
                facecolor=_DETERMINISTIC,
                edgecolor="0.2",
                lw=1.2,
            )
        )
    ax.text(x, y, label, ha="center", va="center", fontsize=12)


def _arrow(ax, start, end, *, gradient=False, rad=0.0):
    style = (
        {"color": "C3", "ls": (0, (4, 2)), "lw": 1.6}
        if gradient
        else {"color": "0.15", "lw": 1.3}
    )
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            shrinkA=15,
            shrinkB=15,
            connectionstyle=f"arc3,rad={rad}",
            **style,
        )
    )


def plot_reparameterisation_graph() -> tuple[Any, Any]:
    r"""Two panels: the original form, :math:`z\sim q_\phi(z\mid x)` a random node between :math:`\phi`
    and the objective :math:`f`, so no gradient reaches :math:`\phi` through it; and the reparameterised
    form :math:`z = \mu_\phi(x) + \sigma_\phi(x)\odot\varepsilon`, a deterministic node fed by the random
    :math:`\varepsilon\sim\mathcal N(0, I)`, through which :math:`\nabla_\phi f` flows back (red, dashed).
    Boxes are deterministic nodes, circles random ones; black arrows are the forward computation."""
    positions = {
        "phi": (0.2, 0.55),
        "x": (0.2, 0.15),
        "z": (0.6, 0.55),
        "f": (0.6, 0.92),
        "eps": (0.95, 0.55),
    }

    def draw(fig: Any, axes: Any) -> None:
        for ax, reparameterised in zip(axes, (False, True), strict=True):
            ax.set_xlim(0.0, 1.12)
            ax.set_ylim(-0.02, 1.08)
            ax.set_aspect("equal")
            ax.axis("off")
            _node(ax, positions["phi"], r"$\phi$", random=False)
            _node(ax, positions["x"], r"$x$", random=False)
            _node(ax, positions["f"], r"$f$", random=False)
            _node(ax, positions["z"], r"$z$", random=not reparameterised)
            _arrow(ax, positions["phi"], positions["z"])
            _arrow(ax, positions["x"], positions["z"])
            _arrow(ax, positions["z"], positions["f"])
            if reparameterised:
                _node(ax, positions["eps"], r"$\varepsilon$", random=True)
                _arrow(ax, positions["eps"], positions["z"])
                _arrow(ax, positions["f"], positions["z"], gradient=True, rad=0.45)
                _arrow(ax, positions["z"], positions["phi"], gradient=True, rad=0.45)
                ax.set_title("reparameterised form", fontsize=11)
                ax.text(
                    0.6,
                    0.3,
                    r"$z = \mu + \sigma\odot\varepsilon$",
                    ha="center",
                    fontsize=11,
                )
                ax.text(
                    0.95,
                    0.36,
                    r"$\varepsilon\sim\mathcal{N}(0, I)$",
                    ha="center",
                    fontsize=10,
                )
                ax.text(
                    0.25, 0.88, r"$\nabla_\phi f$", color="C3", ha="center", fontsize=11
                )
            else:
                _arrow(ax, positions["f"], positions["z"], gradient=True, rad=0.45)
                ax.text(
                    0.4, 0.67, "×", color="C3", ha="center", va="center", fontsize=18
                )
                ax.set_title("original form", fontsize=11)
                ax.text(0.6, 0.3, r"$z\sim q_\phi(z\mid x)$", ha="center", fontsize=11)
                ax.text(
                    0.25,
                    0.88,
                    r"$\nabla_\phi f$: ?",
                    color="C3",
                    ha="center",
                    fontsize=11,
                )
        fig.tight_layout()

    fig, axes = panel_figure(draw, 2, width=6.4, height=3.3, phone_height=7.0)
    return fig, axes
