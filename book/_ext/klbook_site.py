"""Sphinx extension for the klbook HTML site: offline MathJax, a clean script stack, real notebook downloads.

Registered in ``_config.yml`` under ``sphinx: local_extensions: {klbook_site: book/_ext}``, so a plain
``jupyter-book build .`` produces the complete site. What it does:

1. **MathJax without network, only where there is math.** Every page that has math (and no other: Sphinx
   would also load it on a page whose toctree lists pages with math) loads MathJax 3 from the site itself
   (``_static/mathjax/tex-chtml.js``), not from a CDN. The MathJax tree comes from the PyPI package
   ``django-static-mathjax`` (pinned in requirements.txt; it ships MathJax 3's ``es5`` build as the
   importable package ``mathjax`` and needs nothing else), so ``pip install -r requirements.txt`` is the
   whole set-up; it is copied into the output when the build finishes. It is deliberately
   *not* put on ``html_static_path``: Jupyter Book 1 adds every ``.js`` file found there to every page.
   If the package is missing the build stops with a message that says how to install it. MathJax
   typesets lazily (its ``ui/lazy`` extension: what is on screen first, the rest as it nears the screen),
   and the theme's Font Awesome script (1.5 MB, redundant with its icon fonts) is left out by the template
   ``templates/static/webpack-macros.html``: a chapter's first screen of math came 2.4-7.9 s after
   navigation, now 0.9-2.8 s (shared 2-core machine under load; tests/test_browser.py measures it).
   Pages with math also preload what MathJax would fetch only once it runs (``ui/lazy.js``, and its three
   fonts that nearly every formula uses), which brought the first screen of math 0-0.23 s sooner
   (2026-12-05, load 2-3, Chromium at 390 px, three alternating runs: ch1 0.84-1.06 s against 0.93-1.12 s,
   ch3 1.42-1.80 against 1.47-2.01, ch5 1.42-1.76 against 1.41-1.77, ch7 1.75-2.22 against 1.96-2.40).

   Rendering the math at build time instead (server-side MathJax under node) was built and measured:
   it made the first screen of math *later* (a chapter's HTML 2-4 times heavier, DOMContentLoaded
   0.2-0.9 s later: ch5 2.0-2.1 s against 1.4-1.5 s with every formula rendered, ch7 1.9-2.5 s against
   1.9-2.6 s with the first screens' only), and it was removed once the explorables' BokehJS was moved
   out of the head (``klbook_explorables.py``): medians 0.8-1.1 s on chapters 1-6 and 8, 1.48-1.53 s on
   chapter 7 (2026-12-05, README). Code cells are rendered only as they near the screen
   (``static/klbook-site.css``; each code cell's line count is written into the page here, so that the
   browser reserves its exact height): chapter 7's first screen of math 1.62 -> 1.36 s. Pages use
   ``tex-chtml.js`` rather than Sphinx's ``tex-mml-chtml.js``: the book has no MathML input.
2. **No console error on page load.** ``sphinx-thebe`` (always loaded by Jupyter Book 1) adds its inline
   script ``const THEBE_JS_URL = ...`` after the builder is initialised. Sphinx 7.4 then holds it twice:
   ``app.add_js_file(None, body=...)`` puts it on the builder with ``filename=None``, and
   ``prepare_writing`` re-adds every registry asset as ``filename or ''``; the two differ only in
   ``None`` vs ``''``, so they are not deduplicated. The second ``const`` throws "Identifier
   'THEBE_JS_URL' has already been declared" on every page. The book has no Thebe button, so the
   Thebe assets (which would fetch Thebe from a CDN when activated) and Thebe's inline configuration
   are removed from every page, and the other duplicated inline scripts are deduplicated.
   The PyData theme also logs "Got invalid theme mode" (a console error) on a reader's first visit
   because its default mode is empty: ``html_context["default_mode"]`` is set to ``auto`` (follow the
   reader's system setting; the theme switcher still offers light and dark).
3. **Solutions open wherever their title is clicked.** ``static/klbook-site.css`` works around a
   sphinx-togglebutton bug: a click on the "Exercise N" link inside a solution's title threw
   "button is not defined" and left the solution closed.
4. **Bibliography labels that match the citations.** The chapters cite author-year
   (``bibtex_reference_style: author_year``: "Kingma and Welling, 2013"), but the bibliography's own labels
   come from the formatting style, alphabetic ("[KW13]") by default. The style ``klbook_author_year``
   registered here labels each entry the way the text cites it; a citation's link also carries the full
   reference as its ``title``, a hover preview that needs no network. Under each bibliography entry,
   "Cited in:" links lead back to every citing place (sphinxcontrib-bibtex links back only within a page).
5. **Both spellings find a page.** The book spells the British way ("reparameterisation"); a reader who
   searches "reparameterization" found nothing. Every page gets a ``keywords`` meta node (which Sphinx's
   search indexes) with the American spelling of each -ise/-isation word it uses.
6. **Glossary terms linked where the chapters first use them.** In every chapter, the first use of each
   glossary term (outside titles, math, code, links and captions) becomes a link to its entry, with the
   definition as the link's ``title`` (a hover preview that works offline). Terms that are also ordinary
   words ("bit", "rate", "support", ...) are not linked.
7. **Real notebook download.** The theme's download button links to ``_sources/<page>.ipynb`` with
   ``target="_blank"``, so a browser shows the notebook's JSON as text. The link gets a ``download``
   attribute with the file's name instead (template ``templates/article-header-buttons.html``).
8. **Links land on their target and stay there.** Typesetting after the page has loaded moved a link's
   target down by up to ~100 px, sometimes under the header (3 of 8 sampled targets in chapters 5 and 7).
   ``HOLD_TARGET`` scrolls it back as the page settles, until the reader scrolls, clicks or types.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging

__version__ = "1.0.0"

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent


def _mathjax_package() -> Path:
    """The MathJax 3 distribution inside the ``mathjax`` Python package (from django-static-mathjax)."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        return Path("<the Python package 'mathjax'>")
    return Path(spec.origin).parent / "static" / "mathjax"


