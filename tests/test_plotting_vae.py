"""Tests of klbook.plotting.vae: chapter 5's figures draw the numbers they are given, labelled, on white."""
import numpy as np
import pytest

from klbook.plotting.vae import (
    plot_aggregate_posterior, plot_gradient_spread, plot_image_rows, plot_kl_per_dimension, plot_mc_elbo,
    plot_rate_distortion, plot_training_curves)

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone, legend_texts


def band_at(collection, x):
    """Lowest and highest y of a fill_between band at each x."""
    v = collection.get_paths()[0].vertices
    return (np.array([v[v[:, 0] == xi, 1].min() for xi in x]),
            np.array([v[v[:, 0] == xi, 1].max() for xi in x]))


# ---------------------------------------------------------------- plot_mc_elbo

def mc_curves():
    """Running means and standard errors of two estimators, as chapter 5 computes them (smaller)."""
    rng = np.random.default_rng(0)
    sizes = np.unique(np.round(np.geomspace(10, 10_000, 7)).astype(int))
    terms = {"estimator A (all sampled)": rng.normal(-5.0, 2.0, sizes[-1]),
             "estimator B (KL in closed form)": rng.normal(-5.0, 0.5, sizes[-1])}
    curves = {label: ([v[:n].mean() for n in sizes], [v[:n].std(ddof=1) / np.sqrt(n) for n in sizes])
              for label, v in terms.items()}
    return sizes, curves


SIZES, CURVES = mc_curves()


@pytest.fixture(scope="module")
def mc_elbo_figure():
    """Built once: plt.close only detaches a figure from pyplot, its artists stay inspectable."""
    return plot_mc_elbo(SIZES, CURVES, elbo=-5.0, log_evidence=-4.2)


def test_mc_elbo_is_labelled_with_exact_lines_in_the_legend(mc_elbo_figure):
    fig, ax = mc_elbo_figure
    assert_book_figure(fig)
    assert ax.get_xscale() == "log"
    assert legend_texts(ax) == [*CURVES, "exact ELBO", r"$\log p(x)$"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines["exact ELBO"].get_ydata()) == {-5.0}
    assert set(lines[r"$\log p(x)$"].get_ydata()) == {-4.2}


def test_mc_elbo_curves_are_the_means_with_two_standard_error_bands(mc_elbo_figure):
    fig, ax = mc_elbo_figure
    lines = {line.get_label(): line for line in ax.get_lines()}
    for band, (label, (means, errors)) in zip(ax.collections, CURVES.items()):
        np.testing.assert_array_equal(lines[label].get_xdata(), SIZES)
        np.testing.assert_array_equal(lines[label].get_ydata(), means)
        low, high = band_at(band, SIZES)
        np.testing.assert_allclose(low, np.subtract(means, 2 * np.array(errors)), rtol=1e-12)
        np.testing.assert_allclose(high, np.add(means, 2 * np.array(errors)), rtol=1e-12)


def test_mc_elbo_draws_every_estimator():
    means, errors = CURVES["estimator A (all sampled)"]
    four = {f"estimator {i}": (np.add(means, i), errors) for i in range(4)}
    fig, ax = plot_mc_elbo(SIZES, four, elbo=-5.0, log_evidence=-4.2)
    assert legend_texts(ax)[:4] == list(four)


# ---------------------------------------------------------------- plot_gradient_spread

DIMS = [1, 3, 10, 30, 100]
STD_REPARAM = [1.41, 1.41, 1.42, 1.41, 1.41]            # does not grow with the dimension
STD_SCORE = [2.0, 3.6, 7.0, 12.4, 22.9]                 # grows like sqrt(k)


def test_gradient_spread_lines_match_their_labels_on_log_log_axes():
    fig, ax = plot_gradient_spread(DIMS, STD_REPARAM, STD_SCORE)
    assert_book_figure(fig)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert sorted(legend_texts(ax)) == ["reparameterisation", "score function"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["reparameterisation"].get_xdata(), DIMS)
    np.testing.assert_array_equal(lines["reparameterisation"].get_ydata(), STD_REPARAM)
    np.testing.assert_array_equal(lines["score function"].get_ydata(), STD_SCORE)


# ---------------------------------------------------------------- plot_training_curves

def history(epochs=6):
    """A train_vae history: one dict per epoch with train_/test_ reconstruction, kl and elbo."""
    out = []
    for e in range(1, epochs + 1):
        rec_tr, rec_te, kl_tr, kl_te = 40.0 / e + 20, 42.0 / e + 21, 3.0 + e / 2, 3.1 + e / 2
        out.append({"epoch": e, "beta": 1.0, "train_reconstruction": rec_tr, "train_kl": kl_tr,
                    "train_elbo": -(rec_tr + kl_tr), "test_reconstruction": rec_te, "test_kl": kl_te,
                    "test_elbo": -(rec_te + kl_te)})
    return out


def test_training_curves_draw_each_term_per_split_by_epoch():
    h = history()
    fig, axes = plot_training_curves(h)
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert len(axes) == 2
    assert "reconstruction" in axes[0].get_title() and "KL" in axes[1].get_title()
    for ax, term in zip(axes, ("reconstruction", "kl")):
        assert legend_texts(ax) == ["train", "test"]
        for line, split in zip(ax.get_lines(), ("train", "test")):
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(h) + 1))
            np.testing.assert_array_equal(line.get_ydata(), [r[f"{split}_{term}"] for r in h])


