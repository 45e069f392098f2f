"""Test configuration: hypothesis runs derandomised (the same examples on every run and machine)."""

from hypothesis import settings

settings.register_profile("klbook", derandomize=True, deadline=None, max_examples=80, print_blob=True)
settings.load_profile("klbook")
