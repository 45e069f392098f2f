"""Tests of klbook.plotting.generative: chapter 8's figures draw the numbers they are given, labelled, on white."""

import numpy as np
import pytest

from klbook.plotting.generative import plot_elbo_terms, plot_policies, plot_samples, plot_sequence_classes

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone, legend_texts


def test_elbo_terms_are_drawn_against_the_step_on_log_axes():
    terms, weights = np.array([1.0, 0.5, 0.1]), np.array([0.8, 0.4, 0.2])
    fig, (left, right) = plot_elbo_terms(terms, weights, prior=0.01)
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    line = left.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [2, 3, 4])
    np.testing.assert_array_equal(line.get_ydata(), terms)
    np.testing.assert_array_equal(right.get_lines()[0].get_ydata(), weights)
    assert left.get_yscale() == right.get_yscale() == "log"
    assert right.get_lines()[1].get_ydata()[0] == pytest.approx(weights.mean())


def test_samples_are_scattered_on_shared_square_axes():
    data, samples = np.zeros((5, 2)), np.ones((7, 2))
    fig, axes = plot_samples(data, samples, limit=2.0)
    assert_book_figure(fig)
    assert_stacks_on_a_phone(fig)
    np.testing.assert_array_equal(axes[0].collections[0].get_offsets(), data)
    np.testing.assert_array_equal(axes[1].collections[0].get_offsets(), samples)
    assert axes[1].get_xlim() == (-2.0, 2.0)


def test_policies_are_bars_with_the_reward_below():
    policies = {"a": [0.5, 0.5], "b": [0.2, 0.8]}
    fig, (top, bottom) = plot_policies(["x", "y"], policies, [0.0, 1.0])
    assert_book_figure(fig)
    assert legend_texts(top) == ["a", "b"]
    heights = [p.get_height() for p in top.patches]
    assert heights == [0.5, 0.5, 0.2, 0.8]
    assert [p.get_height() for p in bottom.patches] == [0.0, 1.0]


def test_sequence_classes_stack_to_one_per_model():
    fig, ax = plot_sequence_classes(["up", "down"], {"m1": [0.25, 0.75], "m2": [1.0, 0.0]})
    assert_book_figure(fig)
    widths = [p.get_width() for p in ax.patches]
    assert widths == [0.25, 1.0, 0.75, 0.0]


