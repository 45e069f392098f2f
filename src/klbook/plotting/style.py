"""Shared figure style: one context (:func:`book_style`) and one way to start a figure (:func:`new_figure`).

The sizes are chosen for the page, not the screen. The chapters show figures with the inline backend at
``figure.dpi`` = 100 CSS pixels per inch (in PNG at twice that resolution: each chapter's first cell sets
``%config InlineBackend.figure_formats = ["retina"]``, so a figure stays crisp on a high-density screen).
The text column of the HTML book is 672 px wide at a 1280 px window, so a figure up to
:data:`TEXT_WIDTH` inches is shown at its natural size and a point of text is ``100 / 72`` px: the
smallest text, :data:`SMALLEST_FONT_PT`, is then 13.9 px, above 80 % of the 16 px body text. Wider
figures would be scaled down with their text; no helper draws one.

Figures of panels side by side are made by :func:`panel_figure`, which also draws the same panels
stacked, :data:`PHONE_WIDTH` wide, for a phone: the notebook's output carries that picture in its
metadata (:data:`PHONE_KEY`) and the HTML book shows it when the column is narrower than the side-by-side
figure needs (``book/_ext/klbook_figures.py`` and the "Figure sizes" rules of ``klbook-site.css``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import struct
from collections.abc import Callable, Iterator
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Widest figure, in inches, that the HTML column (672 px at 1280 px) shows at its natural size.
TEXT_WIDTH = 6.6
#: Smallest font size, in points, of any text in a figure (tick labels, legends, contour labels).
SMALLEST_FONT_PT = 10.0
#: Width, in inches, of the phone rendering of a figure of panels (the panels stacked). A phone's column is
#: 358 px at 390 px (342 px inside the dark theme's frame); shown there, a picture at most 4.2 in = 420 px
#: wide keeps its 10 pt (13.9 px) text at 11.3 px or more, and nothing scrolls sideways.
PHONE_WIDTH = 4.2
#: Key, in the metadata of a notebook's figure output, of the phone rendering:
#: ``{"image/png": <base64>, "width": <CSS px>, "height": <CSS px>}`` (a PNG at twice its CSS size).
PHONE_KEY = "klbook/phone"
#: Arguments of ``plt.subplots`` that lay out the panels; the others go to the figure.
_SUBPLOT_ARGS = ("sharex", "sharey", "subplot_kw", "gridspec_kw")

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


class PanelFigure(Figure):
    """A figure of panels side by side (made by :func:`panel_figure`) that can draw itself stacked.

    :meth:`phone_figure` draws the same panels again, one under the other, :data:`PHONE_WIDTH` wide. When
    IPython shows the figure, the PNG of that rendering goes into the output's metadata under
    :data:`PHONE_KEY` (the output's data, what a notebook shows and nbval compares, is unchanged).
    """

    _klbook_panels: tuple[Callable[[Any, Any], Any], int, float, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        # the stored text/plain output of a figure reads "<Figure size ...>", as for any matplotlib figure
        return super().__repr__().replace(type(self).__name__, "Figure", 1)

    def phone_figure(self) -> Figure:
        """The same panels stacked top to bottom (left to right becomes top to bottom), not shown by pyplot."""
        if self._klbook_panels is None:
            raise ValueError("this figure was not made by panel_figure")
        draw, n_panels, height, kwargs = self._klbook_panels
        subplot_args = {k: v for k, v in kwargs.items() if k in _SUBPLOT_ARGS}
        figure_args = {k: v for k, v in kwargs.items() if k not in _SUBPLOT_ARGS}
        with book_style():
            # the saved picture adds savefig.pad_inches on each side (bbox_inches="tight"): at most PHONE_WIDTH
            phone = Figure(figsize=(PHONE_WIDTH - 2 * mpl.rcParams["savefig.pad_inches"], height), **figure_args)
            FigureCanvasAgg(phone)  # drawn off screen, whatever pyplot's backend (never shown by pyplot)
            phone._klbook_phone = True
            axes = phone.subplots(n_panels, 1, squeeze=False, **subplot_args)[:, 0]
            draw(phone, axes)
        return phone

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        """No data of its own (IPython adds the PNG as for any figure); the phone rendering as metadata."""
        if self._klbook_panels is None:
            return {}, {}
        return {}, {PHONE_KEY: phone_png(self.phone_figure())}


def on_phone(fig: Any) -> bool:
    """Whether ``draw`` is drawing the phone rendering of a :func:`panel_figure` (e.g. a one-column legend)."""
    return bool(getattr(fig, "_klbook_phone", False))


def phone_png(fig: Figure) -> dict[str, Any]:
    """``fig`` as the inline backend saves a retina figure: PNG at twice ``figure.dpi``, tight bounding box.

    Returns ``{"image/png": <base64 str>, "width": w, "height": h}`` with the size in CSS px (half the PNG's).
    """
    buffer = io.BytesIO()
    with book_style():
        fig.savefig(buffer, format="png", dpi=2 * fig.dpi, bbox_inches="tight")
    png = buffer.getvalue()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    return {"image/png": base64.b64encode(png).decode("ascii"), "width": width // 2, "height": height // 2}


def panel_figure(
    draw: Callable[[Any, Any], Any],
    n_panels: int,
    *,
    width: float = TEXT_WIDTH,
    height: float = 3.6,
    phone_height: float | None = None,
    **kwargs: Any,
) -> tuple[PanelFigure, Any]:
    """``n_panels`` side by side, drawn by ``draw(fig, axes)`` (``axes``: 1-D array of the panels).

    Every figure of panels side by side is made this way. ``draw`` is called again when the figure is shown,
    on ``n_panels`` rows of one panel, :data:`PHONE_WIDTH` wide with the saved margin and ``phone_height``
    inches high (default: each panel 0.72 x ``PHONE_WIDTH`` high, plus 0.6 in), so it must draw the same
    panels whatever their arrangement: shared legends with :func:`legend_below` or on a panel, not beside
    the row; axis labels on the outer panels by ``ax.get_subplotspec().is_first_col()`` /
    ``is_last_row()``, not by position in ``axes``; :func:`on_phone` tells which rendering it draws.
    ``kwargs`` go to ``plt.subplots`` (``sharex``, ``sharey``, ``layout``, ...), for both arrangements.
    Returns ``(fig, axes)``; a single panel gets no phone rendering.
    """
    if phone_height is None:
        phone_height = n_panels * 0.72 * PHONE_WIDTH + 0.6
    with book_style():
        fig, axes = plt.subplots(1, n_panels, figsize=(width, height), squeeze=False, FigureClass=PanelFigure,
                                 **kwargs)
        axes = axes[0]
        draw(fig, axes)
    if n_panels > 1:  # one panel needs no second rendering
        fig._klbook_panels = (draw, n_panels, phone_height, kwargs)
    return fig, axes


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
