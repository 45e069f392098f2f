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

from collections.abc import Callable, Collection, Sequence
from typing import Any

import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import array_api_compat
import numpy as np

ArrayLike = Any  # float | numpy.ndarray | torch.Tensor


def _is_torch(x: object) -> bool:
    module = type(x).__module__  # "torch" for a Tensor, "torch.nn.parameter" for a Parameter
    return module == "torch" or module.startswith("torch.")


def namespace(*arrays: Any) -> Any:
    """The array namespace of ``arrays`` (``array_api_compat``'s numpy or torch wrapper).

    The same as ``array_api_compat.array_namespace`` for the numpy arrays and torch tensors klbook
    works on, without its generic dispatch, which costs ~20 µs per call: a fixed cost that dominates
    small batches, and every public function asks at least once.
    """
    kinds = {type(a) for a in arrays}
    if kinds <= {np.ndarray, np.float64}:
        import array_api_compat.numpy as xp_numpy

        return xp_numpy
    if all(_is_torch(a) for a in arrays):
        import array_api_compat.torch as xp_torch

        return xp_torch
    return array_api_compat.array_namespace(*arrays)


def prepare(
    names: Sequence[str],
    *args: ArrayLike,
    broadcast: bool = True,
    may_be_infinite: Collection[str] = (),
    may_be_minus_infinite: Collection[str] = (),
    keep_narrow: bool = False,
) -> tuple[Any, list[Any], Callable[[Any], Any]]:
    """Validate ``args``, convert them to float64 arrays of one namespace, and broadcast them.

    Every argument must be real numbers (see :func:`real_array`) free of NaN, and finite unless its
    name is in ``may_be_infinite`` (either sign allowed) or ``may_be_minus_infinite`` (-inf allowed).
    With ``keep_narrow``, torch inputs that are all of floating dtypes narrower than float64 (float32,
    float16, bfloat16) are returned in their common dtype instead: the caller converts them chunk by
    chunk (see :func:`is_narrow`), which is much faster than converting whole batches up front.

    Raises
    ------
    TypeError
        If an argument is not real numbers (None, strings, complex values, a masked array).
    ValueError
        If an argument contains NaN, a forbidden infinity or an integer beyond the float64 range, or the
        shapes do not broadcast.
    """
    args = tuple(real_array(name, a) for name, a in zip(names, args))
    if not _all_finite(args):
        for name, a in zip(names, args):
            _check_finite(
                name, a, allow_inf=name in may_be_infinite, allow_minus_inf=name in may_be_minus_infinite
            )
    tensors = [a for a in args if _is_torch(a)]
    if tensors:
        import torch

        device = tensors[0].device
        dtypes = [t.dtype for t in tensors if t.is_floating_point()]
        out_dtype = dtypes[0] if dtypes else torch.get_default_dtype()
        for dtype in dtypes[1:]:
            out_dtype = torch.promote_types(out_dtype, dtype)
        # Only when every argument is a narrow tensor: a float64 argument would not be exact in out_dtype.
        narrow = keep_narrow and len(tensors) == len(args) and all(is_narrow(t) for t in tensors)
        arrays = [
            a.to(device=device, dtype=out_dtype if narrow else torch.float64)
            if _is_torch(a)
            else torch.as_tensor(a, device=device)
            for a in args
        ]

        def finish(result: Any) -> Any:
            return result.to(out_dtype)

    else:
        arrays = list(args)

        def finish(result: Any) -> Any:
            result = np.asarray(result, dtype=np.float64)
            return result[()] if result.ndim == 0 else result

    xp = namespace(*arrays)
    if broadcast and len(arrays) > 1:
        shapes = [tuple(a.shape) for a in arrays]
        if len(set(shapes)) > 1:  # equal shapes (the common case) need no broadcasting
            try:
                np.broadcast_shapes(*shapes)
            except ValueError:
                described = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
                raise ValueError(f"shapes do not broadcast: {described}") from None
            arrays = list(xp.broadcast_arrays(*arrays))
    return xp, arrays, finish


