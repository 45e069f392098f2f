"""Tests of klbook.plotting.channels: the data-processing figure draws P, Q, the channel, PW, QW and
the two divergences."""

import numpy as np

from klbook.plotting.channels import channel_diagram

from .plotting_checks import assert_book_figure, legend_texts

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.2, 0.3, 0.5])
W = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])


def test_channel_diagram_draws_inputs_channel_outputs_and_divergences():
    fig, axes = channel_diagram(P, Q, W, divergence_in=0.5, divergence_out=0.25)
    assert_book_figure(fig)
    left, middle, right, divergences = axes
    assert [b.get_height() for b in left.containers[0]] == list(P)
    assert [b.get_height() for b in left.containers[1]] == list(Q)
    np.testing.assert_allclose([b.get_height() for b in right.containers[0]], P @ W)
    np.testing.assert_allclose([b.get_height() for b in right.containers[1]], Q @ W)
    np.testing.assert_array_equal(middle.get_images()[0].get_array(), W)
    assert legend_texts(left) == ["$P$", "$Q$"] and legend_texts(right) == ["$PW$", "$QW$"]
    assert [b.get_height() for b in divergences.containers[0]] == [0.5, 0.25]
    assert [t.get_text() for t in divergences.texts] == ["0.500", "0.250"]
