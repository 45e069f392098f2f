"""Explorables: interactive figures whose every number is precomputed by klbook.

A chapter computes, on a grid of slider positions, everything an explorable shows (curves, bars and the
numbers it prints) and displays an :class:`Explorable`. Its stored notebook output is plain data: a
``text/plain`` line, and ``text/html`` holding a fallback sentence and the data as JSON (deterministic,
so nbval compares it like any other output). The book's Sphinx extension
(``book/_ext/klbook_explorables.py``) turns that data into a Bokeh figure at build time, for the HTML
builder only; the browser only selects precomputed values (a ``CustomJS`` callback indexing arrays)
and draws. Numbers are formatted here, in Python, so the page shows exactly klbook's strings.

Spec layout (all lists, JSON-serialisable):

* ``sliders``: ``[{"name", "label", "labels"}]`` (optional ``"start"``, the position shown first; the
  middle one by default); slider ``i`` selects position ``j`` of its grid, and
  the state is the flat index ``numpy.ravel_multi_index(positions, shape)``; the slider shows
  ``"{label}: {labels[j]}"`` (its value display and its tooltip format the position as its label);
* ``readouts``: ``[{"name", "values"}]``, one preformatted string per state;
* ``panels``: ``[{"title", "x_label", "y_label", "kind", "series"}]`` (optional ``"height"``,
  ``"x_range"`` and ``"y_range"`` (``[low, high]``, fixed axes), ``"legend_location"``,
  ``"legend_place"`` (``"right"``: beside the plot), ``"legend_columns"``, ``"legend_font_size"``),
  with ``kind``

  - ``"line"``: numeric axes; each series ``{"label", "color", "x", "y"}`` with ``x`` one fixed list and
    ``y`` one list per state, or one list if the series has ``"fixed": true``; with
    ``"varying_x": true`` ``x`` is one list per state too, of the length of that state's ``y``, and may
    be empty (a curve that is absent at that state: no NaN, nothing drawn); with ``"optional": true``
    ``x`` is one fixed list and a state's ``y`` is either of its length or empty (absent). Optional keys:
    ``"glyph"`` (``"line"``, the default, or ``"scatter"``), ``"dash"`` (a Bokeh line dash such as
    ``"dashed"``), ``"width"``, ``"marker"``, ``"size"``, ``"alpha"``; an empty ``"label"`` adds no
    legend entry, and the legend lists a curve only at the states where it is drawn;
  - ``"bar"``: ``x`` a list of category names and ``y`` one list per state;
  - ``"image"``: one series ``{"label", "y"}`` with ``y`` one image per state, a 2-D list (rows top to
    bottom) of grey levels in [0, 1] (0 white, 1 black; drawn to 2 decimals), without axes, 6 screen
    pixels per image pixel.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from klbook.estimators import mc_kl
from klbook.gaussian import kl_normal, normal_logpdf

__all__ = ["MARKER_CLASS", "SPEC_MIME", "Explorable", "beta_vae", "estimator_sampling", "forward_reverse",
           "render_bokeh", "state_index", "two_gaussians"]

#: The class of the ``<div>`` the notebook output holds, and the MIME-like tag of its JSON data.
MARKER_CLASS = "klbook-explorable"
SPEC_MIME = "application/vnd.klbook.explorable+json"
#: Colours readable on the light and the dark page (the figure's background is transparent).
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


def _round(values: Any, digits: int = 6) -> Any:
    """Nested lists of floats rounded to ``digits`` significant digits (compact, bit-stable JSON)."""
    array = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(array)):
        raise ValueError("values: an explorable's data must be finite")
    return [float(f"{v:.{digits}g}") for v in array.ravel()] if array.ndim <= 1 else [
        _round(row, digits) for row in array]


def state_index(positions: list[int], shape: list[int]) -> int:
    """The flat index of a combination of slider positions (C order, as the browser computes it)."""
    return int(np.ravel_multi_index(tuple(positions), tuple(shape)))


@dataclass(frozen=True)
class Explorable:
    """Precomputed data of one interactive figure; displays as data, rendered by the book's extension."""

    name: str
    alt: str
    sliders: list[dict] = field(default_factory=list)
    readouts: list[dict] = field(default_factory=list)
    panels: list[dict] = field(default_factory=list)

    def spec(self) -> dict:
        return {"name": self.name, "alt": self.alt, "sliders": self.sliders,
                "readouts": self.readouts, "panels": self.panels}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        data = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        fallback = "Interactive figure: it works in the online book (HTML) only."
        markup = (f'<div class="{MARKER_CLASS}" data-name="{html.escape(self.name)}">'
                  f"<p>{fallback}</p><script type=\"{SPEC_MIME}\">{data}</script></div>")
        shape = "x".join(str(len(s["labels"])) for s in self.sliders)
        # printed lines fit the book's 74-character column
        return {"text/plain": f"Explorable {self.name!r} ({shape} slider positions).\n{fallback}",
                "text/html": markup}


