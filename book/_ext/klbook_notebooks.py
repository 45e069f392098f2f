"""Sphinx extension: the reader's notebook of every chapter, written from the resolved document.

The chapters are authored as MyST notebooks. Opened in plain Jupyter, Colab or VS Code they read as source
(``{glue:text}`` roles where the page shows numbers, ``{eq}``/``{cite}`` roles, directives as code blocks).
This extension writes, for every notebook page, a *reader's notebook* that reads like the page:

* the Markdown comes from the page's **resolved doctree** (``doctree-resolved``), so glued values appear
  exactly as the page formats them, equation/theorem/exercise references are their numbers, citations are
  author-year (with the chapter's references listed at the end), and definitions, theorems, proofs and
  admonitions are plain Markdown; solutions are folded in ``<details>``;
* the code cells are the authoring notebook's, in order, with their stored outputs; cells the page hides
  (``remove-cell``/``remove-input``) are kept, because the chapter needs them to run, but are marked with
  a first comment line and collapsed (``jupyter.source_hidden``);
* the first code cell installs klbook (see :func:`install_cell`): from the repository configured in
  ``_config.yml`` (``repository.url``), pinned to the commit the book was built from; while that URL is the
  project's placeholder, the cell only says how to install (nothing is installed from a URL nobody owns).

Why not QuantEcon's ``sphinx-tojupyter`` (0.6.0): tried on this book, it drops the cells myst-nb removes
from the page (the install cell and the hidden check cells, which the chapters need to run), writes no
outputs, and renders sphinx-exercise/sphinx-proof titles garbled ("##  (title)Exercise 5.1", "Proof. Proof.").

Markdown cell boundaries are not in the doctree (myst-nb renders markdown cells as a pass-through), so the
renderer's markdown-cell method is wrapped to leave an empty comment node carrying the cell index; these
markers are removed again before any writer sees the document.

The notebooks go to ``<html output>/_notebooks/<docname>.ipynb``; the page's download button is pointed at
them. ``make reader-notebooks`` checks them and copies them to ``_build/reader-notebooks/``.

The whole-book PDF: when ``make pdf`` has built ``_build/latex/klbook.pdf`` (config ``klbook_pdf``) before
the HTML build, it is copied to the site's root and every page's download menu links it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

__version__ = "1.0.0"

logger = logging.getLogger(__name__)

#: Repository URLs that are placeholders: nobody owned by the project controls them, so nothing may be
#: installed or launched from them. ``repository.url`` in ``_config.yml`` is the one setting to change.
PLACEHOLDER_REPOSITORIES = frozenset({"https://github.com/klbook/klbook"})
#: torch's CPU wheels (pytorch.org, "Get started", pip / CPU): PyPI's Linux wheel pulls CUDA libraries.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
NOTEBOOK_DIR = "_notebooks"
#: The whole-book PDF, at the root of the HTML site (``make pdf`` copies it there).
PDF_NAME = "klbook.pdf"
MARKER = "klbook_md_cell"
HIDDEN_MARK = "# [hidden on the book's page: runs checks and bookkeeping the chapter needs]"


# ------------------------------------------------------------------------------------------------------
# Markdown-cell markers
# ------------------------------------------------------------------------------------------------------
def _install_markers() -> None:
    """Wrap myst-nb's markdown-cell renderer so each markdown cell leaves a marker with its index."""
    from myst_nb.sphinx_ import SphinxNbRenderer

    original = SphinxNbRenderer.render_nb_cell_markdown
    if getattr(original, "_klbook_marker", False):
        return

    def render_nb_cell_markdown(self, token):  # noqa: ANN001
        marker = nodes.comment("", "")
        marker[MARKER] = token.meta["index"]
        self.current_node.append(marker)
        return original(self, token)

    render_nb_cell_markdown._klbook_marker = True  # type: ignore[attr-defined]
    SphinxNbRenderer.render_nb_cell_markdown = render_nb_cell_markdown


def _strip_markers(doctree: nodes.Node) -> None:
    for node in list(doctree.findall(nodes.comment)):
        if MARKER in node.attributes:
            node.parent.remove(node)


