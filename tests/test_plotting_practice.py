"""Tests of klbook.plotting.practice: chapter 7's figures draw the numbers they are given, labelled, on white."""
import numpy as np
import pytest
from scipy import special

import klbook
from klbook.plotting.practice import (
    plot_em_progress, plot_epsilon_hack, plot_estimator_bias_spread, plot_log_density_tails, plot_relative_errors,
    plot_running_estimates, plot_temperature_softening)

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone, labelled_lines, legend_texts


# ---------------------------------------------------------------- plot_relative_errors

GRID = np.logspace(-16, 0, 97)
ERRORS = {
    # exact results (0), a NaN and errors above 1 ("no correct digit") all occur in the chapter's table
    "textbook": np.where(GRID < 1e-12, 3.0, np.where(GRID < 1e-8, np.nan, 1e-3 / (1 + GRID))),
    "klbook": np.where(np.arange(GRID.size) % 3 == 0, 0.0, 1e-16),
}


@pytest.fixture(scope="module")
def relative_errors_figure():
    """Built once: plt.close only detaches a figure from pyplot, its artists stay inspectable."""
    return plot_relative_errors(GRID, ERRORS, x_label="log-variance")


def test_relative_errors_are_labelled_on_log_log_axes(relative_errors_figure):
    fig, ax = relative_errors_figure
    assert_book_figure(fig)
    assert ax.get_xlabel() == "log-variance"
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert legend_texts(ax) == ["textbook", "klbook", r"unit roundoff $2^{-53}$"]


def test_relative_errors_are_drawn_clipped_to_floor_and_one(relative_errors_figure):
    fig, ax = relative_errors_figure
    for line, errors in zip(labelled_lines(ax), ERRORS.values()):
        np.testing.assert_array_equal(line.get_xdata(), GRID)
        expected = np.clip(np.where(np.isnan(errors), 1.0, errors), 1e-17, 1.0)
        np.testing.assert_array_equal(line.get_ydata(), expected)
    roundoff = labelled_lines(ax)[-1]
    assert roundoff.get_ydata()[0] == 2.0**-53


# ---------------------------------------------------------------- plot_epsilon_hack

P_EPS, Q_EPS = np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4, 0.0])
EPSILONS = np.logspace(-2, -16, 15)
HACKS = {
    "replace zeros": np.array([np.sum(P_EPS * np.log(P_EPS / np.where(Q_EPS > 0, Q_EPS, e))) for e in EPSILONS]),
    "add everywhere": np.array([np.sum(P_EPS * np.log(P_EPS / ((Q_EPS + e) / (1 + 3 * e)))) for e in EPSILONS]),
}


def test_epsilon_hack_curves_are_the_values_on_an_inverted_log_axis():
    fig, ax = plot_epsilon_hack(EPSILONS, HACKS)
    assert_book_figure(fig)
    assert legend_texts(ax) == list(HACKS)
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert r"+\infty" in ax.get_title()
    for line, values in zip(labelled_lines(ax), HACKS.values()):
        np.testing.assert_array_equal(line.get_xdata(), EPSILONS)
        np.testing.assert_array_equal(line.get_ydata(), values)
    # the hack's value is a statement about epsilon: it grows by p(x*) ln 10 = 0.2 ln 10 per decade
    np.testing.assert_allclose(np.diff(HACKS["replace zeros"]), 0.2 * np.log(10), rtol=1e-9)


# ---------------------------------------------------------------- plot_estimator_bias_spread

