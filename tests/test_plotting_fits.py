"""Tests of klbook.plotting.fits: chapter 6's figures draw what klbook.mixtures computes, labelled, on white."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import integrate
from scipy.interpolate import RegularGridInterpolator

from klbook.mixtures import fit_normal_to_mixture, kl_normal_mixture
from klbook.plotting.fits import (
    plot_coordinate_ascent, plot_factorised_fits, plot_iterates, plot_mixture_fits, plot_reverse_landscape,
    plot_separation_scan,
    reverse_kl_grid)

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone, labelled_lines, legend_texts


# Chapter 6's mixture p = 0.35 N(-2.5, 0.5^2) + 0.65 N(2, 1.2^2) and its fits.
W, M, S = [0.35, 0.65], [-2.5, 2.0], [0.5, 1.2]


def normal_pdf(x, mu, sigma):
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def p_pdf(x):
    """The mixture density, independently of klbook."""
    return sum(w * normal_pdf(x, m, s) for w, m, s in zip(W, M, S))


FORWARD = fit_normal_to_mixture(W, M, S, "forward")
MINIMA = sorted({(round(f.mu, 7), round(f.sigma, 7)): f for f in (
    fit_normal_to_mixture(W, M, S, "reverse", init=s) for s in ((-3.5, 0.3), (3.5, 0.4)))}.values(),
    key=lambda f: f.divergence)
FITS = [("forward fit", FORWARD.mu, FORWARD.sigma),
        ("reverse fit, global minimum", MINIMA[0].mu, MINIMA[0].sigma),
        ("reverse fit, local minimum", MINIMA[1].mu, MINIMA[1].sigma)]


# ---------------------------------------------------------------- plot_mixture_fits

@pytest.fixture(scope="module")
def mixture_figure():
    """Built once: plt.close only detaches a figure from pyplot, its artists stay inspectable."""
    return plot_mixture_fits(W, M, S, FITS)


def test_mixture_fits_are_labelled_with_one_legend_entry_per_fit(mixture_figure):
    fig, ax = mixture_figure
    assert_book_figure(fig)
    assert legend_texts(ax) == ["$p$ (the mixture)", *[label for label, _, _ in FITS]]
    assert ax.get_ylim()[0] == 0.0


def test_mixture_density_and_fit_curves_are_the_densities(mixture_figure):
    fig, ax = mixture_figure
    p_line, *fit_lines = ax.get_lines()
    x = p_line.get_xdata()
    assert x[0] == pytest.approx(min(m - 4 * s for m, s in zip(M, S)))
    assert x[-1] == pytest.approx(max(m + 4 * s for m, s in zip(M, S)))
    np.testing.assert_allclose(p_line.get_ydata(), p_pdf(x), rtol=1e-10, atol=1e-300)
    for line, (_, mu, sigma) in zip(fit_lines, FITS):
        np.testing.assert_allclose(line.get_ydata(), normal_pdf(x, mu, sigma), rtol=1e-10, atol=1e-300)
    # the shaded area is p: it integrates to (almost) 1 over the +-4 sd range
    band = ax.collections[0].get_paths()[0].vertices
    top = band[(band[:, 1] > 0)]
    assert integrate.trapezoid(p_line.get_ydata(), x) == pytest.approx(1.0, abs=1e-4)
    assert top[:, 1].max() == pytest.approx(p_line.get_ydata().max())


def test_forward_fit_curve_peaks_at_the_mixture_mean(mixture_figure):
    fig, ax = mixture_figure
    forward_line = ax.get_lines()[1]
    x, q = forward_line.get_xdata(), forward_line.get_ydata()
    mean = sum(w * m for w, m in zip(W, M))
    variance = sum(w * (s**2 + m**2) for w, m, s in zip(W, M, S)) - mean**2
    assert abs(x[np.argmax(q)] - mean) <= x[1] - x[0]  # moment matching: q_F has the mean of p ...
    assert q.max() == pytest.approx(1 / math.sqrt(2 * math.pi * variance), rel=1e-4)  # ... and its variance


def test_mixture_fits_draw_on_the_given_range():
    fig, ax = plot_mixture_fits(W, M, S, FITS[:1], x_range=(-6.0, 6.5), n=101)
    x = ax.get_lines()[0].get_xdata()
    assert (x[0], x[-1], x.size) == (-6.0, 6.5, 101)


def test_mixture_fits_draw_every_fit():
    many = [(f"fit {i}", -3.0 + i, 1.0) for i in range(7)]
    fig, ax = plot_mixture_fits(W, M, S, many, n=51)
    assert legend_texts(ax)[1:] == [label for label, _, _ in many]


# ---------------------------------------------------------------- reverse_kl_grid

GRID = reverse_kl_grid(W, M, S, mu_range=(-5.0, 5.0), sigma_range=(0.2, 6.0), n=15)


def reverse_by_quadrature(mu, sigma):
    """D(N(mu, sigma^2) || p) by scipy quad, independently of klbook.mixtures."""
    def log_normal(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)

    def integrand(x):
        log_q = log_normal(x, mu, sigma)
        terms = [math.log(w) + log_normal(x, m, s) for w, m, s in zip(W, M, S)]
        top = max(terms)
        log_p = top + math.log(sum(math.exp(t - top) for t in terms))
        return math.exp(log_q) * (log_q - log_p)
    lo, hi = mu - 12 * sigma, mu + 12 * sigma
    cuts = sorted({lo, hi, mu, *[c for c in (-2.5, 0.0, 2.0) if lo < c < hi]})
    return sum(integrate.quad(integrand, a, b, epsabs=1e-12, epsrel=1e-12, limit=200)[0]
               for a, b in zip(cuts[:-1], cuts[1:]))


def test_grid_axes_and_values_match_the_reverse_kl():
    mu, sigma, div = GRID
    assert mu.shape == sigma.shape == div.shape == (15, 15)
    np.testing.assert_array_equal(mu[0], np.linspace(-5.0, 5.0, 15))
    np.testing.assert_allclose(sigma[:, 0], np.geomspace(0.2, 6.0, 15), rtol=1e-14)
    assert np.ptp(mu, axis=0).max() == 0 and np.ptp(sigma, axis=1).max() == 0
    assert np.all(div >= 0)
    for i, j in [(0, 0), (7, 3), (10, 12), (14, 14)]:
        assert div[i, j] == pytest.approx(reverse_by_quadrature(mu[i, j], sigma[i, j]), rel=1e-7, abs=1e-8)


def test_grid_minimum_is_near_the_global_reverse_fit():
    mu, sigma, div = GRID
    i, j = np.unravel_index(np.argmin(div), div.shape)
    assert div[i, j] >= MINIMA[0].divergence - 1e-9
    # within two grid steps in mu and in log sigma
    assert abs(mu[i, j] - MINIMA[0].mu) < 2 * 10 / 14
    assert abs(math.log(sigma[i, j] / MINIMA[0].sigma)) < 2 * math.log(30) / 14


# ---------------------------------------------------------------- plot_reverse_landscape

PATHS = [np.array([[-4.0, 0.25], [-3.2, 0.4], [-2.6, 0.5], [-2.48, 0.53]]),
         np.array([[0.5, 5.0], [1.2, 2.5], [1.9, 1.4], [2.0, 1.2]])]
SADDLE = (-1.2, 1.3)


@pytest.fixture(scope="module")
def landscape_figure():
    return plot_reverse_landscape(GRID, minima=[(f.mu, f.sigma, f.divergence) for f in MINIMA],
                                  saddles=[SADDLE], paths=PATHS)


def test_landscape_is_labelled_with_colorbar_and_legend(landscape_figure):
    fig, ax = landscape_figure
    assert_book_figure(fig)
    assert len(fig.axes) == 2
    assert ax.get_yscale() == "log"
    assert legend_texts(ax) == ["gradient-descent paths", "starting points", "local minima", "saddle point"]


def test_landscape_contour_lines_lie_on_their_levels(landscape_figure):
    fig, ax = landscape_figure
    mu, sigma, div = GRID
    lines = [c for c in ax.collections if hasattr(c, "levels") and not c.filled][0]
    assert list(lines.levels) == [lv for lv in (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0,
                                                7.0, 10.0, 15.0, 20.0) if div.min() < lv < div.max()]
    # Contouring interpolates linearly along the grid's edges, in (mu, sigma), so the vertices lie on the
    # level exactly, except the two ends of the gap clabel cuts for each label (placed in screen space).
    surface = RegularGridInterpolator((sigma[:, 0], mu[0]), div)
    for level, segments in zip(lines.levels, lines.allsegs):
        values = surface(np.concatenate(segments)[:, ::-1])
        off = np.abs(values - level) > 1e-9
        labels = [t.get_text() for t in lines.labelTexts].count(f"{level:g}")
        assert off.sum() <= 2 * labels < len(values)
        np.testing.assert_allclose(values, level, rtol=0.05)


def test_landscape_marks_minima_saddles_and_paths(landscape_figure):
    fig, ax = landscape_figure
    by_label = {line.get_label(): line for line in ax.get_lines()}
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert [(s.get_xdata()[0], s.get_ydata()[0]) for s in stars] == [(f.mu, f.sigma) for f in MINIMA]
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("D =")] == [
        f"D = {f.divergence:.3f}" for f in MINIMA]
    saddle = by_label["saddle point"]
    assert (saddle.get_xdata()[0], saddle.get_ydata()[0]) == SADDLE
    path_lines = [line for line in ax.get_lines() if line.get_marker() in ("None", None) and len(line.get_xdata()) > 1]
    for line, path in zip(path_lines, PATHS):
        np.testing.assert_array_equal(np.column_stack([line.get_xdata(), line.get_ydata()]), path)
    starts = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [(s.get_xdata()[0], s.get_ydata()[0]) for s in starts] == [tuple(p[0]) for p in PATHS]


def test_landscape_accepts_explicit_levels():
    fig, ax = plot_reverse_landscape(GRID, levels=[1.0, 2.0])
    lines = [c for c in ax.collections if hasattr(c, "levels") and not c.filled][0]
    assert list(lines.levels) == [1.0, 2.0]


def test_landscape_default_levels_handle_a_flat_landscape():
    near = reverse_kl_grid(W, M, S, mu_range=(-2.7, -2.3), sigma_range=(0.4, 0.7), n=5)
    assert near[2].max() < 1.3  # all values within one rung of the ladder
    zoomed = reverse_kl_grid([1.0], [0.0], [1.0], mu_range=(-0.3, 0.3), sigma_range=(0.8, 1.2), n=5)
    assert zoomed[2].max() < 0.3
    fig, ax = plot_reverse_landscape(zoomed)
    assert ax.get_xlabel()


# ---------------------------------------------------------------- plot_iterates

STEPS = [0, 1, 3]


@pytest.fixture(scope="module")
def iterates_figure():
    return plot_iterates(W, M, S, PATHS, steps=STEPS, x_range=(-6.0, 6.5), n=121,
                         row_labels=[f"start ({p[0, 0]:+.1f}, {p[0, 1]:.2f})" for p in PATHS])


def test_iterates_stack_one_panel_per_run_with_one_curve_per_step(iterates_figure):
    fig, axes = iterates_figure
    assert_book_figure(fig)
    assert axes.shape == (2,)
    assert [ax.get_title(loc="left") for ax in axes] == ["start (-4.0, 0.25)", "start (+0.5, 5.00)"]
    assert axes[-1].get_xlabel() == "$x$"
    for ax in axes:
        assert [t.split(":")[0] for t in legend_texts(ax)[1:]] == ["step 0", "step 1", "step 3"]


def test_each_iterate_curve_is_q_over_p_with_its_reverse_kl(iterates_figure):
    fig, axes = iterates_figure
    for ax, path in zip(axes, PATHS):
        band = ax.collections[0].get_paths()[0].vertices
        lines = ax.get_lines()
        for line, step in zip(lines, STEPS):
            mu, sigma = path[step]
            x = line.get_xdata()
            assert (x[0], x[-1]) == (-6.0, 6.5)
            assert band[:, 1].max() == pytest.approx(p_pdf(x).max(), rel=1e-10)
            np.testing.assert_allclose(line.get_ydata(), normal_pdf(x, mu, sigma), rtol=1e-10, atol=1e-300)
            divergence = float(kl_normal_mixture(mu, sigma, W, M, S, "reverse"))
            assert line.get_label() == f"step {step}: D = {divergence:.3f}"


def test_iterates_divergence_label_agrees_with_quadrature(iterates_figure):
    fig, axes = iterates_figure
    mu, sigma = PATHS[0][3]
    assert axes[0].get_lines()[2].get_label() == f"step 3: D = {reverse_by_quadrature(mu, sigma):.3f}"


def test_iterates_default_panel_title_numbers_the_run():
    fig, axes = plot_iterates(W, M, S, PATHS[:1], steps=[0], n=31)
    assert axes.shape == (1,) and axes[0].get_title(loc="left") == "run 1"


# ---------------------------------------------------------------- plot_separation_scan

def scan_branches():
    """Branches shaped as chapter 6 builds them: a centred minimum, mirrored one-mode minima and saddles."""
    d = np.linspace(0.0, 7.0, 15)
    d_one = np.linspace(4.83, 7.0, 6)
    d_sad = np.linspace(4.83, 7.0, 5)
    branches = [{"label": "centred minimum", "kind": "minimum", "color": "C0", "separation": d,
                 "mu": np.zeros_like(d), "divergence": 0.1 * d}]
    for part, label, kind, color, mu, div in (
            (d_one, "one-mode minima", "minimum", "C1", d_one / 2, math.log(2) + 1 / d_one),
            (d_sad, "saddle points", "saddle", "C4", d_sad / 4, 0.5 + d_sad / 10)):
        branches += [{"label": lab, "kind": kind, "color": color, "separation": part, "mu": sign * mu,
                      "divergence": div} for lab, sign in ((label, 1.0), ("", -1.0))]
    return branches


BRANCHES = scan_branches()
SCAN = dict(fold=4.83, switch=5.6, bimodal=2.0, asymptote=math.log(2))


@pytest.fixture(scope="module")
def scan_figure():
    return plot_separation_scan(BRANCHES, **SCAN)


def test_scan_panels_share_one_legend_with_each_label_once(scan_figure):
    fig, (left, right) = scan_figure
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert legend_texts(left) == [r"component means $\pm d/2$", "centred minimum", "one-mode minima",
                                  "saddle points", r"$\ln 2$", "p bimodal beyond d = 2",
                                  "one-mode minima appear, d = 4.830", "they become global, d = 5.600"]


def test_scan_left_panel_draws_each_branch_mean_and_the_component_means(scan_figure):
    fig, (left, _) = scan_figure
    lines = left.get_lines()
    up, down = lines[:2]
    np.testing.assert_allclose(up.get_ydata(), up.get_xdata() / 2)
    np.testing.assert_allclose(down.get_ydata(), -down.get_xdata() / 2)
    assert up.get_xdata()[-1] == 7.0
    for line, b in zip(lines[2:2 + len(BRANCHES)], BRANCHES):
        np.testing.assert_array_equal(line.get_xdata(), b["separation"])
        np.testing.assert_array_equal(line.get_ydata(), b["mu"])
        assert line.get_linestyle() == ("-" if b["kind"] == "minimum" else "--")
    verticals = sorted(line.get_xdata()[0] for line in lines[2 + len(BRANCHES):])
    assert verticals == [SCAN["fold"], SCAN["switch"]]


def test_scan_right_panel_draws_only_minima_divergences_and_the_markers(scan_figure):
    fig, (_, right) = scan_figure
    minima = [b for b in BRANCHES if b["kind"] == "minimum"]
    lines = right.get_lines()
    for line, b in zip(lines[:len(minima)], minima):
        np.testing.assert_array_equal(line.get_xdata(), b["separation"])
        np.testing.assert_array_equal(line.get_ydata(), b["divergence"])
    by_label = {line.get_label(): line for line in lines}
    assert set(by_label[r"$\ln 2$"].get_ydata()) == {math.log(2)}
    assert set(by_label["p bimodal beyond d = 2"].get_xdata()) == {2.0}
    assert set(by_label["one-mode minima appear, d = 4.830"].get_xdata()) == {4.83}
    assert set(by_label["they become global, d = 5.600"].get_xdata()) == {5.6}
    assert len(lines) == len(minima) + 4


# ---------------------------------------------------------------- plot_factorised_fits

MU_2D = np.array([1.0, -0.5])
COV_2D = np.array([[2.0, 1.2], [1.2, 1.0]])
FACTORISED = [("forward fit", MU_2D, np.diag(COV_2D)), ("reverse fit", MU_2D, 1.0 / np.diag(np.linalg.inv(COV_2D)))]


def ellipse_points(patch, n=64):
    """Points on the ellipse the patch describes (its centre, axes and angle, not the Bezier control points)."""
    t = np.linspace(0.0, 2 * np.pi, n)
    a = np.radians(patch.get_angle())
    local = np.column_stack([patch.get_width() / 2 * np.cos(t), patch.get_height() / 2 * np.sin(t)])
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.asarray(patch.get_center()) + local @ rotation.T


def mahalanobis_squared(points, mean, cov):
    d = points - mean
    return np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)


@pytest.fixture(scope="module")
def factorised_figure():
    return plot_factorised_fits(MU_2D, COV_2D, FACTORISED, radii=(1.0, 2.0))


def test_factorised_fits_are_labelled_with_equal_aspect(factorised_figure):
    fig, ax = factorised_figure
    assert_book_figure(fig)
    assert legend_texts(ax) == [r"$p = \mathcal{N}(\mu, \Sigma)$", "forward fit", "reverse fit"]
    assert ax.get_aspect() == 1.0


def test_each_ellipse_is_the_contour_of_its_gaussian_at_its_radius(factorised_figure):
    fig, ax = factorised_figure
    patches = ax.patches
    assert len(patches) == 2 * (1 + len(FACTORISED))
    covs = [COV_2D] + [np.diag(v) for _, _, v in FACTORISED]
    means = [MU_2D] + [m for _, m, _ in FACTORISED]
    for k, (mean, cov) in enumerate(zip(means, covs)):
        for r, patch in zip((1.0, 2.0), patches[2 * k:2 * k + 2]):
            np.testing.assert_allclose(mahalanobis_squared(ellipse_points(patch), mean, cov), r**2, rtol=1e-9)


def test_factorised_ellipses_fit_inside_the_axes(factorised_figure):
    fig, ax = factorised_figure
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for patch in ax.patches:
        pts = ellipse_points(patch)
        assert x0 <= pts[:, 0].min() and pts[:, 0].max() <= x1
        assert y0 <= pts[:, 1].min() and pts[:, 1].max() <= y1


def test_factorised_fits_draw_every_fit():
    many = [(f"fit {i}", MU_2D, [1.0 + i / 10, 1.0]) for i in range(7)]
    fig, ax = plot_factorised_fits(MU_2D, COV_2D, many)
    assert legend_texts(ax)[1:] == [label for label, _, _ in many]


# ---------------------------------------------------------------- plot_coordinate_ascent

CAVI_VARIANCES = 1.0 / np.diag(np.linalg.inv(COV_2D))
# A zig-zag of means: the start, then one coordinate moved per step.
CAVI_PATH = np.array([[-2.0, 1.5], [0.2, 1.5], [0.2, -0.1], [0.9, -0.1]])


@pytest.fixture(scope="module")
def cavi_figure():
    return plot_coordinate_ascent(MU_2D, COV_2D, CAVI_PATH, CAVI_VARIANCES, ellipse_steps=(0, 2, -1))


def test_coordinate_ascent_is_labelled_with_equal_aspect(cavi_figure):
    fig, ax = cavi_figure
    assert_book_figure(fig)
    assert legend_texts(ax) == [r"$p = \mathcal{N}(\mu, \Sigma)$", "$q$ at the start", "$q$ after 2 updates",
                                "$q$ after 3 updates", "means of $q$, one factor updated per step",
                                r"mean $\mu$ of $p$"]
    assert ax.get_aspect() == 1.0


def test_coordinate_ascent_draws_the_path_and_the_contours_of_p_and_the_iterates(cavi_figure):
    fig, ax = cavi_figure
    path_line = labelled_lines(ax)[0]
    np.testing.assert_array_equal(np.column_stack(path_line.get_data()), CAVI_PATH)
    covs = [COV_2D] + [np.diag(CAVI_VARIANCES)] * 3
    centres = [MU_2D, CAVI_PATH[0], CAVI_PATH[2], CAVI_PATH[3]]
    assert len(ax.patches) == len(centres)
    for patch, centre, cov in zip(ax.patches, centres, covs):
        np.testing.assert_allclose(mahalanobis_squared(ellipse_points(patch), centre, cov), 4.0, rtol=1e-9)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for patch in ax.patches:
        pts = ellipse_points(patch)
        assert x0 <= pts[:, 0].min() and pts[:, 0].max() <= x1
        assert y0 <= pts[:, 1].min() and pts[:, 1].max() <= y1


