"""Figure of the data-processing inequality (chapter 2): two distributions sent through one channel."""

from __future__ import annotations

from typing import Any

import numpy as np

from .style import new_figure


def channel_diagram(
    p: Any,
    q: Any,
    channel: Any,
    *,
    divergence_in: float,
    divergence_out: float,
    width: float = 6.6,
    height: float = 2.9,
) -> tuple[Any, Any]:
    r"""Three panels: the input distributions P and Q as bars, the channel :math:`W(y\mid x)` as a matrix
    (rows: inputs x, columns: outputs y), and the output distributions PW and QW as bars, with the two
    divergences in the titles of the outer panels. Returns ``(fig, axes)``."""
    p, q, channel = (np.asarray(a, dtype=float) for a in (p, q, channel))
    pw, qw = p @ channel, q @ channel
    fig, axes = new_figure(1, 3, width=width, height=height, gridspec_kw={"width_ratios": [1.0, 0.9, 1.0]})
    colours = ("tab:blue", "tab:orange")
    for ax, (a, b), symbol, names in (
        (axes[0], (p, q), "x", ("$P$", "$Q$")),
        (axes[2], (pw, qw), "y", ("$PW$", "$QW$")),
    ):
        positions = np.arange(len(a))
        ax.bar(positions - 0.2, a, width=0.4, color=colours[0], label=names[0])
        ax.bar(positions + 0.2, b, width=0.4, color=colours[1], label=names[1])
        ax.set_xticks(positions, [f"${symbol}_{i + 1}$" for i in positions])
        ax.set_xlabel("input $x$" if symbol == "x" else "output $y$")
        ax.set_ylabel("probability")
        ax.set_ylim(0.0, 1.0)
        ax.legend(loc="upper right")
    axes[0].set_title(rf"$D_{{\mathrm{{KL}}}}(P\,\|\,Q) = {divergence_in:.3f}$", fontsize="medium")
    axes[2].set_title(rf"$D_{{\mathrm{{KL}}}}(PW\,\|\,QW) = {divergence_out:.3f}$", fontsize="medium")
    ax = axes[1]
    ax.imshow(channel, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(channel):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center",
                color="white" if value > 0.5 else "black")
    ax.set_xticks(range(channel.shape[1]), [f"$y_{j + 1}$" for j in range(channel.shape[1])])
    ax.set_yticks(range(channel.shape[0]), [f"$x_{i + 1}$" for i in range(channel.shape[0])])
    ax.set_xlabel("output $y$")
    ax.set_ylabel("input $x$")
    ax.set_title(r"the same channel $W(y\mid x)$", fontsize="medium")
    ax.grid(False)
    fig.tight_layout()
    return fig, axes
