"""Shared pytest configuration (unit tests and ``pytest --nbval`` over book/)."""

from __future__ import annotations

import types

from tests.nbval_tolerance import cell_tolerance, snap_to_reference

# nbval ignores image/png, but a figure stored with myst-nb's glue() is saved under this key as well,
# and its bytes change with matplotlib's build and fonts: compare the text of outputs, not pixels.
NBVAL_SKIP_KEYS = (
    "application/papermill.record/image/png",
    "application/papermill.record/image/svg+xml",
    "image/svg+xml",
)


def _tolerant_compare(item, test, ref, skip_compare=None):
    # Numbers within the cell's declared tolerance are taken as equal; nbval then compares exactly.
    snap_to_reference(test, ref, cell_tolerance(item.cell.metadata))
    return type(item).compare_outputs(item, test, ref, skip_compare)


def pytest_collection_modifyitems(session, config, items):
    try:
        from nbval.plugin import IPyNbCell, IPyNbFile
    except ImportError:  # nbval not installed: nothing to configure
        return
    for item in items:
        parent = item.parent
        if isinstance(parent, IPyNbFile) and not getattr(parent, "_klbook_skips", False):
            parent.skip_compare = tuple(parent.skip_compare) + NBVAL_SKIP_KEYS
            parent._klbook_skips = True
        if isinstance(item, IPyNbCell) and cell_tolerance(item.cell.metadata):
            item.compare_outputs = types.MethodType(_tolerant_compare, item)