#: The MathJax component pages load: TeX input, CommonHTML output. Not tex-mml-chtml.js (Sphinx's default):
#: the book has no MathML input to typeset.
MATHJAX_COMPONENT = "tex-chtml.js"
#: Folder under the site's ``_static`` that receives MathJax's ``es5`` tree.
MATHJAX_TARGET = "mathjax"
#: MathJax's fonts that nearly every formula uses (zero-width characters, upright and italic letters).
MATHJAX_PRELOADED_FONTS = ("MathJax_Zero", "MathJax_Main-Regular", "MathJax_Math-Italic")
#: Formulas this close below (or above) the screen are typeset before they scroll into view.
MATHJAX_LAZY_MARGIN = "400px"
#: A code cell's input, with the number of lines of its code (``--klbook-lines``, which gives the height the
#: browser assumes for it while it is off screen and not yet rendered: ``static/klbook-site.css``).
_CODE_CELL = re.compile(r'<div class="cell_input docutils container">(\s*<div class="highlight-[^"]*">'
                        r'<div class="highlight"><pre>(.*?)</pre>)', re.DOTALL)
INSTALL_HINT = (
    "MathJax 3 is needed to build the HTML book (it is served from the site, so math renders offline) "
    "but was not found at {path}. Install it with `pip install -r requirements.txt` (it comes from the "
    "PyPI package django-static-mathjax), or run `make book`, which does this for you."
)


def mathjax_source() -> Path:
    """The ``es5`` folder of the installed MathJax 3 distribution; ExtensionError if it is missing."""
    package = _mathjax_package()
    es5 = package / "es5"
    if not (es5 / MATHJAX_COMPONENT).is_file():
        raise ExtensionError(INSTALL_HINT.format(path=es5))
    version = json.loads((package / "package.json").read_text(encoding="utf8"))["version"]
    if not version.startswith("3."):
        raise ExtensionError(f"MathJax 3 is required, found version {version} at {package}. "
                             + INSTALL_HINT.format(path=es5))
    return es5


def _plain(latex: str) -> str:
    """BibTeX text without braces or accents commands (``{\\"O}zt{\\"u}rk`` -> ``Öztürk``)."""
    from pybtex.richtext import Text

    return str(Text.from_latex(latex)) if "{" in latex or "\\" in latex else latex


class AuthorYearLabels(BaseLabelStyle):
    """Labels such as "Cover and Thomas, 2006" and "Alemi et al., 2018", as the author_year citations read.

    Entries that would share a label get "a", "b", ... after the year, so every label stays unique.
    """

    def _label(self, entry: Any) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
        if not names:
            names = [_plain(entry.fields.get("organization", entry.key))]
        if len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who}, {entry.fields.get('year', 'n.d.')}"

    def format_labels(self, sorted_entries: Any) -> Any:
        labels = [self._label(entry) for entry in sorted_entries]
        counts = {label: labels.count(label) for label in labels}
        seen: dict[str, int] = {}
        for label in labels:
            if counts[label] > 1:
                seen[label] = seen.get(label, 0) + 1
                label = f"{label}{chr(ord('a') + seen[label] - 1)}"
            yield label


