"""Tests of klbook.plotting.regularised: chapter 4's figures of the sparse and contractive autoencoders draw
the data they are given, labelled, on white."""

import numpy as np

from klbook.plotting.regularised import activation_histograms, jacobian_norm_histograms

from .plotting_checks import assert_book_figure, legend_texts


def test_activation_histograms_count_every_unit_and_mark_rho():
    groups = {"plain": np.linspace(0.4, 0.6, 25), "sparse": np.full(25, 0.05)}
    fig, ax = activation_histograms(groups, 0.05)
    assert_book_figure(fig)
    heights = [sum(p.get_height() for p in container) for container in ax.containers]
    assert heights == [25, 25]
    assert ax.get_lines()[0].get_xdata()[0] == 0.05
    assert legend_texts(ax) == ["plain", "sparse", r"target $\rho = 0.05$"]


def test_jacobian_norm_histograms_use_a_log_axis_and_count_every_input():
    norms = {"plain": np.geomspace(1, 10, 30), "contractive": np.geomspace(0.1, 1, 30)}
    fig, ax = jacobian_norm_histograms(norms)
    assert_book_figure(fig)
    assert ax.get_xscale() == "log"
    assert [sum(p.get_height() for p in c) for c in ax.containers] == [30, 30]
    assert legend_texts(ax) == ["plain", "contractive"]