def two_gaussians(mu_q: Any, sigma_q: Any, *, mu_p: float = 0.0, sigma_p: float = 1.0,
                  x: Any = None) -> Explorable:
    r"""Two Gaussians: p fixed, q's mean and standard deviation on sliders.

    Shows both densities, :math:`D(p\|q)` and :math:`D(q\|p)` (``klbook.gaussian.kl_normal``) and the
    four terms of the closed form

    .. math::

        D(p\|q) = \log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2}{2\sigma_q^2}
                  + \frac{(\mu_p-\mu_q)^2}{2\sigma_q^2} - \frac12,

    whose sum is checked against ``kl_normal`` at every grid point.
    """
    mu_q = np.asarray(mu_q, dtype=float)
    sigma_q = np.asarray(sigma_q, dtype=float)
    if mu_q.ndim != 1 or mu_q.size < 2:
        raise ValueError("mu_q: a 1-D grid of at least 2 means")
    if sigma_q.ndim != 1 or sigma_q.size < 2 or np.any(sigma_q <= 0):
        raise ValueError("sigma_q: a 1-D grid of at least 2 positive standard deviations")
    x = np.linspace(-6.0, 6.0, 241) if x is None else np.asarray(x, dtype=float)
    m, s = (a.ravel() for a in np.meshgrid(mu_q, sigma_q, indexing="ij"))
    forward = kl_normal(mu_p, sigma_p, m, s)
    reverse = kl_normal(m, s, mu_p, sigma_p)
    terms = np.stack([np.log(s / sigma_p), sigma_p**2 / (2 * s**2),
                      (mu_p - m) ** 2 / (2 * s**2), np.full_like(m, -0.5)], axis=1)
    if not np.allclose(terms.sum(axis=1), forward, rtol=1e-12, atol=1e-12):
        raise AssertionError("the closed form's terms do not add up to kl_normal")
    density_p = np.exp(-0.5 * ((x - mu_p) / sigma_p) ** 2) / (sigma_p * np.sqrt(2 * np.pi))
    density_q = np.exp(-0.5 * ((x[None, :] - m[:, None]) / s[:, None]) ** 2) / (
        s[:, None] * np.sqrt(2 * np.pi))
    readout = [f"μ_q = {a:.2f}, σ_q = {b:.2f}:  D(p‖q) = {f:.4f} nats,  D(q‖p) = {r:.4f} nats"
               for a, b, f, r in zip(m, s, forward, reverse)]
    names = ["log σq/σp", "σp²/2σq²", "(μp−μq)²/2σq²", "−1/2"]
    return Explorable(
        name="two-gaussians",
        alt=("Interactive: sliders move the mean and standard deviation of q; the densities of p and q, "
             "both KL divergences and the four terms of the closed form update."),
        sliders=[{"name": "mu_q", "label": "mean of q", "labels": [f"{v:.2f}" for v in mu_q]},
                 {"name": "sigma_q", "label": "standard deviation of q",
                  "labels": [f"{v:.2f}" for v in sigma_q]}],
        readouts=[{"name": "kl", "values": readout}],
        panels=[
            {"title": "densities", "x_label": "x", "y_label": "density", "kind": "line",
             "series": [{"label": "p (fixed)", "color": COLORS[0], "x": _round(x),
                         "y": _round(density_p, 4), "fixed": True},
                        {"label": "q", "color": COLORS[1], "x": _round(x), "y": _round(density_q, 4)}]},
            {"title": "terms of D(p‖q)", "x_label": "", "y_label": "nats", "kind": "bar",
             "series": [{"label": "term", "color": COLORS[2], "x": names, "y": _round(terms)}]},
        ],
    )


