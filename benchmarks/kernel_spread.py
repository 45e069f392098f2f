"""How far each chapter's printed results move when the CPU's numerical kernels change.

Executes every chapter (or those given) once per kernel configuration, each in a fresh kernel whose
environment selects other BLAS and ATen kernels (the same thing a different CPU does), and compares every
code cell's text outputs (glue records included) with the outputs stored in the notebook: which cells
differ, in numbers only or also in text, and by how much. This is the measurement behind the tolerances
that cells declare in their metadata (``klbook.tolerance``; see ``tests/nbval_tolerance.py``).

Usage::

    .venv/bin/python benchmarks/kernel_spread.py                     # every chapter, every configuration
    .venv/bin/python benchmarks/kernel_spread.py book/04_autoencoders.ipynb --config haswell

Executed copies are written to ``--out`` (default ``_build/kernel-spread``), one folder per configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.nbval_tolerance import CONFIGURATIONS, numeric_difference, text_outputs


def execute(path: Path, environment: dict[str, str]) -> nbformat.NotebookNode:
    """Run ``path`` top to bottom in a fresh kernel started with ``environment`` added."""
    notebook = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(environment)
    try:  # the kernel inherits this process's environment when it starts
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook


def compare(stored: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> list[tuple[int, str, float, float]]:
    """(code cell index, kind, max absolute, max relative difference) for every cell that differs."""
    rows = []
    code = [c for c in stored.cells if c.cell_type == "code"]
    fresh = [c for c in executed.cells if c.cell_type == "code"]
    for index, (old, new) in enumerate(zip(code, fresh)):
        old_texts, new_texts = text_outputs(old.outputs), text_outputs(new.outputs)
        if old_texts == new_texts:
            continue
        if len(old_texts) != len(new_texts):
            rows.append((index, "structure", float("inf"), float("inf")))
            continue
        worst_abs = worst_rel = 0.0
        kind = "numbers"
        for a, b in zip(old_texts, new_texts):
            difference = numeric_difference(a, b)
            if difference is None:
                kind = "text"
                continue
            worst_abs, worst_rel = max(worst_abs, difference[0]), max(worst_rel, difference[1])
        rows.append((index, kind, worst_abs, worst_rel))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--config", action="append", choices=sorted(CONFIGURATIONS))
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "kernel-spread")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "book").glob("[0-9]*.ipynb"))
    for name in args.config or list(CONFIGURATIONS):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in notebooks:
            path = path.resolve()
            executed = execute(path, CONFIGURATIONS[name])
            nbformat.write(executed, folder / path.name)
            for index, kind, absolute, relative in compare(nbformat.read(path, as_version=4), executed):
                print(f"{name:12s} {path.name:28s} cell {index:3d}  {kind:9s}  abs {absolute:.3g}  rel {relative:.3g}", flush=True)
        print(f"{name}: done", flush=True)


if __name__ == "__main__":
    main()