def estimator_study(n_mc=50, repeats=200):
    """The chapter's study (q = N(0, 1), p = N(mu, 1)), scaled down."""
    rng = np.random.default_rng(7)
    mu = np.array([0.25, 0.5, 1.0, 2.0])
    x = rng.standard_normal((repeats, n_mc))
    log_q = klbook.normal_logpdf(x, 0.0, 1.0)
    true_kl = np.array([float(klbook.kl_normal(0.0, 1.0, m, 1.0)) for m in mu])
    bias, bias_se, spread = {}, {}, {}
    for k in ("k1", "k2", "k3"):
        est = np.stack([klbook.mc_kl(log_q, klbook.normal_logpdf(x, m, 1.0), estimator=k).estimate for m in mu])
        bias[k] = (est.mean(axis=1) - true_kl) / true_kl
        bias_se[k] = est.std(axis=1, ddof=1) / np.sqrt(repeats) / true_kl
        spread[k] = est.std(axis=1, ddof=1) / true_kl
    theory_bias = {"k1": np.zeros_like(true_kl), "k2": true_kl / 2, "k3": np.zeros_like(true_kl)}
    theory_std = {"k1": np.sqrt(2 * true_kl / n_mc) / true_kl}
    return true_kl, bias, bias_se, spread, theory_bias, theory_std


STUDY = estimator_study()


@pytest.fixture(scope="module")
def bias_spread_figure():
    true_kl, bias, bias_se, spread, theory_bias, theory_std = STUDY
    return plot_estimator_bias_spread(true_kl, bias, bias_se, spread, theory_bias=theory_bias,
                                      theory_std=theory_std, n_samples=50)


def test_bias_spread_panels_are_labelled_with_legends(bias_spread_figure):
    fig, (left, right) = bias_spread_figure
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert left.get_xscale() == right.get_xscale() == right.get_yscale() == "log"
    # one legend for both panels, each label once
    assert sorted(legend_texts(left)) == ["k1 (exact)", "k1 (measured)", "k2 (exact)", "k2 (measured)",
                                          "k3 (exact)", "k3 (measured)"]
    assert "n = 50" in fig._suptitle.get_text()


def test_bias_markers_and_error_bars_span_two_standard_errors(bias_spread_figure):
    fig, (left, _) = bias_spread_figure
    true_kl, bias, bias_se, *_ = STUDY
    for container, k in zip(left.containers, ("k1", "k2", "k3")):
        data_line, _, (bars,) = container.lines
        np.testing.assert_array_equal(data_line.get_xdata(), true_kl)
        np.testing.assert_array_equal(data_line.get_ydata(), bias[k])
        segments = np.array(bars.get_segments())  # (points, 2 ends, xy)
        np.testing.assert_allclose(segments[:, 1, 1] - segments[:, 0, 1], 4 * bias_se[k], rtol=1e-12)
        np.testing.assert_allclose(segments.mean(axis=1)[:, 1], bias[k], rtol=1e-12, atol=1e-15)


def test_spread_markers_and_theory_lines_are_the_inputs(bias_spread_figure):
    fig, (left, right) = bias_spread_figure
    true_kl, _, _, spread, theory_bias, theory_std = STUDY
    by_label = {line.get_label(): line for line in right.get_lines()}
    for k in ("k1", "k2", "k3"):
        np.testing.assert_array_equal(by_label[f"{k} (measured)"].get_ydata(), spread[k])
    np.testing.assert_array_equal(by_label["k1 (exact)"].get_ydata(), theory_std["k1"])
    left_by_label = {line.get_label(): line for line in left.get_lines()}
    np.testing.assert_array_equal(left_by_label["k2 (exact)"].get_ydata(), true_kl / 2)


def _study_args(**changes):
    true_kl, bias, bias_se, spread, *_ = STUDY
    args = dict(true_kl=true_kl, relative_bias=bias, bias_error=bias_se, relative_std=spread)
    args.update(changes)
    return args


# ---------------------------------------------------------------- plot_running_estimates

def running_study():
    """k1 and k3 on draws of q = N(0, 1) against p = N(0, 2^2), as in the chapter (10^4 samples)."""
    x = np.random.default_rng(3).standard_normal(10**4)
    lq, lp = klbook.normal_logpdf(x, 0.0, 1.0), klbook.normal_logpdf(x, 0.0, 2.0)
    n = np.unique(np.logspace(1, 4, 40).astype(int))
    running, spread = {}, {}
    for name, fn in (("k1", klbook.k1), ("k3", klbook.k3)):
        values = fn(lq, lp)
        mean = np.cumsum(values)[n - 1] / n
        running[name] = mean
        spread[name] = np.sqrt(np.maximum(np.cumsum(values**2)[n - 1] / n - mean**2, 1e-300))
    return n, running, spread, float(klbook.kl_normal(0.0, 1.0, 0.0, 2.0))


