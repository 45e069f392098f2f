"""Test configuration: hypothesis runs derandomised (the same examples on every run and machine), and figures
are drawn off screen (Agg) and closed after each test."""

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot

import matplotlib.pyplot as plt
import pytest
from hypothesis import settings

settings.register_profile("klbook", derandomize=True, deadline=None, max_examples=80, print_blob=True)
settings.load_profile("klbook")


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test opened; a module-scoped figure stays inspectable (plt.close only detaches it)."""
    yield
    plt.close("all")
