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


def inverse_lower(xp: Any, lower: Any) -> Any:
    """The inverse of a lower-triangular matrix (batched); lower triangular itself, with exact zeros
    above the diagonal (forward substitution on the identity only ever adds zeros there)."""
    eye = xp.eye(lower.shape[-1], dtype=lower.dtype)
    return solve_lower(xp, lower, xp.broadcast_to(eye, lower.shape))


def _split_bits(inner: int) -> int:
    """Bits of each high part such that a sum of ``inner`` products of high parts is exact in float64.

    A high part is a multiple of 2^(e - bits) with magnitude <= 2^(e + 1), so each product needs
    2 bits + 2 bits of headroom, and a sum of ``inner`` of them log2(inner) more: 2 bits + 2 +
    log2(inner) <= 53 (one more bit spare, because e comes from a rounded log2).
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
        # max |a| without a temporary |a|: these splits run on every batch of kl_mvn's correction
        largest = xp.maximum(xp.max(a, axis=axis, keepdims=True), -xp.min(a, axis=axis, keepdims=True))
        top = xp.exp2(xp.ceil(xp.log2(largest)))  # 2^e >= max |a|, up to one binade off; 0 for zeros
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


def exact_matvec(xp: Any, left: Split, vector: Split) -> tuple[Any, Any]:
    """``left @ vector`` for a batch of vectors split along their entries (``Split.along(v, -1)``),
    as an unevaluated sum ``exact + rest`` like :func:`exact_product`."""
    exact = matvec(xp, left.high, vector.high)
    rest = matvec(xp, left.high, vector.low) + matvec(xp, left.low, vector.value)
    return exact, rest


def gram_residual(xp: Any, target: Any, factor: Split) -> Any:
    """``target - F @ F.T`` for a left-split ``F``, accurate to a few digits even when the residual is
    at the level of the rounding errors of ``F @ F.T``."""
    exact, rest = exact_product(factor, factor.transpose(xp))
    residual = target - exact
    residual -= rest
    return residual