RUN_N, RUNNING, RUN_SPREAD, TRUTH = running_study()


def test_running_estimates_with_spread_draw_two_labelled_panels():
    fig, (left, right) = plot_running_estimates(RUN_N, RUNNING, truth=TRUTH, spread=RUN_SPREAD)
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert legend_texts(left) == ["k1", "k3", "exact"] and legend_texts(right) == ["k1", "k3"]
    assert left.get_xscale() == "log" and right.get_xscale() == right.get_yscale() == "log"
    lines = {line.get_label(): line for line in left.get_lines()}
    for name in RUNNING:
        np.testing.assert_array_equal(lines[name].get_xdata(), RUN_N)
        np.testing.assert_array_equal(lines[name].get_ydata(), RUNNING[name])
    assert set(lines["exact"].get_ydata()) == {TRUTH}
    for line, name in zip(right.get_lines(), RUN_SPREAD):
        np.testing.assert_array_equal(line.get_ydata(), RUN_SPREAD[name])


def test_running_estimates_without_spread_return_one_axes():
    fig, ax = plot_running_estimates(RUN_N, RUNNING, truth=TRUTH)
    assert_book_figure(fig)
    assert len(fig.axes) == 1 and ax is fig.axes[0]
    assert legend_texts(ax) == ["k1", "k3", "exact"]


# ---------------------------------------------------------------- plot_log_density_tails

W_MIX, MU_MIX, SD_MIX = np.array([0.3, 0.7]), np.array([-2.0, 1.5]), np.array([0.6, 0.8])
X_TAIL = np.linspace(-45.0, 45.0, 181)
with np.errstate(divide="ignore", under="ignore"):
    NAIVE = np.log(np.sum(W_MIX * np.exp(klbook.normal_logpdf(X_TAIL[:, None], MU_MIX, SD_MIX)), axis=-1))
LSE = special.logsumexp(np.log(W_MIX) + klbook.normal_logpdf(X_TAIL[:, None], MU_MIX, SD_MIX), axis=-1)


def test_log_density_tails_leave_gaps_where_minus_infinity_and_mark_the_ends():
    fig, ax = plot_log_density_tails(X_TAIL, {"log-sum-exp": LSE, "naive": NAIVE})
    assert_book_figure(fig)
    assert legend_texts(ax) == ["log-sum-exp", "naive"]
    lse_line, naive_line, ends = ax.get_lines()
    np.testing.assert_array_equal(lse_line.get_ydata(), LSE)
    finite = np.isfinite(NAIVE)
    assert 0 < finite.sum() < finite.size  # the naive form does underflow on this grid
    np.testing.assert_array_equal(np.isnan(naive_line.get_ydata()), ~finite)
    np.testing.assert_array_equal(naive_line.get_ydata()[finite], NAIVE[finite])
    first, last = np.flatnonzero(finite)[[0, -1]]
    np.testing.assert_array_equal(ends.get_xdata(), X_TAIL[[first, last]])
    np.testing.assert_array_equal(ends.get_ydata(), NAIVE[[first, last]])


# ---------------------------------------------------------------- plot_em_progress