class AuthorYearStyle(UnsrtStyle):
    """pybtex's unsrt formatting, sorted by author and year, with :class:`AuthorYearLabels`."""

    default_label_style = "klbook_author_year"
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.labels", "klbook_author_year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "klbook_author_year", AuthorYearStyle)


def _configure(app: Sphinx, config: Config) -> None:
    """Add our templates (before the builder loads any) and fix the theme's default mode."""
    config.templates_path.insert(0, str(HERE / "templates"))
    # Our own static folder (one CSS file). Jupyter Book scans only the book's _static for .js files.
    config.html_static_path.append(str(HERE / "static"))
    # The PyData theme reads its default colour mode from the template context, not the theme options.
    config.html_context.setdefault("default_mode", "auto")
    # pydata-sphinx-theme 0.17 fills an unset `navbar_persistent` with its search field, which draws the
    # PyData top bar that sphinx-book-theme 1.3 means to leave empty: a second search box, a bar that
    # clips the book's title at the top of the sidebar, and hidden copies of the sidebar toggles. Both
    # themes' scripts bind their click listeners to the FIRST `.primary-toggle`/`.secondary-toggle` of the
    # page, i.e. those hidden copies, so the visible ☰ and "Contents" buttons opened nothing at any width
    # (pydata-sphinx-theme issue #2451). With the bar empty, the theme renders no header and the visible
    # buttons are the only (first) ones.
    config.html_theme_options.setdefault("navbar_persistent", [])
    # Bibliography labels as the text cites them (unless the book chose another style).
    if getattr(config, "bibtex_default_style", None) == "alpha":
        config.bibtex_default_style = "klbook_author_year"
    # A favicon: without a <link rel="icon"> every browser asks for /favicon.ico, a 404 in the console.
    if not config.html_favicon:
        config.html_favicon = str(HERE / "static" / "favicon.svg")


def _use_local_mathjax(app: Sphinx) -> None:
    """Point MathJax at the local copy; stop here, before any page is read, if it is not installed."""
    if app.builder.format != "html":
        return
    mathjax_source()
    app.config.mathjax_path = f"{MATHJAX_TARGET}/{MATHJAX_COMPONENT}"  # relative: served from _static/
    # Lazy typesetting: a chapter holds 180-330 formulas, and typesetting all of them before the first
    # one shows took 2.5-8 s. MathJax's ui/lazy typesets what is on screen (and within lazyMargin of it)
    # first and the rest as it scrolls into view; printing typesets everything (its beforeprint handler).
    # Equation numbers are Sphinx's own HTML, not MathJax's, so typesetting out of order changes none.
    mathjax = app.config.mathjax3_config = dict(app.config.mathjax3_config or {})
    loader = mathjax["loader"] = dict(mathjax.get("loader", {}))
    loader["load"] = [*(n for n in loader.get("load", []) if n != "ui/lazy"), "ui/lazy"]
    mathjax["options"] = {"lazyMargin": MATHJAX_LAZY_MARGIN, **mathjax.get("options", {})}


def _label_proofs_in_latex(app: Sphinx) -> None:
    """Give theorems their document's name in the PDF's labels, so that ``{prf:ref}`` links resolve.

    sphinx-proof 0.4 finds a theorem's document by matching section names against the document titles,
    which fails in the LaTeX builder's merged doctree: it wrote ``\\label{None:thm-ch8-rl-optimum}``,
    and every reference to Theorem 8.1 was an undefined reference in the PDF. Its LaTeX visitors are
    wrapped so that such a label takes the name of the document being written.
    """
    if app.builder.format != "latex":
        return
    handlers = app.registry.translation_handlers.get("latex", {})
    for name, (visit, depart) in list(handlers.items()):
        if getattr(visit, "__module__", "") == "sphinx_proof.nodes" and "enumerable" in visit.__name__:
            handlers[name] = (functools.partial(_visit_with_docname, visit), depart)


def _visit_with_docname(visit: Callable[[Any, Any], None], translator: Any, node: Any) -> None:
    start = len(translator.body)
    visit(translator, node)
    docname = translator.curfilestack[-1] if translator.curfilestack else None
    if docname:
        translator.body[start:] = [part.replace("\\label{None:", "\\label{" + docname + ":")
                                   for part in translator.body[start:]]


