"""Input checks shared by the plotting modules.

Each check raises ``ValueError`` with a message that names the offending argument, before anything is drawn.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import numpy as np


def require_finite(name: str, array: Any) -> None:
    """Raise ``ValueError`` naming ``name`` if ``array`` holds NaN or an infinity."""
    array = np.asarray(array, dtype=float)
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN; it must be finite")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains an infinity; it must be finite")


def require_positive(name: str, array: np.ndarray, why: str) -> None:
    """Raise ``ValueError`` unless every entry of ``array`` is finite and > 0 (``why`` says what needs it)."""
    bad = ~(np.isfinite(array) & (array > 0))
    if bad.any():
        raise ValueError(f"{name} must be finite and positive ({why}), got {float(array[bad][0])}")


def require_non_negative(name: str, array: np.ndarray, why: str) -> None:
    """Raise ``ValueError`` unless every entry of the (finite) ``array`` is >= 0 (``why`` says what needs it)."""
    if (array < 0).any():
        raise ValueError(f"{name} must be non-negative ({why}), got {float(array.min())}")


def require_same_length(**arrays: np.ndarray) -> None:
    """Raise ``ValueError`` listing the sizes unless all ``arrays`` have the same number of entries."""
    lengths = {name: a.size for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays must have the same length, got {lengths}")


def require_one_per(name: str, items: Sized | None, count: int, what: str) -> None:
    """Raise ``ValueError`` unless ``items`` is ``None`` or holds one entry per ``what`` (``count`` of them)."""
    if items is not None and len(items) != count:
        raise ValueError(f"{name} must have one entry per {what} ({count}), got {len(items)}")


def as_1d(name: str, values: Any, *, min_size: int = 2) -> np.ndarray:
    """``values`` as a 1-D float array of at least ``min_size`` entries (a curve); finiteness is not checked."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size < min_size:
        raise ValueError(f"{name} must be a 1-D array with at least {min_size} entries, got shape {array.shape}")
    return array


def finite_1d(name: str, values: Any, *, length: int | None = None, per: str = "point") -> np.ndarray:
    """``values`` as a non-empty, finite 1-D float array; with ``length``, one entry per ``per``."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; it needs at least one entry")
    if length is not None and array.size != length:
        raise ValueError(f"{name} must have one entry per {per} ({length}), got shape {array.shape}")
    require_finite(name, array)
    return array


def points_2d(name: str, values: Any, *, rows: str = "m") -> np.ndarray:
    """``values`` as a non-empty, finite float array of shape ``(rows, 2)`` (points in a plane)."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must have shape ({rows}, 2) with {rows} >= 1, got {array.shape}")
    require_finite(name, array)
    return array


def finite_number(name: str, value: float) -> float:
    """``value`` as a float; ``ValueError`` if it is NaN or infinite."""
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def positive_number(name: str, value: float) -> float:
    """``value`` as a float; ``ValueError`` unless it is finite and > 0."""
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def check_count(name: str, n: int, minimum: int = 2) -> int:
    """``n`` as an int; ``ValueError`` unless it is a whole number >= ``minimum``."""
    if int(n) != n or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def check_range(name: str, bounds: tuple[float, float], *, positive: bool = False) -> tuple[float, float]:
    """``bounds`` as finite floats ``(low, high)`` with ``low < high`` (and ``low > 0`` if ``positive``)."""
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (low, high), got {bounds!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"{name} must be finite with low < high, got ({low}, {high})")
    if positive and low <= 0:
        raise ValueError(f"{name} must be positive (standard deviations), got low = {low}")
    return low, high
