"""Measuring the accuracy of KL closed forms: references, textbook formulas, hard inputs, ULP errors.

Used by the tests, by ``benchmarks/accuracy_speed.py`` and by the chapter on numerics. Three kinds of
implementation are compared on the same float64 inputs:

* ``reference_*``: the exact value for the exact floating-point inputs, computed with mpmath at
  ``REFERENCE_DIGITS`` significant digits (every float64 is an exact rational, so this is the true value
  of the formula up to far below float64 resolution), then rounded once to float64;
* ``textbook_*``: the formula as textbooks print it, evaluated directly in numpy;
* klbook's own functions, and torch.distributions.

Errors are in ULPs (units in the last place) of the reference: ``|computed - exact| / spacing(exact)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import mpmath
import numpy as np

__all__ = [
    "REFERENCE_DIGITS",
    "ulp_error",
    "reference_kl_normal",
    "reference_kl_diag_normal",
    "reference_kl_std_normal",
    "reference_kl_mvn",
    "reference_kl_divergence",
    "textbook_kl_normal",
    "textbook_kl_diag_normal",
    "textbook_kl_std_normal",
    "textbook_kl_mvn",
    "textbook_kl_divergence",
    "hard_grids",
    "AccuracyRow",
    "accuracy_table",
    "format_table",
]

REFERENCE_DIGITS = 50


def _mp(x: float) -> mpmath.mpf:
    return mpmath.mpf(float(x))


def _elementwise(fn: Callable[..., mpmath.mpf], *arrays: np.ndarray) -> np.ndarray:
    """Evaluate an mpmath function elementwise over broadcast float64 arrays, rounding once to float64."""
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in arrays])
    out = np.empty(arrays[0].shape, dtype=np.float64)
    with mpmath.workdps(REFERENCE_DIGITS):
        for index in np.ndindex(out.shape):
            out[index] = float(fn(*[_mp(a[index]) for a in arrays]))
    return out


def ulp_error(computed: Any, exact: Any, *, dtype: Any = np.float64) -> np.ndarray:
    """Error of ``computed`` in units in the last place of ``exact`` (in the given float dtype).

    Both arguments are converted to float64 numpy arrays (torch tensors are detached). Where the exact
    value is 0 or infinite, the error is 0 if ``computed`` equals it and ``inf`` otherwise; a NaN
    ``computed`` is an infinite error.
    """
    computed = np.asarray(_to_numpy(computed), dtype=np.float64)
    exact = np.asarray(_to_numpy(exact), dtype=np.float64)
    computed, exact = np.broadcast_arrays(computed, exact)
    # Exact values beyond the dtype's range (inf spacing, handled below) must not warn.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
        error = np.abs(computed - exact) / spacing
    special = (exact == 0) | ~np.isfinite(exact)
    error = np.where(special, np.where(computed == exact, 0.0, np.inf), error)
    return np.where(np.isnan(computed), np.inf, error)


def _to_numpy(x: Any) -> Any:
    if type(x).__module__.split(".")[0] == "torch":
        return x.detach().cpu().double().numpy()
    return x


# --- exact references -------------------------------------------------------------------------------


def _kl_normal_mp(mu_p, sigma_p, mu_q, sigma_q):
    return (
        mpmath.log(sigma_q / sigma_p)
        + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2)
        - mpmath.mpf(1) / 2
    )


def _kl_logvar_mp(mu_p, logvar_p, mu_q, logvar_q):
    return (
        mpmath.exp(logvar_p - logvar_q) + (mu_p - mu_q) ** 2 * mpmath.exp(-logvar_q) - 1 - (logvar_p - logvar_q)
    ) / 2


def reference_kl_normal(mu_p: Any, sigma_p: Any, mu_q: Any, sigma_q: Any) -> np.ndarray:
    """Exact D(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)) for the float64 inputs, rounded to float64."""
    return _elementwise(_kl_normal_mp, mu_p, sigma_p, mu_q, sigma_q)


def reference_kl_diag_normal(mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> np.ndarray:
    """Exact diagonal-Gaussian KL (summed over the last axis), rounded to float64."""
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in (mu_p, logvar_p, mu_q, logvar_q)])
    out = np.empty(arrays[0].shape[:-1], dtype=np.float64)
    with mpmath.workdps(REFERENCE_DIGITS):
        for index in np.ndindex(out.shape):
            terms = [
                _kl_logvar_mp(*[_mp(a[index + (j,)]) for a in arrays]) for j in range(arrays[0].shape[-1])
            ]
            out[index] = float(mpmath.fsum(terms))
    return out


def reference_kl_std_normal(mu: Any, logvar: Any) -> np.ndarray:
    """Exact VAE KL term D(N(mu, diag exp(logvar)) || N(0, I)) summed over the last axis, as float64."""
    mu, logvar = np.broadcast_arrays(np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64))
    zeros = np.zeros_like(mu)
    return reference_kl_diag_normal(mu, logvar, zeros, zeros)


def reference_kl_mvn(mu_p: Any, cov_p: Any, mu_q: Any, cov_q: Any) -> np.ndarray:
    """Exact KL between multivariate Gaussians (batched over leading axes), rounded to float64."""
    mu_p, mu_q = np.asarray(mu_p, dtype=np.float64), np.asarray(mu_q, dtype=np.float64)
    cov_p, cov_q = np.asarray(cov_p, dtype=np.float64), np.asarray(cov_q, dtype=np.float64)
    batch = np.broadcast_shapes(mu_p.shape[:-1], mu_q.shape[:-1], cov_p.shape[:-2], cov_q.shape[:-2])
    k = cov_p.shape[-1]
    mu_p, mu_q = np.broadcast_to(mu_p, batch + (k,)), np.broadcast_to(mu_q, batch + (k,))
    cov_p, cov_q = np.broadcast_to(cov_p, batch + (k, k)), np.broadcast_to(cov_q, batch + (k, k))
    out = np.empty(batch, dtype=np.float64)
    for index in np.ndindex(batch):
        out[index] = _reference_kl_mvn_single(mu_p[index], cov_p[index], mu_q[index], cov_q[index])
    return out


def _reference_kl_mvn_single(mu_p: Any, cov_p: Any, mu_q: Any, cov_q: Any) -> float:
    with mpmath.workdps(REFERENCE_DIGITS):
        cov_p_m = mpmath.matrix([[_mp(v) for v in row] for row in np.asarray(cov_p, dtype=np.float64)])
        cov_q_m = mpmath.matrix([[_mp(v) for v in row] for row in np.asarray(cov_q, dtype=np.float64)])
        diff = mpmath.matrix([_mp(a) - _mp(b) for a, b in zip(np.ravel(mu_p), np.ravel(mu_q))])
        k = cov_p_m.rows
        inv_q = cov_q_m**-1
        trace = sum((inv_q * cov_p_m)[i, i] for i in range(k))
        mahalanobis = (diff.T * inv_q * diff)[0, 0]
        log_det = mpmath.log(mpmath.det(cov_q_m)) - mpmath.log(mpmath.det(cov_p_m))
        return float((trace + mahalanobis - k + log_det) / 2)


def reference_kl_divergence(p: Any, q: Any) -> np.ndarray:
    """Exact sum p log(p/q) over the last axis (0 log 0 = 0; +inf where q = 0 < p), rounded to float64.

    The inputs are taken as the probability vectors they represent: the sum is of the non-negative terms
    p log(p/q) - p + q, which equals the definition when p and q sum to 1 and does not depend on the
    last-bit rounding of their sums.
    """
    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    out = np.empty(p.shape[:-1], dtype=np.float64)
    for index in np.ndindex(out.shape):
        out[index] = _reference_kl_divergence_single(p[index], q[index])
    return out


def _reference_kl_divergence_single(p: Any, q: Any) -> float:
    with mpmath.workdps(REFERENCE_DIGITS):
        total = []
        for pi, qi in zip(np.ravel(p), np.ravel(q)):
            if pi == 0:
                total.append(_mp(qi))
                continue
            if qi == 0:
                return math.inf
            total.append(_mp(pi) * mpmath.log(_mp(pi) / _mp(qi)) - _mp(pi) + _mp(qi))
        return float(mpmath.fsum(total))


# --- textbook formulas, as printed ---------------------------------------------------------------


def textbook_kl_normal(mu_p: Any, sigma_p: Any, mu_q: Any, sigma_q: Any) -> np.ndarray:
    """ln(sigma_q/sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2, evaluated directly."""
    mu_p, sigma_p, mu_q, sigma_q = (np.asarray(a, dtype=np.float64) for a in (mu_p, sigma_p, mu_q, sigma_q))
    with np.errstate(all="ignore"):
        return np.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5


def textbook_kl_diag_normal(mu_p: Any, logvar_p: Any, mu_q: Any, logvar_q: Any) -> np.ndarray:
    """1/2 sum(exp(lp - lq) + (mu_p - mu_q)^2 / exp(lq) - 1 - (lp - lq)), evaluated directly."""
    mu_p, logvar_p, mu_q, logvar_q = (np.asarray(a, dtype=np.float64) for a in (mu_p, logvar_p, mu_q, logvar_q))
    with np.errstate(all="ignore"):
        terms = np.exp(logvar_p - logvar_q) + (mu_p - mu_q) ** 2 / np.exp(logvar_q) - 1 - (logvar_p - logvar_q)
        return 0.5 * np.sum(terms, axis=-1)


def textbook_kl_std_normal(mu: Any, logvar: Any) -> np.ndarray:
    """-1/2 sum(1 + logvar - mu^2 - exp(logvar)), the form in Kingma & Welling (2013), Appendix B."""
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    with np.errstate(all="ignore"):
        return -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)


def textbook_kl_mvn(mu_p: Any, cov_p: Any, mu_q: Any, cov_q: Any) -> np.ndarray:
    """1/2 (tr(Sq^-1 Sp) + d^T Sq^-1 d - k + ln det Sq - ln det Sp) with numpy's inv and slogdet."""
    mu_p, cov_p, mu_q, cov_q = (np.asarray(a, dtype=np.float64) for a in (mu_p, cov_p, mu_q, cov_q))
    inv_q = np.linalg.inv(cov_q)
    diff = mu_q - mu_p
    trace = np.trace(inv_q @ cov_p, axis1=-2, axis2=-1)
    mahalanobis = np.einsum("...i,...ij,...j->...", diff, inv_q, diff)
    log_det = np.linalg.slogdet(cov_q)[1] - np.linalg.slogdet(cov_p)[1]
    return 0.5 * (trace + mahalanobis - cov_p.shape[-1] + log_det)


def textbook_kl_divergence(p: Any, q: Any) -> np.ndarray:
    """sum p log(p / q), evaluated directly (with numpy's 0 * log 0 = nan replaced by 0)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.sum(np.where(p > 0, p * np.log(p / q), 0.0), axis=-1)


# --- hard inputs ---------------------------------------------------------------------------------


def hard_grids(size: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Named grids of inputs where the textbook formulas lose digits, for every closed form.

    ``size`` scales the number of points (1: a few hundred per grid, quick enough for the tests and the
    chapter; the benchmark uses more). Deterministic: no randomness beyond a seeded generator.
    """
    rng = np.random.default_rng(20261121)
    n = 64 * size
    deltas = np.concatenate([-np.logspace(-12, -1, n // 2), np.logspace(-12, -1, n - n // 2)])
    scales = np.array([1e-3, 0.3, 1.0, 3.0, 1e3])
    sigma_q = np.repeat(scales, deltas.size)
    sigma_p = sigma_q * (1.0 + np.tile(deltas, scales.size))
    mean_offsets = np.logspace(-14, -1, n)
    grids: dict[str, dict[str, np.ndarray]] = {
        "normal: sigma ratio near 1": {
            "mu_p": np.zeros_like(sigma_p),
            "sigma_p": sigma_p,
            "mu_q": np.zeros_like(sigma_p),
            "sigma_q": sigma_q,
        },
        "normal: tiny mean difference": {
            "mu_p": 0.5 + mean_offsets,
            "sigma_p": np.full(n, 0.7),
            "mu_q": np.full(n, 0.5),
            "sigma_q": np.full(n, 0.7),
        },
        "normal: wide range": {
            "mu_p": rng.uniform(-10, 10, n),
            "sigma_p": 10.0 ** rng.uniform(-3, 3, n),
            "mu_q": rng.uniform(-10, 10, n),
            "sigma_q": 10.0 ** rng.uniform(-3, 3, n),
        },
        "normal: extreme ratios": {
            "mu_p": np.zeros(6),
            "sigma_p": np.array([1e-150, 1e150, 1e-300, 1e300, 1.0, 1.0]),
            "mu_q": np.zeros(6),
            "sigma_q": np.array([1e150, 1e-150, 1.0, 1.0, 1e-150, 1e150]),
        },
    }
    logvar_small = np.concatenate([-np.logspace(-16, 0, n // 2), np.logspace(-16, 0, n - n // 2)])
    grids["std normal: logvar near 0"] = {"mu": np.zeros((n, 1)), "logvar": logvar_small[:, None]}
    grids["std normal: logvar near 0, small mu"] = {
        "mu": (1e-9 * rng.standard_normal(n))[:, None],
        "logvar": logvar_small[:, None],
    }
    grids["std normal: large |logvar|"] = {
        "mu": np.zeros((8, 1)),
        "logvar": np.array([700.0, 709.0, 709.7, 710.0, 710.4, -700.0, -745.0, -1e4])[:, None],
    }
    grids["std normal: 64-d VAE batch"] = {
        "mu": 0.1 * rng.standard_normal((n, 64)),
        "logvar": 0.01 * rng.standard_normal((n, 64)),
    }
    near = np.concatenate([-np.logspace(-15, -1, n // 2), np.logspace(-15, -1, n - n // 2)])
    base = rng.uniform(-3, 3, n)
    grids["diag: logvar_p - logvar_q near 0"] = {
        "mu_p": np.zeros((n, 1)),
        "logvar_p": (base + near)[:, None],
        "mu_q": np.zeros((n, 1)),
        "logvar_q": base[:, None],
    }
    grids["diag: large logvars"] = {
        "mu_p": np.array([[0.0], [1.0], [0.0], [1e-3]]),
        "logvar_p": np.array([[705.0], [-700.0], [3.0], [-1400.0]]),
        "mu_q": np.array([[0.0], [0.0], [0.0], [0.0]]),
        "logvar_q": np.array([[-4.0], [-700.0], [-706.0], [-1400.0]]),
    }
    k = 4
    factors = rng.standard_normal((n, k, k))
    cov_p = factors @ np.swapaxes(factors, -1, -2) + k * np.eye(k)
    relative = np.logspace(-12, -2, n)[:, None, None]
    grids["mvn: nearly equal covariances"] = {
        "mu_p": np.zeros((n, k)),
        "cov_p": cov_p,
        "mu_q": np.zeros((n, k)),
        "cov_q": cov_p * (1.0 + relative),
    }
    grids["mvn: random pairs"] = {
        "mu_p": rng.standard_normal((n, k)),
        "cov_p": cov_p,
        "mu_q": rng.standard_normal((n, k)),
        "cov_q": np.ascontiguousarray(cov_p[::-1]),
    }
    logits = rng.standard_normal((n, 10))
    p = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    perturbed = p * (1.0 + np.logspace(-12, -2, n)[:, None] * rng.standard_normal((n, 10)))
    grids["discrete: q close to p"] = {"p": p, "q": perturbed / perturbed.sum(axis=-1, keepdims=True)}
    other = rng.dirichlet(np.full(10, 0.3), n)
    grids["discrete: random pairs"] = {"p": p, "q": other}
    # Drawn last, so that the grids above stay what they were before this one was added.
    # Condition number up to 1e3, k = 8, from nearly equal to far apart (rel 1e-14 ... 1), with mean
    # differences from 1e-10 to 1: Sp = (I + rel E) Sq (I + rel E)^T, where E = skew + diagonal with
    # |diagonal| <= 1/2 keeps I + rel E invertible (its symmetric part is positive definite).
    k = 8
    rotations = np.linalg.qr(rng.standard_normal((n, k, k)))[0]
    eigenvalues = np.exp(rng.uniform(0.0, np.log(1e3), (n, k)))
    cov_q = (rotations * eigenvalues[:, None, :]) @ np.swapaxes(rotations, -1, -2)
    cov_q = 0.5 * (cov_q + np.swapaxes(cov_q, -1, -2))
    skew = rng.standard_normal((n, k, k))
    perturbation = 0.5 * (skew - np.swapaxes(skew, -1, -2)) + rng.uniform(-0.5, 0.5, (n, k))[:, :, None] * np.eye(k)
    transform = np.eye(k) + np.logspace(-14, 0, n)[:, None, None] * perturbation
    cov_p = transform @ cov_q @ np.swapaxes(transform, -1, -2)
    grids["mvn: condition number up to 1e3, k = 8"] = {
        "mu_p": rng.standard_normal((n, k)) * 10.0 ** rng.uniform(-10, 0, (n, 1)),
        "cov_p": 0.5 * (cov_p + np.swapaxes(cov_p, -1, -2)),
        "mu_q": np.zeros((n, k)),
        "cov_q": cov_q,
    }
    # Grouped by function, in the order of GRID_FUNCTIONS (a stable sort keeps each group's order).
    families = list(GRID_FUNCTIONS)
    return dict(sorted(grids.items(), key=lambda item: families.index(item[0].split(":")[0])))


GRID_FUNCTIONS = {
    "normal": "kl_normal",
    "std normal": "kl_std_normal",
    "diag": "kl_diag_normal",
    "mvn": "kl_mvn",
    "discrete": "kl_divergence",
}


class AccuracyRow(NamedTuple):
    function: str
    grid: str
    implementation: str
    max_ulp: float
    median_ulp: float


def _torch_implementations() -> dict[str, Callable[..., Any]] | None:
    try:
        import torch
        from torch.distributions import Independent, Normal, kl_divergence
    except ImportError:
        return None

    def normal(mu_p, sigma_p, mu_q, sigma_q):
        t = [torch.as_tensor(a, dtype=torch.float64) for a in (mu_p, sigma_p, mu_q, sigma_q)]
        return kl_divergence(Normal(t[0], t[1], validate_args=False), Normal(t[2], t[3], validate_args=False)).numpy()

    def diag(mu_p, logvar_p, mu_q, logvar_q):
        t = [torch.as_tensor(a, dtype=torch.float64) for a in (mu_p, logvar_p, mu_q, logvar_q)]
        p = Independent(Normal(t[0], torch.exp(0.5 * t[1]), validate_args=False), 1)
        q = Independent(Normal(t[2], torch.exp(0.5 * t[3]), validate_args=False), 1)
        return kl_divergence(p, q).numpy()

    def std(mu, logvar):
        zeros = np.zeros_like(np.asarray(mu, dtype=np.float64))
        return diag(mu, logvar, zeros, zeros)

    def mvn(mu_p, cov_p, mu_q, cov_q):
        from torch.distributions import MultivariateNormal

        t = [torch.as_tensor(a, dtype=torch.float64) for a in (mu_p, cov_p, mu_q, cov_q)]
        return kl_divergence(MultivariateNormal(t[0], t[1]), MultivariateNormal(t[2], t[3])).numpy()

    def categorical(p, q):
        from torch.distributions import Categorical

        t = [torch.as_tensor(a, dtype=torch.float64) for a in (p, q)]
        return kl_divergence(Categorical(probs=t[0]), Categorical(probs=t[1])).numpy()

    return {
        "kl_normal": normal,
        "kl_diag_normal": diag,
        "kl_std_normal": std,
        "kl_mvn": mvn,
        "kl_divergence": categorical,
    }


def accuracy_table(size: int = 1, *, include_torch: bool = True) -> list[AccuracyRow]:
    """Max and median ULP error of klbook, the textbook formula and torch.distributions on ``hard_grids``."""
    from . import kl_diag_normal, kl_divergence, kl_mvn, kl_normal, kl_std_normal

    implementations = {
        "kl_normal": {"klbook": kl_normal, "textbook": textbook_kl_normal},
        "kl_diag_normal": {"klbook": kl_diag_normal, "textbook": textbook_kl_diag_normal},
        "kl_std_normal": {"klbook": kl_std_normal, "textbook": textbook_kl_std_normal},
        "kl_mvn": {"klbook": kl_mvn, "textbook": textbook_kl_mvn},
        "kl_divergence": {"klbook": kl_divergence, "textbook": textbook_kl_divergence},
    }
    references = {
        "kl_normal": reference_kl_normal,
        "kl_diag_normal": reference_kl_diag_normal,
        "kl_std_normal": reference_kl_std_normal,
        "kl_mvn": reference_kl_mvn,
        "kl_divergence": reference_kl_divergence,
    }
    torch_impls = _torch_implementations() if include_torch else None
    rows = []
    for grid_name, inputs in hard_grids(size).items():
        function = GRID_FUNCTIONS[grid_name.split(":")[0]]
        exact = references[function](*inputs.values())
        candidates = dict(implementations[function])
        if torch_impls is not None:
            candidates["torch.distributions"] = torch_impls[function]
        for name, fn in candidates.items():
            errors = ulp_error(fn(*inputs.values()), exact)
            rows.append(AccuracyRow(function, grid_name, name, float(errors.max()), float(np.median(errors))))
    return rows


# An error of 2**52 ULP or more is at least the value itself: no digit is correct, and how many ULP exactly
# depends on the CPU's exp/log and BLAS kernels (9.9e27 with AVX-512, 8.9e15 with AVX2 on one grid).
NO_DIGIT_ULP = 2.0**52


def _format_ulp(value: float) -> str:
    if math.isinf(value):
        return "inf"
    if value >= NO_DIGIT_ULP:
        return "≥2⁵²"
    if value < 10:
        return f"{value:.1f}"
    return f"{value:.2g}" if value < 1e6 else f"{value:.1e}"


def format_table(rows: list[AccuracyRow]) -> str:
    """A Markdown table of ``accuracy_table`` rows: one line per (function, grid), implementations side by side.

    Errors of ``NO_DIGIT_ULP`` (2**52) ULP or more, where no digit is correct, are shown as "≥2⁵²".
    """
    implementations = list(dict.fromkeys(r.implementation for r in rows))
    header = "| function | inputs | " + " | ".join(f"{i} max / median ULP" for i in implementations) + " |"
    lines = [header, "|" + "---|" * (2 + len(implementations))]
    keys = list(dict.fromkeys((r.function, r.grid) for r in rows))
    for function, grid in keys:
        cells = []
        for impl in implementations:
            match = [r for r in rows if (r.function, r.grid, r.implementation) == (function, grid, impl)]
            cells.append(
                f"{_format_ulp(match[0].max_ulp)} / {_format_ulp(match[0].median_ulp)}" if match else "–"
            )
        inputs = grid.split(": ", 1)[1].replace("|", "\\|")  # a literal | would end the Markdown cell
        lines.append(f"| `{function}` | {inputs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
