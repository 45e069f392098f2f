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
    height: float = 5.4,
) -> tuple[Any, Any]:
    r"""Four panels, two per row so that a phone still shows each at half the column: the input
    distributions P and Q as bars; the channel :math:`W(y\mid x)` as a matrix (rows: inputs x, columns:
    outputs y); the output distributions PW and QW as bars; and the two divergences side by side.
    Returns ``(fig, (inputs, channel, outputs, divergences))``."""
    p, q, channel = (np.asarray(a, dtype=float) for a in (p, q, channel))
    pw, qw = p @ channel, q @ channel
    fig, grid = new_figure(2, 2, width=width, height=height)
    inputs, channel_ax, outputs, divergences = grid.ravel()
    colours = ("tab:blue", "tab:orange")
    for ax, (a, b), symbol, names, title in (
        (inputs, (p, q), "x", ("$P$", "$Q$"), "inputs"),
        (outputs, (pw, qw), "y", ("$PW$", "$QW$"), "outputs of the same channel"),
    ):
        positions = np.arange(len(a))
        ax.bar(positions - 0.2, a, width=0.4, color=colours[0], label=names[0])
        ax.bar(positions + 0.2, b, width=0.4, color=colours[1], label=names[1])
        ax.set_xticks(positions, [f"${symbol}_{i + 1}$" for i in positions])
        ax.set_xlabel("input $x$" if symbol == "x" else "output $y$")
        ax.set_ylabel("probability")
        ax.set_ylim(0.0, 1.0)
        ax.legend(loc="upper right")
        ax.set_title(title, fontsize="medium")
    channel_ax.imshow(channel, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(channel):
        channel_ax.text(j, i, f"{value:.2f}", ha="center", va="center",
                        color="white" if value > 0.5 else "black")
    channel_ax.set_xticks(range(channel.shape[1]), [f"$y_{j + 1}$" for j in range(channel.shape[1])])
    channel_ax.set_yticks(range(channel.shape[0]), [f"$x_{i + 1}$" for i in range(channel.shape[0])])
    channel_ax.set_xlabel("output $y$")
    channel_ax.set_ylabel("input $x$")
    channel_ax.set_title(r"the channel $W(y\mid x)$", fontsize="medium")
    channel_ax.grid(False)
    labels = (r"$D_{\mathrm{KL}}(P\,\|\,Q)$", r"$D_{\mathrm{KL}}(PW\,\|\,QW)$")
    bars = divergences.bar([0, 1], [divergence_in, divergence_out], width=0.6, color="0.45")
    divergences.bar_label(bars, fmt="%.3f", padding=2)
    divergences.set_xticks([0, 1], labels)
    divergences.set_xlabel("pair compared")
    divergences.set_ylabel("divergence (nats)")
    divergences.set_ylim(0.0, 1.2 * max(divergence_in, divergence_out))
    divergences.set_title("before and after the channel", fontsize="medium")
    fig.tight_layout()
    return fig, (inputs, channel_ax, outputs, divergences)
