"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def distributions(size: int, *, allow_zeros: bool = False) -> st.SearchStrategy[np.ndarray]:
    """Probability vectors of a given size (normalised positive weights; optionally with exact zeros)."""
    low = 0.0 if allow_zeros else 1e-3
    weights = hnp.arrays(np.float64, size, elements=st.floats(low, 1.0, allow_nan=False))
    return weights.filter(lambda w: w.sum() > 0).map(lambda w: w / w.sum())


def joint_tables(rows: int, cols: int) -> st.SearchStrategy[np.ndarray]:
    return distributions(rows * cols).map(lambda p: p.reshape(rows, cols))


def stochastic_matrices(rows: int, cols: int) -> st.SearchStrategy[np.ndarray]:
    """Channels W[i, j] = P(output j | input i): each row a probability vector."""
    rows_ = [distributions(cols, allow_zeros=True) for _ in range(rows)]
    return st.tuples(*rows_).map(np.stack)
