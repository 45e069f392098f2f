"""Explorables: interactive figures whose every number is precomputed by klbook.

A chapter computes, on a grid of slider positions, everything an explorable shows (curves, bars and the
numbers it prints) and displays an :class:`Explorable`. Its stored notebook output is plain data: a
``text/plain`` line, and ``text/html`` holding a fallback sentence and the data as JSON (deterministic,
so nbval compares it like any other output). The book's Sphinx extension
(``book/_ext/klbook_explorables.py``) turns that data into a Bokeh figure at build time, for the HTML
builder only; the browser only selects precomputed values (a ``CustomJS`` callback indexing arrays)
and draws. Numbers are formatted here, in Python, so the page shows exactly klbook's strings.

Spec layout (all lists, JSON-serialisable):

* ``sliders``: ``[{"name", "label", "labels"}]``; slider ``i`` selects position ``j`` of its grid, and
  the state is the flat index ``numpy.ravel_multi_index(positions, shape)``;
* ``readouts``: ``[{"name", "values"}]``, one preformatted string per state;
* ``panels``: ``[{"title", "x_label", "y_label", "kind", "series"}]``, each series
  ``{"label", "color", "x", "y"}`` with ``x`` one fixed list and ``y`` one list per state, or one
  list if the series has ``"fixed": true`` (``kind``
  ``"line"``) or ``x`` a list of category names and ``y`` one list per state (``kind`` ``"bar"``).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from klbook.estimators import mc_kl
from klbook.gaussian import kl_normal, normal_logpdf

__all__ = ["MARKER_CLASS", "SPEC_MIME", "Explorable", "estimator_sampling", "render_bokeh",
           "state_index", "two_gaussians"]

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


def render_bokeh(spec: dict) -> tuple[str, str]:
    """Bokeh ``(script, div)`` for a spec: sliders, a readout line and the panels, drawn in the browser
    by selecting precomputed arrays (``CustomJS``). Needs bokeh (the book's build has it)."""
    from bokeh.embed import components
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, CustomJS, Div, Slider
    from bokeh.plotting import figure

    shape = [len(s["labels"]) for s in spec["sliders"]]
    start = [n // 2 for n in shape]
    k0 = state_index(start, shape)
    sliders = [Slider(start=0, end=n - 1, value=j, step=1, title=s["label"], show_value=False,
                      sizing_mode="stretch_width", name=f"{spec['name']}-{s['name']}",
                      css_classes=["klbook-explorable-slider"])
               for s, n, j in zip(spec["sliders"], shape, start)]
    readouts = [Div(text=r["values"][k0], name=f"{spec['name']}-{r['name']}",
                    css_classes=["klbook-explorable-readout"], sizing_mode="stretch_width")
                for r in spec["readouts"]]
    figures, sources, series_data = [], [], []
    for panel in spec["panels"]:
        bar = panel["kind"] == "bar"
        extra = {"x_range": panel["series"][0]["x"]} if bar else {}
        fig = figure(height=240, sizing_mode="stretch_width", title=panel["title"],
                     toolbar_location=None, tools="", name=f"{spec['name']}-{panel['title']}", **extra)
        fig.background_fill_alpha = 0
        fig.border_fill_alpha = 0
        fig.outline_line_alpha = 0
        fig.xaxis.axis_label = panel["x_label"] or None
        fig.yaxis.axis_label = panel["y_label"]
        for series in panel["series"]:
            fixed = series.get("fixed", False)
            source = ColumnDataSource({"x": series["x"], "y": series["y"] if fixed else series["y"][k0]})
            if bar:
                fig.vbar(x="x", top="y", width=0.7, color=series["color"], source=source)
            else:
                fig.line("x", "y", color=series["color"], line_width=2, source=source,
                         legend_label=series["label"])
            if not fixed:
                sources.append(source)
                series_data.append(series["y"])
        if not bar:
            fig.legend.background_fill_alpha = 0
            fig.legend.border_line_alpha = 0
        figures.append(fig)
    callback = CustomJS(
        args={"sliders": sliders, "shape": shape, "readouts": readouts,
              "texts": [r["values"] for r in spec["readouts"]], "sources": sources, "ys": series_data},
        code="""
let k = 0;
for (let i = 0; i < sliders.length; i++) k = k * shape[i] + Math.round(sliders[i].value);
readouts.forEach((div, i) => { div.text = texts[i][k]; });
sources.forEach((src, i) => { src.data = {x: src.data.x, y: ys[i][k]}; });
""")
    for slider in sliders:
        slider.js_on_change("value", callback)
    layout = column(*sliders, *readouts, *figures, sizing_mode="stretch_width",
                    name=spec["name"], css_classes=[MARKER_CLASS + "-layout"])
    return components(layout)
