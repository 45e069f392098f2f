"""Figures for the autoencoder chapter: image grids, 2-D latent spaces, interpolation paths, error histograms.

Every function draws a new figure in the book's style (:func:`klbook.plotting.style.book_style`) and
returns ``(fig, axes)`` as :func:`matplotlib.pyplot.subplots` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .style import book_style, new_figure

__all__ = ["show_images", "latent_scatter", "path_profile", "error_histograms"]

_DIGIT_COLOURS = plt.get_cmap("tab10")


def _as_grid(images: Any, ncols: int | None) -> np.ndarray:
    """Images as an array (rows, cols, d)."""
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 3:
        return arr
    n = arr.shape[0]
    ncols = n if ncols is None else int(ncols)
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
) -> tuple[Any, Any]:
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
    """
    grid = _as_grid(images, ncols)
    rows, cols, d = grid.shape
    left = 1.1 if row_labels is not None else 0.1
    top = 0.35 if (col_labels is not None or title is not None) else 0.1
    with book_style():
        fig, axes = new_figure(
            rows,
            cols,
            width=left + cols * size,
            height=top + rows * size,
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
                axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center")
        if col_labels is not None:
            for c in range(cols):
                axes[0, c].set_title(col_labels[c])
        fig.subplots_adjust(left=left / fig.get_figwidth(), right=0.99, bottom=0.02)
        if title is not None:
            fig.suptitle(title)
    return fig, axes


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
) -> tuple[Any, Any]:
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
    """
    z = np.asarray(codes, dtype=np.float64)
    y = np.asarray(labels)
    extra_points = {name: np.asarray(points, dtype=float) for name, points in (extra or {}).items()}
    path_points = {name: np.asarray(points, dtype=float) for name, points in (paths or {}).items()}
    markers = ["x", "+", "1", "."]
    with book_style():
        fig, ax = new_figure(width=width, height=height)
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
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=1.5, frameon=False)
        fig.tight_layout()
    return fig, ax


def path_profile(
    t: Any,
    curves: Mapping[str, Any],
    *,
    reference: tuple[str, float] | None = None,
    xlabel: str = "position on the path $t$",
    ylabel: str = "distance",
    width: float = 6.4,
    height: float = 3.2,
) -> tuple[Any, Any]:
    """Curves along an interpolation path, e.g. the distance of each decoded image to the nearest
    training image, with an optional horizontal reference line ``(label, value)``.

    ``t`` is a 1-D array, and every curve an array of its shape.
    """
    tt = np.asarray(t, dtype=float)
    arrays = {name: np.asarray(values, dtype=float) for name, values in curves.items()}
    with book_style():
        fig, ax = new_figure(width=width, height=height)
        style = "-o" if len(tt) <= 60 else "-"  # markers only where they can be told apart
        for name, values in arrays.items():
            ax.plot(tt, values, style, ms=3, label=name)
        if reference is not None:
            ax.axhline(reference[1], color="0.3", ls="--", lw=1, label=reference[0])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        top = max([float(np.max(v)) for v in arrays.values()] + ([reference[1]] if reference else []))
        ax.set_ylim(0, 1.3 * top)  # head room for the legend
        ax.legend()
        fig.tight_layout()
    return fig, ax


def error_histograms(
    errors: Mapping[str, Any],
    *,
    bins: int = 40,
    xlabel: str = "reconstruction error (mean squared error per pixel)",
    log_x: bool = False,
    width: float = 6.4,
    height: float = 3.2,
) -> tuple[Any, Any]:
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
    """
    arrays = {name: np.asarray(values, dtype=float) for name, values in errors.items()}
    every = np.concatenate(list(arrays.values()))
    if log_x:
        positive = every[every > 0]
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
        fig, ax = new_figure(width=width, height=height)
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
        ax.legend()
        fig.tight_layout()
    return fig, ax