# ------------------------------------------------------------------------------------------------------
# Repository, commit and the install cell
# ------------------------------------------------------------------------------------------------------
def repository_url(config: Any) -> str:
    """``repository.url`` of ``_config.yml`` (Jupyter Book passes it as the theme's ``repository_url``)."""
    return (config.html_theme_options or {}).get("repository_url", "").rstrip("/")


def is_placeholder(url: str) -> bool:
    return not url or url.rstrip("/") in PLACEHOLDER_REPOSITORIES or not url.startswith("https://")


def build_commit(srcdir: str | Path) -> str | None:
    """The commit the book is built from, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=srcdir, capture_output=True, text=True,
                             check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else None


def install_cell(url: str, commit: str | None) -> dict:
    """The reader's notebook's first code cell: install klbook where it is missing.

    From ``url`` pinned to ``commit`` when the repository is real and the commit known; otherwise the cell
    installs nothing and says how to install.
    """
    if is_placeholder(url) or commit is None:
        source = (
            "# This chapter needs klbook, the book's library, with the packages the chapters use.\n"
            "# The book's repository is not published yet, so this notebook installs nothing by itself.\n"
            "# In a copy of the book's source (the folder with pyproject.toml), run once:\n"
            f"#     python -m pip install torch --index-url {TORCH_CPU_INDEX}\n"
            "#     python -m pip install \".[book]\"\n"
            "try:\n"
            "    import klbook\n"
            "except ImportError as error:\n"
            "    raise ImportError(\"klbook is not installed: see the comment at the top of this cell\") from error"
        )
    else:
        source = (
            "# klbook, the book's library, at the commit this notebook was built from (CPU build of torch).\n"
            "try:\n"
            "    import klbook\n"
            "except ImportError:\n"
            f"    %pip install --quiet --extra-index-url {TORCH_CPU_INDEX} "
            f"\"klbook[book] @ git+{url}@{commit}\"\n"
            "    import klbook"
        )
    return {"cell_type": "code", "execution_count": None, "id": "klbook-install",
            "metadata": {"klbook": {"install": True}}, "outputs": [], "source": source}


# ------------------------------------------------------------------------------------------------------
# Doctree -> Markdown
# ------------------------------------------------------------------------------------------------------
# Not [ and ]: JupyterLab would take an escaped "\\[" for the start of display math.
_ESCAPE = re.compile(r"([\\`*$<>])")


def _escape(text: str) -> str:
    return _ESCAPE.sub(r"\\\1", text)


#: A caption's ``{panel}`Left|Top``` role (book/_ext/klbook_figures.py): the reader's notebook keeps the word for
#: side-by-side panels, as the PDF does.
_PANEL_ROLE = re.compile(r"\{panel\}`([^`|]*)\|[^`]*`")


def _resolve_panel_roles(value: Any) -> Any:
    """``value`` (cell metadata: strings, lists, dicts) with every ``{panel}`wide|phone``` replaced by ``wide``."""
    if isinstance(value, str):
        return _PANEL_ROLE.sub(lambda m: m.group(1).strip(), value)
    if isinstance(value, list):
        return [_resolve_panel_roles(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_panel_roles(v) for k, v in value.items()}
    return value


def _indent(text: str, prefix: str, first: str | None = None) -> str:
    lines = text.split("\n")
    first = prefix if first is None else first
    return "\n".join((first if i == 0 else prefix) + line if line or i == 0 else line
                     for i, line in enumerate(lines))


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


class ReaderNotebook:
    """Turns one resolved chapter doctree plus its authoring notebook into a reader's notebook."""

    def __init__(self, app: Sphinx, docname: str, notebook: dict) -> None:
        self.app = app
        self.env = app.env
        self.docname = docname
        self.notebook = notebook
        self.site = (app.config.html_baseurl or "").rstrip("/")
        self.fignumbers = self.env.toc_fignumbers.get(docname, {})
        self.cells: list[dict] = []
        self.buffer: list[str] = []
        self.citations: dict[str, str] = {}  # reftitle -> label, in order of first citation
        self.emitted: set[int] = set()
        self.pending_code: list[int] = []  # code cells met inside a block (a solution): emitted after it
        self.numbers = {k: v for k, v in self.fignumbers.items()}

    # ---- numbers and links ----
    def number(self, kind: str, node: nodes.Element) -> str:
        for node_id in node.get("ids", []):
            number = self.fignumbers.get(kind, {}).get(node_id)
            if number:
                return ".".join(map(str, number))
        return ""

    def link(self, text: str, node: nodes.Element) -> str:
        refuri = node.get("refuri", "")
        refid = node.get("refid", "")
        if refuri.startswith(("http://", "https://", "mailto:")):
            return f"[{text}]({refuri})"
        if refid or refuri.startswith("#"):
            anchor = refid or refuri[1:]
            return f"[{text}](#{anchor})"
        if refuri and self.site:
            page, _, anchor = refuri.partition("#")
            base = Path(self.docname).parent
            target = (base / page).as_posix()
            target = re.sub(r"(^|/)[^/]+/\.\./", r"\1", target)
            return f"[{text}]({self.site}/{target}" + (f"#{anchor})" if anchor else ")")
        return text

    # ---- inline ----
    def inline(self, node: nodes.Node) -> str:
        if isinstance(node, nodes.Text):
            return _escape(node.astext())
        if isinstance(node, nodes.math):
            return f"${node.astext().strip()}$"
        if isinstance(node, nodes.literal):
            text = node.astext()
            fence = "``" if "`" in text else "`"
            return f"{fence}{text}{fence}"
        if isinstance(node, nodes.emphasis):
            return f"*{self.inlines(node)}*"
        if isinstance(node, nodes.strong):
            return f"**{self.inlines(node)}**"
        if isinstance(node, nodes.subscript):
            return f"<sub>{self.inlines(node)}</sub>"
        if isinstance(node, nodes.superscript):
            return f"<sup>{self.inlines(node)}</sup>"
        if isinstance(node, nodes.reference):
            text = self.inlines(node)
            if node.get("reftitle") and "bibliography" in node.get("refuri", ""):
                label = node.astext()
                if not re.search(r"[^\W\d_]", label):  # {cite:t} links only the year: "Burda et al. [2016]"
                    label = re.sub(r"\s*[\[(]\s*", ", ", node.parent.astext()).strip("[]() ,")
                self.citations.setdefault(node["reftitle"], label)
                return text
            return self.link(text, node)
        if isinstance(node, (nodes.target, nodes.comment, nodes.image, nodes.raw)):
            return ""
        if "klbook-phone" in node.get("classes", []):  # a caption's {panel} word for stacked panels
            return ""
        if isinstance(node, nodes.footnote_reference):
            return f"<sup>{_escape(node.astext())}</sup>"
        if isinstance(node, nodes.Element):
            return self.inlines(node)
        return ""

    def inlines(self, node: nodes.Element) -> str:
        return "".join(self.inline(child) for child in node.children)

    # ---- blocks ----
    def blocks(self, node: nodes.Element) -> str:
        parts = [self.block(child) for child in node.children]
        return "\n\n".join(p for p in parts if p.strip())

    def anchor(self, node: nodes.Element) -> str:
        return "".join(f'<a id="{i}"></a>' for i in node.get("ids", []) if not i.startswith("id"))

    def titled(self, label: str, node: nodes.Element, title_text: str) -> str:
        head = f"{self.anchor(node)}**{label}**" + (f" {title_text}" if title_text.strip() else "")
        body = self.blocks_without_title(node)
        return _quote(head + ("\n\n" + body if body else ""))

    def blocks_without_title(self, node: nodes.Element) -> str:
        parts = [self.block(c) for c in node.children if not isinstance(c, nodes.title)]
        return "\n\n".join(p for p in parts if p.strip())

    def block(self, node: nodes.Node) -> str:  # noqa: C901 (one dispatch table)
        name = type(node).__name__
        if isinstance(node, nodes.comment) or isinstance(node, nodes.target):
            if isinstance(node, nodes.target) and node.get("refid") and not node.get("refid", "").startswith("equation-"):
                return f'<a id="{node["refid"]}"></a>'
            return ""
        if isinstance(node, nodes.container) and node.get("nb_element") == "cell_code":
            self.pending_code.append(node["cell_index"])
            return ""
        if isinstance(node, nodes.paragraph):
            return self.inlines(node).strip()
        if isinstance(node, nodes.section):
            title = node.next_node(nodes.title)
            head = f"**{self.inlines(title)}**" if title is not None and title.parent is node else ""
            body = self.blocks_without_title(node)
            return "\n\n".join(p for p in (head, body) if p)
        if isinstance(node, nodes.bullet_list):
            return "\n".join(_indent(self.blocks(item), "  ", "- ") for item in node.children)
        if isinstance(node, nodes.enumerated_list):
            start = node.get("start", 1)
            out = []
            for i, item in enumerate(node.children):
                bullet = f"{start + i}. "
                out.append(_indent(self.blocks(item), " " * len(bullet), bullet))
            return "\n".join(out)
        if isinstance(node, nodes.definition_list):
            items = []
            for item in node.children:
                term = next((c for c in item.children if isinstance(c, nodes.term)), None)
                definition = next((c for c in item.children if isinstance(c, nodes.definition)), None)
                items.append(f"**{self.inlines(term) if term else ''}**\n"
                             + _indent(self.blocks(definition) if definition else "", "  ", ": "))
            return "\n\n".join(items)
        if isinstance(node, nodes.literal_block):
            language = node.get("language", "")
            language = "python" if language.startswith("ipython") else language
            return f"```{language}\n{node.astext()}\n```"
        if isinstance(node, nodes.math_block):
            latex = node.astext().strip()
            number = self.number("displaymath", node) if node.get("label") else ""
            if number and "\\begin" not in latex:
                latex = f"{latex} \\tag{{{number}}}"
            anchor = "".join(f'<a id="{i}"></a>' for i in node.get("ids", []))
            return (anchor + "\n\n" if anchor else "") + f"$$\n{latex}\n$$"
        if isinstance(node, nodes.block_quote):
            return _quote(self.blocks(node))
        if isinstance(node, nodes.table):
            return self.table(node)
        if isinstance(node, nodes.raw):
            text = node.astext()
            if node.get("format") == "html" and "thebe" not in text and "kernelName" not in text:
                return text
            return ""
        if isinstance(node, nodes.rubric):
            return f"**{self.inlines(node)}**"
        # sphinx-exercise
        if name == "exercise_enumerable_node" or name == "exercise_node":
            number = self.number("exercise", node)
            title = node.next_node(nodes.title)
            label = f"Exercise {number}".strip()
            return self.titled(label, node, self.inlines(title).strip() if title is not None else "")
        if name == "solution_node":
            return self.solution(node)
        # sphinx-proof
        if name == "proof_node":
            return _quote(self.blocks(node[0]) if len(node) and isinstance(node[0], nodes.Admonition)
                          else self.blocks(node))
        if node.get("realtype") if isinstance(node, nodes.Element) else False:
            kind = node["realtype"]
            number = self.number(node.get("countertype", kind), node)
            title = node.next_node(nodes.title)
            label = f"{kind.title()} {number}".strip()
            return self.titled(label, node, self.inlines(title).strip() if title is not None else "")
        if isinstance(node, nodes.Admonition):
            title = node.next_node(nodes.title)
            if title is not None and title.parent is node:
                label = self.inlines(title).strip()
            else:
                label = name.replace("_", " ").title()
            body = self.blocks_without_title(node)
            return _quote(f"**{label}**" + ("\n\n" + body if body else ""))
        if isinstance(node, (nodes.image, nodes.figure)):
            return ""
        if isinstance(node, nodes.Element):
            return self.blocks(node)
        return ""

    def solution(self, node: nodes.Element) -> str:
        title = node.next_node(nodes.title)
        summary = title.astext().strip() if title is not None else "Solution"
        summary = re.sub(r"\s+", " ", summary).replace("( ", "(").replace(" )", ")")
        body = self.blocks_without_title(node)
        return f"<details>\n<summary>{_escape(summary)}</summary>\n\n{body}\n\n</details>"

    def table(self, node: nodes.table) -> str:
        rows: list[list[str]] = []
        header_rows = 0
        for part in node.findall(lambda n: isinstance(n, (nodes.thead, nodes.tbody))):
            for row in part.children:
                cells = [re.sub(r"\s*\n\s*", " ", self.blocks(entry)).replace("|", "\\|") for entry in row.children]
                rows.append(cells)
                if isinstance(part, nodes.thead):
                    header_rows += 1
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        head = rows[0] if header_rows else [""] * width
        body = rows[1:] if header_rows else rows
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * width]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        title = node.next_node(nodes.title)
        caption = ""
        if title is not None and title.parent is node:
            number = self.number("table", node)
            caption = f"{self.anchor(node)}**Table {number}:** {self.inlines(title)}\n\n".replace("Table :", "Table:")
        return caption + "\n".join(lines)

    # ---- cells ----
    def flush(self) -> None:
        text = "\n\n".join(p for p in self.buffer if p.strip()).strip()
        self.buffer = []
        if text:
            self.cells.append({"cell_type": "markdown", "metadata": {}, "source": text})

    def code_cell(self, index: int) -> None:
        if index in self.emitted:
            return
        self.emitted.add(index)
        cell = copy.deepcopy(self.notebook["cells"][index])
        metadata = cell.get("metadata", {})
        metadata.pop("execution", None)
        if "mystnb" in metadata:  # a figure's caption for myst-nb: a MyST front end knows no {panel} role
            metadata["mystnb"] = _resolve_panel_roles(metadata["mystnb"])
        for output in cell.get("outputs", []):  # the site's stacked rendering of a figure (klbook_figures)
            output.get("metadata", {}).pop("klbook/phone", None)
        if metadata.get("klbook", {}).get("install"):
            self.flush()
            self.cells.append(install_cell(repository_url(self.app.config),
                                           self.app.config.klbook_build_commit))
            return
        tags = metadata.get("tags", [])
        if any(t in tags for t in ("remove-cell", "remove_cell", "remove-input", "remove_input")):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = HIDDEN_MARK + "\n" + source
            metadata.setdefault("jupyter", {})["source_hidden"] = True
        self.flush()
        self.cells.append(cell)

    def code_before(self, index: int) -> None:
        """Emit the code cells the page removed (not in the doctree) that come before cell ``index``."""
        for i, cell in enumerate(self.notebook["cells"][:index]):
            if cell["cell_type"] == "code" and i not in self.emitted:
                self.code_cell(i)

    def walk(self, node: nodes.Element, level: int) -> None:
        for child in node.children:
            if isinstance(child, nodes.comment) and MARKER in child.attributes:
                self.flush_pending()
                self.code_before(child[MARKER])
                self.flush()
            elif isinstance(child, nodes.container) and child.get("nb_element") == "cell_code":
                self.flush_pending()
                self.code_before(child["cell_index"])
                self.code_cell(child["cell_index"])
                self.buffer.extend(self.captions(child))
            elif isinstance(child, nodes.section):
                title = child.next_node(nodes.title)
                self.flush_pending()
                anchors = "".join(f'<a id="{i}"></a>' for i in child.get("ids", [])[1:])
                self.buffer.append(anchors + "#" * min(level, 6) + " " + (self.inlines(title).strip() if title else ""))
                self.walk(child, level + 1)
            elif isinstance(child, nodes.title):
                continue
            else:
                text = self.block(child)
                if text.strip():
                    self.buffer.append(text)
                self.flush_pending()

    def captions(self, cell: nodes.Element) -> list[str]:
        """The numbered captions myst-nb gives a cell's figures (from cell metadata), under the cell."""
        out = []
        for figure in cell.findall(nodes.figure):
            caption = figure.next_node(nodes.caption)
            if caption is None:
                continue
            number = self.number("figure", figure)
            label = f"Figure {number}:" if number else "Figure:"
            out.append(f"{self.anchor(figure)}*{label}* {self.inlines(caption).strip()}")
        return out

    def flush_pending(self) -> None:
        if self.pending_code:
            for index in self.pending_code:
                self.code_before(index)
                self.code_cell(index)
            self.pending_code = []

    def build(self, doctree: nodes.document) -> dict:
        self.walk(doctree, 1)
        self.flush_pending()
        self.code_before(len(self.notebook["cells"]))
        if self.citations:
            # as the bibliography page orders them: by the author-year label the text cites
            entries = sorted(self.citations.items(), key=lambda item: (item[1].lower(), item[0]))
            self.buffer.append("## References")
            self.buffer.append("\n".join(f"- **{_escape(label)}**: {_escape(title)}" for title, label in entries))
        self.flush()
        # The banner goes after the title cell: what this file is, where the page is.
        page = f"{self.site}/{self.docname}.html" if self.site else ""
        banner = ("*The reader's notebook of this chapter: the book's page as a notebook. Cells the page hides "
                  "(checks the chapter runs) start with a comment saying so.*"
                  + (f" *The page: <{page}>*" if page else ""))
        self.cells.insert(1 if self.cells and self.cells[0]["cell_type"] == "markdown" else 0,
                          {"cell_type": "markdown", "metadata": {}, "source": banner})
        nb = {"cells": self.cells, "metadata": self.notebook.get("metadata", {}),
              "nbformat": 4, "nbformat_minor": 5}
        for i, cell in enumerate(nb["cells"]):
            cell["id"] = cell.get("id") or f"cell-{i}"
            if cell["cell_type"] == "markdown":
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
        _renumber(nb)
        return nb