def real_array(name: str, a: ArrayLike) -> Any:
    """``a`` as a float64 numpy array, or unchanged if it is a real torch tensor; other kinds refused.

    Accepted: Python and numpy numbers (bool and integers included), sequences of them, real numpy arrays,
    real torch tensors. Refused with a ``TypeError`` naming ``name``: None, strings (also numeric ones: a
    string is not a number), complex values (their imaginary part would be lost), numpy masked arrays
    (the mask would be ignored; fill or select the valid entries first). Python integers beyond the
    float64 range give a ``ValueError`` (not a raw ``OverflowError``).
    """
    if a is None:
        raise TypeError(f"{name} must be a number or an array of numbers, got None")
    if _is_torch(a):
        if a.is_complex():
            raise TypeError(f"{name} must be real; got a complex tensor ({a.dtype})")
        return a
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array, whose mask klbook would ignore: pass {name}.filled(value) "
            f"or the valid entries ({name}.compressed())"
        )
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a number or an array of numbers, got the string {a!r}")
    try:
        values = np.asarray(a)
    except (TypeError, ValueError) as exc:  # e.g. ragged nesting
        raise ValueError(f"{name} must be a number or a rectangular array of numbers: {exc}") from None
    kind = values.dtype.kind
    if kind in "biuf":
        return np.asarray(values, dtype=np.float64)
    if kind == "c":
        raise TypeError(f"{name} must be real; got complex values (dtype {values.dtype})")
    if kind == "O":
        return _object_values(name, values)
    raise TypeError(f"{name} must be a number or an array of numbers, got an array of dtype {values.dtype}")


def _object_values(name: str, values: np.ndarray) -> np.ndarray:
    """Float64 values of an object array (numbers numpy could not type: huge integers, None, mixtures)."""
    out = np.empty(values.shape, dtype=np.float64)
    for index, item in np.ndenumerate(values):
        if item is None or isinstance(item, (str, bytes, complex, np.complexfloating)):
            raise TypeError(f"{name} must be real numbers; it contains {item!r}")
        try:
            out[index] = float(item)
        except OverflowError:
            raise ValueError(f"{name} contains an integer beyond the float64 range ({str(item)[:12]}...)") from None
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be real numbers; it contains {type(item).__name__} {item!r}") from None
    return out


# Significand bits of the torch dtypes narrower than float64.
_NARROW_BITS = {"torch.float32": 24, "torch.float16": 11, "torch.bfloat16": 8}


def is_narrow(a: Any) -> bool:
    """True for a torch tensor of a floating dtype narrower than float64 (as :func:`prepare` may return),
    or a numpy view of one.

    Such inputs, and their differences, are exact in float64 with at least 29 bits to spare, so short
    formulas evaluated in float64 keep their rounding errors far below the narrow dtype's ULP where the
    same formulas lose digits for float64 inputs (see the narrow kernels in :mod:`klbook.gaussian`).
    """
    if isinstance(a, np.ndarray):  # a chunk evaluated in numpy (see in_chunks)
        return a.dtype in (np.float32, np.float16)
    return _is_torch(a) and str(a.dtype) in _NARROW_BITS


def _all_finite(arrays: Sequence[Any]) -> bool:
    """True if every entry of every array is finite, by one sum per array and one test of their total
    (a fixed cost of microseconds per test matters on small batches); False also where that cannot
    tell (a non-finite or overflowing total, tensors off the CPU or not float32/float64): the arrays
    are then checked one by one (:func:`_check_finite`), which says what is wrong."""
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for a in arrays:
            if _is_torch(a):
                if a.device.type != "cpu" or str(a.dtype) not in ("torch.float32", "torch.float64"):
                    return False
                a = a.detach().numpy()
            total += float(a.sum())
    return math.isfinite(total)


def _check_finite(name: str, a: ArrayLike, *, allow_inf: bool, allow_minus_inf: bool = False) -> None:
    """One pass in the common case (everything finite); the message says what is wrong otherwise.

    ``a`` is a real torch tensor or a float64 numpy array (see :func:`real_array`).
    """
    # A finite sum proves every entry finite (one fast reduction); only when it is not (an entry is
    # inf or NaN, or the sum overflowed) are the entries looked at one by one.
    if _is_torch(a):
        values = a.detach()
        if not values.is_floating_point():
            return
        if values.device.type == "cpu" and str(values.dtype) in ("torch.float32", "torch.float64"):
            # a numpy view (no copy): numpy's reduction costs a fraction of torch's on small tensors
            view = values.numpy()
            with np.errstate(over="ignore", invalid="ignore"):
                if np.isfinite(view.sum()):
                    return
        elif bool(values.sum().isfinite()):
            return
        if bool(values.isfinite().all()):
            return
        values = values.cpu().double().numpy()
    else:
        values = a
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(values.sum()) or np.isfinite(values).all():
                return
    if np.isnan(values).any():
        raise ValueError(f"{name} contains NaN")
    if allow_inf:
        return
    if allow_minus_inf:
        if (values == np.inf).any():
            raise ValueError(f"{name} must be finite or -inf; it contains +inf")
        return
    raise ValueError(f"{name} must be finite; it contains {float(values[~np.isfinite(values)].flat[0])}")