def estimator_sampling(mu: Any, *, n_samples: int = 100, repeats: int = 1000, seed: int = 7,
                       bins: int = 41, rel_range: tuple[float, float] = (-1.0, 3.0)) -> Explorable:
    r"""Sampling distributions of Schulman's :math:`k_1, k_2, k_3` estimates of :math:`D(q\|p)`.

    For :math:`q = \mathcal N(0, 1)`, :math:`p = \mathcal N(\mu, 1)` (so :math:`D(q\|p) = \mu^2/2`,
    evaluated by ``kl_normal``), one slider position per ``mu``. Each estimate is ``mc_kl`` over
    ``n_samples`` draws from q, repeated ``repeats`` times; the same draws (one seeded generator)
    serve every position. Shows, per estimator, the density of ``estimate / D`` (a histogram with
    ``bins`` bins on ``rel_range``, normalised by all ``repeats`` estimates, so mass outside the range
    is not drawn), and as readout and bars the bias (mean of the estimates minus D) and the spread
    (their sample standard deviation, ``ddof=1``), in nats.
    """
    mu = np.asarray(mu, dtype=float)
    if mu.ndim != 1 or mu.size < 2 or not np.all(np.isfinite(mu)) or np.any(mu <= 0):
        raise ValueError("mu: a 1-D grid of at least 2 positive, finite shifts of p's mean")
    for name, value in (("n_samples", n_samples), ("repeats", repeats), ("bins", bins)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ValueError(f"{name}: an integer of at least 2, got {value!r}")
    lo, hi = (float(v) for v in rel_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError("rel_range: two finite numbers, low < high")
    x = np.random.default_rng(seed).standard_normal((repeats, n_samples))
    log_q = normal_logpdf(x, 0.0, 1.0)
    names = ("k1", "k2", "k3")
    edges = np.linspace(lo, hi, bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    true_kl, bias, spread = [], [], []
    density: dict[str, list] = {k: [] for k in names}
    for m in mu:
        d = float(kl_normal(0.0, 1.0, float(m), 1.0))
        log_p = normal_logpdf(x, float(m), 1.0)
        true_kl.append(d)
        row_bias, row_spread = [], []
        for k in names:
            estimates = np.asarray(mc_kl(log_q, log_p, estimator=k).estimate, dtype=float)
            counts, _ = np.histogram(estimates / d, bins=edges)
            density[k].append(counts / (repeats * (edges[1] - edges[0])))
            row_bias.append(float(estimates.mean() - d))
            row_spread.append(float(estimates.std(ddof=1)))
        bias.append(row_bias)
        spread.append(row_spread)
    def signed(v: float) -> str:
        return f"{round(v, 4) + 0.0:+.4f}"  # + 0.0: a bias that rounds to zero prints as +0.0000

    readout = [f"D(q‖p) = {d:.4f} nats, n = {n_samples}.  Bias: k₁ {signed(b[0])}, k₂ {signed(b[1])}, "
               f"k₃ {signed(b[2])};  spread: k₁ {s[0]:.4f}, k₂ {s[1]:.4f}, k₃ {s[2]:.4f} nats"
               for d, b, s in zip(true_kl, bias, spread)]
    labels = ["k₁", "k₂", "k₃"]
    return Explorable(
        name="estimators",
        alt=("Interactive: a slider sets the true KL divergence; the sampling distributions of the "
             "estimators k1, k2 and k3 and their bias and spread update."),
        sliders=[{"name": "kl", "label": "true D(q‖p) in nats",
                  "labels": [f"{d:.3g}" for d in true_kl]}],
        readouts=[{"name": "bias-spread", "values": readout}],
        panels=[
            {"title": f"estimates: n = {n_samples}, {repeats} repetitions",
             "x_label": "estimate / true D", "y_label": "density", "kind": "line",
             "series": [{"label": lab, "color": COLORS[i], "x": _round(centres),
                         "y": _round(density[k], 4)} for i, (k, lab) in enumerate(zip(names, labels))]},
            {"title": "bias and spread (sd), nats", "x_label": "", "y_label": "nats", "kind": "bar",
             "series": [{"label": "value", "color": COLORS[2],
                         "x": [f"bias {lab}" for lab in labels] + [f"sd {lab}" for lab in labels],
                         "y": _round(np.hstack([bias, spread]))}]},
        ],
    )


def _two_mode_mixture(d: float, w: float) -> tuple[list[float], list[float], list[float]]:
    return [w, 1.0 - w], [-d / 2, d / 2], [1.0, 1.0]


def _reverse_minima(mixture: tuple, d: float, start_sigmas: np.ndarray) -> list:
    r"""Every local minimum of :math:`D(q\|p)` reached from the forward fit and from :math:`(\pm d/2, s)`,
    one per distinct mean (to 1e-6), sorted by mean."""
    from klbook.mixtures import fit_normal_to_mixture

    fits = [fit_normal_to_mixture(*mixture, "reverse")]
    fits += [fit_normal_to_mixture(*mixture, "reverse", init=(sign * d / 2, s))
             for sign in (-1.0, 1.0) for s in start_sigmas]
    found: list = []
    for f in fits:
        if all(abs(f.mu - g.mu) > 1e-6 for g in found):
            found.append(f)
    return sorted(found, key=lambda f: f.mu)


#: Curves of reverse-fit minima the density panel can show at once: global ones (two when the mixture
#: is symmetric and the one-mode fits win) and the other local minima (at most two: three minima in all).
_GLOBAL_SLOTS, _OTHER_SLOTS = 2, 2


def forward_reverse(separations: Any, weights: Any = (0.5,), *, fold: float, switch: float, x: Any = None,
                    start_sigmas: tuple[float, ...] = (0.5, 1.0)) -> Explorable:
    r"""Forward and reverse Gaussian fits to the two-component mixture
    :math:`p = w\,\mathcal N(-\tfrac d2, 1) + (1-w)\,\mathcal N(\tfrac d2, 1)`, sliders for d and w.

    One slider position per separation ``d`` and one per weight ``w`` of the left component (the state
    index runs over ``d`` first, then ``w``). At each, ``klbook.mixtures.fit_normal_to_mixture`` gives
    the forward fit (moment matching, :math:`D(p\|q_F)`) and the reverse fits reached from the default
    start (the forward fit) and from :math:`(\pm d/2, s)` for every ``s`` in ``start_sigmas``; fits
    whose means agree to 1e-6 are one local minimum (for the symmetric mixture these starts find the
    centred minimum and, where they exist, the two one-mode minima). The global minima are those within
    1e-9 nats of the smallest divergence. Shows the densities of p, :math:`q_F` and of every local
    minimum (the global ones solid, the others dashed; a curve absent at a state is empty); against ``d``
    at the current ``w``: the forward divergence, the global minimum's divergence, every local minimum
    as a dot, the minima at the current ``d`` as points and the global ones as stars, and, for
    ``w = 0.5``, the chapter's ``fold`` (where the one-mode minima appear) and ``switch`` (where they
    become global) of the symmetric mixture as vertical lines. Readouts: the forward fit and every local
    minimum with its divergence, the global one(s) marked, and for ``w = 0.5`` where ``d`` lies relative
    to ``fold`` and ``switch``. Densities below 1e-6 are drawn as 0 (invisible at the panel's scale),
    the others to 3 significant digits; ``x`` defaults to 65 points on [-8, 8]. The weight slider starts
    at 0.5 if the grid has it (the nearest weight otherwise); a grid of one weight has no weight slider.

    Raises
    ------
    ValueError
        For a grid of separations that is not 1-D, increasing, finite, non-negative with at least 2
        points; for weights that are not 1-D, increasing and strictly between 0 and 1; for ``fold`` and
        ``switch`` not finite with ``0 < fold < switch``; for empty or non-positive ``start_sigmas``.
    """
    from klbook.mixtures import fit_normal_to_mixture, mixture_logpdf

    d_grid = np.asarray(separations, dtype=float)
    if (d_grid.ndim != 1 or d_grid.size < 2 or not np.all(np.isfinite(d_grid)) or np.any(d_grid < 0)
            or np.any(np.diff(d_grid) <= 0)):
        raise ValueError("separations: a 1-D increasing grid of at least 2 finite, non-negative numbers")
    w_grid = np.asarray(weights, dtype=float)
    if (w_grid.ndim != 1 or w_grid.size < 1 or not np.all((w_grid > 0) & (w_grid < 1))
            or np.any(np.diff(w_grid) <= 0)):
        raise ValueError("weights: a 1-D increasing grid of weights strictly between 0 and 1")
    fold, switch = float(fold), float(switch)
    if not (np.isfinite(fold) and np.isfinite(switch) and 0 < fold < switch):
        raise ValueError("fold, switch: finite numbers with 0 < fold < switch")
    sig = np.asarray(start_sigmas, dtype=float)
    if sig.ndim != 1 or sig.size == 0 or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError("start_sigmas: a non-empty sequence of positive, finite numbers")
    x = np.linspace(-8.0, 8.0, 65) if x is None else np.asarray(x, dtype=float)
    x_list = _round(x)
    # states in the order of the sliders (d, then w): state_index([i_d, i_w], [n_d, n_w])
    states = [(float(d), float(w)) for d in d_grid for w in w_grid]
    mixtures = {s: _two_mode_mixture(*s) for s in states}
    forward = {s: fit_normal_to_mixture(*mixtures[s], "forward") for s in states}
    minima = {s: _reverse_minima(mixtures[s], s[0], sig) for s in states}
    is_global = {s: [f.divergence <= min(g.divergence for g in found) + 1e-9 for f in found]
                 for s, found in minima.items()}

    def density(log_values: Any) -> list:
        values = np.exp(np.asarray(log_values, dtype=float))
        return _round(np.where(values < 1e-6, 0.0, values), 3)

    def mu_text(mu: float) -> str:
        return f"{round(mu, 3) + 0.0:+.3f}"  # + 0.0: a centred mean prints as +0.000

    def where(d: float, w: float) -> str:
        if w != 0.5:
            return f"w = {w:.2f} (d_fold and d_switch belong to w = 0.5)"
        if d < fold:
            return f"d < d_fold = {fold:.4f}"
        if d < switch:
            return f"d_fold = {fold:.4f} < d < d_switch = {switch:.4f}"
        return f"d > d_switch = {switch:.4f}"

    forward_text, reverse_text = [], []
    for s in states:
        (d, w), fwd, found = s, forward[s], minima[s]
        forward_text.append(f"d = {d:.2f}, w = {w:.2f}: forward fit μ = {mu_text(fwd.mu)}, "
                            f"σ = {fwd.sigma:.3f}, D(p‖q_F) = {fwd.divergence:.4f} nats")
        count = "1 local minimum" if len(found) == 1 else f"{len(found)} local minima"
        items = "; ".join(f"μ = {mu_text(f.mu)}, σ = {f.sigma:.3f}, D(q‖p) = {f.divergence:.4f}"
                          + (" (global)" if g else "") for f, g in zip(found, is_global[s]))
        reverse_text.append(f"Reverse, {where(d, w)}: {count}: {items}")

    def minimum_curves(wanted: bool, slots: int) -> list[list]:
        """``slots`` curves per state: the densities of the minima whose global flag is ``wanted``."""
        per_state = []
        for s in states:
            picked = [f for f, g in zip(minima[s], is_global[s]) if g == wanted]
            if len(picked) > slots:
                raise AssertionError(f"{len(picked)} {'global' if wanted else 'other'} minima at {s}")
            per_state.append([density(normal_logpdf(x, f.mu, f.sigma)) for f in picked])
        return [[c[i] if len(c) > i else [] for c in per_state] for i in range(slots)]

    density_series = [
        {"label": "p", "color": "#7f7f7f", "x": x_list, "width": 3,
         "y": [density(mixture_logpdf(x, *mixtures[s])) for s in states]},
        {"label": "forward q_F", "color": COLORS[0], "x": x_list,
         "y": [density(normal_logpdf(x, forward[s].mu, forward[s].sigma)) for s in states]},
    ]
    for i, ys in enumerate(minimum_curves(True, _GLOBAL_SLOTS)):
        density_series.append({"label": "" if i else "reverse: global", "color": COLORS[1], "x": x_list,
                               "y": ys, "optional": True})
    for i, ys in enumerate(minimum_curves(False, _OTHER_SLOTS)):
        density_series.append({"label": "" if i else "reverse: other local", "color": COLORS[3],
                               "x": x_list, "y": ys, "optional": True, "dash": "dashed"})

    def along_d(w: float, value: Any) -> list:
        """``value(minima, d)`` (a list) for every separation ``d`` at weight ``w``, concatenated."""
        return [v for d in d_grid for v in value(minima[(float(d), w)], float(d))]

    d_list = _round(d_grid)
    d_max = max(f.divergence for found in minima.values() for f in found)
    top = _round([1.05 * max(d_max, max(f.divergence for f in forward.values()))])[0]
    symmetric = [w == 0.5 for _, w in states]
    divergence_series = [
        {"label": "forward D(p‖q_F)", "color": COLORS[0], "x": d_list,
         "y": [_round([forward[(float(d), w)].divergence for d in d_grid]) for _, w in states]},
        {"label": "global minimum", "color": COLORS[1], "x": d_list,
         "y": [_round([min(f.divergence for f in minima[(float(d), w)]) for d in d_grid])
               for _, w in states]},
        {"label": "local minima", "color": COLORS[3], "glyph": "scatter", "size": 4, "varying_x": True,
         "x": [_round(along_d(w, lambda found, d: [d] * len(found))) for _, w in states],
         "y": [_round(along_d(w, lambda found, d: [f.divergence for f in found])) for _, w in states]},
        {"label": f"fold {fold:.3f}", "color": "#d62728", "dash": "dashed", "width": 1, "varying_x": True,
         "x": [_round([fold, fold]) if sym else [] for sym in symmetric],
         "y": [[0.0, top] if sym else [] for sym in symmetric]},
        {"label": f"switch {switch:.3f}", "color": COLORS[2], "dash": "dashed", "width": 1,
         "varying_x": True, "x": [_round([switch, switch]) if sym else [] for sym in symmetric],
         "y": [[0.0, top] if sym else [] for sym in symmetric]},
        {"label": "minima at d", "color": "#000000", "glyph": "scatter", "size": 8, "varying_x": True,
         "x": [_round([d] * len(minima[(d, w)])) for d, w in states],
         "y": [_round([f.divergence for f in minima[s]]) for s in states]},
        {"label": "global", "color": "#000000", "glyph": "scatter", "marker": "star", "size": 16,
         "varying_x": True, "x": [_round([d] * sum(is_global[(d, w)])) for d, w in states],
         "y": [_round([f.divergence for f, g in zip(minima[s], is_global[s]) if g]) for s in states]},
    ]
    weight_start = int(np.argmin(np.abs(w_grid - 0.5)))
    return Explorable(
        name="forward-reverse",
        alt=("Interactive: sliders set the separation d of a two-component mixture and the weight w of "
             "its left component; the forward fit, every local minimum of the reverse fit with its "
             "divergence and the global one update, with the fold and switch separations of the "
             "symmetric mixture marked."),
        sliders=[{"name": "separation", "label": "separation d", "labels": [f"{d:.2f}" for d in d_grid]}]
        + ([{"name": "weight", "label": "weight w of the left component",
             "labels": [f"{w:.2f}" for w in w_grid], "start": weight_start}] if w_grid.size > 1 else []),
        readouts=[{"name": "forward", "values": forward_text},
                  {"name": "reverse", "values": reverse_text}],
        panels=[
            {"title": "p and its Gaussian fits", "x_label": "x", "y_label": "density", "kind": "line",
             "series": density_series, "legend_font_size": "9pt", "height": 260,
             "y_range": [0.0, 0.9]},  # room for the legend above the curves (all peaks are below 0.4)
            {"title": "divergence against d", "x_label": "separation d", "y_label": "nats",
             "kind": "line", "series": divergence_series, "legend_location": "top_left",
             "legend_font_size": "9pt", "height": 280},
        ],
    )


#: Ten colours for the ten digit classes (matplotlib's tab10, as the chapters' static figures).
DIGIT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")


def _check_int(name: str, value: Any, low: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: an integer of at least {low}, got {value!r}")
    return int(value)


def beta_vae(runs: dict, x: Any, labels: Any, *, active_threshold: float = 0.1, n_samples: int = 12,
             columns: int = 6, seed: int = 0) -> Explorable:
    r"""β-VAEs already trained by a chapter: a slider over β, their rate, distortion, codes and samples.

    ``runs`` maps each β to ``(model, history)`` as ``klbook.models.train_vae`` returns them (a
    ``klbook.models.VAE`` and its per-epoch history); nothing is trained here. One slider position per
    β, in increasing order. The readout gives the rate :math:`R` (``history[-1]["test_kl"]``) and the
    distortion :math:`D` (``history[-1]["test_reconstruction"]``), both rounded to 2 decimals as the
    chapter glues them, :math:`-\mathrm{ELBO} = D + R`, and the number of active units: dimensions
    whose activity :math:`A_j`, the variance over ``x`` of the encoder mean (``klbook.models.encode_array``),
    exceeds ``active_threshold``. The scatter shows the encoder means of ``x`` in a 2-D view: the two
    dimensions of largest activity of the model at that β (named in the readout; when no dimension is
    active they are the two least inactive, and the codes sit at the origin), coloured by ``labels``,
    on axes fixed across β. The image shows the decoder's mean images
    (``klbook.models.decode_array``) of the same ``n_samples`` draws :math:`z\sim\mathcal N(0, I)`
    (``torch.Generator().manual_seed(seed)``) for every β, ``columns`` per row, grey levels rounded to
    2 decimals. Codes are rounded to 3 significant digits.

    Raises
    ------
    ValueError
        For fewer than 2 runs, a β that is not positive and finite, a run that is not ``(VAE, history)``
        with a non-empty history, ``x`` not 2-D with square images of the models' input size,
        ``labels`` not one integer per row of ``x``, or bad ``n_samples``, ``columns`` or
        ``active_threshold``.
    """
    import torch

    from klbook.models import VAE, decode_array, encode_array

    if not isinstance(runs, dict) or len(runs) < 2:
        raise ValueError("runs: a dict {beta: (model, history)} with at least 2 runs")
    betas = sorted(float(b) for b in runs)
    if not all(np.isfinite(b) and b > 0 for b in betas):
        raise ValueError("runs: every beta must be positive and finite")
    for b, run in runs.items():
        if (not isinstance(run, tuple) or len(run) != 2 or not isinstance(run[0], VAE)
                or not run[1] or "test_kl" not in run[1][-1]):
            raise ValueError(f"runs: beta {b} must map to (VAE, history) with a non-empty history")
    x = np.asarray(x, dtype=float)
    labels = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError("x: a 2-D array of at least 2 images, one per row")
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1] or any(run[0].input_dim != x.shape[1] for run in runs.values()):
        raise ValueError("x: rows must be square images of the models' input size")
    if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels: one integer class per row of x")
    n_samples = _check_int("n_samples", n_samples, 1)
    columns = _check_int("columns", columns, 1)
    if not (np.isfinite(active_threshold) and active_threshold > 0):
        raise ValueError("active_threshold: a positive, finite number")
    classes = [int(c) for c in np.unique(labels)]
    if len(classes) > len(DIGIT_COLORS):
        raise ValueError(f"labels: at most {len(DIGIT_COLORS)} classes")
    latent = {run[0].latent_dim for run in runs.values()}
    if len(latent) != 1 or latent == {1}:
        raise ValueError("runs: the models must share one latent dimension of at least 2")
    k = latent.pop()
    z = torch.randn(n_samples, k, generator=torch.Generator().manual_seed(seed))
    rows = -(-n_samples // columns)
    names = [f"{b:.1f}" if b == round(b, 1) else f"{b:g}" for b in betas]
    readout, views, images = [], [], []
    for b, name in zip(betas, names):
        model, history = runs[b]
        rate = round(float(history[-1]["test_kl"]), 2)
        distortion = round(float(history[-1]["test_reconstruction"]), 2)
        mu = encode_array(model, x)
        activity = mu.var(axis=0)
        active = int((activity > active_threshold).sum())
        i, j = (int(a) for a in np.argsort(-activity, kind="stable")[:2])
        views.append(mu[:, [i, j]])
        total = float(history[-1]["test_kl"]) + float(history[-1]["test_reconstruction"])
        readout.append(f"β = {name}: rate R = {rate:.2f} nats, distortion D = {distortion:.2f} nats, "
                       f"−ELBO = D + R = {total:.2f} nats;  "
                       f"{active} of {k} units active;  scatter: z{i + 1} (A = {activity[i]:.3f}) "
                       f"against z{j + 1} (A = {activity[j]:.3f})")
        decoded = np.clip(decode_array(model, z.numpy()), 0.0, 1.0).reshape(n_samples, side, side)
        mosaic = np.zeros((rows * side + rows - 1, columns * side + columns - 1))
        for n, img in enumerate(decoded):
            r, c = divmod(n, columns)
            mosaic[r * (side + 1):r * (side + 1) + side, c * (side + 1):c * (side + 1) + side] = img
        images.append(_round(np.round(mosaic, 2)))
    bound = float(np.ceil(max(np.abs(v).max() for v in views) * 2) / 2)
    scatter = [{"label": str(c), "color": DIGIT_COLORS[n], "varying_x": True, "glyph": "scatter",
                "size": 4, "alpha": 0.7,
                "x": [_round(v[labels == c, 0], 3) for v in views],
                "y": [_round(v[labels == c, 1], 3) for v in views]} for n, c in enumerate(classes)]
    return Explorable(
        name="beta-vae",
        alt=("Interactive: a slider over the β values the chapter trains; the rate, the distortion, the "
             "encoder means in the two most active latent dimensions and decoded prior samples of the "
             "model trained at that β update."),
        sliders=[{"name": "beta", "label": "β",
                  "labels": names}],
        readouts=[{"name": "rate-distortion", "values": readout}],
        panels=[
            {"title": "encoder means, two most active dimensions", "x_label": "most active",
             "y_label": "second most active", "kind": "line", "series": scatter, "height": 320,
             "x_range": [-bound, bound], "y_range": [-bound, bound], "legend_place": "right",
             "legend_font_size": "9pt"},
            {"title": "decoded samples (same z at every β)",
             "x_label": "", "y_label": "", "kind": "image",
             "series": [{"label": "decoder mean", "y": images}]},
        ],
    )


def _image_for_bokeh(image: list) -> np.ndarray:
    """An image of the spec as BokehJS draws it: a 2-D array (nested lists are refused), row 0 at the
    bottom (the spec stores the top row first), grey levels in hundredths as ``uint8`` (exact for the
    spec's 2 decimals, and an eighth of the size of float64 in the page)."""
    return np.asarray(np.rint(np.asarray(image, dtype=float)[::-1] * 100), dtype=np.uint8)


def render_bokeh(spec: dict) -> tuple[str, str]:
    """Bokeh ``(script, div)`` for a spec: sliders (each showing its current position's label), the
    readout lines and the panels, drawn in the browser by selecting precomputed arrays (``CustomJS``).
    Needs bokeh (the book's build has it)."""
    from bokeh.embed import components
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, CustomJS, CustomJSTickFormatter, Div, LinearColorMapper, Slider
    from bokeh.palettes import Greys256
    from bokeh.plotting import figure

    shape = [len(s["labels"]) for s in spec["sliders"]]
    start = [s.get("start", n // 2) for s, n in zip(spec["sliders"], shape)]
    k0 = state_index(start, shape)
    # A slider's value is a position on its grid; its value display and tooltip show that position's
    # label instead (the browser only looks it up).
    sliders = [Slider(start=0, end=n - 1, value=j, step=1, title=s["label"], show_value=True,
                      format=CustomJSTickFormatter(args={"labels": s["labels"]},
                                                   code="return labels[Math.round(tick)];"),
                      sizing_mode="stretch_width", name=f"{spec['name']}-{s['name']}",
                      css_classes=["klbook-explorable-slider"])
               for s, n, j in zip(spec["sliders"], shape, start)]
    readouts = [Div(text=r["values"][k0], name=f"{spec['name']}-{r['name']}",
                    css_classes=["klbook-explorable-readout"], sizing_mode="stretch_width")
                for r in spec["readouts"]]
    figures, sources, series_x, series_y, optional_x, images = [], [], [], [], [], []
    for panel in spec["panels"]:
        kind = panel["kind"]
        bar, image = kind == "bar", kind == "image"
        extra: dict[str, Any] = {"x_range": panel["series"][0]["x"]} if bar else {}
        size: dict[str, Any] = {"height": panel.get("height", 240), "sizing_mode": "stretch_width"}
        if image:
            # a fixed frame of 6 screen pixels per image pixel: square pixels at every page width (a
            # frame that follows the column's width cannot keep them square), 318 px for 53 columns
            rows, cols = len(panel["series"][0]["y"][0]), len(panel["series"][0]["y"][0][0])
            extra = {"x_range": (0, cols), "y_range": (0, rows), "x_axis_type": None, "y_axis_type": None}
            size = {"width": 6 * cols, "height": 6 * rows, "sizing_mode": "fixed"}
        for axis in ("x_range", "y_range"):
            if axis in panel:
                extra[axis] = tuple(panel[axis])  # fixed, so the axes do not follow the data
        fig = figure(title=None if image else panel["title"], toolbar_location=None, tools="",
                     name=f"{spec['name']}-{panel['title']}", **size, **extra)
        fig.background_fill_alpha = 0
        fig.border_fill_alpha = 0
        fig.outline_line_alpha = 0
        if image:
            # no axes, title, toolbar or borders: the frame is the whole figure
            fig.min_border_left = fig.min_border_right = fig.min_border_top = fig.min_border_bottom = 0
            fig.frame_align = False  # not aligned with the frames of the panels above
            # the title as a heading above it, in the style of the other panels' titles
            figures.append(Div(text=html.escape(panel["title"]), styles={"font-weight": "bold"},
                               css_classes=["klbook-explorable-image-title"]))
        else:
            fig.xaxis.axis_label = panel["x_label"] or None
            fig.yaxis.axis_label = panel["y_label"]
        legend = False
        for series in panel["series"]:
            fixed = series.get("fixed", False)
            varying_x = series.get("varying_x", False)
            if image:
                states = [_image_for_bokeh(img) for img in series["y"]]
                source = ColumnDataSource({"image": [states[k0]]})
                mapper = LinearColorMapper(palette=list(reversed(Greys256)), low=0, high=100)
                fig.image(image="image", x=0, y=0, dw=cols, dh=rows, color_mapper=mapper, source=source)
                sources.append(source)
                series_x.append(None)
                series_y.append(states)
                optional_x.append(None)
                images.append(True)
                continue
            optional = series.get("optional", False)
            y0 = series["y"] if fixed else series["y"][k0]
            x0 = series["x"][k0] if varying_x else (series["x"] if y0 or not optional else [])
            source = ColumnDataSource({"x": x0, "y": y0})
            label = {"legend_label": series["label"]} if series.get("label") and not bar else {}
            legend = legend or bool(label)
            if bar:
                fig.vbar(x="x", top="y", width=0.7, color=series["color"], source=source)
            elif series.get("glyph", "line") == "scatter":
                fig.scatter("x", "y", marker=series.get("marker", "circle"), size=series.get("size", 8),
                            color=series["color"], alpha=series.get("alpha", 1.0), source=source, **label)
            else:
                fig.line("x", "y", color=series["color"], line_width=series.get("width", 2),
                         line_dash=series.get("dash", "solid"), source=source, **label)
            if not fixed:
                sources.append(source)
                series_x.append(series["x"] if varying_x else None)
                series_y.append(series["y"])
                optional_x.append(series["x"] if optional else None)
                images.append(False)
        if legend:
            fig.legend.background_fill_alpha = 0
            fig.legend.border_line_alpha = 0
            fig.legend.location = panel.get("legend_location", "top_right")
            if panel.get("legend_columns"):
                fig.legend.ncols = panel["legend_columns"]
            fig.legend.label_text_font_size = panel.get("legend_font_size", "10pt")
            if panel.get("legend_place") == "right":
                fig.add_layout(fig.legend[0], "right")  # beside the plot, not over the data
        figures.append(fig)
    # A legend lists a curve only while it is drawn: at some states a curve is absent (empty data).
    legend_items = [item for fig in figures if getattr(fig, "legend", None) for item in fig.legend[0].items]
    for item in legend_items:
        item.visible = any(len(r.data_source.data["y"]) for r in item.renderers)
    callback = CustomJS(
        args={"sliders": sliders, "shape": shape, "readouts": readouts,
              "texts": [r["values"] for r in spec["readouts"]], "sources": sources, "xs": series_x,
              "ys": series_y, "optional_x": optional_x, "images": images, "legend_items": legend_items},
        code="""
let k = 0;
const pos = sliders.map(s => Math.round(s.value));
for (let i = 0; i < sliders.length; i++) k = k * shape[i] + pos[i];
readouts.forEach((div, i) => { div.text = texts[i][k]; });
sources.forEach((src, i) => {
  if (images[i]) src.data = {image: [ys[i][k]]};
  else {
    const y = ys[i][k];
    // an optional curve's fixed x, or nothing where it is absent
    const x = optional_x[i] !== null ? (y.length ? optional_x[i] : []) : xs[i] === null ? src.data.x : xs[i][k];
    src.data = {x: x, y: y};
  }
});
legend_items.forEach(item => { item.visible = item.renderers.some(r => r.data_source.data.y.length > 0); });
""")
    for slider in sliders:
        slider.js_on_change("value", callback)
    layout = column(*sliders, *readouts, *figures, sizing_mode="stretch_width",
                    name=spec["name"], css_classes=[MARKER_CLASS + "-layout"])
    return _stable_ids(spec["name"], *components(layout))


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _stable_ids(name: str, script: str, div: str) -> tuple[str, str]:
    """Bokeh names a figure's document and its element by random UUIDs, so the page changed at every
    build; they become ``klbook-<name>-<n>`` (a page's explorables have distinct names)."""
    ids: dict[str, str] = {}

    def stable(match: re.Match) -> str:
        return ids.setdefault(match.group(0), f"klbook-{name}-{len(ids)}")

    return _UUID.sub(stable, script), _UUID.sub(stable, div)
