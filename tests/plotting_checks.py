"""Assertions shared by the tests of klbook.plotting (tests/conftest.py selects Agg and closes the figures)."""
from matplotlib.figure import Figure


def assert_book_figure(fig):
    """A white Figure whose axes are all labelled: a colorbar by its label, axes sharing x or y by one of the
    group (panels sharing x carry the label once, on the bottom panel)."""
    assert isinstance(fig, Figure)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            assert ax.get_ylabel() or ax.get_xlabel(), "unlabelled colorbar"
            continue
        assert any(a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)), f"no x label on {ax}"
        assert any(a.get_ylabel() for a in ax.get_shared_y_axes().get_siblings(ax)), f"no y label on {ax}"


def legend_texts(ax):
    """The texts of the legend of ``ax``, in order."""
    return [t.get_text() for t in ax.get_legend().get_texts()]


def labelled_lines(ax):
    """The lines of ``ax`` that have a legend label (matplotlib marks the others with a leading underscore)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]