def detached_numpy(a: Any) -> np.ndarray:
    """A numpy view of ``a`` for validation only (never part of the autograd graph)."""
    if _is_torch(a):
        values = a.detach().cpu()
        # numpy has no bfloat16; float32 holds every bfloat16 value exactly
        return (values.float() if str(values.dtype) == "torch.bfloat16" else values).numpy()
    return np.asarray(a)


def require_finite(name: str, a: Any) -> None:
    """Raise a ValueError naming ``name`` if ``a`` contains NaN or an infinity (a TypeError if it is not
    real numbers, see :func:`real_array`)."""
    _check_finite(name, real_array(name, a), allow_inf=False)


def require_positive(name: str, a: Any) -> None:
    """Raise a ValueError naming ``name`` unless every entry of ``a`` (free of NaN) is > 0."""
    values = detached_numpy(a)
    if values.size and not values.min() > 0:  # one reduction, no temporary (NaN is refused before)
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


# Elements per chunk in ``in_chunks``: small enough that the temporaries of a chunk stay in the CPU
# cache, large enough that torch's fixed cost per operation (microseconds) is amortised: timed for
# 2**12 ... 2**20 on the benchmark's batch, chunks of 2**12 were 2-3x slower than 2**16, larger ones
# gained nothing.
CHUNK_ELEMENTS = 1 << 16


def in_chunks(
    xp: Any,
    fn: Callable[..., Any],
    arrays: Sequence[Any],
    *,
    reduces_last_axis: bool,
    gradient: Callable[..., Sequence[Any]] | None = None,
) -> Any:
    """``fn(xp, *arrays)`` (elementwise, or reducing the last axis) for same-shaped ``arrays``, chunk by chunk.

    The closed forms make several passes over their inputs (dozens where they are array operations,
    a few where :mod:`klbook._kernels` compiles them into loops); on large batches each pass would stream
    fresh temporaries through memory. Chunks keep them in cache. The result is the same as
    ``fn(xp, *arrays)`` (each element is computed by the same operations).

    Torch tensors on the CPU (float32 or float64) are evaluated through numpy views of them, without
    copies: numpy's fixed cost per operation is a fraction of torch's, which matters for small batches,
    and what is computed is the same.

    ``gradient(xp, grad, *arrays)`` gives the derivatives of ``fn`` in closed form: one array (or
    ``None``) per argument, of any floating dtype (each is rounded once to its argument's dtype),
    ``grad`` being the incoming gradient, which broadcasts against the arguments (it has a trailing
    axis of length 1 when ``fn`` reduces the last axis). With it, torch inputs that require gradients
    go through one autograd node: ``fn`` runs chunk by chunk without recording a graph, and the
    backward pass evaluates ``gradient`` chunk by chunk too, so that both cost time linear in the
    batch (autograd through sliced inputs would allocate a full-size gradient per slice). Under
    ``create_graph`` the backward pass evaluates ``gradient`` on the whole tensors with differentiable
    torch operations, which gives second derivatives. Without ``gradient``, autograd flows through
    the slicing and concatenation.
    """
    if _is_torch(arrays[0]):
        import torch

        if gradient is not None and torch.is_grad_enabled() and any(a.requires_grad for a in arrays):
            return _chunked_function().apply(fn, gradient, reduces_last_axis, *arrays)
        if not any(a.requires_grad for a in arrays) or not torch.is_grad_enabled():
            return _map_chunks_torch(fn, arrays, reduces_last_axis)
    return _map_chunks(xp, fn, arrays, reduces_last_axis)


