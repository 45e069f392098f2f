"""Small image data sets for the autoencoder chapters, as float32 arrays in [0, 1].

Nothing here downloads anything. :func:`load_digits` uses the 8x8 handwritten digits that ship inside
scikit-learn (1,797 images, UCI "Optical Recognition of Handwritten Digits", pixel counts 0..16).
:func:`split_dataset` is the general entry point: a reader that has, say, MNIST on disk as arrays passes
them to it with ``scale=255``.

The split is **stratified** (every class keeps, up to rounding, the same share in the test set) and is
drawn with ``numpy.random.default_rng(seed)``: the same ``seed`` gives the same split on every machine.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["DataSplit", "load_digits", "split_dataset"]


class DataSplit(NamedTuple):
    """A train/test split of a labelled image data set.

    Attributes
    ----------
    x_train, x_test
        ``float32`` arrays of shape ``(n, d)``: one flattened image per row, every value in ``[0, 1]``.
    y_train, y_test
        ``int64`` arrays of shape ``(n,)``: the class labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _check_fraction(test_fraction: float) -> float:
    try:
        fraction = float(test_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}") from None
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {fraction}")
    return fraction


def split_dataset(
    images: Any,
    labels: Any,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    scale: float | None = None,
    stratify: bool = True,
) -> DataSplit:
    """Flatten, scale and split a labelled image data set into train and test parts.

    Parameters
    ----------
    images
        Array-like of shape ``(n, ...)``: ``n`` images of any shape, flattened to ``(n, d)``.
    labels
        Array-like of ``n`` integer class labels.
    test_fraction
        Share of the examples that go to the test set, strictly between 0 and 1. With
        ``stratify=True`` each class ``c`` with ``n_c`` examples contributes ``round(test_fraction * n_c)``
        of them (so the total can differ from ``round(test_fraction * n)`` by the rounding of each class).
    seed
        Seed of the ``numpy.random.default_rng`` that draws the split (and the order of the rows).
    scale
        If given, the pixel values are divided by it (``16`` for the scikit-learn digits, ``255`` for
        8-bit images). After scaling every value must lie in ``[0, 1]``.
    stratify
        Stratified split (default) or a plain shuffled split.

    Returns
    -------
    DataSplit
        ``x`` as ``float32`` of shape ``(n, d)``, ``y`` as ``int64``; the rows of each part in a random
        (seeded) order.

    Raises
    ------
    ValueError
        If the numbers of images and labels differ, there are fewer than two examples, labels are not
        integers, ``test_fraction`` is not in ``(0, 1)``, ``scale`` is not positive, a value is not finite
        or lies outside ``[0, 1]`` after scaling, or the train or test part would be empty.
    """
    fraction = _check_fraction(test_fraction)
    try:
        x = np.asarray(images, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("images must be a numeric array of shape (n, ...)") from None
    y_raw = np.asarray(labels)
    if x.ndim < 1 or y_raw.ndim != 1:
        raise ValueError(
            f"images must have shape (n, ...) and labels shape (n,), got {x.shape} and {y_raw.shape}"
        )
    if len(x) != len(y_raw):
        raise ValueError(f"images and labels have different lengths: {len(x)} != {len(y_raw)}")
    n = len(x)
    if n < 2:
        raise ValueError(f"need at least two examples to split, got {n}")
    if not (np.issubdtype(y_raw.dtype, np.integer) or np.issubdtype(y_raw.dtype, np.bool_)):
        as_float = y_raw.astype(np.float64) if np.issubdtype(y_raw.dtype, np.number) else None
        if as_float is None or not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
            raise ValueError(f"labels must be integers, got dtype {y_raw.dtype}")
    y = y_raw.astype(np.int64)
    x = x.reshape(n, -1)
    if scale is not None:
        scale = float(scale)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        x = x / scale
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        hint = "" if scale is not None else " (pass scale=..., e.g. 255 for 8-bit images)"
        raise ValueError(f"pixel values must lie in [0, 1] after scaling, got [{low:g}, {high:g}]{hint}")

    rng = np.random.default_rng(seed)
    if stratify:
        test_parts, train_parts = [], []
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            n_test = int(round(fraction * len(members)))
            test_parts.append(members[:n_test])
            train_parts.append(members[n_test:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    else:
        order = rng.permutation(n)
        n_test = int(round(fraction * n))
        test_idx, train_idx = order[:n_test], order[n_test:]
    if len(test_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"test_fraction={fraction} leaves an empty {'test' if len(test_idx) == 0 else 'train'} set "
            f"for {n} examples"
        )
    x32 = x.astype(np.float32)
    return DataSplit(x32[train_idx], y[train_idx], x32[test_idx], y[test_idx])


def load_digits(*, test_fraction: float = 0.25, seed: int = 0) -> DataSplit:
    """The 8x8 handwritten digits bundled with scikit-learn, scaled to ``[0, 1]`` and split.

    1,797 grey-level images of the digits 0-9 (about 180 per class), each pixel a count ``0..16`` of
    set bits in a 4x4 block of the original 32x32 binary bitmap, divided here by 16. The data ship inside
    scikit-learn: nothing is downloaded. The split is stratified and seeded (see :func:`split_dataset`).

    Parameters
    ----------
    test_fraction
        Share of the examples in the test set, in ``(0, 1)``.
    seed
        Seed of the split.

    Returns
    -------
    DataSplit
        ``x_train`` / ``x_test`` of shape ``(n, 64)``, ``float32`` in ``[0, 1]``; labels ``int64``.

    Raises
    ------
    ValueError
        If ``test_fraction`` is not in ``(0, 1)``.
    """
    _check_fraction(test_fraction)
    from sklearn.datasets import load_digits as _sklearn_load_digits

    images, labels = _sklearn_load_digits(return_X_y=True)
    return split_dataset(images, labels, test_fraction=test_fraction, seed=seed, scale=16.0)
