"""Tests of klbook.plotting.diagrams: the reparameterisation graph marks z random before and deterministic after."""

from matplotlib.patches import Circle

from klbook.plotting.diagrams import plot_reparameterisation_graph

from .plotting_checks import assert_legible, assert_stacks_on_a_phone


def _random_nodes(ax):
    labels = {(t.get_position()): t.get_text() for t in ax.texts}
    return sorted(
        labels.get(tuple(p.center), "?") for p in ax.patches if isinstance(p, Circle)
    )


def test_z_is_random_before_and_epsilon_after():
    fig, (before, after) = plot_reparameterisation_graph()
    assert_legible(fig)
    assert_stacks_on_a_phone(fig, labelled=False)
    assert _random_nodes(before) == ["$z$"]
    assert _random_nodes(after) == [r"$\varepsilon$"]
    assert (
        before.get_title() == "original form"
        and after.get_title() == "reparameterised form"
    )
