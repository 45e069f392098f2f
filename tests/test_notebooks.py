"""Notebook hygiene: nbval passes vacuously on a notebook whose cells were never executed and ignores
images, so every committed chapter is checked here for being stored fully executed, in order, cleanly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
MACHINE_PATH = re.compile(r"""(^|[\s'"(])/(home|root|tmp|usr|work|opt|var|private|Users)/[\w.-]+/""")
MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]{6,}")
# A cell makes a figure when it assigns one (chapters write ``fig, ax = plot_...(...)``: nbval ignores a
# trailing ``;``, so the figure is assigned to keep its repr out of the outputs) or calls a plotting helper.
MAKES_FIGURE = re.compile(r"^\s*(fig\b[^=\n]*=|.*\bplot_\w+\s*\()", re.M)
TIMING = re.compile(r"\b\d+(\.\d+)?\s*(ms|µs|us|s|sec|seconds)\b.*\b(elapsed|took|per loop|wall)", re.I)


def _code_cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part.get("chapters", [])]
    return files


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_fully_executed_in_order(path):
    counts = [c.get("execution_count") for c in _code_cells(path)]
    assert counts, f"{path.name} has no code cells"
    assert None not in counts, f"{path.name}: {counts.count(None)} code cell(s) never executed"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not run top to bottom once: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_clean(path):
    for index, cell in enumerate(_code_cells(path)):
        for output in cell.get("outputs", []):
            where = f"{path.name}, code cell {index}"
            assert output["output_type"] != "error", f"{where}: error output"
            assert not (output["output_type"] == "stream" and output.get("name") == "stderr"), (
                f"{where}: stderr output {''.join(output.get('text', ''))[:80]!r}"
            )
            text = json.dumps(output)
            assert not MACHINE_PATH.search(text), f"{where}: a machine path in the output"
            assert not MEMORY_ADDRESS.search(text), f"{where}: a memory address in the output"
            assert not TIMING.search(text), f"{where}: a timing in the output"
            assert "np.float64(" not in text, f"{where}: a numpy scalar repr; print with a format string"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_that_make_figures_store_them(path):
    # nbval ignores images, so a figure lost at execution time (seen once under heavy load) would
    # otherwise go unnoticed until the book is built.
    for index, cell in enumerate(_code_cells(path)):
        if MAKES_FIGURE.search("".join(cell["source"])):
            images = [k for o in cell.get("outputs", []) for k in o.get("data", {}) if "image/" in k]
            assert images, f"{path.name}, code cell {index}: makes a figure but stores no image"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_klbook(path):
    source = "\n".join("".join(c["source"]) for c in _code_cells(path))
    assert re.search(r"^\s*(from klbook|import klbook)", source, re.M), f"{path.name} does not import klbook"


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    listed = set(_toc_files())
    for path in NOTEBOOKS:
        assert path.relative_to(ROOT).with_suffix("").as_posix() in listed, f"{path.name} is not in _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), f"{entry} is missing"


def _all_code_cells() -> list[tuple[str, int, dict]]:
    return [(path.name, index, cell) for path in NOTEBOOKS for index, cell in enumerate(_code_cells(path))]


@pytest.mark.parametrize("where, cell", [((n, i), c) for n, i, c in _all_code_cells() if c["metadata"].get("klbook", {}).get("tolerance")])
def test_declared_tolerances_are_justified_by_a_measured_spread(where, cell):
    # tests/nbval_tolerance.py: a tolerance says why, and is at most three times the spread measured across
    # the kernel configurations (benchmarks/kernel_spread.py), so it cannot hide a changed result.
    declared = cell["metadata"]["klbook"]
    tolerance, spread = declared["tolerance"], declared.get("spread", {})
    assert set(tolerance) <= {"abs", "rel"} and any(tolerance.values()), f"{where}: tolerance keys: abs, rel"
    assert len(declared.get("reason", "")) > 20, f"{where}: a tolerance needs its reason"
    for key, value in tolerance.items():
        if value == 0:  # that term of the tolerance is unused
            continue
        assert key in spread, f"{where}: no measured {key} spread for the {key} tolerance"
        assert 0 < value <= 3 * spread[key], f"{where}: {key} tolerance {value} > 3 x measured spread {spread[key]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_escapes_output_comparison(path):
    # A result that depends on the CPU's kernels declares a tolerance instead (README: stored outputs).
    for index, cell in enumerate(_code_cells(path)):
        tags = set(cell["metadata"].get("tags", []))
        assert not tags & {"nbval-ignore-output", "nbval-skip"}, f"{path.name}, code cell {index}: {tags}"
        assert "NBVAL_IGNORE_OUTPUT" not in "".join(cell["source"]), f"{path.name}, code cell {index}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_records_the_kernels_that_wrote_its_outputs(path):
    # `make refresh` stamps this; a maintainer whose nbval run differs can see where the outputs came from.
    notebook = json.loads(path.read_text(encoding="utf-8"))
    written_with = notebook["metadata"].get("klbook", {}).get("outputs_written_with", {})
    assert {"machine", "numpy_blas", "torch_cpu_capability", "threads"} <= set(written_with), (
        f"{path.name}: refresh it with `make refresh NB=book/{path.name}`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_that_glue_show_no_stray_value(path):
    # A cell whose last line returns the glued number would show it under the cell, on the page and in
    # the notebook (klbook.book.glue returns None for that reason).
    for index, cell in enumerate(_code_cells(path)):
        if "glue(" not in "".join(cell["source"]):
            continue
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/plain", "")) if output["output_type"] == "execute_result" else ""
            assert not re.fullmatch(r"-?[\d.e+-]+", text.strip()), f"{path.name}, code cell {index}: shows {text!r}"
