"""The reader's notebooks (book/_ext/klbook_notebooks.py): every chapter as a notebook that reads like its
page in plain Jupyter, Colab or VS Code, and runs on its own.

They are written by the HTML build into ``<site>/_notebooks/``; these tests read the built site at
``_build/html`` (or ``$KLBOOK_SITE``), so they run after the build (marker ``site``; ``make test`` runs
them after ``make html``). Without a built site they are skipped locally and fail in CI.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("KLBOOK_SITE", ROOT / "_build" / "html")).resolve()
CHAPTERS = sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))

pytestmark = pytest.mark.site

#: MyST syntax a reader must never see: roles, directive fences and options, glue keys.
MYST_SYNTAX = re.compile(r"\{[a-z][\w:-]*\}`|^\s*(```|:::)\s*\{|^\s*:(label|class|name|nowrap):|\bglue:", re.M)


def _load_extension():
    spec = importlib.util.spec_from_file_location("klbook_notebooks", ROOT / "book" / "_ext" / "klbook_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reader(name: str) -> dict:
    path = SITE / "_notebooks" / "book" / name
    if not path.is_file():
        message = f"no reader's notebook at {path}: build the site first (make html)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return json.loads(path.read_text(encoding="utf-8"))


def _markdown(notebook: dict) -> str:
    return "\n\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")


def _unescape(markdown: str) -> str:
    return re.sub(r"\\([\\`*$<>])", r"\1", markdown)


class _Pasted(HTMLParser):
    """Texts of the glued values on a page (myst-nb renders {glue:text} as <span class="pasted-text">)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if self._depth:
            self._depth += 1
        elif tag == "span" and "pasted-text" in (dict(attrs).get("class") or "").split():
            self._depth = 1
            self.values.append("")

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.values[-1] += data


def _glued_values(name: str) -> list[str]:
    page = SITE / "book" / Path(name).with_suffix(".html")
    parser = _Pasted()
    parser.feed(page.read_text(encoding="utf-8"))
    return [html.unescape(v) for v in parser.values]


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_myst_syntax_left(name):
    markdown = _markdown(_reader(name))
    found = MYST_SYNTAX.findall(markdown)
    assert not found, f"{name}: MyST syntax left in the reader's notebook: {found[:5]}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_myst_role_left_in_code_cells_metadata(name):
    """myst-nb's figure metadata (caption, alt) holds no role a MyST front end would not know (the book's own
    {panel}; standard roles such as {eq} stay): a caption's {panel}`Left|Top` keeps its first word, as the
    PDF does."""
    source = json.loads((ROOT / "book" / name).read_text(encoding="utf-8"))
    reader = _reader(name)
    captions = {}
    for cell in reader["cells"]:
        if cell["cell_type"] != "code":
            continue
        mystnb = cell.get("metadata", {}).get("mystnb", {})
        found = re.findall(r"\{panel\}`[^`]*`", json.dumps(mystnb, ensure_ascii=False))
        assert not found, f"{name}: the book's {{panel}} role left in a code cell's metadata: {found[:3]}"
        if "figure" in mystnb:
            captions[mystnb["figure"].get("name")] = mystnb["figure"].get("caption", "")
    for cell in source["cells"]:
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
        if "{panel}`" in figure.get("caption", ""):
            want = re.sub(r"\{panel\}`([^`|]*)\|[^`]*`", lambda m: m.group(1).strip(), figure["caption"])
            assert captions.get(figure.get("name")) == want, f"{name}: {figure.get('name')}'s caption"
    if name == "03_gaussian_kl.ipynb":
        assert captions["fig-ch3-vae-kl-terms"].startswith("Left: the mean term"), captions["fig-ch3-vae-kl-terms"][:40]


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_glued_value_is_there_as_the_page_shows_it(name):
    markdown = _unescape(_markdown(_reader(name)))
    values = _glued_values(name)
    source = json.loads((ROOT / "book" / name).read_text(encoding="utf-8"))
    roles = sum("".join(c["source"]).count("{glue:text}") + "".join(c["source"]).count("{glue}")
                for c in source["cells"] if c["cell_type"] == "markdown")
    assert len(values) >= roles > 0 or roles == 0, f"{name}: {roles} glue roles but {len(values)} values on the page"
    missing = [v for v in values if v.strip() and v not in markdown]
    assert not missing, f"{name}: glued values of the page missing from the reader's notebook: {missing[:5]}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_references_are_numbers_and_citations_are_listed(name):
    notebook = _reader(name)
    markdown = _markdown(notebook)
    page = (SITE / "book" / Path(name).with_suffix(".html")).read_text(encoding="utf-8")
    numbers = set(re.findall(r'href="#equation-[^"]+"[^>]*>\((\d+\.\d+)\)', page))
    for number in numbers:
        assert f"({number})" in markdown, f"{name}: equation reference ({number}) missing"
    if "bibtex-citation" in page:
        assert "## References" in markdown, f"{name}: cites but lists no references"


@pytest.mark.parametrize("name", CHAPTERS)
def test_solutions_are_folded_and_hidden_cells_marked(name):
    notebook = _reader(name)
    page = (SITE / "book" / Path(name).with_suffix(".html")).read_text(encoding="utf-8")
    solutions = len(re.findall(r'class="[^"]*\bsolution\b[^"]*\bdropdown\b', page))
    assert _markdown(notebook).count("<details>") == solutions, f"{name}: solutions not all folded"
    hidden_mark = _load_extension().HIDDEN_MARK
    for cell in notebook["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and ("remove-cell" in tags or "remove-input" in tags):
            assert "".join(cell["source"]).startswith(hidden_mark), f"{name}: a hidden cell is not marked"
            assert cell["metadata"]["jupyter"]["source_hidden"] is True


@pytest.mark.parametrize("name", CHAPTERS)
def test_first_code_cell_installs_nothing_from_a_placeholder(name):
    module = _load_extension()
    notebook = _reader(name)
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    first = "".join(code[0]["source"])
    assert code[0]["metadata"].get("klbook", {}).get("install"), f"{name}: first code cell is not the install cell"
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    url = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", config, re.M).group(1)
    if module.is_placeholder(url):
        executed = [line for line in first.splitlines() if not line.lstrip().startswith("#")]
        assert not any("pip" in line or "git+" in line for line in executed), f"{name}: installs from {url}"


def test_install_cell_pins_the_configured_repository_to_the_build_commit():
    module = _load_extension()
    commit = "0123456789abcdef0123456789abcdef01234567"
    cell = module.install_cell("https://github.com/someone/kl-book", commit)["source"]
    assert f'"klbook[book] @ git+https://github.com/someone/kl-book@{commit}"' in cell
    assert module.TORCH_CPU_INDEX in cell and "%pip install" in cell
    for unusable in ("https://github.com/klbook/klbook", "", "http://example.org/repo"):
        assert "%pip" not in module.install_cell(unusable, commit)["source"], unusable
    assert "%pip" not in module.install_cell("https://github.com/someone/kl-book", None)["source"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_reader_notebook_runs_alone_in_an_empty_folder(name, tmp_path):
    """Top to bottom in a fresh kernel, in an empty folder outside the repository (klbook as installed)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.reads(json.dumps(_reader(name)), as_version=4)
    folder = tmp_path / "reader"
    folder.mkdir()
    assert not any(folder.iterdir())
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