def _numpy_views(arrays: Sequence[Any]) -> list[np.ndarray] | None:
    """numpy views of CPU torch tensors of float32/float64 (no copy), or None if any is not one."""
    if not all(a.device.type == "cpu" and str(a.dtype) in ("torch.float32", "torch.float64") for a in arrays):
        return None
    return [a.detach().numpy() for a in arrays]


# numpy's float64 exp, expm1, log and log1p are scalar libm calls except on CPUs with AVX512_SKX (where
# numpy uses SVML); torch's are vectorised (SLEEF, within 1 ULP) and 2-3x faster on the chunks of
# in_chunks: 13 ns against 4-5 ns an element for expm1 on an AVX2 AMD EPYC (2026-12-05). Where numpy's
# are vectorised they are kept (not measured: no AVX-512 machine was at hand). The arithmetic stays in
# numpy either way: its fixed cost per operation is a fraction of torch's.
_TORCH_UNARY = ("exp", "expm1", "log", "log1p")


class _NumpyWithTorchMath:
    """``array_api_compat.numpy`` whose exp, expm1, log and log1p run through torch on the same memory
    (no copies); for numpy views of torch tensors, so torch is already imported."""

    def __init__(self) -> None:
        import array_api_compat.numpy as xp_numpy
        import torch

        self._numpy = xp_numpy
        for name in _TORCH_UNARY:
            setattr(self, name, functools.partial(_torch_unary, getattr(torch, name), getattr(np, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._numpy, name)


def _torch_unary(torch_fn: Callable[..., Any], numpy_fn: Callable[..., Any], x: Any) -> Any:
    if not (isinstance(x, np.ndarray) and x.dtype in (np.float64, np.float32) and x.size >= 1024):
        return numpy_fn(x)  # scalars and small arrays: numpy's fixed cost is lower
    import torch

    out = np.empty(x.shape, dtype=x.dtype)
    # flattened in numpy: torch's reshape costs ~2 us, a fixed cost that shows on small batches
    source, target = torch.from_numpy(np.ascontiguousarray(x).reshape(-1)), torch.from_numpy(out.reshape(-1))
    if threading.current_thread() is threading.main_thread():
        torch_fn(source, out=target)
        return out
    # On one of _for_each_start's threads: torch would open a parallel region of its own inside each of
    # them (more threads than cores); slices below its grain size (2^15 elements) run on the caller's.
    for start in range(0, source.numel(), _TORCH_GRAIN):
        torch_fn(source[start : start + _TORCH_GRAIN], out=target[start : start + _TORCH_GRAIN])
    return out


# torch's intra-op parallelism threshold (at::internal::GRAIN_SIZE): smaller operations run on the calling thread.
_TORCH_GRAIN = 1 << 15


@functools.cache
def numpy_for_torch_views() -> Any:
    """The array namespace for numpy views of CPU torch tensors: numpy's, with torch's transcendental
    functions where numpy's are not vectorised (see :class:`_NumpyWithTorchMath`)."""
    if _numpy_vectorises_float64_math():
        import array_api_compat.numpy as xp_numpy

        return xp_numpy
    return _NumpyWithTorchMath()


def _numpy_vectorises_float64_math() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # a numpy without this (private) table: assume scalar functions
        return False
    return bool(__cpu_features__.get("AVX512_SKX", False))


def numpy_views_off_graph(arrays: Sequence[Any]) -> list[np.ndarray] | None:
    """numpy views (no copy) of CPU float32/float64 torch tensors that autograd does not need to
    follow (none requires gradients, or gradients are disabled), else None. For computations that are
    many short operations, numpy's fixed cost per operation is a fraction of torch's."""
    if not all(_is_torch(a) for a in arrays):
        return None
    import torch

    if torch.is_grad_enabled() and any(a.requires_grad for a in arrays):
        return None
    return _numpy_views(arrays)


def as_tensor_like(result: np.ndarray, like: Any) -> Any:
    """A numpy result as a torch tensor on ``like``'s device (no copy on the CPU)."""
    import torch

    result = np.asarray(result)
    return torch.from_numpy(result if result.flags.c_contiguous else result.copy()).to(like.device)


def _map_chunks_torch(fn: Callable[..., Any], arrays: Sequence[Any], reduces_last_axis: bool) -> Any:
    """:func:`_map_chunks` for torch tensors not on an autograd graph, through numpy where possible."""
    import torch

    views = _numpy_views(arrays)
    if views is None:
        return _map_chunks(namespace(*arrays), fn, arrays, reduces_last_axis)
    with np.errstate(all="ignore"):
        result = _map_chunks(numpy_for_torch_views(), fn, views, reduces_last_axis, torch_threads())
    return torch.from_numpy(np.ascontiguousarray(result)).to(arrays[0].device)


def _chunk_layout(shape: tuple[int, ...], reduces_last_axis: bool) -> tuple[tuple[int, ...], int]:
    """The 2-D (or 1-D) shape the arrays are viewed in, and the rows per chunk."""
    if reduces_last_axis:
        width = shape[-1]
        return (-1, width), max(1, CHUNK_ELEMENTS // max(width, 1))
    return (-1,), CHUNK_ELEMENTS


def _map_chunks(
    xp: Any, fn: Callable[..., Any], arrays: Sequence[Any], reduces_last_axis: bool, threads: int = 1
) -> Any:
    shape = tuple(arrays[0].shape)
    size = math.prod(shape)
    if size <= 2 * CHUNK_ELEMENTS:
        return fn(xp, *arrays)
    flat_shape, step = _chunk_layout(shape, reduces_last_axis)
    flat = [xp.reshape(a, flat_shape) for a in arrays]
    out_shape = shape[:-1] if reduces_last_axis else shape
    rows = flat[0].shape[0]
    chunk = lambda start: fn(xp, *[a[start : start + step] for a in flat])
    parts = _for_each_start(chunk, range(0, rows, step), threads)
    return xp.reshape(xp.concat(parts, axis=0), out_shape)


def torch_threads() -> int:
    """The number of threads torch may use (``torch.set_num_threads``); klbook's chunked numpy
    evaluation of torch tensors uses as many."""
    import torch

    return torch.get_num_threads()


# Threads pay only when each gets several chunks: on 4 chunks (4,096 x 64) two threads made forward +
# backward up to 1.5x slower than one, on 98 chunks (100,000 x 64) 1.3-1.4x faster (2 cores, 2026-12-05).
# Not torch's spinning threads (the same with OMP_WAIT_POLICY=passive) nor the allocator (the same with
# glibc's trimming off). On 8 chunks, a chain of 60 numpy multiply-adds ran 1.7x faster on two threads
# but half_g_of_ratio 1.0x (2^14 entries a chunk) and 1.3x (2^16): its hundred operations include short
# ones (the series runs on a subset) and the GIL is taken between any two (2026-12-06). With those
# operations compiled into a few loops (klbook._kernels), two chunks per thread were no faster than four
# at 4,096 x 64 (two runs each, within their noise of 10-20 %, 2026-12-06).
MIN_CHUNKS_PER_THREAD = 4


def _for_each_start(work: Callable[[int], Any], starts: range, threads: int) -> list[Any]:
    """``[work(start) for start in starts]`` on up to ``threads`` threads.

    numpy releases the GIL inside its loops, so the chunks of a large batch run in parallel on the
    threads torch is allowed (``torch.get_num_threads()``), as torch's own operations would.
    """
    if threads <= 1 or len(starts) < MIN_CHUNKS_PER_THREAD * threads:
        return [work(start) for start in starts]

    def quiet(start: int) -> Any:
        with np.errstate(all="ignore"):  # numpy's error state does not pass to other threads
            return work(start)

    return list(_thread_pool(threads).map(quiet, starts))


@functools.cache
def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """One pool per thread count, kept: starting threads for every call would cost ~0.1 ms."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="klbook")


def _gradients_in_chunks(
    gradient: Callable[..., Sequence[Any]], grad: Any, arrays: Sequence[Any], reduces_last_axis: bool
) -> list[Any]:
    """``gradient`` evaluated chunk by chunk (no graph; through numpy views where possible), each part
    rounded once into a full-size result of its argument's dtype."""
    import torch

    if reduces_last_axis:
        grad = grad[..., None]
    views = _numpy_views([grad, *arrays])
    if views is not None:
        with np.errstate(all="ignore"):
            parts = _gradient_chunks(np, gradient, views[0], views[1:], reduces_last_axis, torch_threads())
        return [None if p is None else torch.from_numpy(p) for p in parts]
    return _gradient_chunks(torch, gradient, grad, arrays, reduces_last_axis)


def _gradient_chunks(
    lib: Any,
    gradient: Callable[..., Sequence[Any]],
    grad: Any,
    arrays: Sequence[Any],
    reduces_last_axis: bool,
    threads: int = 1,
) -> list[Any]:
    """The loop of :func:`_gradients_in_chunks` for ``lib`` numpy or torch."""
    xp = numpy_for_torch_views() if lib is np else namespace(*arrays)
    shape = tuple(arrays[0].shape)
    size = math.prod(shape)
    if size <= 2 * CHUNK_ELEMENTS:
        parts = gradient(xp, grad, *arrays)
        return [None if p is None else _cast(lib, p, a.dtype) for p, a in zip(parts, arrays)]
    flat_shape, step = _chunk_layout(shape, reduces_last_axis)
    flat = [a.reshape(flat_shape) for a in arrays]
    # The incoming gradient keeps its trailing axis of length 1: it broadcasts inside ``gradient``.
    flat_grad = grad.reshape((-1, 1)) if reduces_last_axis else lib.broadcast_to(grad, shape).reshape(-1)
    results: list[Any] = []

    def write(start: int) -> None:
        rows = slice(start, start + step)
        parts = gradient(xp, flat_grad[rows], *[a[rows] for a in flat])
        if not results:  # the first chunk tells which arguments have a gradient
            results.extend(None if p is None else _empty(lib, flat[0].shape, a) for p, a in zip(parts, arrays))
        for result, part in zip(results, parts):
            if part is not None:
                result[rows] = part

    starts = range(0, flat[0].shape[0], step)
    write(starts[0])
    _for_each_start(write, starts[1:], threads)
    return [None if r is None else r.reshape(shape) for r in results]


def _cast(lib: Any, a: Any, dtype: Any) -> Any:
    return a.astype(dtype, copy=False) if lib is np else a.to(dtype)


def _empty(lib: Any, shape: tuple[int, ...], like: Any) -> Any:
    if lib is np:
        return np.empty(shape, dtype=like.dtype)
    return lib.empty(shape, dtype=like.dtype, device=like.device)


@functools.cache
def _chunked_function() -> Any:
    """The torch.autograd.Function behind :func:`in_chunks` with a closed-form gradient (torch is
    optional, so it is defined on first use)."""
    import torch

    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, fn: Any, gradient: Any, reduces_last_axis: bool, *arrays: Any) -> Any:
            ctx.save_for_backward(*arrays)
            ctx.gradient, ctx.reduces_last_axis = gradient, reduces_last_axis
            return _map_chunks_torch(fn, arrays, reduces_last_axis)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            arrays = ctx.saved_tensors
            if torch.is_grad_enabled():  # create_graph: differentiable operations on whole arrays
                xp = array_api_compat.array_namespace(*arrays)
                parts = ctx.gradient(xp, grad[..., None] if ctx.reduces_last_axis else grad, *arrays)
                parts = [None if p is None else p.to(a.dtype) for p, a in zip(parts, arrays)]
            else:
                parts = _gradients_in_chunks(ctx.gradient, grad, arrays, ctx.reduces_last_axis)
            needs = ctx.needs_input_grad[3:]
            return (None, None, None, *(p if need else None for p, need in zip(parts, needs)))

    return Chunked


def in_row_chunks(
    xp: Any, fn: Callable[..., Any], arrays: Sequence[Any], *, row_elements: int, threads: int = 1
) -> Any:
    """Apply ``fn`` to arrays that share their first axis (a flat batch), a block of rows at a time.

    ``fn`` returns one value per row; the results are concatenated. Blocks hold about
    ``CHUNK_ELEMENTS`` elements of the largest per-row array (``row_elements``), for the reason given
    in :func:`in_chunks`.
    """
    rows = arrays[0].shape[0]
    step = max(1, CHUNK_ELEMENTS // max(row_elements, 1))
    if rows <= 2 * step:
        return fn(*arrays)
    block = lambda start: fn(*[a[start : start + step] for a in arrays])
    return xp.concat(_for_each_start(block, range(0, rows, step), threads), axis=0)
