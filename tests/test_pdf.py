"""The whole-book PDF (``make pdf``: Jupyter Book's LaTeX builder through XeLaTeX), checked the way a reader
on paper would notice its faults: references printed as "??", lines running into the margin, fonts missing
on another machine, chapters left out.

Reads ``_build/latex`` (or ``$KLBOOK_LATEX``), so it runs after the PDF build (marker ``pdf``). Without a
built PDF it is skipped locally and fails in CI. Needs poppler's ``pdftotext`` and ``pdffonts``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LATEX = Path(os.environ.get("KLBOOK_LATEX", ROOT / "_build" / "latex")).resolve()
NAME = "klbook"
#: An overfull line wider than this (in TeX points) shows as text running into the margin.
MAX_OVERFULL_PT = 3.0

pytestmark = pytest.mark.pdf


def _need(path: Path) -> Path:
    if not path.is_file():
        message = f"no {path.name} in {LATEX}: build the PDF first (make pdf)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        message = f"{name} is missing (Debian package poppler-utils)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def pdf() -> Path:
    return _need(LATEX / f"{NAME}.pdf")


@pytest.fixture(scope="module")
def log() -> str:
    return _need(LATEX / f"{NAME}.log").read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def text(pdf: Path) -> str:
    out = subprocess.run([_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                         check=True)
    return out.stdout


def _chapter_titles(numbered_only: bool = False) -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    titles = []
    for part in toc.get("parts", []):
        if numbered_only and not part.get("numbered"):
            continue
        for chapter in part.get("chapters", []):
            path = ROOT / chapter["file"]
            path = path if path.suffix else next(ROOT.glob(chapter["file"] + ".*"))
            if path.suffix == ".ipynb":
                cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
                source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
            else:
                source = path.read_text(encoding="utf-8")
            titles.append(re.search(r"^# (.+)$", source, re.M).group(1).strip())
    return titles


def test_no_undefined_reference(log, text):
    # TeX wraps its log at 79 characters, also inside this message ("on page\n235 undefined")
    undefined = re.findall(r"(?:Reference|Hyper\s+reference|Citation) `[^']+' on page\s+\d+\s+undefined", log)
    assert not undefined, f"{len(undefined)} undefined references, e.g. {undefined[:3]}"
    assert "There were undefined references" not in log, "LaTeX reports undefined references (see its log)"
    assert "??" not in text, "the PDF prints '??' for a reference"


def test_no_line_runs_into_the_margin(log):
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)", log)]
    wide = [w for w in widths if w > MAX_OVERFULL_PT]
    assert not wide, f"{len(wide)} overfull lines wider than {MAX_OVERFULL_PT} pt (widest {max(wide):.1f} pt)"


def test_every_font_is_embedded(pdf):
    out = subprocess.run([_tool("pdffonts"), str(pdf)], capture_output=True, text=True, check=True).stdout
    rows = out.splitlines()[2:]
    assert rows, "pdffonts lists no font"
    # columns: name type encoding emb sub uni object ID; "emb" is the fourth field from the right
    not_embedded = [row for row in rows if row.split()[-5] != "yes"]
    assert not not_embedded, f"fonts not embedded: {not_embedded}"


def test_every_chapter_is_there_with_its_number(text):
    flat = re.sub(r"\s+", " ", text)
    titles = _chapter_titles()
    chapters = len(_chapter_titles(numbered_only=True))
    assert chapters >= 7
    for title in titles:
        assert title in flat.replace("’", "'"), f"chapter {title!r} missing from the PDF"
    assert re.search(r"1\.1 .+?(\. ){5,}", flat), "no table of contents with section entries"
    for number in range(1, chapters + 1):
        assert re.search(rf"Chapter {number}\b", flat), f"no 'Chapter {number}' heading"


@pytest.mark.site  # needs the HTML site too: `make test` runs it after the HTML build (CI builds the PDF first)
def test_no_source_syntax_and_every_glued_value_as_the_site_shows_it(text):
    flat = re.sub(r"\s+", " ", text)
    for syntax in ("{glue", "{eq}", "{cite}", ":label:", "{numref}", "{prf:ref}"):
        assert syntax not in flat, f"source syntax {syntax!r} in the PDF"
    # The glued values of each chapter as its HTML page prints them (built from the same doctree, so the
    # same formatting); compared without whitespace, which pdftotext moves around.
    from tests.test_reader_notebooks import SITE, _glued_values

    if not (SITE / "index.html").is_file():
        message = f"no HTML site at {SITE} to take the glued values from (make html)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    squeezed = re.sub(r"\s+", "", text).replace("\u2212", "-")
    missing = []
    for chapter in sorted((ROOT / "book").glob("*.ipynb")):
        values = _glued_values(chapter.name)
        missing += [f"{chapter.name}: {v}" for v in values if re.sub(r"\s+", "", v) not in squeezed]
    assert not missing, f"{len(missing)} glued values missing from the PDF, e.g. {missing[:5]}"
