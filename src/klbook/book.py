"""Glue a computed value into a chapter's prose (myst-nb ``glue``), the same way in every chapter.

A number in the book's prose is never typed: a cell computes it and glues it under a name, and the text
shows it with ``{glue:text}`name:.4f```. nbval compares the stored glue records with a fresh run, so the
value glued must print the same on every run: floats are rounded to a fixed number of significant digits
(the last digits of a float can depend on the order of summation), integers and strings are glued as
they are.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["glue", "rounded"]


def rounded(value: Any, digits: int = 8) -> int | float | str:
    """Return ``value`` as a plain Python int, float or str, floats rounded to ``digits`` significant digits.

    Parameters
    ----------
    value
        A Python or numpy number, a 0-d numpy array or torch tensor, or a string.
    digits
        Significant digits kept for a float (1 to 17).

    Returns
    -------
    int, float or str
        Integers (Python, numpy, 0-d integer arrays) unchanged as ``int``; strings unchanged; everything
        else as ``float(f"{value:.{digits}g}")``, so that +-inf stay infinite.

    Raises
    ------
    TypeError
        If ``value`` is a bool, an array with more than one element, or not a number or string.
    ValueError
        If ``value`` is NaN or ``digits`` is not between 1 and 17.
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ValueError(f"digits must be an integer between 1 and 17, got {digits!r}")
    if isinstance(value, str):
        return value
    if hasattr(value, "ndim") and hasattr(value, "shape"):  # numpy array or torch tensor
        if value.ndim != 0:
            raise TypeError(f"value must be a scalar, got an array of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or (type(value).__name__ == "bool_"):
        raise TypeError("value must be a number or a string, got a bool (glue the text you want to show)")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not isinstance(value, numbers.Real):
        raise TypeError(f"value must be a real number or a string, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError("value is NaN: a glued number must be a result, not a failed computation")
    return float(f"{value:.{digits}g}")


def glue(name: str, value: Any, *, digits: int = 8) -> None:
    """Glue ``rounded(value, digits)`` under ``name`` without displaying it.

    Parameters
    ----------
    name
        The key the prose uses in ``{glue:text}`name```; a non-empty string without spaces.
    value, digits
        See :func:`rounded`.

    Returns
    -------
    None
        Nothing, so that a cell ending with a glue call displays nothing (a returned value would be shown
        under the cell, on the page and in the notebook). ``rounded(value, digits)`` is the value glued,
        for a check cell that asserts on exactly what the prose shows.
    """
    if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
        raise ValueError(f"name must be a non-empty string without whitespace, got {name!r}")
    glued = rounded(value, digits)
    from myst_nb import glue as myst_glue  # imported here: only the book needs myst-nb

    myst_glue(name, glued, display=False)
