"""Tests of klbook.plotting.manifold: grids and traversals show the images they are given, in place."""

import numpy as np

from klbook.plotting.manifold import image_mosaic, plot_manifold_grids, plot_traversals

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone


def test_mosaic_puts_image_i_j_in_row_i_column_j():
    images = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    mosaic = image_mosaic(images, (2, 2))
    assert mosaic.shape == (5, 8)
    assert np.array_equal(mosaic[3:5, 3:5], images[1, 1].reshape(2, 2))
    assert np.isnan(mosaic[2]).all()


def test_manifold_grids_one_panel_per_model():
    grids = {
        "VAE": np.random.default_rng(0).random((5, 5, 64)),
        "AE": np.zeros((5, 5, 64)),
    }
    fig, axes = plot_manifold_grids(grids)
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert [ax.get_title() for ax in axes] == ["VAE", "AE"]
    assert np.allclose(
        axes[0].get_images()[0].get_array()[:8, :8], grids["VAE"][0, 0].reshape(8, 8)
    )


def test_traversals_label_rows_and_values():
    rows = {"z_1": np.ones((5, 64)), "z_2": np.zeros((5, 64))}
    fig, ax = plot_traversals(rows, [-2, -1, 0, 1, 2])
    assert_book_figure(fig)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["z_1", "z_2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2", "-1", "0", "1", "2"]
