"""Tests of klbook.plotting.divergences: each figure draws the numbers it is given, labelled, on white."""
import numpy as np
import pytest

import klbook
from klbook.plotting.divergences import (
    plot_asymmetry, plot_bernoulli_kl, plot_epsilon_dependence, plot_f_generators, plot_pinsker,
    plot_pointwise_integrand)

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone, labelled_lines, legend_texts


def trapezoid(x, y):
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


# Chapter 1: N(0, 1) against N(1, 1.5^2) on the chapter's grid.
X = np.linspace(-5.0, 6.0, 1101)
P = np.exp(klbook.normal_logpdf(X, 0.0, 1.0))
Q = np.exp(klbook.normal_logpdf(X, 1.0, 1.5))


def bernoulli_table(n=25):
    grid = np.linspace(0.01, 0.99, n)
    coins = np.stack([grid, 1 - grid], axis=-1)
    return grid, klbook.kl_divergence(coins[:, None, :], coins[None, :, :])


@pytest.fixture(scope="module")
def integrand_figure():
    """Built once: plt.close only detaches a figure from pyplot, its artists stay inspectable."""
    return plot_pointwise_integrand(X, P, Q, p_label="p here", q_label="q here", x_label="x here")


@pytest.fixture(scope="module")
def bernoulli_figure():
    grid, table = bernoulli_table()
    return grid, table, plot_bernoulli_kl(grid, table, rows=[2, 12, 22])


# ---------------------------------------------------------------- plot_pointwise_integrand

def test_pointwise_integrand_is_labelled_with_legends(integrand_figure):
    fig, (top, bottom) = integrand_figure
    assert_book_figure(fig)
    assert legend_texts(top) == ["p here", "q here"]
    assert len(legend_texts(bottom)) == 3
    assert bottom.get_xlabel() == "x here"
    assert all(a.get_xscale() == "linear" for a in (top, bottom))


def test_pointwise_densities_are_the_passed_arrays(integrand_figure):
    fig, (top, _) = integrand_figure
    p_line, q_line = top.get_lines()
    np.testing.assert_array_equal(p_line.get_xdata(), X)
    np.testing.assert_array_equal(p_line.get_ydata(), P)
    np.testing.assert_array_equal(q_line.get_ydata(), Q)


def test_integrand_area_equals_the_kl(integrand_figure):
    fig, (_, bottom) = integrand_figure
    line = bottom.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), P * np.log(P / Q), rtol=1e-12)
    area = trapezoid(line.get_xdata(), line.get_ydata())
    assert abs(area - float(klbook.kl_normal(0.0, 1.0, 1.0, 1.5))) < 1e-4


def test_integrand_shading_splits_positive_and_negative_parts(integrand_figure):
    fig, (_, bottom) = integrand_figure
    positive, negative = bottom.collections[:2]
    pos_y = np.concatenate([p.vertices[:, 1] for p in positive.get_paths()])
    neg_y = np.concatenate([p.vertices[:, 1] for p in negative.get_paths()])
    assert pos_y.max() > 0 and pos_y.min() >= -1e-12
    assert neg_y.min() < 0 and neg_y.max() <= 1e-12
    # the negative stretches are where q > p, the positive ones where p > q
    neg = np.concatenate([p.vertices for p in negative.get_paths()])
    pos = np.concatenate([p.vertices for p in positive.get_paths()])
    assert np.all(np.interp(neg[neg[:, 1] < 0, 0], X, Q - P) > -1e-6)
    assert np.all(np.interp(pos[pos[:, 1] > 0, 0], X, P - Q) > -1e-6)


# ---------------------------------------------------------------- plot_bernoulli_kl

def test_bernoulli_panels_are_labelled_with_colorbar_and_legend(bernoulli_figure):
    grid, table, (fig, (left, right)) = bernoulli_figure
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert len(fig.axes) == 3  # two panels and the colorbar
    assert legend_texts(right) == [f"$a = {grid[i]:.2f}$" for i in (2, 12, 22)]


def test_bernoulli_heat_map_is_the_table_with_a_along_y(bernoulli_figure):
    grid, table, (fig, (left, _)) = bernoulli_figure
    mesh = left.collections[0]
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(table.shape), table)
    centres = mesh.get_coordinates()  # corners for "nearest" shading: (n + 1, n + 1, 2)
    assert np.all(np.diff(centres[0, :, 0]) > 0) and np.all(np.diff(centres[:, 0, 1]) > 0)
    assert np.ptp(centres[:, 0, 0]) == 0  # x is constant down a column: columns are b, rows are a


def test_bernoulli_row_curves_are_the_table_rows(bernoulli_figure):
    grid, table, (fig, (_, right)) = bernoulli_figure
    rows = [2, 12, 22]
    for line, i in zip(right.get_lines(), rows):
        np.testing.assert_array_equal(line.get_xdata(), grid)
        np.testing.assert_array_equal(line.get_ydata(), table[i])


def test_bernoulli_accepts_rows_as_a_numpy_array():
    grid, table = bernoulli_table()
    fig, (_, right) = plot_bernoulli_kl(grid, table, rows=np.array([2, 12]))
    assert legend_texts(right) == [f"$a = {grid[i]:.2f}$" for i in (2, 12)]
    for line, i in zip(right.get_lines(), (2, 12)):
        np.testing.assert_array_equal(line.get_ydata(), table[i])


