"""Batched linear algebra for :func:`klbook.kl_mvn`, including products that keep every digit.

A float64 Cholesky factor, triangular solve or matrix product is exact for a slightly different
problem: ``L @ L.T`` is not quite ``cov``. ``kl_mvn`` evaluates the KL exactly for that nearby problem
and adds a first-order correction for the difference, which needs the residual ``cov - L @ L.T`` to a
few correct digits. Computed in float64 the residual is pure rounding noise, because it is as small as
the rounding errors of the product itself. :func:`exact_product` computes products to about twice the
working precision with ordinary matrix multiplications: each factor is split into a high part of ~23
bits, aligned to one power of two per row (or column), and a low part, so that the product of the
high parts is exact in float64 whatever order BLAS adds in (Ozaki et al., 2012, "Error-free
transformations of matrix multiplication by using fast routines of matrix multiplication and its
applications", Numer. Algorithms 59).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._array import _is_torch


def solve_lower(xp: Any, lower: Any, rhs: Any) -> Any:
    """``lower^-1 @ rhs`` for lower-triangular ``lower``, batched over leading axes (which broadcast)."""
    if _is_torch(lower):
        import torch

        return torch.linalg.solve_triangular(lower, rhs, upper=False)
    # Forward substitution, one row at a time for the whole batch: numpy has no batched triangular
    # solve, and scipy's loops over the batch in Python (~100 times slower for 2,000 pairs of 16 x 16).
    batch = np.broadcast_shapes(lower.shape[:-2], rhs.shape[:-2])
    solution = np.array(np.broadcast_to(rhs, batch + rhs.shape[-2:]), dtype=np.float64)
    for i in range(lower.shape[-1]):
        if i:
            solution[..., i, :] -= (lower[..., i : i + 1, :i] @ solution[..., :i, :])[..., 0, :]
        solution[..., i, :] /= lower[..., i, i, None]
    return solution


def torch_solve_lower(lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """:func:`solve_lower` for float64 numpy arrays through torch's batched triangular solve, on
    zero-copy views: for 128 pairs of 16 x 16 it takes ~0.4 of the time of the forward substitution in
    numpy. For arrays that come from torch tensors (torch is then loaded); the result is a numpy array."""
    import torch

    # torch wants writable arrays (a broadcast identity is not); it reads them only
    as_tensor = [torch.from_numpy(a if a.flags.c_contiguous and a.flags.writeable else a.copy()) for a in (lower, rhs)]
    return torch.linalg.solve_triangular(*as_tensor, upper=False).numpy()


Solve = Callable[[Any, Any], Any]


def inverse_lower(xp: Any, lower: Any, solve: Solve | None = None) -> Any:
    """The inverse of a lower-triangular matrix (batched); lower triangular itself, with exact zeros
    above the diagonal (forward substitution on the identity only ever adds zeros there). ``solve``:
    the triangular solve to use (:func:`solve_lower` in ``xp`` by default)."""
    eye = xp.eye(lower.shape[-1], dtype=lower.dtype)
    if solve is None:
        return solve_lower(xp, lower, xp.broadcast_to(eye, lower.shape))
    return solve(lower, xp.broadcast_to(eye, lower.shape))


def _max_abs(xp: Any, a: Any, axis: int) -> Any:
    """max |a| along ``axis`` (kept, of length 1) for ``axis`` -1 or -2, as a tree of elementwise maxima
    of halves (overlapping by one entry for odd lengths): numpy's own reductions along a short axis
    of a batch of small matrices take about twice the time (these splits run on every block of
    kl_mvn's correction)."""
    x = xp.abs(a)
    n, tail = a.shape[axis], (slice(None),) * (-1 - axis)
    while n > 1:
        h = (n + 1) // 2
        x = xp.maximum(x[(..., slice(0, h), *tail)], x[(..., slice(n - h, n), *tail)])
        n = h
    return x


# The exponent bits of a positive float64: masked, they are the largest power of 2 not above it.
_EXPONENT_BITS = 0x7FF0000000000000


def _power_of_two_above(xp: Any, x: Any) -> Any:
    """For x >= 0: a power of 2 with x < 2^e <= 2 x (2^e = 2^(floor(log2 x) + 1)), and 0 for 0. For
    numpy arrays from the exponent bits (an eighth of the time of log2 and exp2); subnormal x give 0
    (a split of them is then all high part, which is harmless)."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        return np.bitwise_and(x.view(np.int64), _EXPONENT_BITS).view(np.float64) * 2.0
    return xp.exp2(xp.floor(xp.log2(x)) + 1.0)


def _split_bits(inner: int) -> int:
    """Bits of each high part such that a sum of ``inner`` products of high parts is exact in float64.

    A high part is a multiple of 2^(e - bits) with magnitude <= 2^(e + 1), so each product needs
    2 bits + 2 bits of headroom, and a sum of ``inner`` of them log2(inner) more: 2 bits + 2 +
    log2(inner) <= 53 (one more bit spare: 2^e is at most twice the largest entry, so the high parts
    stay below 2^e in magnitude).
    """
    return (50 - math.ceil(math.log2(max(inner, 1)))) // 2


@dataclass(frozen=True)
class Split:
    """A matrix ``value = high + low`` (exactly), ``high`` aligned for exact products.

    Along ``axis`` (the axis summed over in a product: -1 for a left factor, -2 for a right one), every
    entry of ``high`` is a multiple of one power of two and keeps about ``_split_bits`` leading bits of
    the largest entry. ``high`` is obtained by adding and subtracting ``sigma`` (Dekker-style rounding,
    exact by Sterbenz's lemma), and ``low = value - high`` is exact.
    """

    value: Any
    high: Any
    low: Any

    @classmethod
    def along(cls, xp: Any, a: Any, axis: int) -> Split:
        bits = _split_bits(a.shape[axis])
        top = _power_of_two_above(xp, _max_abs(xp, a, axis))  # 2^e >= max |a|, at most 2 max |a|; 0 for zeros
        sigma = (1.5 * 2.0 ** (52 - bits)) * top
        high = a + sigma
        high -= sigma  # in place on a fresh array: one temporary less
        return cls(a, high, a - high)

    @classmethod
    def left(cls, xp: Any, a: Any) -> Split:
        return cls.along(xp, a, -1)

    @classmethod
    def right(cls, xp: Any, a: Any) -> Split:
        return cls.along(xp, a, -2)

    def transpose(self, xp: Any) -> Split:
        """The split of the transpose (a left split becomes a right one, and vice versa)."""
        return Split(*(xp.matrix_transpose(a) for a in (self.value, self.high, self.low)))


def exact_product(left: Split, right: Split) -> tuple[Any, Any]:
    """``left @ right`` as an unevaluated sum ``exact + rest``, with an error ~2^-23 times that of a
    float64 matmul: the product of the high parts is exact, the others are ~2^-23 times smaller, and so
    are their rounding errors."""
    exact = left.high @ right.high
    rest = left.high @ right.low
    rest += left.low @ right.value
    return exact, rest


def matvec(xp: Any, a: Any, v: Any) -> Any:
    """Batched ``a @ v`` for vectors ``v`` (elementwise products and a sum: faster than one-column
    matmuls, and exact whatever the order of the sum when the products and partial sums are)."""
    return xp.sum(a * v[..., None, :], axis=-1)


def gram_residual(xp: Any, target: Any, factor: Split) -> Any:
    """``target - F @ F.T`` for a left-split ``F``, accurate to a few digits even when the residual is
    at the level of the rounding errors of ``F @ F.T``."""
    exact, rest = exact_product(factor, factor.transpose(xp))
    residual = target - exact
    residual -= rest
    return residual