# ---------------------------------------------------------------- plot_image_rows

ROWS = {"VAE": np.linspace(0, 1, 9 * 64).reshape(9, 64),
        "AE": np.linspace(1, 0, 9 * 64).reshape(9, 64)}


def test_image_rows_mosaic_places_each_image_in_its_row_and_column():
    fig, ax = plot_image_rows(ROWS)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    # an image mosaic has no x/y quantities: the rows are labelled by their tick labels instead
    assert [t.get_text() for t in ax.get_yticklabels()] == list(ROWS)
    mosaic = np.ma.filled(ax.get_images()[0].get_array(), np.nan)
    assert mosaic.shape == (2 * 9 - 1, 9 * 9 - 1)
    for r, images in enumerate(ROWS.values()):
        for c in range(9):
            np.testing.assert_array_equal(mosaic[9 * r:9 * r + 8, 9 * c:9 * c + 8], images[c].reshape(8, 8))
    assert np.isnan(mosaic[8]).all() and np.isnan(mosaic[:, 8]).all()  # one-pixel white gaps


def test_image_rows_use_the_image_shape():
    fig, ax = plot_image_rows({"a": np.zeros((3, 12))}, image_shape=(3, 4))
    assert ax.get_images()[0].get_array().shape == (3, 3 * 5 - 1)


# ---------------------------------------------------------------- plot_kl_per_dimension

PROFILES = {"β = 1": [2.1, 1.7, 1.2, 0.002, 0.001, 0.0005, 0.0003, 0.0001],
            "β = 4": [0.004, 0.003, 0.002, 0.001, 0.001, 0.0005, 0.0003, 0.0001],
            "β = 4, free bits": [1.5, 1.1, 0.9, 0.6, 0.3, 0.26, 0.25, 0.25]}


def test_kl_per_dimension_bars_are_the_profiles_with_the_threshold():
    fig, ax = plot_kl_per_dimension(PROFILES, threshold=0.01, xlabel="sorted dimensions")
    assert_book_figure(fig)
    assert ax.get_xlabel() == "sorted dimensions" and ax.get_yscale() == "symlog"
    assert legend_texts(ax) == ["0.01 nats", *PROFILES]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(j) for j in range(1, 9)]
    for container, values in zip(ax.containers, PROFILES.values()):
        np.testing.assert_array_equal([bar.get_height() for bar in container], values)
        centres = np.array([bar.get_x() + bar.get_width() / 2 for bar in container])
        np.testing.assert_allclose(np.round(centres), np.arange(8))
    (threshold,) = ax.get_lines()
    assert set(threshold.get_ydata()) == {0.01}
    assert ax.get_ylim()[1] >= 2.1  # the tallest bar is inside the axes


# ---------------------------------------------------------------- plot_rate_distortion

RATES, DISTORTIONS, BETAS = [24.0, 15.0, 9.5, 4.1, 0.003], [18.0, 25.0, 31.0, 40.0, 52.0], [0.25, 0.5, 1.0, 2.0, 4.0]


def test_rate_distortion_points_annotations_and_constant_elbo_lines():
    fig, ax = plot_rate_distortion(RATES, DISTORTIONS, BETAS)
    assert_book_figure(fig)
    assert legend_texts(ax) == [r"$\beta$-VAE runs (test set)", "constant ELBO"]
    points = ax.get_lines()[0]
    np.testing.assert_array_equal(points.get_xdata(), RATES)
    np.testing.assert_array_equal(points.get_ydata(), DISTORTIONS)
    assert [t.get_text() for t in ax.texts] == [f"β={b:g}" for b in BETAS]
    assert [t.xy for t in ax.texts] == list(zip(RATES, DISTORTIONS))
    total = np.add(RATES, DISTORTIONS)
    for line, level in zip(ax.get_lines()[1:3], (total.min(), np.median(total))):
        np.testing.assert_allclose(line.get_xdata() + line.get_ydata(), level)  # slope -1: D + R constant


# ---------------------------------------------------------------- plot_aggregate_posterior

CODES = np.random.default_rng(5).normal(0.0, 1.2, size=(300, 2))
DIGITS = np.arange(300) % 10


def test_aggregate_posterior_scatter_is_the_codes_over_prior_circles():
    fig, ax = plot_aggregate_posterior(CODES, limit=4.0)
    assert_book_figure(fig)
    assert len(legend_texts(ax)) == 2
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), CODES)
    circles = [line for line in ax.get_lines() if len(line.get_xdata())]
    radii = [np.hypot(line.get_xdata(), line.get_ydata()) for line in circles]
    assert [round(float(r.mean()), 12) for r in radii] == [1.0, 2.0, 3.0]
    assert all(np.ptp(r) < 1e-12 for r in radii)
    assert ax.get_xlim() == ax.get_ylim() == (-4.0, 4.0)


def test_aggregate_posterior_colours_by_digit_with_a_labelled_colorbar():
    fig, ax = plot_aggregate_posterior(CODES, DIGITS)
    assert_book_figure(fig)
    assert len(fig.axes) == 2
    assert [a.get_ylabel() for a in fig.axes if hasattr(a, "_colorbar")] == ["digit class"]
    np.testing.assert_array_equal(ax.collections[0].get_array(), DIGITS)


