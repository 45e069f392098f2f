"""Tests of klbook.plotting.bounds: the evidence bars and the IWAE curve draw the numbers they are given."""

import numpy as np

from klbook.plotting.bounds import plot_evidence_bars, plot_iwae_curve

from .plotting_checks import assert_book_figure, assert_stacks_on_a_phone


def test_evidence_bars_stack_the_gap_on_minus_log_evidence():
    fig, ax = plot_evidence_bars(
        ["prior", "q", "posterior"],
        [-13.0, -7.9, -5.1],
        [7.9, 2.8, 0.0],
        log_evidence=-5.1,
    )
    assert_book_figure(fig)
    bars = ax.patches
    assert len(bars) == 6
    heights = [b.get_height() for b in bars]
    assert np.allclose(heights[:3], 5.1) and np.allclose(heights[3:], [7.9, 2.8, 0.0])
    assert np.allclose([b.get_y() for b in bars[3:]], 5.1)


def test_iwae_curve_draws_each_estimate_with_two_standard_errors():
    ks = [1, 5, 50]
    panels = {"model": {"L_K": ([-7.0, -6.0, -5.5], [0.1, 0.05, 0.02])}}
    fig, axes = plot_iwae_curve(ks, panels, references={"model": {"log p(x)": -5.1}})
    assert_book_figure(fig)
    assert len(axes) == 1 and fig._repr_mimebundle_() == ({}, {})  # one panel: nothing to stack
    line = axes[0].get_lines()[0]
    assert np.allclose(line.get_xdata(), ks) and np.allclose(
        line.get_ydata(), [-7.0, -6.0, -5.5]
    )
    assert any(np.allclose(ln.get_ydata(), -5.1) for ln in axes[0].get_lines()[1:])


def test_iwae_curve_of_two_models_stacks_its_panels_on_a_phone():
    ks = [1, 5, 50]
    panels = {"model A": {"L_K": ([-7.0, -6.0, -5.5], [0.1, 0.05, 0.02])},
              "model B": {"L_K": ([-9.0, -8.0, -7.8], [0.2, 0.1, 0.05])}}
    fig, axes = plot_iwae_curve(ks, panels, references={"model A": {"log p(x)": -5.1}})
    assert_stacks_on_a_phone(fig)  # stacked, each panel has the y label the left one has side by side
    assert [ax.get_title() for ax in axes] == ["model A", "model B"]
