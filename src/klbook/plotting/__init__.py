"""Plotting helpers for the chapters, one submodule per topic, so that notebooks keep only the sentence
that asks the reader to look and one call that draws.

All figures use :func:`book_style`: an opaque white background, so they stay readable when the book is
shown in dark mode, and labelled axes.
"""

from .style import book_style, new_figure, on_phone, panel_figure

__all__ = ["book_style", "new_figure", "on_phone", "panel_figure"]
