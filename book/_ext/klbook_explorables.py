"""Sphinx extension: the book's explorables (interactive figures), rendered with Bokeh for the HTML site.

A chapter cell displays a ``klbook.explorables.Explorable``; its stored output is ``text/html`` holding a
fallback sentence and the precomputed data as JSON (``<script type="application/vnd.klbook.explorable+json">``),
and ``text/plain``. For the HTML builder only, this extension replaces that output on the page by the
Bokeh figure (``klbook.explorables.render_bokeh``: sliders whose ``CustomJS`` callback selects
precomputed klbook values) and adds BokehJS (``bokeh.min.js``, ``bokeh-widgets.min.js``, copied from the
pinned ``bokeh`` wheel into ``_static/bokeh/`` when the build finishes) to the pages that have one, and
to no other page. Nothing is requested from another host. The LaTeX builder (PDF) shows the ``text/plain``
line beside the chapter's static figure; the reader's notebooks keep the stored output (its fallback
sentence points to the static figure).

Dark mode: the explorable sits on a white card with dark text, as the static figures (opaque white
backgrounds) do. An inverting filter was tried first: it turned the page's dark background behind the
figure into a light grey panel and left the widgets' text light grey on it, unreadable.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

JS_FILES = ("bokeh.min.js", "bokeh-widgets.min.js")
TARGET = "bokeh"
_SPEC = re.compile(r'<script type="application/vnd\.klbook\.explorable\+json">(.*?)</script>', re.DOTALL)
_STYLE = (
    "<style>.klbook-explorable-figure{max-width:100%;overflow:hidden;margin:0.5rem 0 1rem}"
    "html[data-theme=dark] .klbook-explorable-figure{background:#fff;color:#212529;color-scheme:light;"
    "border-radius:4px;padding:0.25rem}</style>"
)


def _bokeh_js_dir() -> Path:
    import bokeh

    return Path(bokeh.__file__).parent / "server" / "static" / "js"


def _render(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if app.builder.format != "html":
        return
    from klbook.explorables import MARKER_CLASS, render_bokeh

    for raw in list(doctree.findall(nodes.raw)):
        text = raw.astext()
        if f'class="{MARKER_CLASS}"' not in text:
            continue
        match = _SPEC.search(text)
        if match is None:
            logger.warning("explorable output without its data", location=raw)
            continue
        spec = json.loads(match.group(1))
        script, div = render_bokeh(spec)
        markup = (f'{_STYLE}<div class="klbook-explorable-figure" data-name="{spec["name"]}" '
                  f'role="figure" aria-label="{spec["alt"]}">{div}</div>{script}')
        raw.replace_self(nodes.raw("", markup, format="html", classes=["klbook-explorable-rendered"]))


def _page_assets(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if doctree is None:
        return
    if any("klbook-explorable-rendered" in n.get("classes", []) for n in doctree.findall(nodes.raw)):
        for name in JS_FILES:
            app.add_js_file(f"{TARGET}/{name}")  # inside html-page-context: this page only


def _copy_js(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / TARGET
    target.mkdir(parents=True, exist_ok=True)
    for name in JS_FILES:
        shutil.copy2(_bokeh_js_dir() / name, target / name)
    import bokeh

    licence = next(Path(bokeh.__file__).parent.parent.glob("bokeh-*.dist-info/**/LICENSE*"), None)
    if licence is not None:
        shutil.copy2(licence, target / "LICENSE.txt")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("doctree-resolved", _render, priority=600)
    app.connect("html-page-context", _page_assets, priority=500)
    app.connect("build-finished", _copy_js)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
