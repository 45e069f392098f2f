"""Shared pytest configuration (unit tests and ``pytest --nbval`` over book/)."""

from __future__ import annotations

# nbval ignores image/png, but a figure stored with myst-nb's glue() is saved under this key as well,
# and its bytes change with matplotlib's build and fonts: compare the text of outputs, not pixels.
NBVAL_SKIP_KEYS = (
    "application/papermill.record/image/png",
    "application/papermill.record/image/svg+xml",
    "image/svg+xml",
)


def pytest_collection_modifyitems(session, config, items):
    try:
        from nbval.plugin import IPyNbFile
    except ImportError:  # nbval not installed: nothing to configure
        return
    for item in items:
        parent = item.parent
        if isinstance(parent, IPyNbFile) and not getattr(parent, "_klbook_skips", False):
            parent.skip_compare = tuple(parent.skip_compare) + NBVAL_SKIP_KEYS
            parent._klbook_skips = True