def _renumber(nb: dict) -> None:
    """Execution counts 1..n over the code cells that ran (the install cell is new and unexecuted)."""
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if cell.get("metadata", {}).get("klbook", {}).get("install"):
            cell["execution_count"] = None
            continue
        count += 1
        cell["execution_count"] = count
        for output in cell.get("outputs", []):
            if "execution_count" in output:
                output["execution_count"] = count


# ------------------------------------------------------------------------------------------------------
# Sphinx events
# ------------------------------------------------------------------------------------------------------
def _builder_inited(app: Sphinx) -> None:
    if app.config.klbook_build_commit is None:
        app.config.klbook_build_commit = build_commit(app.srcdir)


def _doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    try:
        if app.builder.format != "html" or not str(app.env.doc2path(docname)).endswith(".ipynb"):
            return
        source = Path(app.env.doc2path(docname))
        notebook = json.loads(source.read_text(encoding="utf-8"))
        reader = ReaderNotebook(app, docname, notebook).build(doctree)
        target = Path(app.outdir) / NOTEBOOK_DIR / f"{docname}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(reader, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        app.env.klbook_reader_notebooks = getattr(app.env, "klbook_reader_notebooks", set()) | {docname}
    finally:
        _strip_markers(doctree)


def _page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Serve the reader's notebook from the download button; no launch button to a placeholder repo."""
    if doctree is None:
        return
    has_reader = (Path(app.outdir) / NOTEBOOK_DIR / f"{pagename}.ipynb").is_file()
    placeholder = is_placeholder(repository_url(app.config))
    groups = context.get("header_buttons", [])
    for group in list(groups):
        if placeholder and group.get("label") == "launch-buttons":
            groups.remove(group)  # Colab/Binder would open whatever an unknown owner of that name serves
            continue
        for button in group.get("buttons", []):
            if button.get("label") == "download-source-button" and has_reader and button["url"].endswith(".ipynb"):
                button["url"] = button["url"].replace("_sources/", f"{NOTEBOOK_DIR}/", 1)
                button["tooltip"] = "Download the chapter as a notebook (reads like this page)"
        if group.get("label") == "download-buttons" and _built_pdf(app) is not None:
            # The whole-book PDF of `make pdf`, copied to the site's root when the build finishes.
            group["buttons"].append({
                "type": "link", "url": context["pathto"](PDF_NAME, 1), "text": "Book (PDF)",
                "tooltip": "The whole book as one PDF", "icon": "fas fa-file-pdf", "label": "download-book-pdf-button",
            })


def _built_pdf(app: Sphinx) -> Path | None:
    """The PDF of ``make pdf`` (``klbook_pdf``, relative to the book's root), if it has been built."""
    path = Path(app.srcdir) / app.config.klbook_pdf
    return path if path.is_file() else None


def _copy_pdf(app: Sphinx, exception: Exception | None) -> None:
    """Put the whole-book PDF at the root of the HTML site, where every page's download menu links it."""
    pdf = _built_pdf(app)
    if exception is not None or app.builder.format != "html" or pdf is None:
        return
    shutil.copy2(pdf, Path(app.outdir) / PDF_NAME)
    logger.info("[klbook_notebooks] %s copied into the site", pdf)


def setup(app: Sphinx) -> dict[str, Any]:
    _install_markers()
    app.add_config_value("klbook_build_commit", None, "env")
    app.add_config_value("klbook_pdf", f"_build/latex/{PDF_NAME}", "html")
    app.connect("build-finished", _copy_pdf)
    app.connect("builder-inited", _builder_inited)
    app.connect("doctree-resolved", _doctree_resolved, priority=400)
    app.connect("html-page-context", _page_context, priority=990)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": False}