# ---------------------------------------------------------------- plot_asymmetry

S = np.geomspace(0.1, 10.0, 201)
FORWARD = klbook.kl_normal(0.0, 1.0, 0.0, S)
REVERSE = klbook.kl_normal(0.0, S, 0.0, 1.0)


def test_asymmetry_draws_both_directions_labelled_on_a_log_axis():
    fig, ax = plot_asymmetry(S, FORWARD, REVERSE, forward_label="fwd", reverse_label="rev", x_label="scale")
    assert_book_figure(fig)
    assert legend_texts(ax) == ["fwd", "rev"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "scale"
    forward_line, reverse_line = ax.get_lines()
    np.testing.assert_array_equal(forward_line.get_xdata(), S)
    np.testing.assert_array_equal(forward_line.get_ydata(), FORWARD)
    np.testing.assert_array_equal(reverse_line.get_ydata(), REVERSE)


def test_asymmetry_linear_axis_on_request():
    fig, ax = plot_asymmetry(S, FORWARD, REVERSE, forward_label="f", reverse_label="r", x_label="s", log_x=False)
    assert ax.get_xscale() == "linear"


# ---------------------------------------------------------------- plot_f_generators

T = np.linspace(0.02, 4.0, 400)
GENERATORS = {
    "KL": T * np.log(T),
    "reverse KL": -np.log(T),
    "TV": 0.5 * np.abs(T - 1),
    "squared Hellinger": 0.5 * (np.sqrt(T) - 1) ** 2,
    "chi^2": (T - 1) ** 2,
}


@pytest.fixture(scope="module")
def generators_figure():
    return plot_f_generators(T, GENERATORS)


def test_generators_are_drawn_in_order_with_a_legend(generators_figure):
    fig, ax = generators_figure
    assert_book_figure(fig)
    assert legend_texts(ax) == list(GENERATORS)
    lines = labelled_lines(ax)
    assert len(lines) == len(GENERATORS)
    for line, values in zip(lines, GENERATORS.values()):
        np.testing.assert_array_equal(line.get_xdata(), T)
        np.testing.assert_array_equal(line.get_ydata(), values)
    # the first four differ in line style, so they stay distinguishable in grey scale
    assert len({line.get_linestyle() for line in lines[:4]}) == 4


def test_every_generator_vanishes_at_one(generators_figure):
    fig, ax = generators_figure
    for line in ax.get_lines():
        if not line.get_label().startswith("_"):
            assert abs(np.interp(1.0, line.get_xdata(), line.get_ydata())) < 0.02


# ---------------------------------------------------------------- plot_pinsker

def random_pairs(n=200, k=4, seed=0):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(k), size=n), rng.dirichlet(np.ones(k), size=n)
    return klbook.kl_divergence(p, q), 0.5 * np.abs(p - q).sum(axis=-1)


def test_pinsker_scatter_is_the_pairs_and_the_bound_is_sqrt_half_kl():
    kl, tv = random_pairs()
    fig, ax = plot_pinsker(kl, tv, kl_max=3.0)
    assert_book_figure(fig)
    assert len(legend_texts(ax)) == 3
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), np.column_stack([kl, tv]))
    bound = ax.get_lines()[0]
    np.testing.assert_allclose(bound.get_ydata(), np.sqrt(bound.get_xdata() / 2.0), rtol=1e-12)
    assert bound.get_xdata()[-1] == 3.0 and ax.get_xlim() == (0.0, 3.0)
    # Pinsker's inequality: no pair lies above the curve
    assert np.all(tv <= np.sqrt(kl / 2) + 1e-12)


def test_pinsker_axis_defaults_to_the_largest_kl():
    kl, tv = random_pairs()
    fig, ax = plot_pinsker(kl, tv)
    assert ax.get_xlim()[1] == pytest.approx(kl.max())


# ---------------------------------------------------------------- plot_epsilon_dependence

def smoothed_divergences():
    p, q = np.array([0.25, 0.25, 0.5]), np.array([0.5, 0.5, 0.0])
    eps = np.logspace(-1, -16, 16)
    return eps, np.array([float(klbook.kl_divergence(p, (q + e) / (1 + 3 * e))) for e in eps])


def test_epsilon_curve_is_the_values_on_an_inverted_log_axis():
    eps, values = smoothed_divergences()
    fig, ax = plot_epsilon_dependence(eps, values, slope_label="smoothed", note="true value: +inf")
    assert_book_figure(fig)
    assert legend_texts(ax) == ["smoothed"]
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), eps)
    np.testing.assert_array_equal(line.get_ydata(), values)
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert [t.get_text() for t in ax.texts] == ["true value: +inf"]
    # the smoothed "divergence" grows by p(x*) ln 10 = 0.5 ln 10 per decade of epsilon
    np.testing.assert_allclose(np.diff(values)[5:], 0.5 * np.log(10), rtol=1e-5)


def test_epsilon_default_label_and_no_note():
    eps, values = smoothed_divergences()
    fig, ax = plot_epsilon_dependence(eps, values)
    assert legend_texts(ax) == ["smoothed divergence"] and not ax.texts


