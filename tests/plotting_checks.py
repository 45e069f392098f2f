"""Assertions shared by the tests of klbook.plotting (tests/conftest.py selects Agg and closes the figures)."""
import numpy as np
from matplotlib.collections import PathCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from klbook.plotting.style import PHONE_KEY, PHONE_WIDTH, SMALLEST_FONT_PT, TEXT_WIDTH, PanelFigure

#: The narrowest picture a phone shows, in CSS px: the 358 px column at 390 px inside the dark theme's
#: 8 px frame on each side. The phone rendering shown there keeps its smallest text at 11 px or more
#: (tests/test_browser.py, PHONE_FIGURE_TEXT_PX) when its PNG is at most this wide times 13.9 / 11.
PHONE_PICTURE_PX = 342


def assert_book_figure(fig, width_in=TEXT_WIDTH):
    """A white Figure whose axes are all labelled, legible in the book's column and with nothing covering data.

    Labelled: a colorbar by its label, axes sharing x or y by one of the group (panels sharing x carry the
    label once, on the bottom panel). Legible and uncovered: see :func:`assert_legible`.
    """
    assert isinstance(fig, Figure)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            assert ax.get_ylabel() or ax.get_xlabel(), "unlabelled colorbar"
            continue
        assert any(a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)), f"no x label on {ax}"
        assert any(a.get_ylabel() for a in ax.get_shared_y_axes().get_siblings(ax)), f"no y label on {ax}"
    assert_legible(fig, width_in)


def assert_legible(fig, width_in=TEXT_WIDTH):
    """What the book shows of ``fig`` is readable at 1280 px (or on a phone, ``width_in=PHONE_WIDTH``).

    Its saved width (``bbox_inches="tight"``, as the inline backend saves it) is at most ``width_in``
    inches (``TEXT_WIDTH``: the column shows it unscaled); no text is smaller than ``SMALLEST_FONT_PT``; no legend
    covers a drawn point of a line (reference lines across the whole axes excepted), a scatter marker or an
    image.
    """
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    width = fig.get_tightbbox(renderer).width
    assert width <= width_in + 0.05, f"figure is {width:.2f} in wide, more than {width_in} in"
    small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < SMALLEST_FONT_PT - 1e-6]
    assert not small, f"text smaller than {SMALLEST_FONT_PT} pt: {small[:5]}"
    covered = legend_overlaps(fig)
    assert not covered, f"legends cover data: {covered}"


def assert_stacks_on_a_phone(fig, labelled=True):
    """``fig`` is a figure of panels side by side whose phone rendering stacks the same panels, legibly.

    The phone figure has as many panels as ``fig``, one under the other in the same order (left to right
    becomes top to bottom), each as wide as the figure allows; it is labelled, legible and uncovered as
    :func:`assert_book_figure` checks (only legible and uncovered unless ``labelled``: diagrams have no axes),
    at most ``PHONE_WIDTH`` wide. What IPython stores with the
    figure's output carries its PNG (metadata only: the output's data is a plain figure's).
    """
    assert isinstance(fig, PanelFigure), "a figure of panels side by side is made by panel_figure"
    assert repr(fig).startswith("<Figure size ")
    panels = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    phone = fig.phone_figure()
    stacked = [ax for ax in phone.axes if not hasattr(ax, "_colorbar")]
    assert len(stacked) == len(panels) > 1
    for wide, narrow in zip(panels, stacked):  # the same panel: same title, scales and artists
        # (axis labels may move: a label shared by a row of panels goes on each panel of a column)
        assert wide.get_title() == narrow.get_title()
        assert (wide.get_xscale(), wide.get_yscale()) == (narrow.get_xscale(), narrow.get_yscale())
        assert len(wide.get_children()) == len(narrow.get_children())
    phone.canvas.draw()
    boxes = [ax.get_position() for ax in stacked]
    for upper, lower in zip(boxes, boxes[1:]):
        assert lower.y1 <= upper.y0 + 1e-9, "the phone's panels are not stacked top to bottom"
    assert all(box.width > 0.5 for box in boxes), "a stacked panel does not take the figure's width (a colour bar aside)"
    if labelled:
        assert_book_figure(phone, width_in=PHONE_WIDTH)
    else:
        assert_legible(phone, width_in=PHONE_WIDTH)
    data, metadata = fig._repr_mimebundle_()
    assert data == {}
    png = metadata[PHONE_KEY]
    assert png["width"] <= PHONE_PICTURE_PX * (SMALLEST_FONT_PT * 100 / 72) / 11.0
    assert png["width"] <= PHONE_WIDTH * 100 and png["height"] > png["width"]  # a column of panels


def _points(artist, ax):
    """Display coordinates of what ``artist`` draws (lines densified, so a segment crossing a box counts)."""
    if isinstance(artist, Line2D):
        if artist.get_transform() != ax.transData:
            return np.empty((0, 2))  # axhline / axvline: a reference spanning the axes, not data
        xy = np.asarray(artist.get_xydata(), dtype=float)
        if len(xy) > 1 and artist.get_linestyle() not in ("None", " ", ""):
            t = np.linspace(0.0, 1.0, 12)[:, None, None]
            xy = (xy[:-1][None] * (1 - t) + xy[1:][None] * t).reshape(-1, 2)
        return artist.get_transform().transform(xy)
    if isinstance(artist, PathCollection):
        offsets = np.asarray(artist.get_offsets(), dtype=float)
        return artist.get_offset_transform().transform(offsets) if offsets.size else np.empty((0, 2))
    return np.empty((0, 2))


def legend_overlaps(fig):
    """Legends of ``fig`` that cover a drawn point, marker or image, as ``"legend texts: what"`` strings."""
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    found = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        name = ", ".join(t.get_text() for t in legend.get_texts())[:60]
        for ax in fig.axes:
            clip = ax.get_window_extent(renderer)
            for artist in ax.get_children():
                if not artist.get_visible():
                    continue
                if isinstance(artist, (AxesImage, QuadMesh)):
                    extent = artist.get_window_extent(renderer)
                    if box.overlaps(extent):
                        found.append(f"{name}: an image")
                    continue
                xy = _points(artist, ax)
                if not xy.size:
                    continue
                xy = xy[np.isfinite(xy).all(axis=1)]
                inside_axes = ((xy[:, 0] >= clip.x0) & (xy[:, 0] <= clip.x1)
                               & (xy[:, 1] >= clip.y0) & (xy[:, 1] <= clip.y1))
                hit = (inside_axes & (xy[:, 0] > box.x0) & (xy[:, 0] < box.x1)
                       & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1))
                if hit.any():
                    found.append(f"{name}: {artist.get_label() or type(artist).__name__}")
    return found


def legend_texts(ax):
    """The texts of the legend of ``ax`` (or, if it has none, of its figure's legend), in order."""
    legend = ax.get_legend() or ax.figure.legends[0]
    return [t.get_text() for t in legend.get_texts()]


def labelled_lines(ax):
    """The lines of ``ax`` that have a legend label (matplotlib marks the others with a leading underscore)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]
