"""Figures of chapter 7 (KL in practice: numerics, Monte Carlo estimation, applications).

Every function only draws numbers the chapter has already computed with :mod:`klbook`, so that the
computation stays visible in the notebook. Each returns ``(fig, axes)`` as :func:`matplotlib.pyplot.subplots`
does, drawn in the book's style (:func:`klbook.plotting.style.book_style`: white background, light grid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .style import TEXT_WIDTH, book_style, legend_below, new_figure, panel_figure

__all__ = [
    "plot_relative_errors",
    "plot_epsilon_hack",
    "plot_estimator_bias_spread",
    "plot_running_estimates",
    "plot_log_density_tails",
    "plot_em_progress",
    "plot_temperature_softening",
]

_MARKERS = ("o", "s", "^", "D", "v")
_LINESTYLES = ("-", "--", ":", "-.")


def _curves(curves: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``label -> values`` as float arrays."""
    return {label: np.asarray(values, dtype=float) for label, values in curves.items()}


def plot_relative_errors(
    x: Any,
    errors: Mapping[str, Any],
    *,
    floor: float = 1e-17,
    x_label: str = r"$\ell = \ln\sigma^2$",
) -> tuple[Any, Any]:
    r"""Relative errors of several implementations of one formula against its input, on log-log axes.

    Parameters
    ----------
    x
        Positive inputs (drawn on a log axis), increasing.
    errors
        ``label -> relative errors`` :math:`|\hat f - f| / |f|`, each of the length of ``x``. Errors below
        ``floor`` (including exact results, error 0) are drawn on the ``floor`` line, and errors above 1
        (no correct digit) are drawn at 1, the "every digit lost" line.
    floor
        Lowest error drawn; a horizontal line marks it.
    x_label
        Label of the horizontal axis.
    """
    x_ = np.asarray(x, dtype=float)
    curves = _curves(errors)
    with book_style():
        fig, ax = new_figure(width=6.4, height=3.6)
        for i, (label, e) in enumerate(curves.items()):
            shown = np.clip(np.nan_to_num(e, nan=1.0, posinf=1.0), floor, 1.0)
            ax.plot(x_, shown, _LINESTYLES[i % len(_LINESTYLES)], marker=_MARKERS[i % len(_MARKERS)],
                    markevery=max(1, x_.size // 12), ms=4, color=f"C{i}", label=label)
        ax.axhline(1.0, color="0.4", linewidth=0.8)
        ax.axhline(floor, color="0.4", linewidth=0.8, linestyle=":")
        ax.axhline(np.finfo(np.float64).eps / 2, color="0.6", linewidth=0.8, linestyle="--",
                   label=r"unit roundoff $2^{-53}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(floor / 3, 3.0)
        ax.set_xlabel(x_label)
        ax.set_ylabel("relative error (1 = no correct digit;\nbottom line = exact)")
        ax.legend(loc="center right")
        fig.tight_layout()
    return fig, ax


def plot_epsilon_hack(epsilons: Any, values: Mapping[str, Any]) -> tuple[Any, Any]:
    r""""KL" values returned by epsilon hacks against the arbitrary :math:`\varepsilon` (log horizontal axis).

    Parameters
    ----------
    epsilons
        Positive values of :math:`\varepsilon`.
    values
        ``label -> numbers returned for each epsilon`` (nats, finite). The true divergence is :math:`+\infty`,
        which no curve can show: the figure states it in its title.
    """
    eps = np.asarray(epsilons, dtype=float)
    curves = _curves(values)
    with book_style():
        fig, ax = new_figure(width=6.0, height=3.4)
        for i, (label, v_) in enumerate(curves.items()):
            ax.plot(eps, v_, _LINESTYLES[i % len(_LINESTYLES)], marker=_MARKERS[i % len(_MARKERS)],
                    ms=4, color=f"C{i}", label=label)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel(r"$\varepsilon$ (log scale, decreasing to the right)")
        ax.set_ylabel("returned value (nats)")
        ax.set_title(r"the true $D_{\mathrm{KL}}(p\,\|\,q)$ is $+\infty$ for every $\varepsilon$")
        ax.legend(loc="upper left")
        fig.tight_layout()
    return fig, ax


def plot_estimator_bias_spread(
    true_kl: Any,
    relative_bias: Mapping[str, Any],
    bias_error: Mapping[str, Any],
    relative_std: Mapping[str, Any],
    *,
    theory_bias: Mapping[str, Any] | None = None,
    theory_std: Mapping[str, Any] | None = None,
    n_samples: int | None = None,
) -> tuple[Any, Any]:
    r"""Relative bias (left) and relative spread (right) of Monte Carlo KL estimators against the true KL.

    Parameters
    ----------
    true_kl
        The exact divergences (positive; log horizontal axis).
    relative_bias
        ``estimator -> (mean estimate - truth) / truth``, measured (finite); drawn as markers with error bars
        ``bias_error`` (the same keys, finite and non-negative; two standard errors are drawn).
    relative_std
        ``estimator -> standard deviation of the estimate / truth``, measured; markers on a log axis (> 0).
    theory_bias, theory_std
        Optional ``estimator -> exact values`` at ``true_kl`` (finite; ``theory_std`` > 0), drawn as lines of
        the estimator's colour.
    n_samples
        Samples per estimate, shown in the title when given.
    """
    kl = np.asarray(true_kl, dtype=float)
    biases, errors, spreads = _curves(relative_bias), _curves(bias_error), _curves(relative_std)
    theory_b = _curves(theory_bias) if theory_bias else {}
    theory_s = _curves(theory_std) if theory_std else {}

    def draw(fig: Any, axes: Any) -> None:
        left, right = axes
        for i, name in enumerate(biases):
            colour = f"C{i}"
            bias, err, spread = biases[name], errors[name], spreads[name]
            left.errorbar(kl, bias, yerr=2 * err, fmt=_MARKERS[i % len(_MARKERS)], ms=4, color=colour,
                          capsize=2, label=f"{name} (measured)")
            right.plot(kl, spread, _MARKERS[i % len(_MARKERS)], ms=5, color=colour, label=f"{name} (measured)")
            if name in theory_b:
                left.plot(kl, theory_b[name], "-", color=colour, linewidth=1, label=f"{name} (exact)")
            if name in theory_s:
                right.plot(kl, theory_s[name], "-", color=colour, linewidth=1, label=f"{name} (exact)")
        left.axhline(0.0, color="0.4", linewidth=0.8)
        for ax in (left, right):
            ax.set_xscale("log")
            ax.set_xlabel(r"true $D_{\mathrm{KL}}(q\,\|\,p)$ (nats, log scale)")
        left.set_ylabel("relative bias  (mean − truth) / truth")
        right.set_yscale("log")
        right.set_ylabel("relative spread  std / truth")
        if n_samples is not None:
            fig.suptitle(f"estimates from n = {n_samples} samples each")
        legend_below(fig, left, right)

    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=4.4, phone_height=7.6, layout="constrained")
    return fig, tuple(axes)


def plot_running_estimates(
    n: Any, running: Mapping[str, Any], *, truth: float, spread: Mapping[str, Any] | None = None
) -> tuple[Any, Any]:
    r"""Running Monte Carlo estimates against the number of samples (log axis), with the true value.

    Parameters
    ----------
    n
        Sample counts (positive, increasing).
    running
        ``estimator -> running mean after each count`` (finite).
    truth
        The exact divergence, drawn as a horizontal line.
    spread
        Optional ``estimator -> running sample standard deviation`` (> 0), drawn in a second panel (log axes).
    """
    n_ = np.asarray(n, dtype=float)
    means = _curves(running)
    spreads = _curves(spread) if spread else {}

    def draw(fig: Any, axes: Any) -> None:
        left, right = (axes[0], axes[1]) if spreads else (axes, None)
        for i, (label, v) in enumerate(means.items()):
            left.plot(n_, v, color=f"C{i}", linewidth=1.2, label=label)
        left.axhline(truth, color="k", linestyle="--", linewidth=1, label="exact")
        left.set_xscale("log")
        left.set_xlabel("number of samples $n$ (log scale)")
        left.set_ylabel("running estimate (nats)")
        left.legend()
        if right is not None:
            for i, (label, v) in enumerate(spreads.items()):
                right.plot(n_, v, color=f"C{i}", linewidth=1.2, label=label)
            right.set_xscale("log")
            right.set_yscale("log")
            right.set_xlabel("number of samples $n$ (log scale)")
            right.set_ylabel("sample std of per-sample values")
            right.legend()
        fig.tight_layout()

    if not spreads:
        with book_style():
            fig, left = new_figure(width=6.0, height=3.4)
            draw(fig, left)
        return fig, left
    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=3.4)
    return fig, tuple(axes)


def plot_log_density_tails(x: Any, curves: Mapping[str, Any]) -> tuple[Any, Any]:
    r"""Log densities computed in different ways on a wide grid; :math:`-\infty` values leave gaps.

    Parameters
    ----------
    x
        Grid of points, increasing (finite).
    curves
        ``label -> log density on the grid``; entries equal to :math:`-\infty` (underflow) are not drawn,
        and the first and last finite points of each curve are marked.
    """
    x_ = np.asarray(x, dtype=float)
    arrays = _curves(curves)  # -inf (underflow) is what the figure shows
    with book_style():
        fig, ax = new_figure(width=6.4, height=3.6)
        for i, (label, v) in enumerate(arrays.items()):
            finite = np.isfinite(v)
            shown = np.where(finite, v, np.nan)
            ax.plot(x_, shown, _LINESTYLES[i % len(_LINESTYLES)], color=f"C{i}", linewidth=2.2 - 0.8 * i,
                    label=label)
            if finite.any() and not finite.all():
                ends = np.flatnonzero(finite)[[0, -1]]
                ax.plot(x_[ends], v[ends], "x", color=f"C{i}", ms=8)
        ax.set_xlabel("$x$")
        ax.set_ylabel(r"$\log m(x)$ (nats)")
        ax.legend(loc="lower center")
        fig.tight_layout()
    return fig, ax


def plot_em_progress(
    log_likelihood: Any, elbo_after_e: Any, elbo_after_m: Any
) -> tuple[Any, Any]:
    r"""EM on a mixture: log-likelihood and ELBO per iteration (left), and the gap after each M-step (right).

    Parameters
    ----------
    log_likelihood
        :math:`\log p(x\mid\theta_t)` for :math:`t = 0, \dots, T` (length ``T + 1``).
    elbo_after_e
        ELBO after the E-step of iteration t, :math:`\mathcal L(q_{t}, \theta_t)` (length ``T``); equals the
        log-likelihood.
    elbo_after_m
        ELBO after the M-step, :math:`\mathcal L(q_t, \theta_{t+1})` (length ``T``).
        The gap :math:`\log p(x\mid\theta_{t+1}) - \mathcal L(q_t, \theta_{t+1})` (a KL divergence, > 0) is drawn
        on a log axis on the right; zero gaps are not drawn.

    All three must be finite.
    """
    ll, ea, em = (np.asarray(a, dtype=float) for a in (log_likelihood, elbo_after_e, elbo_after_m))
    t = np.arange(ll.size)

    def draw(fig: Any, axes: Any) -> None:
        left, right = axes
        # The ELBO as a path through the half-steps: E-step at t (equal to log-lik), M-step to t + 1.
        half_t = np.ravel(np.column_stack([t[:-1], t[1:]]))
        half_v = np.ravel(np.column_stack([ea, em]))
        left.plot(half_t, half_v, "-", color="C1", linewidth=1, label=r"ELBO $\mathcal{L}(q, \theta)$ (E, M, E, ...)")
        left.plot(t, ll, "o", color="C0", ms=3, label=r"log-likelihood $\log p(x\mid\theta_t)$")
        left.set_xlabel("EM iteration $t$")
        left.set_ylabel("nats (sum over the data)")
        gap = ll[1:] - em
        positive = gap > 0
        right.semilogy(t[1:][positive], gap[positive], "o-", color="C2", ms=3,
                       label=r"$\log p(x\mid\theta_{t}) - \mathcal{L}(q_{t-1}, \theta_{t})$")
        right.set_xlabel("EM iteration $t$")
        right.set_ylabel("gap = KL to the posterior (nats)")
        legend_below(fig, left, right, ncol=1)

    fig, axes = panel_figure(draw, 2, width=TEXT_WIDTH, height=4.1, phone_height=7.0, layout="constrained")
    return fig, tuple(axes)


def plot_temperature_softening(
    probabilities: Mapping[str, Any], *, class_labels: Sequence[str] | None = None
) -> tuple[Any, Any]:
    r"""Grouped bars of categorical distributions, e.g. a teacher's softmax at several temperatures.

    Parameters
    ----------
    probabilities
        ``label -> probability vector`` (entries finite, in ``[0, 1]``), all of one length K (the number of
        classes).
    class_labels
        Names of the K classes (default ``"class 1"``, ...).
    """
    arrays = _curves(probabilities)
    k = len(next(iter(arrays.values())))
    labels = list(class_labels) if class_labels is not None else [f"class {j + 1}" for j in range(k)]
    width = 0.8 / len(arrays)
    with book_style():
        fig, ax = new_figure(width=6.4, height=3.3)
        for i, (label, p) in enumerate(arrays.items()):
            ax.bar(np.arange(k) + (i - (len(arrays) - 1) / 2) * width, p, width, color=f"C{i}", label=label)
        ax.set_xticks(np.arange(k))
        ax.set_xticklabels(labels)
        ax.set_xlabel("class")
        ax.set_ylabel("probability")
        ax.set_ylim(0.0, 1.0)
        ax.legend()
        fig.tight_layout()
    return fig, ax
