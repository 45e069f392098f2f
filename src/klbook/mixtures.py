r"""One-dimensional Gaussian mixtures, and the Gaussian that fits one best under either direction of KL.

A mixture :math:`p(x) = \sum_k w_k\,\mathcal N(x; \mu_k, \sigma_k^2)` is given by three 1-D sequences of
equal length: ``weights`` (non-negative, summing to 1), ``means`` and ``stds`` (standard deviations,
positive). The functions here answer the questions of the chapter on forward and reverse KL:

* :func:`mixture_logpdf` -- :math:`\log p(x)`, by log-sum-exp, finite far in the tails;
* :func:`mixture_entropy` -- :math:`H(p) = -\int p \log p`, which has no closed form (quadrature);
* :func:`kl_normal_mixture` -- :math:`D(p\,\|\,q)` ("forward") or :math:`D(q\,\|\,p)` ("reverse") for a
  Gaussian :math:`q = \mathcal N(\mu, \sigma^2)`;
* :func:`fit_normal_to_mixture` -- the Gaussian minimising either divergence;
* :func:`reverse_kl_derivatives` -- value, gradient and Hessian of :math:`D(q\,\|\,p)` in
  :math:`(\mu, \ln\sigma)`, to classify stationary points (minimum or saddle).

Accuracy. Integrals are computed by adaptive Gauss--Legendre quadrature (bisection until the two halves
of every panel agree with the whole, 16 nodes per half), over initial panels split at every component's
mean, at multiples of its standard deviation and where the dominant component changes (there
:math:`\log p` bends sharply, which is why Gauss--Hermite quadrature converges slowly for these
integrands), requesting a relative error of ``QUAD_RTOL`` = 1e-13 of the integral of the magnitudes of
the terms. Break points closer together than a quarter of the narrowest component's standard deviation
are merged (a mixture of many overlapping components, such as a kernel density estimate, would otherwise
start with tens of thousands of needlessly narrow panels), and log p is evaluated a block of points at a
time: memory stays bounded (a few MB) and time grows about linearly with the number of components
(``benchmarks/mixture_fit.py``).
The documented guarantee for every divergence and entropy is 1e-8 absolute, or relative for
values above 1; the tests check 1e-10 against ``scipy.integrate.quad`` (and the entropy against
``mpmath``).

Every computation is done on the standardised mixture (mean 0, variance 1): an affine change of
variable leaves every divergence unchanged, so the results do not depend on the units of ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np

from ._array import ArrayLike, detached_numpy, prepare, real_array, require_finite, require_positive
from ._numerics import HALF_LOG_2PI, half_square, where_safe

__all__ = [
    "mixture_logpdf",
    "mixture_entropy",
    "kl_normal_mixture",
    "fit_normal_to_mixture",
    "reverse_kl_derivatives",
    "NormalFit",
    "KLDerivatives",
]

# The weights must sum to 1 within this absolute tolerance (loose enough for float32 inputs); they are
# then divided by their sum, so every function works with an exactly normalised mixture.
WEIGHT_SUM_ATOL = 1e-6

# Adaptive quadrature: Gauss-Legendre nodes per half panel, requested relative error (of the integral of
# |f|), maximal bisection depth.
_GL_NODES = 16
QUAD_RTOL = 1e-13
_QUAD_MAX_LEVELS = 60
_QUAD_MAX_PANELS = 4096
_MIN_PANEL = 1e-3
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_NODES)

# Integration ranges in units of a standard deviation: exp(-37**2 / 2) ~ 1e-297, so the mass (and any
# polynomially growing integrand times it) beyond 37 standard deviations is below double precision.
_TAIL = 37.0
_OWN_BREAKS = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 16.0, _TAIL])
_COMPONENT_BREAKS = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 16.0])

# Newton iteration for the reverse fit (standardised coordinates).
_GRAD_TOL = 1e-10  # converged when max |gradient| <= this and the Hessian is positive definite
_MAX_STEP = 2.0  # cap on a step, in the metric (d mu / sigma, d log sigma)
_ESCAPE_STEP = 0.5  # step along the direction of negative curvature when leaving a saddle point
_MAX_ITER = 500


class NormalFit(NamedTuple):
    """A fitted Gaussian :math:`\\mathcal N(\\mu, \\sigma^2)` and the divergence at the fit (nats)."""

    mu: float
    sigma: float
    divergence: float


class KLDerivatives(NamedTuple):
    """Value, gradient (shape ``(2,)``) and Hessian (shape ``(2, 2)``) of a divergence with respect to
    :math:`(\\mu, \\ln\\sigma)`."""

    value: float
    gradient: np.ndarray
    hessian: np.ndarray


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _check_components(weights: Any, means: Any, stds: Any) -> None:
    """Validate mixture parameters given as float64 arrays (numpy or torch)."""
    shapes = {name: tuple(a.shape) for name, a in (("weights", weights), ("means", means), ("stds", stds))}
    for name, shape in shapes.items():
        if len(shape) != 1:
            raise ValueError(f"{name} must be a 1-D sequence (one entry per component), got shape {shape}")
    lengths = {name: shape[0] for name, shape in shapes.items()}
    if len(set(lengths.values())) != 1:
        described = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        raise ValueError(f"weights, means and stds must have equal lengths: {described}")
    if lengths["weights"] == 0:
        raise ValueError("the mixture needs at least one component (weights, means and stds are empty)")
    require_finite("weights", weights)
    w = detached_numpy(weights)
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative; the smallest is {float(w.min())!r}")
    total = float(w.sum())
    if abs(total - 1.0) > WEIGHT_SUM_ATOL:
        raise ValueError(f"weights must sum to 1 (within {WEIGHT_SUM_ATOL:g}); they sum to {total!r}")
    require_finite("means", means)
    require_finite("stds", stds)
    require_positive("stds", stds)


def _mixture_arrays(weights: ArrayLike, means: ArrayLike, stds: ArrayLike) -> tuple[np.ndarray, ...]:
    """Validated float64 numpy copies, weights normalised, zero-weight components dropped."""
    arrays = [
        np.array(detached_numpy(real_array(name, a)), dtype=np.float64)
        for name, a in (("weights", weights), ("means", means), ("stds", stds))
    ]
    for name, a in zip(("weights", "means", "stds"), arrays):
        if np.isnan(a).any():
            raise ValueError(f"{name} contains NaN")
    w, mu, sd = arrays
    _check_components(w, mu, sd)
    keep = w > 0
    w = w[keep] / w.sum()
    return w, mu[keep], sd[keep]


def _check_direction(direction: str) -> None:
    if direction not in ("forward", "reverse"):
        raise ValueError(
            f"direction must be 'forward' (D(p||q), p the mixture) or 'reverse' (D(q||p)), got {direction!r}"
        )


# --------------------------------------------------------------------------------------------------
# Log density
# --------------------------------------------------------------------------------------------------


def mixture_logpdf(x: ArrayLike, weights: ArrayLike, means: ArrayLike, stds: ArrayLike) -> Any:
    r"""Log density of a one-dimensional Gaussian mixture.

    .. math::

        \log p(x) = \log \sum_{k=1}^K w_k\, \mathcal N(x; \mu_k, \sigma_k^2)
        = m(x) + \log \sum_k e^{t_k(x) - m(x)},\qquad
        t_k(x) = \log w_k - \log\sigma_k - \tfrac12\log 2\pi - \tfrac12\Big(\frac{x-\mu_k}{\sigma_k}\Big)^2,

    with :math:`m(x) = \max_k t_k(x)` (log-sum-exp): no density is ever formed, so the result stays
    finite (a large negative number) far in the tails, where the densities themselves underflow to 0.

    Parameters
    ----------
    x
        Points, any shape.
    weights, means, stds
        1-D, equal lengths ``K``: mixture weights (non-negative, summing to 1 within
        ``WEIGHT_SUM_ATOL`` = 1e-6; they are divided by their sum), component means and standard
        deviations (> 0). Components of weight 0 contribute nothing.

    Returns
    -------
    :math:`\log p(x)`, the shape of ``x``; numpy float64 for floats/numpy input, a tensor of the inputs'
    floating dtype and device for torch input (differentiable with respect to every argument; the
    derivative with respect to a weight that is exactly 0 is returned as 0).

    Raises
    ------
    ValueError
        For NaN, weights that are negative or do not sum to 1, non-positive or infinite ``stds``,
        infinite means, parameter arrays that are not 1-D or differ in length, or no components.
    """
    names = ("x", "weights", "means", "stds")
    xp, (x_, w, mu, sd), finish = prepare(names, x, weights, means, stds, broadcast=False, may_be_infinite=("x",))
    _check_components(w, mu, sd)
    positive = w > 0
    log_w = xp.log(where_safe(xp, positive, w, 1.0)) - xp.log(xp.sum(w))
    log_w = xp.where(positive, log_w, xp.full_like(log_w, -math.inf))
    z = (x_[..., None] - mu) / sd
    t = log_w - xp.log(sd) - HALF_LOG_2PI - half_square(z)
    top = xp.max(t, axis=-1, keepdims=True)
    top = where_safe(xp, xp.isfinite(top), top, 0.0)  # x = +-inf: every t is -inf, so is the result
    with np.errstate(divide="ignore"):
        result = top[..., 0] + xp.log(xp.sum(xp.exp(t - top), axis=-1))
    return finish(result)


# --------------------------------------------------------------------------------------------------
# Numerical core (numpy, standardised mixtures)
# --------------------------------------------------------------------------------------------------


class _Mixture(NamedTuple):
    log_w: np.ndarray
    mu: np.ndarray
    sd: np.ndarray
    crossings: np.ndarray  # see _crossings; computed once per mixture


def _standardise(weights: ArrayLike, means: ArrayLike, stds: ArrayLike) -> tuple[_Mixture, float, float]:
    """The validated mixture (see :func:`_mixture_arrays`) shifted and scaled to mean 0, variance 1, with
    its original mean and std: every public function below declares its mixture through this."""
    w, mu, sd = _mixture_arrays(weights, means, stds)
    mean = float(np.sum(w * mu))
    # Var = sum w sigma^2 + sum w (mu - mean)^2: two non-negative sums, no cancellation.
    var = float(np.sum(w * sd**2) + np.sum(w * (mu - mean) ** 2))
    scale = math.sqrt(var)
    log_w, mu_std, sd_std = np.log(w), (mu - mean) / scale, sd / scale
    return _Mixture(log_w, mu_std, sd_std, _crossings(log_w, mu_std, sd_std)), mean, scale


# Points x times components per block when log p is evaluated (bounds the temporaries to a few MB each,
# whatever the number of components).
_BLOCK_ELEMENTS = 1 << 17


def _in_blocks(fn: Callable[..., tuple[np.ndarray, ...]], mix: _Mixture, *points: np.ndarray) -> tuple[np.ndarray, ...]:
    """``fn(*points)`` (1-D arrays of equal length, one value per point per output) a block at a time."""
    step = max(1, _BLOCK_ELEMENTS // len(mix.mu))
    n = len(points[0])
    if n <= step:
        return fn(*points)
    parts = [fn(*(p[start : start + step] for p in points)) for start in range(0, n, step)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def _log_terms(x: np.ndarray, mix: _Mixture) -> np.ndarray:
    z = (x[..., None] - mix.mu) / mix.sd
    return mix.log_w - np.log(mix.sd) - HALF_LOG_2PI - 0.5 * z * z


def _logp(x: np.ndarray, mix: _Mixture) -> np.ndarray:
    """log p at the points of the 1-D array x."""

    def block(xb: np.ndarray) -> tuple[np.ndarray]:
        t = _log_terms(xb, mix)
        top = t.max(axis=-1)
        return (top + np.log(np.exp(t - top[..., None]).sum(axis=-1)),)

    return _in_blocks(block, mix, x)[0]


def _logp_and_derivatives(
    x: np.ndarray, mix: _Mixture, x_size: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    r"""log p, (log p)' and (log p)'' at x.

    With responsibilities :math:`r_k = w_k\mathcal N_k / p` and component scores
    :math:`u_k = -(x-\mu_k)/\sigma_k^2`: :math:`(\log p)' = \sum_k r_k u_k` and
    :math:`(\log p)'' = \sum_k r_k (u_k - \bar u)^2 - \sum_k r_k/\sigma_k^2` (a variance minus a mean
    precision: no cancellation in the first term).

    Given ``x_size`` (x is known to within eps * x_size), also returns the rounding-error scales of the
    three values (error ~ eps * scale): the magnitudes of the terms summed, plus the error that the
    uncertainty of x propagates through the next derivative (bounded term by term). x is 1-D.
    """
    if x_size is None:
        return _in_blocks(lambda xb: _logp_and_derivatives_block(xb, mix, None), mix, x)
    return _in_blocks(lambda xb, sb: _logp_and_derivatives_block(xb, mix, sb), mix, x, x_size)


def _logp_and_derivatives_block(x: np.ndarray, mix: _Mixture, x_size: np.ndarray | None) -> tuple[np.ndarray, ...]:
    t = _log_terms(x, mix)
    top = t.max(axis=-1)
    e = np.exp(t - top[..., None])
    total = e.sum(axis=-1)
    logp = top + np.log(total)
    r = e / total[..., None]
    u = -(x[..., None] - mix.mu) / mix.sd**2
    d1 = np.sum(r * u, axis=-1)
    spread = np.sum(r * (u - d1[..., None]) ** 2, axis=-1)
    mean_precision = np.sum(r / mix.sd**2, axis=-1)
    d2 = spread - mean_precision
    if x_size is None:
        return logp, d1, d2
    dev = np.abs(u - d1[..., None])
    # a bound on the third derivative of log p: sum r |u - ubar|^3 + 3 sum r |u - ubar| / sigma^2
    third = np.sum(r * dev**3, axis=-1) + 3 * np.sum(r * dev / mix.sd**2, axis=-1)
    logp_size = np.abs(logp) + np.abs(d1) * x_size
    d1_size = np.sum(r * np.abs(u), axis=-1) + (spread + mean_precision) * x_size
    d2_size = spread + mean_precision + third * x_size
    return logp, d1, d2, logp_size, d1_size, d2_size


# Break points closer than this many times the narrowest component standard deviation are merged (the
# first of each such bucket is kept): a mixture of many overlapping components (a kernel density estimate)
# would otherwise start its quadrature with tens of thousands of panels, most of them far narrower than
# any feature of log p. The adaptive rule refines wherever a panel needs it.
_BREAK_SPACING = 0.25


def _crossings(log_w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Points where two weighted component log densities are equal (where log p can change regime),
    thinned as :func:`_thin` does. Pairs are processed a block of rows at a time (bounded memory)."""
    k = len(mu)
    precision = 1.0 / sd**2
    offset = log_w - np.log(sd)
    parts = [np.empty(0)]
    rows = max(1, _BLOCK_ELEMENTS // max(k, 1))
    for start in range(0, k - 1, rows):
        i, j = np.nonzero(np.arange(start, min(k, start + rows))[:, None] < np.arange(k)[None, :])
        i += start
        pi, pj = precision[i], precision[j]
        a = 0.5 * (pj - pi)
        b = mu[i] * pi - mu[j] * pj
        c = 0.5 * (mu[j] ** 2 * pj - mu[i] ** 2 * pi) + offset[i] - offset[j]
        linear = np.abs(a) <= 1e-12 * np.maximum(pi, pj)
        with np.errstate(divide="ignore", invalid="ignore"):
            on_line = linear & (b != 0)
            parts.append(-c[on_line] / b[on_line])
            disc = b * b - 4 * a * c
            real = ~linear & (disc >= 0)
            a, b, c = a[real], b[real], c[real]
            # the numerically stable pair of roots of a x^2 + b x + c
            qq = -0.5 * (b + np.copysign(np.sqrt(disc[real]), b))
            parts.append(qq / a)
            parts.append(c[qq != 0] / qq[qq != 0])
        points = np.concatenate(parts)
        parts = [_thin(points[np.isfinite(points)], _BREAK_SPACING * float(np.min(sd)))]
    return parts[0]


def _thin(points: np.ndarray, spacing: float) -> np.ndarray:
    """The sorted distinct ``points``, keeping the first of every run closer together than ``spacing``
    (measured in buckets of that width from the smallest point)."""
    points = np.unique(points)
    if len(points) < 2:
        return points
    bucket = np.floor((points - points[0]) / spacing)
    return points[np.concatenate([[True], bucket[1:] != bucket[:-1]])]


def _mixture_breaks(mix: _Mixture, offsets: np.ndarray) -> np.ndarray:
    pts = [mix.mu + s * sgn * mix.sd for s in offsets for sgn in (-1.0, 1.0)]
    return _thin(np.concatenate([np.ravel(pts), mix.crossings]), _BREAK_SPACING * float(np.min(mix.sd)))


_Integrand = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _gauss_legendre(f: _Integrand, a: np.ndarray, b: np.ndarray) -> tuple[Any, Any]:
    """Gauss-Legendre estimates, over each panel [a_i, b_i], of the integral of f and of the integral of
    the size of the terms f is made of (its rounding-error scale)."""
    half = 0.5 * (b - a)
    x = 0.5 * (a + b)[:, None] + half[:, None] * _GL_X  # (panels, nodes)
    values, sizes = f(x.ravel())
    weights = half[:, None, None] * _GL_W[None, :, None]
    shape = x.shape + (-1,)  # (panels, nodes, outputs)
    return np.sum(weights * values.reshape(shape), axis=1), np.sum(weights * sizes.reshape(shape), axis=1)


def _adaptive_integral(f: _Integrand, edges: np.ndarray, feature: float) -> np.ndarray:
    """Integral over [edges[0], edges[-1]] of a vector-valued f.

    ``f`` maps points x of shape (n,) to ``(values, sizes)``, both (n, outputs): the integrand and the
    magnitude of the terms it is computed from (a difference of two large logs is small, but carries their
    rounding error). Every panel is integrated whole and as two halves by Gauss-Legendre; a panel is
    accepted (its halves' sum kept) when the two agree to its share of the tolerance, else both halves are
    refined. The tolerance of output c is ``QUAD_RTOL`` times the integral of its sizes over the whole
    range, shared between panels in proportion to their length, with a floor at the rounding level of
    the panel. ``feature`` is the narrowest scale of the integrand (the smallest component standard
    deviation, in the variable of integration; every change of regime of log p is at least ~1/40 of it
    wide): a panel narrower than ``_MIN_PANEL`` times it is integrated to full precision by the rule, so
    it is accepted whatever the (then rounding-dominated) error estimate says.
    """
    edges = np.unique(edges)
    a, b = edges[:-1], edges[1:]
    whole, whole_sizes = _gauss_legendre(f, a, b)
    length = edges[-1] - edges[0]
    scale = np.maximum(whole_sizes.sum(axis=0), np.finfo(np.float64).tiny)
    total = np.zeros(whole.shape[1])
    for _ in range(_QUAD_MAX_LEVELS):
        mid = 0.5 * (a + b)
        left, left_sizes = _gauss_legendre(f, a, mid)
        right, right_sizes = _gauss_legendre(f, mid, b)
        halves = left + right
        error = np.abs(halves - whole)
        allowed = np.maximum(
            QUAD_RTOL * scale * ((b - a) / length)[:, None],
            256 * np.finfo(np.float64).eps * (left_sizes + right_sizes),
        )
        done = np.all(error <= allowed, axis=1) | (b - a <= _MIN_PANEL * feature) | (mid <= a) | (mid >= b)
        total += halves[done].sum(axis=0)
        todo = ~done
        if not todo.any():
            return total
        if 2 * int(todo.sum()) > _QUAD_MAX_PANELS:
            break
        a = np.concatenate([a[todo], mid[todo]])
        b = np.concatenate([mid[todo], b[todo]])
        whole = np.concatenate([left[todo], right[todo]])
    raise RuntimeError("adaptive quadrature did not converge (the mixture is too extreme)")


def _entropy_standardised(mix: _Mixture) -> float:
    r""":math:`H(p) = -\int p\log p` of a standardised mixture."""
    lo = float(np.min(mix.mu - _TAIL * mix.sd))
    hi = float(np.max(mix.mu + _TAIL * mix.sd))
    edges = np.clip(np.concatenate([[lo, hi], _mixture_breaks(mix, _OWN_BREAKS)]), lo, hi)

    def integrand(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logp = _logp(x, mix)
        value = (-np.exp(logp) * logp)[:, None]
        return value, np.abs(value)

    return float(_adaptive_integral(integrand, edges, float(np.min(mix.sd)))[0])


def _reverse_standardised(m: float, log_s: float, mix: _Mixture, *, derivatives: bool) -> tuple[Any, ...]:
    r"""D(q||p) for q = N(m, s^2) (standardised mixture), optionally with gradient and Hessian in
    (m, log s).

    With :math:`x = m + s z`, :math:`z\sim\mathcal N(0,1)`, :math:`L = \log p`,
    :math:`G(m, \ell) = E[L(m + e^\ell z)]`:
    :math:`G_m = E[L']`, :math:`G_\ell = sE[zL']`, :math:`G_{mm} = E[L'']`, :math:`G_{m\ell} = sE[zL'']`,
    :math:`G_{\ell\ell} = sE[zL'] + s^2E[z^2L'']`, and :math:`D = -\tfrac12\log(2\pi e) - \ell - G`.
    """
    s = math.exp(log_s)
    # Panels in z: q's own multiples of its std, and every mixture break point mapped to z.
    component_z = (_mixture_breaks(mix, _COMPONENT_BREAKS) - m) / s
    edges = np.clip(np.concatenate([-_OWN_BREAKS, _OWN_BREAKS, component_z]), -_TAIL, _TAIL)

    def integrand(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = m + s * z
        log_q = -HALF_LOG_2PI - log_s - 0.5 * z * z
        phi = np.exp(-0.5 * z * z - HALF_LOG_2PI)
        # Rounding-error scales: x = m + s z carries the rounding of the node z and of the sum; the
        # rounding of z also perturbs phi(z) and log q(z), relatively by eps * z^2.
        x_size = abs(m) + 2 * s * np.abs(z)
        phi_size = phi * (1 + z * z)
        if not derivatives:
            logp = _logp(x, mix)
            return (phi * (log_q - logp))[:, None], (phi_size * (np.abs(log_q) + np.abs(logp)))[:, None]
        logp, d1, d2, logp_size, d1_size, d2_size = _logp_and_derivatives(x, mix, x_size)
        az = np.abs(z)
        values = np.stack(
            [phi * (log_q - logp), phi * d1, phi * z * d1, phi * d2, phi * z * d2, phi * z * z * d2], axis=-1
        )
        sizes = np.stack(
            [
                phi_size * (np.abs(log_q) + logp_size),
                phi_size * d1_size,
                phi_size * az * d1_size,
                phi_size * d2_size,
                phi_size * az * d2_size,
                phi_size * az * az * d2_size,
            ],
            axis=-1,
        )
        return values, sizes

    integrals = _adaptive_integral(integrand, edges, float(np.min(mix.sd)) / s)
    value = float(integrals[0])
    if not derivatives:
        return (value,)
    e_d1, e_zd1, e_d2, e_zd2, e_zzd2 = integrals[1:]
    gradient = np.array([-e_d1, -1.0 - s * e_zd1])
    h_mm = -e_d2
    h_ml = -s * e_zd2
    h_ll = -(s * e_zd1 + s * s * e_zzd2)
    hessian = np.array([[h_mm, h_ml], [h_ml, h_ll]])
    return value, gradient, hessian


def _forward_standardised(m: float, s: float, mix: _Mixture, entropy: float) -> float:
    r"""D(p||q) = -H(p) - E_p[log q] = -H(p) + log s + (1/2) log 2 pi + (1 + m^2) / (2 s^2) for a
    standardised p (mean 0, variance 1)."""
    return -entropy + math.log(s) + HALF_LOG_2PI + (1.0 + m * m) / (2.0 * s * s)


def _newton_reverse(mix: _Mixture, m: float, log_s: float) -> tuple[float, float, float]:
    """Damped Newton iteration on D(q||p) over (m, log s) from a start; leaves saddle points."""
    value, grad, hess = _reverse_standardised(m, log_s, mix, derivatives=True)
    for _ in range(_MAX_ITER):
        eigval, eigvec = np.linalg.eigh(hess)
        small = np.max(np.abs(grad)) <= _GRAD_TOL
        if small and eigval[0] > 0:
            return m, log_s, value
        if small:
            # A saddle point (or a maximum): leave along the direction of negative curvature, towards
            # larger mu (towards larger sigma if that direction does not move mu).
            direction = eigvec[:, 0]
            if direction[0] < 0 or (direction[0] == 0 and direction[1] < 0):
                direction = -direction
            step = _ESCAPE_STEP * direction
            slope = 0.0
        else:
            # Newton step on the Hessian with its eigenvalues replaced by their absolute values (a
            # descent direction also where the Hessian is indefinite).
            floor = 1e-8 * max(1.0, float(np.max(np.abs(eigval))))
            step = -eigvec @ ((eigvec.T @ grad) / np.maximum(np.abs(eigval), floor))
            slope = float(grad @ step)
        s = math.exp(log_s)
        size = math.hypot(step[0] / s, step[1])
        if size > _MAX_STEP:
            step = step * (_MAX_STEP / size)
            slope *= _MAX_STEP / size
        t = 1.0
        # Close to a minimum the predicted decrease is below the rounding level of the divergence, which
        # a line search cannot see: there the full Newton step is taken (quadratic convergence).
        trust_newton = eigval[0] > 0 and -0.5 * slope <= 1e-11 * max(1.0, abs(value))
        while True:
            trial = _reverse_standardised(m + t * step[0], log_s + t * step[1], mix, derivatives=True)
            if trust_newton or trial[0] <= value + 1e-4 * t * slope:
                break
            t *= 0.5
            if t < 1e-10:
                if np.max(np.abs(grad)) <= 1e3 * _GRAD_TOL and eigval[0] > 0:
                    return m, log_s, value  # converged to the rounding level of the quadrature
                raise RuntimeError("reverse KL fit: the line search failed (no decrease found)")
        m, log_s = m + t * step[0], log_s + t * step[1]
        value, grad, hess = trial
    raise RuntimeError(f"reverse KL fit did not converge in {_MAX_ITER} Newton iterations")


# --------------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------------


def mixture_entropy(weights: ArrayLike, means: ArrayLike, stds: ArrayLike) -> float:
    r"""Differential entropy :math:`H(p) = -\int p(x)\log p(x)\,dx` of a 1-D Gaussian mixture, in nats.

    It has no closed form; it is computed by adaptive quadrature (see the module docstring) on the
    standardised mixture :math:`p'` (mean 0, variance 1), using :math:`H(p) = H(p') + \log S` for the
    mixture's standard deviation :math:`S`. Accurate to 1e-10 absolute for ordinary mixtures.

    Raises
    ------
    ValueError
        For invalid mixture parameters (see :func:`mixture_logpdf`).
    """
    mix, _, scale = _standardise(weights, means, stds)
    return _entropy_standardised(mix) + math.log(scale)


def _check_normal(name_mu: str, mu: Any, name_sigma: str, sigma: Any) -> tuple[float, float]:
    values = []
    for name, a in ((name_mu, mu), (name_sigma, sigma)):
        array = detached_numpy(real_array(name, a))
        if array.size != 1:
            raise ValueError(f"{name} must be a single number, got shape {array.shape}")
        values.append(float(array.reshape(())))
    mu_f, sigma_f = values
    if not math.isfinite(mu_f):
        raise ValueError(f"{name_mu} must be finite, got {mu_f!r}")
    if not (math.isfinite(sigma_f) and sigma_f > 0):
        raise ValueError(f"{name_sigma} must be finite and > 0, got {sigma_f!r}")
    return mu_f, sigma_f


def kl_normal_mixture(
    mu: ArrayLike,
    sigma: ArrayLike,
    weights: ArrayLike,
    means: ArrayLike,
    stds: ArrayLike,
    direction: Literal["forward", "reverse"],
) -> Any:
    r"""KL divergence between a Gaussian :math:`q = \mathcal N(\mu, \sigma^2)` and a 1-D Gaussian mixture p.

    ``direction="forward"``:

    .. math::

        D(p\,\|\,q) = -H(p) - E_p[\log q] = -H(p) + \tfrac12\log(2\pi\sigma^2)
        + \frac{\operatorname{Var}_p + (E_p[x] - \mu)^2}{2\sigma^2},

    with the mixture entropy :math:`H(p)` by quadrature (:func:`mixture_entropy`).

    ``direction="reverse"``:

    .. math::

        D(q\,\|\,p) = -H(q) - E_q[\log p] = -\tfrac12\log(2\pi e\sigma^2) - E_q[\log p],

    with :math:`E_q[\log p]` by adaptive quadrature over :math:`x = \mu + \sigma z`.

    Parameters
    ----------
    mu, sigma
        Mean and standard deviation (> 0) of q: floats or numpy arrays that broadcast together (one
        quadrature per element; this function is numpy only and not differentiable).
    weights, means, stds
        The mixture (see :func:`mixture_logpdf`).
    direction
        ``"forward"`` for :math:`D(p\|q)`, ``"reverse"`` for :math:`D(q\|p)`.

    Returns
    -------
    The divergence in nats: numpy float64, or an array of the broadcast shape of ``mu`` and ``sigma``.
    Accurate to 1e-8 absolute, or relative for values above 1 (tested to 1e-10).

    Raises
    ------
    ValueError
        For an unknown direction, invalid mixture parameters, non-finite ``mu`` or ``sigma <= 0``.
    """
    _check_direction(direction)
    mix, mean, scale = _standardise(weights, means, stds)
    mu_arr = np.asarray(detached_numpy(real_array("mu", mu)), dtype=np.float64)
    sigma_arr = np.asarray(detached_numpy(real_array("sigma", sigma)), dtype=np.float64)
    try:
        mu_b, sigma_b = np.broadcast_arrays(mu_arr, sigma_arr)
    except ValueError:
        raise ValueError(f"shapes do not broadcast: mu {mu_arr.shape}, sigma {sigma_arr.shape}") from None
    entropy = _entropy_standardised(mix) if direction == "forward" else math.nan
    out = np.empty(mu_b.shape, dtype=np.float64)
    for index in np.ndindex(mu_b.shape):
        m, s = _check_normal("mu", mu_b[index], "sigma", sigma_b[index])
        m_std, s_std = (m - mean) / scale, s / scale
        if direction == "forward":
            out[index] = _forward_standardised(m_std, s_std, mix, entropy)
        else:
            out[index] = _reverse_standardised(m_std, math.log(s_std), mix, derivatives=False)[0]
    out = np.maximum(out, 0.0)  # D >= 0; the quadrature can round an exact 0 to -1e-16
    return out[()] if out.ndim == 0 else out


def reverse_kl_derivatives(
    mu: float, sigma: float, weights: ArrayLike, means: ArrayLike, stds: ArrayLike
) -> KLDerivatives:
    r""":math:`D(q\,\|\,p)` for :math:`q = \mathcal N(\mu, \sigma^2)`, with its gradient and Hessian in
    :math:`\theta = (\mu, \ln\sigma)`.

    With :math:`x = \mu + \sigma z`, :math:`z \sim \mathcal N(0, 1)` and :math:`L = \log p`
    (derivatives in x):

    .. math::

        \frac{\partial D}{\partial\mu} = -E_q[L'],\qquad
        \frac{\partial D}{\partial\ln\sigma} = -1 - \sigma E_q[zL'],

        \frac{\partial^2 D}{\partial\mu^2} = -E_q[L''],\qquad
        \frac{\partial^2 D}{\partial\mu\,\partial\ln\sigma} = -\sigma E_q[zL''],\qquad
        \frac{\partial^2 D}{\partial(\ln\sigma)^2} = -\sigma E_q[zL'] - \sigma^2E_q[z^2L''],

    all expectations by adaptive quadrature. A stationary point (gradient 0) is a local minimum when the
    Hessian is positive definite, a saddle point when it has a negative eigenvalue.

    Returns
    -------
    KLDerivatives
        ``(value, gradient, hessian)``: a float, numpy arrays of shapes ``(2,)`` and ``(2, 2)``.

    Raises
    ------
    ValueError
        For invalid mixture parameters, non-finite ``mu`` or ``sigma <= 0``.
    """
    mix, mean, scale = _standardise(weights, means, stds)
    m, s = _check_normal("mu", mu, "sigma", sigma)
    value, grad, hess = _reverse_standardised((m - mean) / scale, math.log(s / scale), mix, derivatives=True)
    # Back from standardised coordinates: mu = mean + scale * m', log sigma = log scale + log s'.
    jac = np.array([1.0 / scale, 1.0])
    return KLDerivatives(value, grad * jac, hess * np.outer(jac, jac))


def fit_normal_to_mixture(
    weights: ArrayLike,
    means: ArrayLike,
    stds: ArrayLike,
    direction: Literal["forward", "reverse"],
    *,
    init: tuple[float, float] | None = None,
) -> NormalFit:
    r"""The Gaussian :math:`q = \mathcal N(\mu, \sigma^2)` closest to a 1-D Gaussian mixture p in KL.

    **Forward**, :math:`\min_q D(p\,\|\,q)` (the M-projection): moment matching, unique and in closed form,

    .. math::

        \mu = \sum_k w_k\mu_k,\qquad
        \sigma^2 = \sum_k w_k(\sigma_k^2 + \mu_k^2) - \mu^2 = \sum_k w_k\sigma_k^2 + \sum_k w_k(\mu_k - \mu)^2,

    (evaluated in the second form, free of cancellation), with divergence
    :math:`D(p\|q) = -H(p) - E_p[\log q] = \tfrac12\log(2\pi e\sigma^2) - H(p)`, the entropy :math:`H(p)`
    of the mixture by adaptive quadrature. ``init`` is validated and otherwise ignored.

    **Reverse**, :math:`\min_q D(q\,\|\,p)` (the I-projection), with
    :math:`D(q\|p) = -H(q) - E_q[\log p] = -\tfrac12\log(2\pi e\sigma^2) - E_q[\log p]`:
    no closed form, and in general several local minima. Damped Newton iteration over
    :math:`(\mu, \ln\sigma)`, with :math:`E_q[\log p]` and its first and second derivatives by adaptive
    quadrature (:func:`reverse_kl_derivatives`), from ``init`` (default: the moment-matched forward fit),
    until the gradient is below 1e-10 (in the standardised coordinates) and the Hessian is positive
    definite. **The result is the local minimum this iteration reaches from** ``init``, not necessarily
    the global one: call it from several starting points and compare the divergences. Steps are
    capped at two standard deviations of the current q (and a factor :math:`e^2` in :math:`\sigma`);
    if the iteration stops at a saddle point (as the moment-matched start of a symmetric mixture can,
    by symmetry), it leaves it along the direction of negative curvature, towards larger :math:`\mu`.
    At the optimum :math:`E_q[(\log p)'] = 0` and :math:`1/\sigma^2 = E_q[-(\log p)'']`.

    Parameters
    ----------
    weights, means, stds
        The mixture (see :func:`mixture_logpdf`).
    direction
        ``"forward"`` (minimise :math:`D(p\|q)`) or ``"reverse"`` (minimise :math:`D(q\|p)`).
    init
        ``(mu, sigma)`` to start the reverse iteration from; ``sigma > 0``.

    Returns
    -------
    NormalFit
        ``(mu, sigma, divergence)`` as Python floats; the divergence (nats) at the fit is accurate to
        1e-8 absolute, or relative when it exceeds 1 (tested to 1e-10 against ``scipy.integrate.quad``).

    Raises
    ------
    ValueError
        For an unknown direction, invalid mixture parameters, or an ``init`` that is not a pair of finite
        numbers with ``sigma > 0``.
    RuntimeError
        If the reverse iteration does not converge (not observed for reasonable mixtures and starts).
    """
    _check_direction(direction)
    mix, mean, scale = _standardise(weights, means, stds)
    if init is not None:
        try:
            init_mu, init_sigma = init
        except (TypeError, ValueError):
            raise ValueError(f"init must be a pair (mu, sigma), got {init!r}") from None
        init_mu, init_sigma = _check_normal("init mu", init_mu, "init sigma", init_sigma)
    if direction == "forward":
        divergence = _forward_standardised(0.0, 1.0, mix, _entropy_standardised(mix))
        return NormalFit(mean, scale, max(divergence, 0.0))
    if init is None:
        m0, log_s0 = 0.0, 0.0
    else:
        m0, log_s0 = (init_mu - mean) / scale, math.log(init_sigma / scale)
    m, log_s, value = _newton_reverse(mix, m0, log_s0)
    return NormalFit(float(mean + scale * m), float(scale * math.exp(log_s)), max(float(value), 0.0))
