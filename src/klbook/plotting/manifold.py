"""Figures of decoded latent spaces (chapter 5): the decoded 2-D manifold on a grid of codes, side by side
for several models, and latent traversals (one dimension varied at a time).

Each function draws one figure in the book's style and returns ``(fig, axes)``; the images are decoded in
the chapter and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .style import book_style, new_figure, panel_figure

__all__ = ["image_mosaic", "plot_manifold_grids", "plot_traversals"]


def image_mosaic(
    images: np.ndarray, image_shape: tuple[int, int] = (8, 8), gap: int = 1
) -> np.ndarray:
    """Tile ``images`` of shape ``(rows, cols, h * w)`` into one array, NaN between the tiles."""
    rows, cols = images.shape[:2]
    h, w = image_shape
    mosaic = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(cols):
            mosaic[
                r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w
            ] = images[r, c].reshape(h, w)
    return mosaic


def plot_manifold_grids(
    grids: Mapping[str, np.ndarray],
    *,
    image_shape: tuple[int, int] = (8, 8),
    axis_label: str = "$z_1$",
) -> tuple[Any, Any]:
    r"""One panel per entry of ``grids`` (``title -> images of shape (n, n, h * w)``, values in [0, 1]):
    the image decoded at grid point ``(i, j)`` drawn in row ``i`` (top to bottom: :math:`z_2` falling) and
    column ``j`` (:math:`z_1` rising), as in Kingma and Welling (2013), Fig. 4."""
    n_panels = len(grids)

    def draw(fig: Any, axes: Any) -> None:
        cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
        for ax, (title, images) in zip(axes, grids.items(), strict=True):
            ax.imshow(
                image_mosaic(np.asarray(images, dtype=float), image_shape),
                cmap=cmap,
                vmin=0,
                vmax=1,
            )
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_xlabel(f"{axis_label} rising →")
            ax.set_ylabel("$z_2$ falling ↓")
        fig.tight_layout()

    fig, axes = panel_figure(draw, n_panels, width=6.4, height=3.6, phone_height=n_panels * 3.9)
    return fig, axes


def plot_traversals(
    rows: Mapping[str, np.ndarray],
    values: Sequence[float],
    *,
    image_shape: tuple[int, int] = (8, 8),
) -> tuple[Any, Any]:
    """Latent traversals: one labelled row per entry of ``rows`` (``label -> images (m, h * w)``), the
    column ``j`` decoded with the varied coordinate at ``values[j]`` (printed under the columns)."""
    images = np.stack([np.asarray(v, dtype=float) for v in rows.values()])
    h, w = image_shape
    m = images.shape[1]
    fig, ax = new_figure(width=min(6.4, 0.5 * m + 1.9), height=0.55 * len(rows) + 0.7)
    with book_style():
        cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
        ax.imshow(
            image_mosaic(images, image_shape),
            cmap=cmap,
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(rows))])
        ax.set_yticklabels(list(rows))
        ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(m)])
        ax.set_xticklabels([f"{v:g}" for v in values])
        ax.set_xlabel("value of the varied latent coordinate")
        ax.set_ylabel("varied")
        ax.grid(False)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.tight_layout()
    return fig, ax