def _is_thebe(asset: Any) -> bool:
    filename = getattr(asset, "filename", "") or ""
    body = getattr(asset, "attributes", {}).get("body", "") or ""
    return "thebe" in filename or "THEBE_JS_URL" in body


def _is_mathjax(asset: Any) -> bool:
    filename = getattr(asset, "filename", "") or ""
    body = getattr(asset, "attributes", {}).get("body", "") or ""
    return MATHJAX_TARGET + "/" in filename or body.lstrip().startswith("window.MathJax")


def _asset_key(asset: Any) -> tuple:
    attributes = getattr(asset, "attributes", {})
    return (getattr(asset, "filename", "") or "", tuple(sorted(attributes.items())))


def _drop_thebe_nodes(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Remove the inert Thebe configuration that sphinx-thebe appends to every page."""
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "text/x-thebe-config" in text or "<script>kernelName =" in text:
            node.parent.remove(node)


#: Keeps the element a link leads to (``#fragment``) where the browser scrolled it, while the page settles.
#: After the load event MathJax typesets the formulas near the screen (and BokehJS draws its figures), which
#: changes the height of what lies above the target; the browser's scroll anchoring compensates only in
#: part, so a link into a chapter (a "Cited in" link, an equation reference from another page) could land
#: 27-106 px off, or under the header (3 of 8 sampled targets in chapters 5 and 7, 2026-12-06). Each change of the article's size scrolls the target back to where it was
#: put, until the reader scrolls, clicks or types, or 10 s have passed.
HOLD_TARGET = """(() => {
  let target = null, top = 0, until = 0;
  const hold = () => {
    target = null;
    const id = decodeURIComponent(location.hash.slice(1));
    const element = id && document.getElementById(id);
    if (!element) return;
    target = element;
    top = element.getBoundingClientRect().top;
    until = performance.now() + 10000;
  };
  const release = () => { target = null; };
  const settle = () => {
    if (!target || !target.isConnected || performance.now() > until) return release();
    const shift = target.getBoundingClientRect().top - top;
    if (Math.abs(shift) >= 1) window.scrollBy(0, shift);
  };
  window.addEventListener('load', () => {
    hold();
    new ResizeObserver(settle).observe(document.querySelector('main') || document.body);
  });
  window.addEventListener('hashchange', hold);
  for (const type of ['wheel', 'touchstart', 'keydown', 'mousedown'])
    window.addEventListener(type, release, {passive: true, capture: true});
})();"""


#: British -ise/-isation forms and the American -ize/-ization spelling searched for instead.
_BRITISH = re.compile(r"\b([a-z]{3,}i)s(e|es|ed|ing|ation|ations|er|ers)\b")


def _add_other_spellings(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """A keywords meta node with the -ize spelling of every -ise word of the page, for the search index."""
    words = set(_BRITISH.findall(doctree.astext().lower()))
    if not words:
        return
    american = sorted(f"{stem}z{ending}" for stem, ending in words)
    doctree.insert(0, nodes.meta(name="keywords", content=", ".join(american)))


#: Glossary terms that are also everyday words; linking their first use would often link the wrong sense.
_TERMS_NOT_LINKED = {"bit", "nat", "rate", "support", "prior", "evidence", "distortion", "entropy",
                     "encoder", "decoder"}
#: Text inside these is never linked to the glossary.
_NO_TERM_LINKS = (nodes.title, nodes.rubric, nodes.reference, nodes.literal, nodes.literal_block, nodes.math,
                  nodes.math_block, nodes.raw, nodes.caption, nodes.term, nodes.label, nodes.citation,
                  nodes.field_name, nodes.FixedTextElement)


#: TeX in a glossary definition, as plain text for the hover title of a term's link (a title attribute
#: cannot hold typeset math). Longer commands are matched first (``\\nabla`` before ``\\ne``).
_TEX_AS_TEXT = {
    r"\operatorname": "", r"\mathrm": "", r"\mathcal": "", r"\mathbb": "", r"\tfrac12": "½",
    r"\Vert": "‖", r"\mid": " | ", r"\sim": "~", r"\otimes": "⊗", r"\odot": "⊙", r"\approx": "≈",
    r"\ge": "≥", r"\ne": "≠", r"\int": "∫", r"\sum": "Σ", r"\nabla": "∇", r"\log": "log",
    r"\ln": "ln", r"\big": "", r"\theta": "θ", r"\phi": "φ", r"\beta": "β", r"\mu": "μ",
    r"\sigma": "σ", r"\tau": "τ", r"\varepsilon": "ε", r"\,": " ", r"\ ": " ",
}
_TEX_COMMAND = re.compile("|".join(re.escape(c) for c in sorted(_TEX_AS_TEXT, key=len, reverse=True)))


def _tex_as_text(tex: str) -> str:
    """``D_{\\mathrm{KL}}(P\\,\\Vert\\,Q)`` -> ``D_KL(P ‖ Q)``: readable in a tooltip, not typeset."""
    text = _TEX_COMMAND.sub(lambda m: _TEX_AS_TEXT[m.group(0)], tex)
    text = text.replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", text).strip()


def _plain_text(node: nodes.Node) -> str:
    """A node's text with its inline math written as plain text."""
    if isinstance(node, nodes.math):
        return _tex_as_text(node.astext())
    if isinstance(node, nodes.Text):
        return str(node)
    return "".join(_plain_text(child) for child in node.children)


def _glossary(app: Sphinx) -> dict[str, tuple[str, str, str]]:
    """Glossary terms: lower-case term -> (term, docname, anchor, first sentence of the definition)."""
    terms = {}
    objects = app.env.get_domain("std").objects  # type: ignore[attr-defined]
    definitions: dict[str, str] = {}
    for (kind, term), (docname, anchor) in objects.items():
        if kind != "term" or term.lower() in _TERMS_NOT_LINKED:
            continue
        if docname not in definitions:
            doctree = app.env.get_doctree(docname)
            for item in doctree.findall(nodes.definition_list_item):
                ids = [i for t in item.findall(nodes.term) for i in t["ids"]]
                text = " ".join(_plain_text(d) for d in item.findall(nodes.definition)).split("\n")
                for i in ids:
                    definitions[i] = " ".join(text)
            definitions.setdefault(docname, "")
        terms[term.lower()] = (term, docname, anchor, definitions.get(anchor, "")[:300])
    return terms


def _link_glossary_terms(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Link the first use of each glossary term in a chapter (a page that is not the glossary itself)."""
    if app.builder.format != "html":
        return
    terms = {k: v for k, v in _glossary(app).items() if v[1] != docname}
    if not terms:
        return
    names = sorted(terms, key=len, reverse=True)  # "KL divergence" before a shorter term inside it
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")(s?)\b", re.IGNORECASE)
    linked: set[str] = set()
    for text in list(doctree.findall(nodes.Text)):
        if len(linked) == len(terms):
            break
        parent = text.parent
        if parent is None or any(isinstance(a, _NO_TERM_LINKS) for a in _ancestors(text)):
            continue
        source = str(text)
        pieces: list[nodes.Node] = []
        position = 0
        for match in pattern.finditer(source):
            key = match.group(1).lower()
            if key in linked:
                continue
            linked.add(key)
            _, target_doc, anchor, definition = terms[key]
            uri = app.builder.get_relative_uri(docname, target_doc) + "#" + anchor
            pieces.append(nodes.Text(source[position:match.start()]))
            link = nodes.reference("", match.group(0), internal=True, refuri=uri, classes=["klbook-term"])
            if definition:
                link["reftitle"] = definition
            pieces.append(link)
            position = match.end()
        if pieces:
            pieces.append(nodes.Text(source[position:]))
            parent.replace(text, [p for p in pieces if not isinstance(p, nodes.Text) or str(p)])


def _add_back_references(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Under each bibliography entry, links back to every place that cites it ("Cited in: 5. The VAE ...").

    sphinxcontrib-bibtex 2.7 gives back-references only to citations on the bibliography's own page; the
    chapters cite from other pages, so a reader who followed a citation had no way back. Each citation in
    a chapter is a ``span.bibtex-citation`` with the id the bibtex domain records (``citation_ref_id``).
    """
    if app.builder.format != "html":
        return
    citations = list(doctree.findall(nodes.citation))
    if not citations:
        return
    domain = app.env.get_domain("cite")
    key_of = {c.citation_id: c.key for c in domain.citations}  # type: ignore[attr-defined]
    places: dict[str, list[tuple[str, str]]] = {}
    for ref in domain.citation_refs:  # type: ignore[attr-defined]
        for target in ref.targets:
            places.setdefault(target.key, []).append((ref.docname, ref.citation_ref_id))
    for citation in citations:
        key = next((key_of[i] for i in citation["ids"] if i in key_of), None)
        cited = sorted(set(places.get(key, [])))
        if not cited:
            continue
        para = nodes.paragraph(classes=["klbook-cited-in"])
        para += nodes.Text("Cited in: ")
        by_doc: dict[str, list[str]] = {}
        for doc, ref_id in cited:
            by_doc.setdefault(doc, []).append(ref_id)
        for n, (doc, ref_ids) in enumerate(sorted(by_doc.items())):
            if n:
                para += nodes.Text("; ")
            uri = app.builder.get_relative_uri(docname, doc)
            title = app.env.titles[doc].astext() if doc in app.env.titles else doc
            number = app.env.toc_secnumbers.get(doc, {}).get("")  # the chapter's number, if numbered
            if number:
                title = ".".join(map(str, number)) + ". " + title
            para += nodes.reference("", title, internal=True, refuri=f"{uri}#{ref_ids[0]}")
            if len(ref_ids) > 1:
                para += nodes.Text(" (")
                for m, ref_id in enumerate(ref_ids[1:], start=2):
                    if m > 2:
                        para += nodes.Text(", ")
                    para += nodes.reference("", str(m), internal=True, refuri=f"{uri}#{ref_id}",
                                            reftitle=f"citation {m} in {title}")
                para += nodes.Text(")")
        para += nodes.Text(".")
        citation += para


def _ancestors(node: nodes.Node):
    node = node.parent
    while node is not None:
        yield node
        node = node.parent


def _clean_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Drop Thebe's assets (and MathJax where the page has no math), deduplicate scripts, and make the
    source download a real download."""
    # Sphinx loads MathJax on a page when the page OR any page in its toctree has math, so the root page,
    # whose toctree lists every chapter, loaded it without a formula: only where this page has math.
    no_math = doctree is not None and not any(doctree.findall(lambda n: isinstance(n, (nodes.math, nodes.math_block))))
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not assets:
            continue
        seen: set[tuple] = set()
        kept = []
        for asset in assets:
            k = _asset_key(asset)
            if _is_thebe(asset) or k in seen or (no_math and _is_mathjax(asset)):
                continue
            seen.add(k)
            kept.append(asset)
        assets[:] = kept  # in place: Sphinx restores the list from its own copy after each page

    if not no_math and "pathto" in context and any(_is_mathjax(a) for a in context.get("script_files", [])):
        # Fetch what MathJax asks for only once it runs (its ui/lazy extension; the fonts once it has
        # typeset) together with MathJax itself.
        static = context["pathto"](f"_static/{MATHJAX_TARGET}/", 1)
        context["metatags"] = context.get("metatags", "") + "".join(
            [f'\n<link rel="preload" href="{static}ui/lazy.js" as="script" />']
            + [f'\n<link rel="preload" href="{static}output/chtml/fonts/woff-v2/{font}.woff" as="font" '
               'type="font/woff" crossorigin />' for font in MATHJAX_PRELOADED_FONTS])

    if "body" in context:
        context["body"] = _CODE_CELL.sub(_with_line_count, context["body"])

    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            if button.get("label") == "download-source-button":
                button["download"] = button["url"].rsplit("/", 1)[-1]


def _with_line_count(match: re.Match) -> str:
    code = match.group(2)
    lines = code.count("\n") + (not code.endswith("\n"))
    return f'<div class="cell_input docutils container" style="--klbook-lines: {lines}">{match.group(1)}'


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy MathJax's es5 tree (and its licence) into ``<outdir>/_static/mathjax``."""
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / MATHJAX_TARGET
    shutil.copytree(source, target, dirs_exist_ok=True)
    shutil.copy2(source.parent / "LICENSE", target / "LICENSE")
    logger.info("[klbook_site] MathJax copied to %s", target)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _configure, priority=900)
    app.add_css_file("klbook-site.css")
    app.add_js_file(None, body=HOLD_TARGET)
    app.connect("builder-inited", _use_local_mathjax)
    app.connect("builder-inited", _label_proofs_in_latex)
    app.connect("doctree-resolved", _drop_thebe_nodes, priority=999)
    app.connect("doctree-resolved", _add_other_spellings)
    app.connect("doctree-resolved", _link_glossary_terms)
    app.connect("doctree-resolved", _add_back_references)
    app.connect("html-page-context", _clean_page, priority=999)
    app.connect("build-finished", _copy_mathjax)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
