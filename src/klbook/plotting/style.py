"""Shared figure style: one context (:func:`book_style`) and one way to start a figure (:func:`new_figure`).

The sizes are chosen for the page, not the screen. The chapters show figures with the inline backend at
``figure.dpi`` = 100 CSS pixels per inch (in PNG at twice that resolution: each chapter's first cell sets
``%config InlineBackend.figure_formats = ["retina"]``, so a figure stays crisp on a high-density screen).
The text column of the HTML book is 672 px wide at a 1280 px window, so a figure up to
:data:`TEXT_WIDTH` inches is shown at its natural size and a point of text is ``100 / 72`` px: the
smallest text, :data:`SMALLEST_FONT_PT`, is then 13.9 px, above 80 % of the 16 px body text. Wider
figures would be scaled down with their text; no helper draws one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt

#: Widest figure, in inches, that the HTML column (672 px at 1280 px) shows at its natural size.
TEXT_WIDTH = 6.6
#: Smallest font size, in points, of any text in a figure (tick labels, legends, contour labels).
SMALLEST_FONT_PT = 10.0

_STYLE = {
    # opaque white: the figures stay readable when the book is shown in dark mode
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "font.size": 11,
    "axes.labelsize": 11,
    "axes.titlesize": 11,
    "figure.titlesize": 11,
    "xtick.labelsize": SMALLEST_FONT_PT,
    "ytick.labelsize": SMALLEST_FONT_PT,
    "legend.fontsize": SMALLEST_FONT_PT,
    "legend.title_fontsize": SMALLEST_FONT_PT,
    "legend.framealpha": 0.9,
}


@contextlib.contextmanager
def book_style() -> Iterator[None]:
    """Context manager applying the book's matplotlib style (white background, light grid, text sizes)."""
    # rc_context restores *all* rcParams on exit, including "interactive", which Jupyter's inline backend
    # may switch on inside the block (the first figure of a session loads it); restoring it to False
    # would stop every later figure from being shown. Keep the interactive state the block ended with.
    interactive = mpl.is_interactive()
    try:
        with mpl.rc_context(_STYLE):
            try:
                yield
            finally:
                interactive = mpl.is_interactive()
    finally:
        mpl.interactive(interactive)


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 3.6, **kwargs: Any):
    """A figure and axes in the book's style (returned as ``plt.subplots`` does).

    Call it inside :func:`book_style` (tick labels created later read the style too).
    """
    with book_style():
        return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def label_contours(ax: Any, contours: Any, fmt: str = "%g") -> list[Any]:
    """Label contour lines in black with a white halo, legible on every colour of a colour map.

    (White labels vanish on the yellow end of viridis, black ones on its dark end.)
    """
    from matplotlib import patheffects

    texts = ax.clabel(contours, fmt=fmt, fontsize=SMALLEST_FONT_PT, colors="black")
    for text in texts:
        text.set_path_effects([patheffects.withStroke(linewidth=2.5, foreground="white")])
    return texts


def legend_beside(ax: Any, **kwargs: Any) -> Any:
    """The legend of ``ax`` to the right of it, where it covers no data (``fig.tight_layout`` makes room)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def legend_below(fig: Any, *axes: Any, ncol: int = 2) -> Any:
    """One legend for ``axes`` (entries with the same label once) under the figure, where it covers no data.

    The figure must use constrained layout (``new_figure(..., layout="constrained")``), which makes room.
    """
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=ncol)
