"""Execution time of every chapter notebook, as a learner running it top to bottom would see it.

Run with ``.venv/bin/python benchmarks/notebook_times.py``: executes each notebook in book/ in a fresh
kernel (nbclient, outputs discarded) and prints a Markdown table of wall-clock seconds, kernel start-up
included. The README's table comes from here. Times depend on the machine; the stated budget is
< 30 s per chapter on 2 CPU cores.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

BOOK = Path(__file__).resolve().parents[1] / "book"


def main() -> None:
    print(f"| notebook | seconds ({os.cpu_count()} cores) |\n|---|---|")
    for path in sorted(BOOK.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}}).execute()
        print(f"| `{path.name}` | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
