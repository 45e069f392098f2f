"""The HTML site's first screens of math rendered at build time (book/_ext/klbook_site.py,
``_render_math``, and book/_ext/mathjax_ssr.js): MathJax under node replaces the TeX of the formulas in
each page's first screens by CommonHTML; the rest stays for MathJax in the browser.

Runs on a tiny site written here in the shape Sphinx writes (no book build needed). Needs node (Debian's
``nodejs``) and the ``mathjax`` package (django-static-mathjax, from requirements.txt); without node the
tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import klbook_site

SCRIPTS = ('    <script>window.MathJax = {"options": {"processHtmlClass": "tex2jax_process|mathjax_process|math"}}'
           '</script>\n    <script defer="defer" src="../_static/mathjax/tex-chtml.js?v=1"></script>\n')
PAGE = f"""<!DOCTYPE html>
<html><head>
    <script src="../_static/doctools.js?v=1"></script>
{SCRIPTS}</head><body>
<p>The divergence <span class="math notranslate nohighlight">\\(D_{{\\mathrm{{KL}}}}(P \\,\\Vert\\, Q) &lt; \\infty\\)</span> is finite.</p>
<div class="math notranslate nohighlight" id="equation-elbo">
<span class="eqno">(5.1)<a class="headerlink" href="#equation-elbo" title="Link to this equation">#</a></span>\\[\\begin{{aligned}} \\log p(x) &amp;\\ge \\mathbb{{E}}_q[\\log p(x, z)] \\end{{aligned}}\\]</div>
<div class="math notranslate nohighlight">
\\[\\tfrac12 \\sigma^2\\]</div>
</body></html>
"""


def _site(tmp_path: Path, body: str = PAGE) -> Path:
    (tmp_path / "_static").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "page.html").write_text(body, encoding="utf8")
    return tmp_path


def _render(site: Path) -> None:
    app = SimpleNamespace(outdir=str(site), builder=SimpleNamespace(format="html"),
                          config=SimpleNamespace(mathjax3_config={}))
    klbook_site._render_math(app, None)


@pytest.fixture(autouse=True)
def _node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KLBOOK_NODE", raising=False)
    monkeypatch.setenv("KLBOOK_MATH_AT_BUILD", "1")
    if shutil.which("node") is None:
        message = "node is not installed (apt-get install -y nodejs): the math is typeset in the browser"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is a failure)", pytrace=False)
        pytest.skip(message)


def test_every_formula_is_rendered_and_the_page_loads_no_mathjax(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _render(site)
    page = (site / "book" / "page.html").read_text(encoding="utf8")
    assert page.count("<mjx-container") == 3
    assert "\\(" not in page and "\\[" not in page and "\\mathrm" not in page, "TeX left in the page"
    assert "window.MathJax" not in page and "mathjax/tex-chtml.js" not in page
    assert "doctools.js" in page, "a script that is not MathJax's was removed"
    assert '<link rel="stylesheet" type="text/css" href="../_static/klbook-math.css" />' in page
    # Sphinx's equation number stays, before the formula, and display math is display math
    assert '<span class="eqno">(5.1)<a class="headerlink" href="#equation-elbo"' in page
    assert page.index('class="eqno"') < page.index('<mjx-container data-klbook-built="" class="MathJax" jax="CHTML" display="true"')
    # hidden MathML for screen readers, as client-side MathJax adds
    assert page.count("<mjx-assistive-mml") == 3 and ">KL</mi>" in page
    assert "mjx-merror" not in page


def test_the_stylesheet_names_the_sites_own_fonts(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _render(site)
    css = (site / "_static" / "klbook-math.css").read_text(encoding="utf8")
    assert "@font-face" in css and 'url("mathjax/output/chtml/fonts/woff-v2/MathJax_Zero.woff")' in css
    assert "mjx-c.mjx-c1D437.TEX-I::before" in css, "no rule for the characters used (D)"
    fonts = klbook_site.mathjax_source() / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Zero.woff").is_file(), "the fonts the stylesheet names are not in the package"


def test_a_second_run_changes_nothing_and_keeps_every_rule(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _render(site)
    page, css = (site / "book" / "page.html").read_text(encoding="utf8"), (site / "_static" / "klbook-math.css").read_text(encoding="utf8")
    (site / "book" / "other.html").write_text(PAGE.replace("\\sigma", "\\omega").replace("D_", "X_"), encoding="utf8")
    _render(site)  # an incremental build: only other.html is new
    assert (site / "book" / "page.html").read_text(encoding="utf8") == page
    merged = (site / "_static" / "klbook-math.css").read_text(encoding="utf8")
    assert "mjx-c.mjx-c1D437.TEX-I::before" in merged, "the rules of the pages not rebuilt were dropped"
    assert "mjx-c.mjx-c1D714.TEX-I::before" in merged and len(merged) > len(css)


def test_bad_tex_is_reported_and_left_to_mathjax_in_the_browser(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    site = _site(tmp_path, PAGE.replace("\\tfrac12", "\\nosuchmacro"))
    with caplog.at_level(logging.WARNING):
        _render(site)
    page = (site / "book" / "page.html").read_text(encoding="utf8")
    assert page.count("<mjx-container") == 2 and "\\[\\nosuchmacro \\sigma^2\\]" in page
    assert "mathjax/tex-chtml.js" in page, "MathJax, needed for the formula left, was removed"
    assert any("nosuchmacro" in r.getMessage() for r in caplog.records), "the bad TeX was not reported"


def test_only_the_first_screens_are_rendered(tmp_path: Path) -> None:
    words = "<p>" + "word " * 3000 + "</p>\n"
    site = _site(tmp_path, PAGE.replace("<body>", "<body><article>").replace('<div class="math notranslate nohighlight">\n\\[\\tfrac12',
                                        words + '<div class="math notranslate nohighlight">\n\\[\\tfrac12'))
    _render(site)
    page = (site / "book" / "page.html").read_text(encoding="utf8")
    assert page.count("<mjx-container") == 2, "the formula far below the first screen was rendered"
    assert "\\[\\tfrac12 \\sigma^2\\]" in page and "mathjax/tex-chtml.js" in page
    assert "klbook-math.css" in page


def test_without_node_the_pages_keep_mathjax(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KLBOOK_NODE", "")
    site = _site(tmp_path)
    _render(site)
    assert (site / "book" / "page.html").read_text(encoding="utf8") == PAGE
    assert not (site / "_static" / "klbook-math.css").exists()


def test_off_unless_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KLBOOK_MATH_AT_BUILD")
    site = _site(tmp_path)
    _render(site)
    assert (site / "book" / "page.html").read_text(encoding="utf8") == PAGE
