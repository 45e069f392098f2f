"""Tests of klbook.plotting.latent: chapter 4's figures draw the data they are given, labelled, on white."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from klbook.plotting.latent import error_histograms, latent_scatter, path_profile, show_images

from .plotting_checks import assert_book_figure, legend_texts


IMAGES = np.random.default_rng(0).random((20, 64))  # digits-like: 8 x 8 grey levels in [0, 1]


# ---------------------------------------------------------------- show_images

def test_show_images_lays_out_rows_of_ncols_in_order():
    fig, _ = show_images(IMAGES, ncols=10, size=0.55)
    assert isinstance(fig, Figure) and fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert len(fig.axes) == 20
    for i, ax in enumerate(fig.axes):  # axes are in row-major order
        (image,) = ax.get_images()
        np.testing.assert_array_equal(image.get_array(), IMAGES[i].reshape(8, 8))
        assert image.get_clim() == (0.0, 1.0) and image.get_cmap().name == "gray_r"
    assert fig.axes[10].get_subplotspec().rowspan.start == 1  # image 10 starts the second row


def test_show_images_labels_rows_and_columns():
    grid = IMAGES[:6].reshape(2, 3, 64)
    fig, _ = show_images(grid, row_labels=["clean", "noisy"], col_labels=["t=0", "t=0.5", "t=1"], title="T")
    axes = np.array(fig.axes).reshape(2, 3)
    # an image grid has no x/y quantities: rows and columns are named by the given labels instead
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["clean", "noisy"]
    assert [ax.get_title() for ax in axes[0]] == ["t=0", "t=0.5", "t=1"]
    assert fig._suptitle.get_text() == "T"
    np.testing.assert_array_equal(axes[1, 2].get_images()[0].get_array(), grid[1, 2].reshape(8, 8))


def test_show_images_signed_uses_a_symmetric_diverging_scale_per_image():
    directions = np.stack([np.linspace(-0.3, 0.1, 64), np.linspace(-0.05, 0.2, 64)])
    fig, _ = show_images(directions, signed=True)
    for ax, d in zip(fig.axes, directions):
        image = ax.get_images()[0]
        limit = np.abs(d).max()
        assert image.get_clim() == (-limit, limit) and image.get_cmap().name == "RdBu_r"


def test_show_images_signed_all_zero_image_keeps_a_valid_scale():
    fig, _ = show_images(np.zeros((1, 64)), signed=True)
    assert fig.axes[0].get_images()[0].get_clim() == (-1.0, 1.0)


# ---------------------------------------------------------------- latent_scatter

RNG = np.random.default_rng(1)
CODES = RNG.normal(size=(200, 2)) * [3.0, 1.5]
DIGITS = np.arange(200) % 10
PRIOR = RNG.standard_normal((50, 2))
BOX = RNG.uniform(CODES.min(axis=0), CODES.max(axis=0), size=(20, 2))
PATH = np.linspace(CODES[0], CODES[1], 11)


@pytest.fixture(scope="module")
def scatter_figure():
    """Built once: plt.close only detaches a figure from pyplot, its artists stay inspectable."""
    return latent_scatter(CODES, DIGITS, extra={"draws from N(0, I)": PRIOR, "uniform draws": BOX},
                          paths={"interpolation": PATH}, title="codes")


def test_latent_scatter_is_labelled_with_one_legend_entry_per_class_and_overlay(scatter_figure):
    fig, _ = scatter_figure
    assert_book_figure(fig)
    (ax,) = fig.axes
    assert legend_texts(ax) == [str(d) for d in range(10)] + ["draws from N(0, I)", "uniform draws", "interpolation"]
    assert ax.get_title() == "codes"


def test_latent_scatter_points_are_the_codes_of_each_class_in_its_colour(scatter_figure):
    fig, ax = scatter_figure
    cmap = plt.get_cmap("tab10")
    for d, collection in zip(range(10), ax.collections):
        np.testing.assert_array_equal(collection.get_offsets(), CODES[DIGITS == d])
        np.testing.assert_allclose(collection.get_facecolor()[0][:3], cmap(d)[:3])
    np.testing.assert_array_equal(ax.collections[10].get_offsets(), PRIOR)
    np.testing.assert_array_equal(ax.collections[11].get_offsets(), BOX)
    (path,) = ax.get_lines()
    np.testing.assert_array_equal(np.column_stack([path.get_xdata(), path.get_ydata()]), PATH)


def test_latent_scatter_keeps_distances_isotropic(scatter_figure):
    assert scatter_figure[1].get_aspect() == 1.0


# ---------------------------------------------------------------- path_profile

T_FINE = np.linspace(0.0, 1.0, 101)
DISTANCE = 0.2 + 1.5 * np.sin(np.pi * T_FINE) ** 2


def test_path_profile_draws_the_curves_and_the_reference_line():
    fig, _ = path_profile(T_FINE, {"distance to nearest code": DISTANCE}, reference=("99% closer", 0.9),
                       ylabel="distance in the latent plane")
    assert_book_figure(fig)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "distance in the latent plane"
    assert legend_texts(ax) == ["distance to nearest code", "99% closer"]
    curve, reference = ax.get_lines()
    np.testing.assert_array_equal(curve.get_xdata(), T_FINE)
    np.testing.assert_array_equal(curve.get_ydata(), DISTANCE)
    assert set(reference.get_ydata()) == {0.9}
    assert ax.get_ylim() == pytest.approx((0.0, 1.3 * DISTANCE.max()))
    assert curve.get_marker() in ("None", None, "")  # > 60 points: no markers


def test_path_profile_marks_points_of_a_short_path():
    fig, _ = path_profile(T_FINE[::10], {"a": DISTANCE[::10], "b": DISTANCE[::10] / 2})
    ax = fig.axes[0]
    assert legend_texts(ax) == ["a", "b"]
    assert all(line.get_marker() == "o" for line in ax.get_lines())


# ---------------------------------------------------------------- error_histograms

SCORES = np.random.default_rng(2).lognormal(-3.5, 0.4, 400)
NINES = np.random.default_rng(3).lognormal(-2.6, 0.4, 40)
GROUPS = {"test digits 0-8": SCORES, "test nines (never trained on)": NINES}


def bar_heights(container):
    return np.array([bar.get_height() for bar in container])


@pytest.mark.parametrize("log_x", [False, True])
def test_each_histogram_sums_to_one_over_shared_bins(log_x):
    fig, _ = error_histograms(GROUPS, bins=30, log_x=log_x)
    assert_book_figure(fig)
    (ax,) = fig.axes
    assert ax.get_xscale() == ("log" if log_x else "linear")
    assert legend_texts(ax) == ["test digits 0-8 (n=400)", "test nines (never trained on) (n=40)"]
    edges = None
    for container, values in zip(ax.containers, GROUPS.values()):
        heights = bar_heights(container)
        assert len(heights) == 30 and heights.sum() == pytest.approx(1.0)
        left = np.array([bar.get_x() for bar in container])
        edges = left if edges is None else edges
        np.testing.assert_allclose(left, edges)  # both groups share one set of bins
        expected, _ = np.histogram(values, bins=np.append(left, left[-1] + container[-1].get_width()))
        np.testing.assert_allclose(heights, expected / len(values), atol=1e-15)


def test_log_histogram_keeps_every_error():
    fig, _ = error_histograms({"a": np.array([0.0, 0.01, 0.1, 1.0])}, bins=4, log_x=True)
    assert bar_heights(fig.axes[0].containers[0]).sum() == pytest.approx(1.0)


