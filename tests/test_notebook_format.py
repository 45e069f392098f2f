"""The chapters' code cells are formatted, and every line a reader sees fits the book's code column.

`ruff format` (pinned in requirements.txt, configured by book/ruff.toml) formats notebooks cell by cell.
It leaves long strings and comments alone, so a second test measures the lines of every code cell the
HTML book shows (cells tagged ``remove-cell`` or ``remove-input`` are not shown).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CONFIG = BOOK / "ruff.toml"
LINE_LENGTH = int(re.search(r"^line-length\s*=\s*(\d+)", CONFIG.read_text(encoding="utf8"), re.M).group(1))
HIDDEN = {"remove-cell", "remove-input"}


def test_every_code_cell_is_formatted_with_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--diff", *map(str, NOTEBOOKS)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (
        "code cells not formatted; run `.venv/bin/ruff format book/` (under the notebooks' locks):\n"
        + result.stdout[-4000:] + result.stderr[-2000:])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_visible_code_lines_fit_the_column(path: Path) -> None:
    long_lines = []
    for index, cell in enumerate(json.loads(path.read_text(encoding="utf8"))["cells"]):
        if cell["cell_type"] != "code" or HIDDEN & set(cell.get("metadata", {}).get("tags", [])):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        long_lines += [f"cell {index}: {line}" for line in source.splitlines() if len(line) > LINE_LENGTH]
    assert not long_lines, (f"{path.name}: {len(long_lines)} lines longer than {LINE_LENGTH} characters "
                            "(wider than the code column at 1280 px):\n  " + "\n  ".join(long_lines))