def em_run(iterations=12):
    """The chapter's EM on a two-component mixture, scaled down; returns log-lik, ELBO after E, after M."""
    rng = np.random.default_rng(11)
    n = 300
    left = rng.random(n) < 0.35
    x = np.where(left, rng.normal(-1.5, 0.6, n), rng.normal(1.5, 0.9, n))

    def joint(w, mu, sd):
        return np.log(w) + klbook.normal_logpdf(x[:, None], mu, sd)

    def elbo(r, w, mu, sd):
        return float(np.sum(r * joint(w, mu, sd)) - np.sum(special.xlogy(r, r)))

    w, mu, sd = np.array([0.5, 0.5]), np.array([-0.3, 0.3]), np.array([1.5, 1.5])
    ll, ea, em = [float(special.logsumexp(joint(w, mu, sd), axis=1).sum())], [], []
    for _ in range(iterations):
        j = joint(w, mu, sd)
        r = np.exp(j - special.logsumexp(j, axis=1, keepdims=True))
        ea.append(elbo(r, w, mu, sd))
        nk = r.sum(axis=0)
        w, mu = nk / n, (r * x[:, None]).sum(axis=0) / nk
        sd = np.sqrt((r * (x[:, None] - mu) ** 2).sum(axis=0) / nk)
        em.append(elbo(r, w, mu, sd))
        ll.append(float(special.logsumexp(joint(w, mu, sd), axis=1).sum()))
    return np.array(ll), np.array(ea), np.array(em)


LL, ELBO_E, ELBO_M = em_run()


@pytest.fixture(scope="module")
def em_figure():
    return plot_em_progress(LL, ELBO_E, ELBO_M)


def test_em_progress_panels_are_labelled_with_legends(em_figure):
    fig, (left, right) = em_figure
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert len(legend_texts(left)) == 3  # one legend for both panels
    assert right.get_yscale() == "log"


def test_em_elbo_path_alternates_e_and_m_steps_and_log_likelihood_is_drawn(em_figure):
    fig, (left, _) = em_figure
    path, points = left.get_lines()
    t = np.arange(LL.size)
    np.testing.assert_array_equal(points.get_xdata(), t)
    np.testing.assert_array_equal(points.get_ydata(), LL)
    np.testing.assert_array_equal(path.get_xdata(), np.repeat(t, 2)[1:-1])
    np.testing.assert_array_equal(path.get_ydata()[0::2], ELBO_E)
    np.testing.assert_array_equal(path.get_ydata()[1::2], ELBO_M)


def test_em_gap_panel_is_log_likelihood_minus_elbo_after_m(em_figure):
    fig, (_, right) = em_figure
    (gap,) = right.get_lines()
    expected = LL[1:] - ELBO_M
    assert np.all(expected > 0)  # every M-step of this run leaves a KL gap
    np.testing.assert_array_equal(gap.get_xdata(), np.arange(1, LL.size))
    np.testing.assert_array_equal(gap.get_ydata(), expected)


def test_em_zero_gaps_are_left_out_of_the_log_axis():
    ll = np.array([-10.0, -8.0, -7.0, -6.5])
    em = np.array([-8.0, -7.5, -6.5])  # zero gap after iterations 1 and 3
    fig, (_, right) = plot_em_progress(ll, ll[:-1], em)
    np.testing.assert_array_equal(right.get_lines()[0].get_xdata(), [2])
    np.testing.assert_array_equal(right.get_lines()[0].get_ydata(), [0.5])


# ---------------------------------------------------------------- plot_temperature_softening

TEACHER = np.array([6.0, 2.5, 1.0, -1.0, -2.0])
SOFT = {f"T = {T:g}": special.softmax(TEACHER / T) for T in (1.0, 2.0, 4.0)}
CLASSES = [f"class {j}" for j in range(1, 6)]


def test_temperature_bars_are_the_probabilities_grouped_by_class():
    fig, ax = plot_temperature_softening(SOFT, class_labels=CLASSES)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert ax.get_ylabel() and legend_texts(ax) == list(SOFT)
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    for container, p in zip(ax.containers, SOFT.values()):
        heights = np.array([bar.get_height() for bar in container])
        centres = np.array([bar.get_x() + bar.get_width() / 2 for bar in container])
        np.testing.assert_array_equal(heights, p)
        np.testing.assert_allclose(np.round(centres), np.arange(5))  # each bar sits over its class
    # softening: the top class loses probability as T grows
    tops = [p[0] for p in SOFT.values()]
    assert tops == sorted(tops, reverse=True)


def test_temperature_default_class_labels():
    fig, ax = plot_temperature_softening(SOFT)
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES


def test_temperature_class_axis_is_labelled():
    fig, ax = plot_temperature_softening(SOFT)
    assert ax.get_xlabel()


