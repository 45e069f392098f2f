"""Shared figure style."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt

_STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "font.size": 10,
}


@contextlib.contextmanager
def book_style() -> Iterator[None]:
    """Context manager applying the book's matplotlib style (white background, light grid)."""
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
    """A figure and axes in the book's style (returned as ``plt.subplots`` does)."""
    with book_style():
        return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)
