"""Figures for the autoencoder chapter: image grids, 2-D latent spaces, interpolation paths, error histograms.

Every function draws a new figure in the book's style (:func:`klbook.plotting.style.book_style`) and
returns it; notebooks end the call with ``;``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from ._validate import finite_1d, finite_number, points_2d, require_finite, require_one_per
from .style import book_style

__all__ = ["show_images", "latent_scatter", "path_profile", "error_histograms"]

_DIGIT_COLOURS = plt.get_cmap("tab10")


def _as_grid(images: Any, ncols: int | None) -> np.ndarray:
    """Images as an array (rows, cols, d)."""
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 3:
        return arr
    if arr.ndim != 2:
        raise ValueError(f"images must have shape (n, d) or (rows, cols, d), got {arr.shape}")
    n = arr.shape[0]
    ncols = n if ncols is None else int(ncols)
    if ncols < 1 or n % ncols:
        raise ValueError(f"{n} images do not fill rows of ncols={ncols}")
    return arr.reshape(n // ncols, ncols, arr.shape[1])


def show_images(
    images: Any,
    *,
    ncols: int | None = None,
    shape: tuple[int, int] = (8, 8),
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    signed: bool = False,
    size: float = 0.62,
    title: str | None = None,
) -> Figure:
    """A grid of small grey-level images.

    Parameters
    ----------
    images
        Flattened images, shape ``(n, d)`` (laid out in rows of ``ncols``) or ``(rows, cols, d)``; finite.
    shape
        Image shape, ``d = shape[0] * shape[1]``.
    row_labels, col_labels
        Text left of each row / above each column: one per row / column.
    signed
        Pixel values are in ``[0, 1]`` (ink dark on white) unless ``signed``: then each image is shown with
        a diverging colour map symmetric about 0 (for directions such as principal components).
    size
        Side of one image in inches.

    Raises
    ------
    ValueError
        If the images do not fill whole rows, do not have ``shape[0] * shape[1]`` pixels, contain NaN or
        infinities, or the labels do not match the numbers of rows and columns.
    """
    grid = _as_grid(images, ncols)
    rows, cols, d = grid.shape
    if d != shape[0] * shape[1]:
        raise ValueError(f"images of {d} pixels cannot be shown with shape {shape}")
    require_finite("images", grid)
    require_one_per("row_labels", row_labels, rows, "row")
    require_one_per("col_labels", col_labels, cols, "column")
    left = 1.1 if row_labels is not None else 0.1
    top = 0.35 if (col_labels is not None or title is not None) else 0.1
    with book_style():
        fig, axes = plt.subplots(
            rows,
            cols,
            figsize=(left + cols * size, top + rows * size),
            squeeze=False,
            gridspec_kw={"wspace": 0.06, "hspace": 0.06},
        )
        for r in range(rows):
            for c in range(cols):
                ax = axes[r, c]
                image = grid[r, c].reshape(shape)
                if signed:
                    limit = float(np.abs(image).max()) or 1.0
                    ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
                else:
                    ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("0.8")
            if row_labels is not None:
                axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=9)
        if col_labels is not None:
            for c in range(cols):
                axes[0, c].set_title(col_labels[c], fontsize=8)
        fig.subplots_adjust(left=left / fig.get_figwidth(), right=0.99, bottom=0.02)
        if title is not None:
            fig.suptitle(title, fontsize=10)
    return fig


def latent_scatter(
    codes: Any,
    labels: Any,
    *,
    extra: Mapping[str, Any] | None = None,
    paths: Mapping[str, Any] | None = None,
    xlabel: str = "$z_1$",
    ylabel: str = "$z_2$",
    title: str | None = None,
    width: float = 6.4,
    height: float = 4.6,
) -> Figure:
    """Two-dimensional codes coloured by digit, with optional overlays.

    Parameters
    ----------
    codes
        Finite array ``(n, 2)`` of codes, ``n >= 1``.
    labels
        ``n`` integer class labels 0..9 (colours of the ``tab10`` map, one legend entry per class).
    extra
        ``{legend label: array (m, 2)}``: further point sets drawn on top as black/grey markers (e.g. draws
        from a prior).
    paths
        ``{legend label: array (m, 2)}``: polylines drawn on top (e.g. an interpolation path).

    Raises
    ------
    ValueError
        If ``codes`` is not a non-empty, finite ``(n, 2)`` array with one label per code, or a point set of
        ``extra`` or ``paths`` is not a non-empty, finite ``(m, 2)`` array.
    """
    z = np.asarray(codes, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or z.shape[1] != 2 or len(z) != len(y):
        raise ValueError(f"codes must have shape (n, 2) matching n labels, got {z.shape} and {y.shape}")
    if len(z) == 0:
        raise ValueError("codes is empty; it needs at least one code")
    require_finite("codes", z)
    extra_points = {name: points_2d(f"extra[{name!r}]", points) for name, points in (extra or {}).items()}
    path_points = {name: points_2d(f"paths[{name!r}]", points) for name, points in (paths or {}).items()}
    markers = ["x", "+", "1", "."]
    with book_style():
        fig, ax = plt.subplots(figsize=(width, height))
        for label in np.unique(y):
            sel = y == label
            colour = _DIGIT_COLOURS(int(label) % 10)
            ax.scatter(z[sel, 0], z[sel, 1], s=6, color=colour, label=str(label), alpha=0.8)
        for i, (name, p) in enumerate(extra_points.items()):
            ax.scatter(p[:, 0], p[:, 1], s=14, marker=markers[i % len(markers)], color="black", lw=0.8, label=name)
        for name, p in path_points.items():
            ax.plot(p[:, 0], p[:, 1], "-o", color="black", ms=3, lw=1.2, label=name)
        ax.set_aspect("equal", adjustable="datalim")  # distances in the plane are what the chapter measures
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title is not None:
            ax.set_title(title)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, markerscale=1.5, frameon=False)
        fig.tight_layout()
    return fig


def path_profile(
    t: Any,
    curves: Mapping[str, Any],
    *,
    reference: tuple[str, float] | None = None,
    xlabel: str = "position on the path $t$",
    ylabel: str = "distance",
    width: float = 6.4,
    height: float = 3.2,
) -> Figure:
    """Curves along an interpolation path, e.g. the distance of each decoded image to the nearest
    training image, with an optional horizontal reference line ``(label, value)``.

    ``t`` is a non-empty, finite 1-D array, and every curve a finite array of its shape (at least one
    curve); otherwise ``ValueError``.
    """
    tt = finite_1d("t", t)
    if not curves:
        raise ValueError("curves is empty; it needs at least one curve")
    arrays = {}
    for name, values in curves.items():
        array = np.asarray(values, dtype=np.float64)
        if array.shape != tt.shape:
            raise ValueError(f"curves[{name!r}] must have shape {tt.shape} like t, got {array.shape}")
        require_finite(f"curves[{name!r}]", array)
        arrays[name] = array
    if reference is not None:
        finite_number("the reference value", reference[1])
    with book_style():
        fig, ax = plt.subplots(figsize=(width, height))
        style = "-o" if len(tt) <= 60 else "-"  # markers only where they can be told apart
        for name, values in arrays.items():
            ax.plot(tt, values, style, ms=3, label=name)
        if reference is not None:
            ax.axhline(reference[1], color="0.3", ls="--", lw=1, label=reference[0])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        top = max([float(np.max(v)) for v in arrays.values()] + ([reference[1]] if reference else []))
        ax.set_ylim(0, 1.3 * top)  # head room for the legend
        ax.legend(fontsize=8)
        fig.tight_layout()
    return fig


def error_histograms(
    errors: Mapping[str, Any],
    *,
    bins: int = 40,
    xlabel: str = "reconstruction error (mean squared error per pixel)",
    log_x: bool = False,
    width: float = 6.4,
    height: float = 3.2,
) -> Figure:
    """Overlaid histograms of scores (e.g. reconstruction errors of normal and anomalous inputs), each
    normalised to total 1 so that groups of different sizes can be compared (the y axis is the share of the
    group's inputs in each bin).

    Parameters
    ----------
    errors
        ``group name -> scores``: at least one group, each a non-empty, finite 1-D array.
    bins
        Number of bins (a positive integer), shared by all groups.
    log_x
        Logarithmically spaced bins and axis. The scores must then be non-negative with at least one
        positive; the bins start at the smallest positive score, and scores of 0 (e.g. exact
        reconstructions), which a log axis cannot place, are counted in the lowest bin.

    Raises
    ------
    ValueError
        If the groups or ``bins`` are not as described above.
    """
    if not errors:
        raise ValueError("errors must contain at least one group")
    arrays = {name: finite_1d(f"errors[{name!r}]", values) for name, values in errors.items()}
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    every = np.concatenate(list(arrays.values()))
    if log_x:
        if (every < 0).any():
            raise ValueError(f"log_x needs non-negative errors, got {float(every.min())}")
        positive = every[every > 0]
        if positive.size == 0:
            raise ValueError("log_x needs at least one positive error (every error is 0)")
        low, high = float(positive.min()), float(positive.max())
        if low == high:  # one distinct value: a bin range around it
            low, high = low / 2.0, high * 2.0
        edges = np.geomspace(low, high, bins + 1)
    else:
        low, high = float(every.min()), float(every.max())
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, bins + 1)
    with book_style():
        fig, ax = plt.subplots(figsize=(width, height))
        for name, values in arrays.items():
            weights = np.full(len(values), 1.0 / len(values))
            # with log_x, zeros fall below the first edge: count them in the lowest bin
            ax.hist(np.clip(values, edges[0], edges[-1]), bins=edges, weights=weights, alpha=0.55,
                    label=f"{name} (n={len(values)})")
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of the group")
        ax.legend(fontsize=8)
        fig.tight_layout()
    return fig
