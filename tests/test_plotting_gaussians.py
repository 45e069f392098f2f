"""Tests of klbook.plotting.gaussians: the figures draw what the closed forms say, labelled."""
import numpy as np

from klbook import kl_normal
from klbook.plotting.gaussians import (
    plot_gaussian_kl_asymmetry, plot_kl_integrand, plot_vae_kl_map, plot_vae_kl_terms, vae_kl_grid)

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone, legend_texts


def test_grid_matches_closed_form_and_minimum():
    mu, sigma, kl = vae_kl_grid((-2, 2), (0.1, 3), 41)
    assert mu.shape == sigma.shape == kl.shape == (41, 41)
    expected = 0.5 * (mu**2 + sigma**2 - 1 - np.log(sigma**2))
    np.testing.assert_allclose(kl, expected, rtol=1e-12, atol=1e-15)
    assert np.all(kl >= 0)
    np.testing.assert_allclose(kl, kl_normal(mu, sigma, 0.0, 1.0), rtol=1e-12, atol=1e-15)


def test_plots_build_and_label():
    for fig, ax in [plot_kl_integrand(0, 1, 1, 2), plot_vae_kl_map(n=31), plot_gaussian_kl_asymmetry(n=21)]:
        assert_book_figure(fig)
    fig, axes = plot_vae_kl_terms(n=21)
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    assert len(axes) == 2
    assert len(legend_texts(axes[1])) == 3


def test_integrand_area_is_the_kl():
    fig, ax = plot_kl_integrand(0.0, 1.0, 1.0, 2.0, n=4001)
    line = ax.get_lines()[2]
    x, y = line.get_xdata(), line.get_ydata()
    area = np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x))
    assert abs(area - float(kl_normal(0.0, 1.0, 1.0, 2.0))) < 1e-4


