"""Test configuration: hypothesis runs derandomised (the same examples on every run and machine), and figures
are drawn off screen (Agg) and closed after each test."""

import functools
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot

import matplotlib.pyplot as plt
import pytest
from hypothesis import settings

from tests.test_browser import (
    CHROMIUM_ARGS,
    SITE,
    _QuietHandler,
    _unavailable,
    chromium_executable,
)

settings.register_profile("klbook", derandomize=True, deadline=None, max_examples=80, print_blob=True)
settings.load_profile("klbook")


# The built site, a local server and one Chromium for the whole session, shared by every browser test
# module (tests/test_browser.py, tests/test_explorables.py): Playwright's sync API cannot be started twice
# in one process, so these fixtures must be defined once, here, not in (or imported into) each module.
@pytest.fixture(scope="session")
def site() -> Path:
    """The built HTML book (``_build/html`` or ``$KLBOOK_SITE``)."""
    if not (SITE / "index.html").is_file():
        _unavailable(f"no built site at {SITE}: build it first with `make html` "
                     "(jupyter-book build . -W -n --keep-going)")
    return SITE


@pytest.fixture(scope="session")
def base_url(site: Path) -> Iterator[str]:
    """The site served on 127.0.0.1 at a free port, for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium (or ``$KLBOOK_CHROMIUM``), headless."""
    executable = chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed: `pip install -r requirements.txt`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()



@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test opened; a module-scoped figure stays inspectable (plt.close only detaches it)."""
    yield
    plt.close("all")
