"""Sphinx extension: the book's explorables (interactive figures), rendered with Bokeh for the HTML site.

A chapter cell displays a ``klbook.explorables.Explorable``; its stored output is ``text/html`` holding a
fallback sentence and the precomputed data as JSON (``<script type="application/vnd.klbook.explorable+json">``),
and ``text/plain``. For the HTML builder only, this extension replaces that output on the page by the
Bokeh figure (``klbook.explorables.render_bokeh``: sliders whose ``CustomJS`` callback selects
precomputed klbook values) and loads BokehJS (``bokeh.min.js``, ``bokeh-widgets.min.js``, copied from the
pinned ``bokeh`` wheel into ``_static/bokeh/`` when the build finishes) on the pages that have one, and
on no other page. Nothing is requested from another host.

BokehJS loads *after the first screen of math*, not in the page's head: its 1.65 MB of script, parsed
and run in the head, held up the page and MathJax (chapters 3, 5, 6 and 7, the pages with explorables,
typeset their first screen of math 0.5-0.8 s after ch1 did). The figure's Bokeh script is stored inert
(``type="application/x-klbook-bokeh"``) and run by ``LOADER`` once BokehJS is in; the loader starts
once MathJax's first pass is done, its fonts are in and the browser is idle, or as soon as a figure
comes near the screen, whichever is first. Measured 2026-12-05 (Chromium, local server, 390 px, cold
cache, five alternating loads a page, load average under 1.5), median first screen of math, before ->
after: ch3 1.46 -> 1.09 s, ch5 1.45 -> 1.10 s, ch6 1.53 -> 1.08 s, ch7 1.85 -> 1.53 s (ch1 0.84 s).

Until BokehJS has drawn it, a figure's box keeps the height it will have at a laptop's width
(``_drawn_height``, from the figure's sliders, readouts and panels): the page no longer moves by
540-720 px when a figure appears (at 390 px readouts wrap, and the figure grows by up to ~35 px then).

The LaTeX builder (PDF) shows the ``text/plain`` line beside the chapter's static figure; the reader's
notebooks keep the stored output (its fallback sentence points to the static figure).

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
#: The type that keeps a figure's Bokeh script from running until BokehJS is loaded.
INERT_TYPE = "application/x-klbook-bokeh"
_SCRIPT_TAG = re.compile(r"^\s*<script[^>]*>")
#: Loads BokehJS (``%(sources)s``: its files, in order) and then runs the page's inert Bokeh scripts, once:
#: when MathJax's first pass is done (its startup promise; at once on a page without MathJax), the fonts
#: it asked for are in, two frames have been drawn and the browser is idle (at most 1 s later), or when a
#: figure comes within 300 px of the screen, whichever is first. The files are fetched in parallel and run
#: in order (async = false). Starting at the first idle moment after MathJax's first pass, without waiting
#: for its fonts, was measured worse (ch3 1.12 -> 1.40 s, ch7 1.52 -> 1.67 s: BokehJS ran before the lazy
#: typesetting of the first screen).
LOADER = """(() => {
  const sources = %(sources)s;
  let started = false;
  // Each figure's box keeps its drawn height until BokehJS draws it (see _STYLE), unless BokehJS fails.
  const page = document.documentElement;
  page.classList.add('%(pending)s');
  const start = () => {
    if (started) return;
    started = true;
    const scripts = sources.map(src => {
      const s = document.createElement('script');
      s.src = src;
      s.async = false;
      s.addEventListener('error', () => page.classList.remove('%(pending)s'));
      document.head.appendChild(s);
      return s;
    });
    scripts[scripts.length - 1].addEventListener('load', () => {
      document.querySelectorAll('script[type="%(inert)s"]').forEach(inert => {
        const s = document.createElement('script');
        s.textContent = inert.textContent;
        inert.replaceWith(s);
      });
    });
  };
  const idle = window.requestIdleCallback || (f => setTimeout(f, 50));
  const afterMath = () => {
    const math = document.querySelector("script[src*='mathjax']");
    const waited = Date.now();
    const poll = () => {
      const promise = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
      if (promise || !math || Date.now() - waited > 10000)
        Promise.resolve(promise).catch(() => {}).then(() => document.fonts.ready)
          .then(() => requestAnimationFrame(() => requestAnimationFrame(() => idle(start, {timeout: 1000}))));
      else setTimeout(poll, 20);
    };
    poll();
    if ('IntersectionObserver' in window) {
      const near = new IntersectionObserver(entries => {
        if (entries.some(e => e.isIntersecting)) { near.disconnect(); start(); }
      }, {rootMargin: '300px'});
      document.querySelectorAll('.klbook-explorable-figure').forEach(f => near.observe(f));
    }
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', afterMath);
  else afterMath();
})();"""
_SPEC = re.compile(r'<script type="application/vnd\.klbook\.explorable\+json">(.*?)</script>', re.DOTALL)
#: The class the loader puts on the page while BokehJS is expected to draw the figures.
PENDING_CLASS = "klbook-explorables-pending"
_STYLE = (
    "<style>.klbook-explorable-figure{max-width:100%;overflow:hidden;margin:0.5rem 0 1rem}"
    f".{PENDING_CLASS} .klbook-explorable-figure{{min-height:var(--klbook-drawn-height)}}"
    f"html.{PENDING_CLASS}[data-theme=dark] .klbook-explorable-figure"
    "{min-height:calc(var(--klbook-drawn-height) + 0.5rem)}"
    "html[data-theme=dark] .klbook-explorable-figure{background:#fff;color:#212529;color-scheme:light;"
    "border-radius:4px;padding:0.25rem}</style>"
)


def _bokeh_js_dir() -> Path:
    import bokeh

    return Path(bokeh.__file__).parent / "server" / "static" / "js"


#: Heights in CSS pixels of what render_bokeh lays out, as Chromium draws them at 1,280 px (2026-12-06):
#: a slider with its title, a one-line readout, the title above an image panel. At a phone's width the
#: readouts wrap onto more lines, so the figures are taller there, never shorter.
SLIDER_PX, READOUT_PX, IMAGE_TITLE_PX = 47, 28, 44


def _drawn_height(spec: dict) -> int:
    """The height of a figure once BokehJS has drawn it at a laptop's width (a lower bound elsewhere),
    reserved before, so that the page does not move by half a screen when it appears."""
    height = SLIDER_PX * len(spec["sliders"]) + READOUT_PX * len(spec["readouts"])
    for panel in spec["panels"]:
        if panel["kind"] == "image":
            height += 6 * len(panel["series"][0]["y"][0]) + IMAGE_TITLE_PX
        else:
            height += panel.get("height", 240)
    return height


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
        script = _SCRIPT_TAG.sub(f'<script type="{INERT_TYPE}">', script, count=1)
        markup = (f'{_STYLE}<div class="klbook-explorable-figure" data-name="{spec["name"]}" '
                  f'style="--klbook-drawn-height: {_drawn_height(spec)}px" '
                  f'role="figure" aria-label="{spec["alt"]}">{div}</div>{script}')
        raw.replace_self(nodes.raw("", markup, format="html", classes=["klbook-explorable-rendered"]))


def _page_assets(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if doctree is None:
        return
    if any("klbook-explorable-rendered" in n.get("classes", []) for n in doctree.findall(nodes.raw)):
        sources = [context["pathto"](f"_static/{TARGET}/{name}", 1) for name in JS_FILES]
        # inside html-page-context: this page only
        app.add_js_file(None, body=LOADER % {"sources": json.dumps(sources), "inert": INERT_TYPE,
                                             "pending": PENDING_CLASS})


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
