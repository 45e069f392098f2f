"""Input handling shared by every public function: one code path for floats, numpy and torch.

Each public function calls :func:`prepare` on its array arguments. It returns the array namespace ``xp``
(numpy or torch, through ``array_api_compat`` so one formula serves both), the arguments as float64 arrays
of a common broadcast shape, and a ``finish`` function that turns a float64 result back into the kind of
input the caller gave:

* Python floats and numpy arrays -> ``numpy.float64`` scalars or float64 arrays;
* torch tensors -> a tensor of the inputs' floating dtype on their device, still attached to the autograd
  graph (the float64 computation is part of it).

Computing in float64 is what lets float32 results come out correctly rounded (or within 1 ULP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import functools

import array_api_compat
import numpy as np

ArrayLike = Any  # float | numpy.ndarray | torch.Tensor


def _is_torch(x: object) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def prepare(
    names: Sequence[str], *args: ArrayLike, broadcast: bool = True
) -> tuple[Any, list[Any], Callable[[Any], Any]]:
    """Convert ``args`` to float64 arrays of one namespace, reject NaN, and broadcast them.

    Raises
    ------
    ValueError
        If an argument contains NaN, is not numeric, or the shapes do not broadcast.
    """
    tensors = [a for a in args if _is_torch(a)]
    if tensors:
        import torch

        device = tensors[0].device
        dtypes = [t.dtype for t in tensors if t.is_floating_point()]
        out_dtype = dtypes[0] if dtypes else torch.get_default_dtype()
        for dtype in dtypes[1:]:
            out_dtype = torch.promote_types(out_dtype, dtype)
        arrays = [
            a.to(device=device, dtype=torch.float64)
            if _is_torch(a)
            else torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)
            for a in args
        ]

        def finish(result: Any) -> Any:
            return result.to(out_dtype)

    else:
        try:
            arrays = [np.asarray(a, dtype=np.float64) for a in args]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{', '.join(names)} must be numeric: {exc}") from None

        def finish(result: Any) -> Any:
            result = np.asarray(result, dtype=np.float64)
            return result[()] if result.ndim == 0 else result

    for name, a in zip(names, arrays):
        if bool(_isnan_any(a)):
            raise ValueError(f"{name} contains NaN")
    xp = array_api_compat.array_namespace(*arrays)
    if broadcast and len(arrays) > 1:
        shapes = [tuple(a.shape) for a in arrays]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            described = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
            raise ValueError(f"shapes do not broadcast: {described}") from None
        arrays = list(xp.broadcast_arrays(*arrays))
    return xp, arrays, finish


def _isnan_any(a: Any) -> bool:
    if _is_torch(a):
        import torch

        return bool(torch.isnan(a.detach()).any())
    return bool(np.isnan(a).any())


def detached_numpy(a: Any) -> np.ndarray:
    """A numpy view of ``a`` for validation only (never part of the autograd graph)."""
    if _is_torch(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def require_finite(name: str, a: Any) -> None:
    values = detached_numpy(a)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite; it contains {float(values[~np.isfinite(values)].flat[0])}")


def require_positive(name: str, a: Any) -> None:
    values = detached_numpy(a)
    require_finite(name, a)
    if not (values > 0).all():
        raise ValueError(f"{name} must be > 0; its smallest value is {float(values.min()):g}")


def normalize_axis(axis: int, ndim: int, name: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (an axis to sum over)")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {name} with {ndim} dimension(s)")
    return int(axis) % ndim


def quiet_floating_point(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Silence numpy's floating-point warnings inside ``fn``.

    The formulas evaluate every branch of an ``xp.where`` on masked inputs, and an overflow to inf is the
    correct answer where the true value exceeds the float range; neither should reach the user as a
    RuntimeWarning. Results are what the tests check.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper
