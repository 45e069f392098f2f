"""The built HTML book, read in a real browser (Debian's Chromium driven by Playwright).

Run after building the site: ``make html && make browser`` (``pytest tests -m browser``). The site is
served from ``_build/html`` (or ``$KLBOOK_SITE``) by a local HTTP server on 127.0.0.1, and every page is
opened in a fresh browser context:

* every page in ``_toc.yml`` plus Sphinx's own pages (``index.html``, ``genindex.html``, ``search.html``);
  a separate test makes sure the site holds no other HTML page (nothing the toc does not list);
* each must answer HTTP 200, log no console error and throw no uncaught exception, load every request
  from the local server only (anything else is blocked and reported: the book must work offline and
  must not contact other hosts while it is read), and load every image;
* math is typeset (no raw TeX left, no MathJax error) by the site's own MathJax;
* solutions of exercises are collapsed; the download button gives a real notebook; Colab and Binder
  launch buttons are on every chapter; search finds "ELBO";
* what a reader sees, at a laptop's 1280 x 800 and a phone's 390 x 844: at 1280 px no display equation,
  code cell, output or table is wider than the text column; at 390 px nothing is cut off (whatever is
  wider than the screen scrolls inside its own box) and the page never scrolls sideways; a real click on
  the visible sidebar buttons opens the sidebars; every figure is numbered, captioned and has an alt text
  that is not a file name, is shown undistorted, and its smallest text is legible at both widths (on a
  phone a figure of panels side by side shows them stacked, fitting the column; any other picture keeps a
  legible width and scrolls sideways in its own box, the caption stays in the column); MathJax is loaded
  only where there is math, and the time from navigation to typeset math is
  measured (``test-artifacts/math-times.json``);
* a screenshot of every page in the toc, at both widths in light and in dark mode, goes to
  ``test-artifacts/screenshots/`` for a person to look at.

Without Chromium or Playwright the tests skip with a message saying how to install them, except when
the environment variable ``CI`` is set: then they fail, because CI must run them.
"""

from __future__ import annotations

import html
import http.server
import json
import os
import re
import shutil
import statistics
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("KLBOOK_SITE", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
MATH_TIMES = ROOT / "test-artifacts" / "math-times.json"
#: Reader's screens: a laptop and a phone (CSS pixels).
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WIDTHS = (LAPTOP["width"], PHONE["width"])
#: Typeset mathematics should be on screen this soon after navigation (local server, cold cache): the goal.
MATH_SECONDS_GOAL = 1.5
#: MathJax typesets lazily (book/_ext/klbook_site.py): the formulas on the first screen first, the rest as
#: they come near the screen; the explorables' BokehJS loads after that (book/_ext/klbook_explorables.py).
#: Measured at 390 px, cold cache, local server, on the shared 2-core machine at load average 1.5-2.3
#: (2026-12-05 23:46 UTC, 5-7 loads a page): medians 0.74-1.36 s on the chapters (see README). One load
#: can be 0.1-0.5 s slower than the median when another process takes the CPU, so the test takes the MEDIAN of
#: MATH_LOADS fresh loads and fails above MATH_SECONDS_LIMIT: the goal plus a third for a loaded CI machine
#: (at load 8-11 on 2026-12-04 single loads were up to 1.9x the median). Was 4 s on single loads.
MATH_SECONDS_LIMIT = 2.0
#: Fresh loads (new browser context, cold cache) per page whose median is checked against the limit.
MATH_LOADS = 3
#: Smallest text in a figure on a phone, in CSS px. The figures are drawn for the 672 px column (10 pt
#: text at 13.9 px); shrunk to a phone's ~340 px column it was ~7 px. At 11 px (about the size of a
#: phone's own small print) every figure keeps at least 79 % of its natural width and scrolls sideways.
PHONE_FIGURE_TEXT_PX = 11.0
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Pages Sphinx writes by itself, not listed in the toc.
SPECIAL_PAGES = ("index.html", "genindex.html", "search.html")
#: The search test: a word every reader of the book looks for, and a page it must be found on.
SEARCH_WORD = "ELBO"
SEARCH_MUST_FIND = "book/05_vae.html"
#: The book spells the British way; a reader's American spelling must find the same chapter.
SEARCH_OTHER_SPELLINGS = ("reparameterization", "reparameterisation")
#: Text that is TeX source, which must not be visible once MathJax has typeset a page.
RAW_TEX = ("$$", "\\(", "\\)", "\\[", "\\]", "\\begin{", "\\frac", "\\mathrm", "\\mathbb", "\\mathcal",
           "\\operatorname", "\\sum", "\\int", "\\log", "\\Vert", "\\|", "\\mid", "\\sigma", "\\mu")
INLINE_DOLLAR_MATH = re.compile(r"\$[^$\s][^$\n]{0,200}\$")


def _unavailable(message: str) -> None:
    """Skip on a developer's machine; fail in CI, where the browser test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def _toc_docnames() -> list[str]:
    """Docnames (e.g. ``book/01_definition``) of every file in ``_toc.yml``, in reading order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    names = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                names.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return [re.sub(r"\.(md|ipynb)$", "", name) for name in names]


TOC_DOCNAMES = _toc_docnames()
TOC_PAGES = [f"{name}.html" for name in TOC_DOCNAMES]
NOTEBOOK_PAGES = [f"{name}.html" for name in TOC_DOCNAMES if (ROOT / f"{name}.ipynb").is_file()]
ALL_PAGES = TOC_PAGES + list(SPECIAL_PAGES)


# --------------------------------------------------------------------------------------------------
# Fixtures: the built site, a local HTTP server, Chromium
# --------------------------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".ipynb": "application/x-ipynb+json", ".js": "text/javascript"}

    def log_message(self, format: str, *args: object) -> None:
        pass


def chromium_executable() -> str:
    """$KLBOOK_CHROMIUM (another Chromium binary, e.g. for a local check), else Debian's Chromium.

    Skips the test without one, except in CI, where it fails (``_unavailable``).
    """
    override = os.environ.get("KLBOOK_CHROMIUM")
    if override:
        executable = override if Path(override).is_file() else None
    else:
        executable = next((p for p in CHROMIUM_CANDIDATES if Path(p).is_file()), shutil.which("chromium"))
    if not executable:
        _unavailable("Chromium not found: install Debian's browser with `apt-get install -y chromium` "
                     "(Playwright's own browser download is not used)")
    return executable


class PageLog:
    """Everything that went wrong while a page was open."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.bad_responses: list[str] = []
        self.external_requests: list[str] = []

    def problems(self) -> dict[str, list[str]]:
        found = {
            "console errors": self.console_errors,
            "uncaught JavaScript errors": self.page_errors,
            "failed requests": self.failed_requests,
            "HTTP errors": self.bad_responses,
            "requests to other hosts (blocked)": self.external_requests,
        }
        return {key: value for key, value in found.items() if value}


#: Records, in ms after navigation started, when MathJax's first pass is done (its startup promise, with
#: lazy typesetting placeholders for everything off screen) and when the reader first SEES typeset math:
#: the first frame in which every formula on the first screen is typeset (after MathJax's first pass), no
#: font is loading, and the MathJax font of every character class those formulas use has loaded (so a frame before the browser even asked for the fonts does not count).
_MATH_CLOCK = """(() => {
    const poll = () => {
        const promise = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
        if (promise) promise.then(() => { window.__klbookMathDone = performance.now(); });
        else setTimeout(poll, 5);
    };
    poll();
    const fontLoaded = family => Array.from(document.fonts)
        .some(f => f.family.replace(/["']/g, '') === family && f.status === 'loaded');
    const onScreen = () => {
        const shown = Array.from(document.querySelectorAll('span.math, div.math')).filter(el => {
            const r = el.getBoundingClientRect();
            return r.bottom > 0 && r.top < window.innerHeight && el.checkVisibility();
        });
        const typeset = shown.every(el => { const c = el.querySelector('mjx-container');
            return c && !c.querySelector('mjx-lazy') && c.getBoundingClientRect().width > 0; });
        // the font a character class draws with is the last of its family list (MJXZERO, MJXTEX-I)
        const families = typeset ? new Set(shown.flatMap(el => Array.from(el.querySelectorAll('mjx-math mjx-c'))
            .map(c => getComputedStyle(c).fontFamily.split(',').pop().trim().replace(/["']/g, '')))) : new Set();
        const fontsIn = document.fonts.status === 'loaded' && Array.from(families).every(fontLoaded);
        if (window.__klbookMathDone !== undefined && typeset && fontsIn) {
            window.__klbookMathOnScreen = performance.now();
            window.__klbookMathShown = shown.length;
        } else requestAnimationFrame(onScreen);
    };
    requestAnimationFrame(onScreen);
})();"""


def _open(browser: object, base_url: str, path: str, *, color_scheme: str = "light", width: int = 1280):
    """A fresh context (no stored state) and page with every event recorded; returns (context, page, log)."""
    viewport = LAPTOP if width == LAPTOP["width"] else {**PHONE, "width": width}
    context = browser.new_context(color_scheme=color_scheme, viewport=viewport,
                                  accept_downloads=True, service_workers="block")
    context.add_init_script(_MATH_CLOCK)
    log = PageLog(base_url)

    def route(route: object) -> None:
        url = route.request.url
        if url.startswith(base_url) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            log.external_requests.append(url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and log.console_errors.append(
        f"{m.text} ({m.location.get('url', '')}:{m.location.get('lineNumber', '')})"))
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.on("requestfailed", lambda r: r.url.startswith(base_url) and log.failed_requests.append(
        f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and log.bad_responses.append(f"{r.status} {r.url}"))
    return context, page, log


def _settle(page: object) -> None:
    """Wait until every image has loaded or failed, the math is typeset with its fonts (if it has math) and
    every explorable is drawn."""
    page.evaluate("""async () => {
        document.querySelectorAll('img[loading="lazy"]').forEach(img => { img.loading = 'eager'; });
        await Promise.all(Array.from(document.images).map(img => img.complete ? null :
            new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
    }""")
    if page.locator("script[src*='mathjax']").count():
        page.wait_for_function("() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise",
                               timeout=30_000)
        page.evaluate("async () => { await window.MathJax.startup.promise; return true; }")
        page.wait_for_function("() => window.__klbookMathOnScreen !== undefined", timeout=30_000)
        # Lazy typesetting leaves what is off screen for later: typeset it all, as printing does, so that
        # the checks and the full-page screenshots see every formula.
        page.evaluate("""async () => {
            const doc = window.MathJax.startup.document;
            if (doc.lazyTypesetAll) await doc.lazyTypesetAll();
            await document.fonts.ready;
        }""")
    # Code cells far from the screen are not rendered yet (content-visibility: auto, book/_ext/static/
    # klbook-site.css); they lay out exactly as when rendered (every cell's box was the same, 2026-12-05):
    # render them all, as a reader scrolling through sees them, for the checks and the full-page screenshots.
    page.add_style_tag(content=".bd-article div.cell_input { content-visibility: visible !important; }")
    # The explorables' BokehJS loads after the first screen of math (book/_ext/klbook_explorables.py): wait
    # until every explorable has drawn its sliders, so that the checks and the screenshots see it.
    figures = page.locator("div.klbook-explorable-figure")
    for i in range(figures.count()):
        figures.nth(i).locator(".noUi-handle").first.wait_for(timeout=30_000)


def _screenshot_name(path: str, mode: str, width: int) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{path.removesuffix('.html').replace('/', '__')}-{width}-{mode}.png"


# --------------------------------------------------------------------------------------------------
# The site as a whole
# --------------------------------------------------------------------------------------------------

def test_site_has_every_toc_page_and_nothing_else(site: Path) -> None:
    built = {p.relative_to(site).as_posix() for p in site.rglob("*.html")
             if not p.relative_to(site).parts[0].startswith("_")}
    missing = sorted(set(ALL_PAGES) - built)
    stray = sorted(built - set(ALL_PAGES))
    assert not missing, f"pages in _toc.yml that were not built: {missing}"
    assert not stray, f"pages in the site that _toc.yml does not list (exclude them in _config.yml): {stray}"


def test_glossary_links_preview_their_definition_without_raw_tex(site: Path) -> None:
    # A link's title attribute is shown as plain text on hover: TeX there would read "p_\theta(x\mid z)".
    titles = [html.unescape(title) for page in (site / "book").glob("*.html")
              for title in re.findall(r'class="[^"]*klbook-term[^"]*"[^>]*title="([^"]*)"'
                                      r'|title="([^"]*)"[^>]*class="[^"]*klbook-term',
                                      page.read_text(encoding="utf8"))
              for title in title if title]
    assert len(titles) > 20, "glossary terms are no longer linked from the chapters"
    raw = sorted({t for t in titles if "\\" in t or "{" in t})
    assert not raw, "hover definitions with raw TeX:\n  " + "\n  ".join(raw)


def test_mathjax_is_served_by_the_site(site: Path) -> None:
    component = site / "_static" / "mathjax" / "tex-chtml.js"
    assert component.is_file(), "MathJax was not copied into the site (book/_ext/klbook_site.py)"
    assert (site / "_static" / "mathjax" / "ui" / "lazy.js").is_file(), "MathJax's lazy typesetting is missing"
    fonts = list((site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert fonts, "MathJax's CommonHTML fonts are missing from the site"


# --------------------------------------------------------------------------------------------------
# Every page: one visit per page and colour mode, recorded once and checked by several tests
# --------------------------------------------------------------------------------------------------

_INSPECT = """() => {
    const nodes = Array.from(document.querySelectorAll('span.math, div.math'));
    const article = document.querySelector('article') || document.body;
    const copy = article.cloneNode(true);  // the visible prose: no code, outputs, typeset math, scripts
    copy.querySelectorAll('pre, code, .highlight, .cell_output, .output, mjx-container, script, style, '
                          + 'textarea, .headerlink').forEach(n => n.remove());
    // togglebutton hides a collapsed body with visibility: hidden and height 0
    const visible = el => el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})
        && el.getBoundingClientRect().height > 0;
    return {
        theme: document.documentElement.dataset.theme,
        brokenImages: Array.from(document.images)
            .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src),
        math: {
            count: nodes.length,
            // typeset: the formula's own container holds MathJax's output (a lazy placeholder holds only
            // mjx-lazy; MathJax 3.2.2's lazyTypesetAll may leave an empty one inside the hidden assistive
            // MathML of a formula it typesets, which shows nothing)
            untypeset: nodes.filter(n => !n.querySelector(':scope > mjx-container > mjx-math'))
                .map(n => n.textContent.slice(0, 80)),
            containers: document.querySelectorAll('mjx-container').length,
            errors: Array.from(document.querySelectorAll('mjx-merror'))
                .map(e => e.getAttribute('data-mjx-error') || e.textContent),
        },
        prose: copy.textContent,
        missingAnchors: Array.from(document.querySelectorAll('a[href^="#"]'))
            .map(a => decodeURIComponent(a.getAttribute('href').slice(1)))
            .filter(id => id && !document.getElementById(id)),
        localLinks: Array.from(document.querySelectorAll('a[href]'))
            .map(a => a.href).filter(h => h.startsWith(location.origin)),
        solutions: Array.from(document.querySelectorAll('div.solution')).map(sol => ({
            id: sol.id,
            dropdown: sol.classList.contains('dropdown'),
            titleVisible: Array.from(sol.querySelectorAll(':scope > .admonition-title')).some(visible),
            bodyVisible: Array.from(sol.querySelectorAll(':scope > :not(.admonition-title)')).some(visible),
        })),
        launch: Array.from(document.querySelectorAll('.dropdown-launch-buttons a')).map(a => a.href),
        download: Array.from(document.querySelectorAll('a.btn-download-source-button')).map(a => ({
            href: a.getAttribute('href'), download: a.getAttribute('download')})),
    };
}"""


_LAYOUT = """() => {
    const article = document.querySelector('article.bd-article');
    if (!article) return null;
    const cs = getComputedStyle(article);
    const box = article.getBoundingClientRect();
    const column = box.width - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const short = el => (el.getAttribute('aria-label') || el.textContent || el.getAttribute('alt') || '')
        .replace(/\\s+/g, ' ').trim().slice(0, 70);
    const where = el => { const s = el.closest('section[id]'); return s ? '#' + s.id : ''; };
    // 1280 px: boxes that need more room than they have (each scrolls, or would be cut)
    const tooWide = [];
    const check = (kind, el, need, have) => {
        if (need > have + 1) tooWide.push(`${kind} ${where(el)} needs ${Math.round(need)} px of `
                                         + `${Math.round(have)}: ${short(el)}`);
    };
    article.querySelectorAll('mjx-container[display="true"]').forEach(c => check('equation', c, c.scrollWidth, c.clientWidth));
    article.querySelectorAll('div.cell_input pre').forEach(p => check('code', p, p.scrollWidth, p.clientWidth));
    article.querySelectorAll('div.cell_output pre').forEach(p => check('output', p, p.scrollWidth, p.clientWidth));
    article.querySelectorAll('div.cell_output img').forEach(i => check('output image', i,
        i.getBoundingClientRect().width, column));
    article.querySelectorAll('table').forEach(t => check('table', t, t.getBoundingClientRect().width, column));
    // every width: anything that reaches past the screen's edges without being inside a box that scrolls
    const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
    const clipped = [];
    const vw = document.documentElement.clientWidth;
    for (const el of article.querySelectorAll('*')) {
        if (el.closest('mjx-assistive-mml, .visually-hidden, .sr-only')) continue;
        const r = el.getBoundingClientRect();
        if (!r.width || !r.height || (r.left >= -1 && r.right <= vw + 1)) continue;
        // reachable if some box around it scrolls and itself lies on the screen (tables scroll as a whole)
        let a = el.parentElement, inBox = false;
        while (a && a !== document.body && !inBox) {
            if (scrolls(a)) { const ar = a.getBoundingClientRect(); inBox = ar.left >= -1 && ar.right <= vw + 1; }
            a = a.parentElement;
        }
        if (!inBox && !clipped.some(c => el.closest(c.selector))) clipped.push({
            selector: el.tagName.toLowerCase() + (el.id ? '#' + CSS.escape(el.id) : ''),
            text: `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} ${where(el)} spans `
                  + `${Math.round(r.left)}..${Math.round(r.right)} px of ${vw}: ${short(el)}`});
    }
    // the pictures a reader sees: a figure of panels holds a second, stacked picture that shows only
    // where the figure is narrow (book/_ext/klbook_figures.py), the other one is then not rendered
    const figures = Array.from(article.querySelectorAll('img')).filter(img => img.getClientRects().length).map(img => {
        const fig = img.closest('figure');
        const caption = fig && fig.querySelector('figcaption');
        const r = img.getBoundingClientRect(), ic = getComputedStyle(img);
        const edge = side => parseFloat(ic['padding' + side]) + parseFloat(ic['border' + side + 'Width']);
        // the nearest box around the picture that scrolls sideways, and whether a reader can scroll it
        let box = img.parentElement;
        while (box && box !== article && !scrolls(box)) box = box.parentElement;
        let scroller = null;
        if (box && box !== article) {
            const br = box.getBoundingClientRect(), before = box.scrollLeft;
            box.scrollLeft = box.scrollWidth;
            const moves = box.scrollLeft > before;
            box.scrollLeft = before;
            scroller = {box: box.tagName.toLowerCase() + '.' + [...box.classList].join('.'),
                        left: br.left, right: br.right, clientWidth: box.clientWidth, moves,
                        holdsCaption: !!(caption && box.contains(caption))};
        }
        const cr = caption ? caption.getBoundingClientRect() : null;
        return {src: img.getAttribute('src'), alt: img.getAttribute('alt') || '',
                referenced: !!(fig && fig.id && document.querySelector(`a[href="#${CSS.escape(fig.id)}"]`)),
                number: caption ? (caption.querySelector('.caption-number') || {textContent: ''}).textContent.trim() : '',
                caption: caption ? caption.textContent.replace(/\\s+/g, ' ').trim() : '',
                // what the reader sees of it: a {panel} word shows only its word for the current layout
                captionSeen: caption ? caption.innerText.replace(/\\s+/g, ' ').trim() : '',
                stacks: !!(fig && fig.classList.contains('klbook-stacks')), phone: img.classList.contains('klbook-phone'),
                pictures: fig ? fig.querySelectorAll('img').length : 1,
                natural: img.naturalWidth, naturalHeight: img.naturalHeight, shown: r.width,
                // the picture itself: inside the padding and border the dark theme puts around it
                content: r.width - edge('Left') - edge('Right'), contentHeight: r.height - edge('Top') - edge('Bottom'),
                scroller, captionBox: cr && {left: cr.left, right: cr.right}};
    });
    return {
        column, tooWide, clipped: clipped.map(c => c.text),
        bodyFont: parseFloat(getComputedStyle(article.querySelector('p') || article).fontSize),
        sidewaysScroll: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        figures,
        hasMath: document.querySelectorAll('span.math, div.math').length > 0,
        loadsMathJax: document.querySelectorAll("script[src*='mathjax']").length > 0,
        mathMs: window.__klbookMathDone === undefined ? null : Math.round(window.__klbookMathDone),
        mathOnScreenMs: window.__klbookMathOnScreen === undefined ? null : Math.round(window.__klbookMathOnScreen),
        mathShown: window.__klbookMathShown === undefined ? null : window.__klbookMathShown,
    };
}"""

#: The sidebars a reader opens with the visible buttons at a phone's width.
_SIDEBARS = {"primary-toggle": "pst-primary-sidebar-modal", "secondary-toggle": "pst-secondary-sidebar-modal"}


def _sidebars_open(page: object) -> dict[str, str]:
    """Click each visible sidebar button like a reader; what happened (``"opens"`` or the problem)."""
    result = {}
    for button, dialog in _SIDEBARS.items():
        visible = [b for b in page.locator(f"button.{button}").all() if b.is_visible()]
        if not visible:
            result[button] = "no visible button"
            continue
        visible[0].click()
        page.wait_for_timeout(300)
        opened = page.evaluate("""id => { const d = document.getElementById(id);
            return !!(d && d.open && Array.from(d.querySelectorAll('a')).some(a => a.checkVisibility()
                   && a.getBoundingClientRect().width > 0)); }""", dialog)
        result[button] = "opens" if opened else "opens nothing"
        page.keyboard.press("Escape")
        page.wait_for_timeout(200)
    return result


@pytest.fixture(scope="session")
def visit(browser: object, base_url: str, site: Path):
    """``visit(path, mode, width)``: open the page once (cached), settle it, screenshot it, return what was seen."""
    cache: dict[tuple[str, str, int], dict] = {}

    def run(path: str, mode: str = "light", width: int = LAPTOP["width"]) -> dict:
        if (path, mode, width) in cache:
            return cache[(path, mode, width)]
        if not (site / path).is_file():
            pytest.fail(f"{path} was not built", pytrace=False)
        context, page, log = _open(browser, base_url, path, color_scheme=mode, width=width)
        try:
            response = page.goto(base_url + path, wait_until="load")
            status = response.status if response is not None else None
            if path == "index.html":  # a redirect to the root page of the toc
                page.wait_for_url(f"{base_url}{TOC_PAGES[0]}", wait_until="load")
            _settle(page)
            page.wait_for_timeout(200)  # let late console messages arrive
            report = page.evaluate(_INSPECT)
            report["layout"] = page.evaluate(_LAYOUT)
            report["url"] = page.url
            if path in TOC_PAGES:
                page.screenshot(path=str(_screenshot_name(path, mode, width)), full_page=True)
            if mode == "light" and width == LAPTOP["width"] and report["solutions"]:
                page.locator("div.solution > .admonition-title").first.click()  # opens the solution
                page.wait_for_timeout(400)
                report["first_solution_opens"] = page.evaluate(
                    "() => Array.from(document.querySelectorAll('div.solution')[0].querySelectorAll("
                    "':scope > :not(.admonition-title)')).some(el => el.checkVisibility("
                    "{checkOpacity: true, checkVisibilityCSS: true}) && el.getBoundingClientRect().height > 0)")
            if mode == "light" and width == PHONE["width"] and path in TOC_PAGES:
                page.evaluate("() => window.scrollTo(0, 0)")
                report["sidebars"] = _sidebars_open(page)
        finally:
            context.close()
        report.update(status=status, problems=log.problems())
        cache[(path, mode, width)] = report
        return report

    return run


@pytest.mark.parametrize("path", ALL_PAGES)
def test_page_reads_cleanly(visit, site: Path, path: str) -> None:
    """HTTP 200; no console/JS error, failed request or foreign host; images loaded; math typeset."""
    seen = visit(path)
    assert seen["status"] == 200, f"{path}: HTTP {seen['status']}"
    assert not seen["problems"], f"{path}: {json.dumps(seen['problems'], indent=1)}"
    assert not seen["brokenImages"], f"{path}: images that did not load: {seen['brokenImages']}"
    math = seen["math"]
    if math["count"]:
        assert math["containers"] > 0, f"{path}: has math but MathJax did not typeset it"
        assert not math["untypeset"], f"{path}: math left untypeset: {math['untypeset'][:5]}"
    assert not math["errors"], f"{path}: MathJax errors (bad TeX): {math['errors'][:5]}"
    prose = seen["prose"]
    raw = [token for token in RAW_TEX if token in prose] + INLINE_DOLLAR_MATH.findall(prose)
    assert not raw, f"{path}: raw TeX visible in the text: {raw[:10]}"
    assert not seen["missingAnchors"], \
        f"{path}: links to anchors that do not exist: {sorted(set(seen['missingAnchors']))}"
    missing_targets = sorted({link for link in seen["localLinks"]
                              if not (site / unquote(urlsplit(link).path).lstrip("/")).exists()})
    assert not missing_targets, f"{path}: links to files that do not exist: {missing_targets}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", TOC_PAGES)
def test_dark_mode(visit, path: str, width: int) -> None:
    """A reader whose system prefers dark gets the dark theme, with no error (screenshots: test-artifacts/)."""
    seen = visit(path, "dark", width)
    assert seen["theme"] == "dark", f"{path}: shows the {seen['theme']!r} theme to a reader who prefers dark"
    assert not seen["problems"], f"{path} (dark, {width} px): {json.dumps(seen['problems'], indent=1)}"
    assert not seen["brokenImages"], f"{path} (dark): images that did not load: {seen['brokenImages']}"
    assert visit(path)["theme"] == "light", f"{path}: a reader who prefers light does not get the light theme"


# --------------------------------------------------------------------------------------------------
# What a reader sees at a laptop's and a phone's width
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", TOC_PAGES)
def test_everything_fits_the_column_on_a_laptop(visit, path: str) -> None:
    """At 1280 px no display equation, code cell or table is wider than the text column."""
    layout = visit(path)["layout"]
    wide = [box for box in layout["tooWide"] if not box.startswith("output ")]
    assert not wide, (f"{path} at 1280 px: {len(wide)} boxes wider than the "
                      f"{layout['column']:.0f} px column:\n  " + "\n  ".join(wide))
    assert not layout["clipped"], f"{path} at 1280 px: cut off at the screen's edge: {layout['clipped'][:10]}"
    assert layout["sidewaysScroll"] <= 0, f"{path} at 1280 px: the page scrolls sideways"


@pytest.mark.parametrize("path", TOC_PAGES)
def test_printed_outputs_fit_the_column_on_a_laptop(visit, path: str) -> None:
    """At 1280 px no printed output is wider than the text column."""
    layout = visit(path)["layout"]
    wide = [box for box in layout["tooWide"] if box.startswith("output ")]
    assert not wide, (f"{path} at 1280 px: {len(wide)} outputs wider than the "
                      f"{layout['column']:.0f} px column:\n  " + "\n  ".join(wide))


@pytest.mark.parametrize("mode", ("light", "dark"))
@pytest.mark.parametrize("path", TOC_PAGES)
def test_nothing_is_cut_on_a_phone(visit, path: str, mode: str) -> None:
    """At 390 px whatever is wider than the screen scrolls inside its own box; the page never scrolls sideways."""
    seen = visit(path, mode, PHONE["width"])
    layout = seen["layout"]
    assert not seen["problems"], f"{path} (390 px, {mode}): {json.dumps(seen['problems'], indent=1)}"
    assert not layout["clipped"], (f"{path} at 390 px: cut off at the screen's edge (not in a box that "
                                   "scrolls):\n  " + "\n  ".join(layout["clipped"][:15]))
    assert layout["sidewaysScroll"] <= 0, f"{path} at 390 px: the page scrolls sideways by {layout['sidewaysScroll']} px"


@pytest.mark.parametrize("path", TOC_PAGES)
def test_phone_sidebar_buttons_open_the_sidebars(visit, path: str) -> None:
    """A real click on the visible ☰ and "Contents" buttons at 390 px opens the navigation and the page's contents."""
    sidebars = visit(path, "light", PHONE["width"])["sidebars"]
    assert sidebars["primary-toggle"] == "opens", f"{path} at 390 px: the ☰ button {sidebars['primary-toggle']}"
    if path in NOTEBOOK_PAGES:  # chapters have sections, so a page contents sidebar
        assert sidebars["secondary-toggle"] == "opens", \
            f"{path} at 390 px: the contents button {sidebars['secondary-toggle']}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", NOTEBOOK_PAGES)
def test_code_cells_keep_their_height_when_drawn(browser: object, base_url: str, path: str, width: int) -> None:
    """A code cell far from the screen is not drawn (content-visibility: auto) and takes the height reserved
    from its line count; drawn, it must have that same height, or the page moves under the reader and a
    link into the page lands elsewhere."""
    context, page, _ = _open(browser, base_url, path, width=width)
    try:
        page.goto(base_url + path, wait_until="load")
        heights = "() => Array.from(document.querySelectorAll('.bd-article div.cell_input'), c => c.getBoundingClientRect().height)"
        reserved = page.evaluate(heights)
        page.add_style_tag(content=".bd-article div.cell_input { content-visibility: visible !important; }")
        drawn = page.evaluate(heights)
    finally:
        context.close()
    moved = [(i, round(r, 1), round(d, 1)) for i, (r, d) in enumerate(zip(reserved, drawn)) if abs(r - d) > 1.0]
    assert not moved, f"{path} at {width} px: code cells (index, reserved px, drawn px) change height when drawn: {moved}"


#: Chapters where links were seen to land off their target before the page held it in place (2026-12-06,
#: 390 px: 3 of 8 sampled targets in each moved 27-106 px, one under the header, once MathJax had typeset
#: the formulas near the screen).
LANDING_PAGES = ("book/05_vae.html", "book/07_practice.html")
#: Targets sampled on each page (equations, figures, citations, evenly spread over the page).
LANDING_SAMPLES = 8


@pytest.mark.parametrize("path", LANDING_PAGES)
def test_links_into_a_chapter_stay_on_their_target(browser: object, base_url: str, path: str) -> None:
    """A link to an equation, figure or citation in a chapter puts its target at the top of the screen. Once
    the formulas near it are typeset, the target must still be where the browser put it (where scrolling it
    into view puts it), not pushed down or out of sight."""
    context, page, log = _open(browser, base_url, path, width=PHONE["width"])
    try:
        page.goto(base_url + path, wait_until="load")
        targets = page.evaluate("() => Array.from(document.querySelectorAll('div.math[id^=\"equation-\"], "
                                "figure[id], span.bibtex-citation[id]'), e => e.id)")
        assert len(targets) >= LANDING_SAMPLES, f"{path}: only {len(targets)} link targets"
        moved = []
        for target in targets[::len(targets) // LANDING_SAMPLES][:LANDING_SAMPLES]:
            page.goto(f"{base_url}{path}#{target}", wait_until="load")
            page.wait_for_function("() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise",
                                   timeout=30_000)
            page.evaluate("async () => { await window.MathJax.startup.promise; await document.fonts.ready; }")
            page.wait_for_timeout(1500)
            landed, placed = page.evaluate("""id => { const e = document.getElementById(id);
                const landed = e.getBoundingClientRect().top; e.scrollIntoView();
                return [landed, e.getBoundingClientRect().top]; }""", target)
            if abs(landed - placed) > 2:
                moved.append((target, round(landed), round(placed)))
    finally:
        context.close()
    assert not moved, f"{path} at 390 px: links land off their target (id, top px, top px in view): {moved}"
    assert not log.problems(), f"{path}: {json.dumps(log.problems(), indent=1)}"


FILE_NAME = re.compile(r"^\S+\.(png|svg|jpe?g|gif|webp)$|^[\w./-]*$", re.IGNORECASE)


@pytest.mark.parametrize("path", TOC_PAGES)
def test_figures_are_numbered_captioned_and_described(visit, path: str) -> None:
    """Every image is a numbered figure with a caption, referenced from the text; its alt text describes it."""
    bad = []
    for fig in visit(path)["layout"]["figures"]:
        if not fig["number"] or len(fig["caption"]) <= len(fig["number"]) + 10:
            bad.append(f"{fig['src']}: no number or caption ({fig['caption']!r})")
        if FILE_NAME.match(fig["alt"].strip()) or len(fig["alt"].split()) < 3:
            bad.append(f"{fig['src']}: alt text {fig['alt']!r} does not describe the figure")
        if not fig["referenced"]:
            bad.append(f"{fig['src']}: the text never refers to it ({{numref}})")
    assert not bad, f"{path}: {len(bad)} problems with figures:\n  " + "\n  ".join(bad)


def _png_dpi(png: Path) -> float | None:
    """The resolution a PNG records (its pHYs chunk, in dots per inch), or None."""
    data = png.read_bytes()
    at = data.find(b"pHYs")
    if at < 0:
        return None
    per_metre, unit = int.from_bytes(data[at + 4:at + 8], "big"), data[at + 12]
    return per_metre * 0.0254 if unit == 1 else None


@pytest.mark.parametrize("path", TOC_PAGES)
def test_figures_are_crisp_and_their_text_legible(visit, site: Path, path: str) -> None:
    """Every figure is crisp on a high-density screen and its smallest text legible at 1280 px.

    Crisp: SVG, or a PNG with at least twice as many pixels across as the CSS pixels it is shown in.
    Legible: klbook.plotting draws no text smaller than ``SMALLEST_FONT_PT``; shown at ``shown`` CSS px
    from a PNG ``natural`` px wide saved at ``dpi``, that text is ``pt * dpi / 72 * shown / natural`` px
    high, which must be at least 80 % of the body text.
    """
    from klbook.plotting.style import SMALLEST_FONT_PT

    layout = visit(path)["layout"]
    bad = []
    for fig in layout["figures"]:
        src = fig["src"]
        if src.lower().endswith(".svg") or not fig["shown"]:
            continue
        if fig["natural"] < 2 * fig["shown"] - 1:
            bad.append(f"{src}: {fig['natural']} px shown in {fig['shown']:.0f} px (less than 2x)")
        dpi = _png_dpi((site / path).parent / unquote(src))
        if dpi is None:
            bad.append(f"{src}: records no resolution (pHYs), so its text size is unknown")
            continue
        text_px = SMALLEST_FONT_PT * dpi / 72 * fig["shown"] / fig["natural"]
        if text_px < 0.8 * layout["bodyFont"]:
            bad.append(f"{src}: smallest text {text_px:.1f} px, under 80 % of the {layout['bodyFont']:.0f} px body")
        bad += _distorted(fig)
    assert not bad, f"{path}: {len(bad)} figures not crisp or not legible:\n  " + "\n  ".join(bad)


def _distorted(fig: dict) -> list[str]:
    """A problem if the picture is shown squeezed or stretched (its shape differs from the PNG's by > 2 %)."""
    if not fig["content"] or not fig["naturalHeight"]:
        return []
    shown, natural = fig["contentHeight"] / fig["content"], fig["naturalHeight"] / fig["natural"]
    if abs(shown / natural - 1) > 0.02:
        return [(f"{fig['number'] or fig['src']}: shown {fig['content']:.0f} x {fig['contentHeight']:.0f} px, distorted "
                 f"({shown / natural - 1:+.0%} in height for its width)")]
    return []


@pytest.mark.parametrize("mode", ("light", "dark"))
@pytest.mark.parametrize("path", TOC_PAGES)
def test_figures_are_legible_on_a_phone(visit, site: Path, path: str, mode: str) -> None:
    """At 390 px every figure's smallest text is at least ``PHONE_FIGURE_TEXT_PX`` CSS px high.

    A figure drawn for the 672 px column and shrunk to a phone's ~340 px would show its 10 pt text at ~7 px.
    Instead a figure of panels side by side shows them stacked, in a picture drawn for the phone (see
    :func:`test_figures_of_panels_stack_on_a_phone`); any other figure keeps a width at which its text is
    legible, and the picture (only the picture: the caption stays in the column) scrolls sideways inside
    its own box; the page itself never scrolls sideways. The text size is computed as in the laptop test,
    from the picture's displayed width (without
    the padding the dark theme adds around it), its PNG's width and resolution.
    """
    from klbook.plotting.style import SMALLEST_FONT_PT

    layout = visit(path, mode, PHONE["width"])["layout"]
    assert layout["sidewaysScroll"] <= 0, f"{path} at 390 px: the page scrolls sideways by {layout['sidewaysScroll']} px"
    bad = []
    for fig in layout["figures"]:
        src = fig["src"]
        if not src.lower().endswith(".svg"):
            dpi = _png_dpi((site / path).parent / unquote(src))
            if dpi is None:
                bad.append(f"{src}: records no resolution (pHYs), so its text size is unknown")
                continue
            text_px = SMALLEST_FONT_PT * dpi / 72 * fig["content"] / fig["natural"]
            if text_px < PHONE_FIGURE_TEXT_PX:
                bad.append(f"{fig['number'] or src}: smallest text {text_px:.1f} px (shown {fig['content']:.0f} px "
                           f"wide), under {PHONE_FIGURE_TEXT_PX} px")
        bad += _distorted(fig)
        box = fig["scroller"]
        if fig["shown"] > layout["column"] + 1:  # wider than the column: it must scroll in a box of its own
            if box is None or not box["moves"]:
                bad.append(f"{fig['number'] or src}: {fig['shown']:.0f} px wide in a {layout['column']:.0f} px "
                           "column, and no box around it scrolls sideways")
            elif box["holdsCaption"]:
                bad.append(f"{fig['number'] or src}: the caption scrolls sideways with the picture ({box['box']})")
            elif box["left"] < -1 or box["right"] > PHONE["width"] + 1:
                bad.append(f"{fig['number'] or src}: its scroll box spans {box['left']:.0f}..{box['right']:.0f} px "
                           f"of {PHONE['width']}")
        cap = fig["captionBox"]
        if cap and (cap["left"] < -1 or cap["right"] > PHONE["width"] + 1):
            bad.append(f"{fig['number'] or src}: the caption spans {cap['left']:.0f}..{cap['right']:.0f} px "
                       f"of {PHONE['width']}")
    assert not bad, (f"{path} at 390 px ({mode}): {len(bad)} figures too small to read or not scrollable:\n  "
                     + "\n  ".join(bad))


@pytest.mark.parametrize("mode", ("light", "dark"))
@pytest.mark.parametrize("path", NOTEBOOK_PAGES)
def test_figures_of_panels_stack_on_a_phone(visit, path: str, mode: str) -> None:
    """A figure of panels side by side shows them side by side at 1280 px and stacked at 390 px.

    Such a figure (``klbook.plotting.panel_figure``; ``figure.klbook-stacks`` in the page) holds two
    pictures, side by side and stacked (book/_ext/klbook_figures.py); a reader sees one of them: at 1280 px
    the side-by-side one, at 390 px the stacked one, which fits the column, so it does not scroll
    sideways, and is a column of panels (taller than wide). Its caption, as shown, places the panels as
    they are drawn (``{panel}`Left|Top```: "Left" at 1280 px, "Top" at 390 px). Its text size is checked
    with every other figure's by :func:`test_figures_are_legible_on_a_phone`.
    """
    laptop = [fig for fig in visit(path, mode, LAPTOP["width"])["layout"]["figures"] if fig["stacks"]]
    layout = visit(path, mode, PHONE["width"])["layout"]
    phone = [fig for fig in layout["figures"] if fig["stacks"]]
    assert [fig["number"] for fig in laptop] == [fig["number"] for fig in phone], \
        f"{path} ({mode}): a figure of panels does not show exactly one picture at each width"
    bad = []
    for fig in laptop:
        if fig["phone"] or fig["pictures"] != 2:
            bad.append(f"{fig['number']} at 1280 px: shows the stacked picture or does not hold both")
    for fig in phone:
        if not fig["phone"]:
            bad.append(f"{fig['number']} at 390 px: shows the side-by-side picture")
            continue
        if fig["shown"] > layout["column"] + 1 or (fig["scroller"] and fig["scroller"]["moves"]):
            bad.append(f"{fig['number']} at 390 px: {fig['shown']:.0f} px wide in a {layout['column']:.0f} px "
                       "column, it scrolls sideways")
        if fig["naturalHeight"] <= fig["natural"]:
            bad.append(f"{fig['number']} at 390 px: {fig['natural']} x {fig['naturalHeight']} px, not a column of panels")
        if re.search(r"\b(left|right)\b", fig["captionSeen"], re.I):
            bad.append(f"{fig['number']} at 390 px: its caption places panels left/right: {fig['captionSeen'][:120]}")
    for fig in laptop:
        if re.search(r"\b(top|bottom)\b", fig["captionSeen"], re.I):
            bad.append(f"{fig['number']} at 1280 px: its caption places panels top/bottom: {fig['captionSeen'][:120]}")
    assert not bad, f"{path} ({mode}): {len(bad)} figures of panels not stacked on a phone:\n  " + "\n  ".join(bad)


_math_times: dict[str, dict] = {}


def _math_on_screen_ms(browser: object, base_url: str, path: str) -> int:
    """One more fresh load of ``path`` at a phone's width: ms from navigation to the first screen of math."""
    context, page, _ = _open(browser, base_url, path, width=PHONE["width"])
    try:
        page.goto(base_url + path, wait_until="load")
        page.wait_for_function("() => window.__klbookMathOnScreen !== undefined", timeout=30_000)
        return round(page.evaluate("() => window.__klbookMathOnScreen"))
    finally:
        context.close()


@pytest.mark.parametrize("path", TOC_PAGES)
def test_mathjax_only_where_there_is_math_and_soon(visit, browser, base_url, path: str) -> None:
    """MathJax loads only on pages with math; the math on the first screen is typeset, with its fonts, within
    the limit (the median of MATH_LOADS fresh loads)."""
    layout = visit(path, "light", PHONE["width"])["layout"]
    if not layout["hasMath"]:
        assert not layout["loadsMathJax"], f"{path}: loads MathJax but has no math"
        return
    assert layout["loadsMathJax"], f"{path}: has math but does not load MathJax"
    assert layout["mathMs"] is not None, f"{path}: MathJax never finished typesetting"
    assert layout["mathOnScreenMs"] is not None, f"{path}: the math on the first screen was never typeset"
    loads = [layout["mathOnScreenMs"]] + [_math_on_screen_ms(browser, base_url, path)
                                          for _ in range(MATH_LOADS - 1)]
    median = statistics.median(loads)
    _math_times[path] = {"first screen ms": median, "loads ms": loads, "formulas on it": layout["mathShown"],
                         "first pass ms": layout["mathMs"]}
    MATH_TIMES.parent.mkdir(parents=True, exist_ok=True)
    MATH_TIMES.write_text(json.dumps(_math_times, indent=1), encoding="utf8")
    assert median <= MATH_SECONDS_LIMIT * 1000, \
        (f"{path}: the math on the first screen typeset {median:.0f} ms after navigation (median of {loads}; "
         f"goal {MATH_SECONDS_GOAL} s, limit {MATH_SECONDS_LIMIT} s)")


# --------------------------------------------------------------------------------------------------
# Chapters (notebooks): exercises, downloads, launch buttons
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", TOC_PAGES)
def test_solutions_are_collapsed(visit, path: str) -> None:
    solutions = visit(path)["solutions"]
    open_by_default = [s["id"] for s in solutions if not s["dropdown"] or s["bodyVisible"]]
    assert not open_by_default, f"{path}: solutions shown open (use `:class: dropdown`): {open_by_default}"
    assert all(s["titleVisible"] for s in solutions), f"{path}: a solution's title is hidden"
    if solutions:
        assert visit(path)["first_solution_opens"], f"{path}: clicking a collapsed solution does not open it"


def _notebook_from(data: bytes, where: str) -> dict:
    import nbformat

    notebook = nbformat.reads(data.decode("utf8"), as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells, f"{where}: notebook has no cells"
    return notebook


@pytest.mark.parametrize("path", NOTEBOOK_PAGES)
def test_download_button_gives_the_notebook(browser: object, base_url: str, tmp_path: Path, path: str) -> None:
    """The download menu's .ipynb entry saves a real notebook file (not JSON shown as text)."""
    context, page, log = _open(browser, base_url, path)
    try:
        page.goto(base_url + path, wait_until="load")
        link = page.locator("a.btn-download-source-button")
        assert link.count() == 1, f"{path}: no download button for the notebook"
        href = link.get_attribute("href")
        download_name = link.get_attribute("download")
        assert href and href.endswith(".ipynb"), f"{path}: download link {href!r} is not a notebook"
        assert download_name and download_name.endswith(".ipynb"), \
            f"{path}: the download link has no download attribute with a .ipynb name ({download_name!r})"
        page.locator(".dropdown-download-buttons button.dropdown-toggle").click()
        with page.expect_download() as info:
            link.click()
        download = info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
    finally:
        context.close()
    assert saved.name == Path(path).with_suffix(".ipynb").name, f"{path}: downloaded as {saved.name!r}"
    _notebook_from(saved.read_bytes(), f"{path} download")
    assert not log.problems(), f"{path}: {json.dumps(log.problems(), indent=1)}"


@pytest.mark.parametrize("path", NOTEBOOK_PAGES)
def test_downloaded_notebook_installs_klbook_where_missing(site: Path, path: str) -> None:
    """The notebook offered for download is the reader's notebook (book/_ext/klbook_notebooks.py); its first
    code cell provides klbook, and installs nothing from the placeholder repository."""
    notebook = _notebook_from((site / "_notebooks" / path).with_suffix(".ipynb").read_bytes(), path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path}: no code cell"
    first = code[0]
    assert first.metadata.get("klbook", {}).get("install"), f"{path}: first code cell is not the install cell"
    assert "import klbook" in first.source and "except ImportError" in first.source, \
        f"{path}: first code cell does not try `import klbook` first"
    executed = [line for line in first.source.splitlines() if not line.lstrip().startswith("#")]
    assert not any("git+https://github.com/klbook/klbook" in line for line in executed), \
        f"{path}: first code cell installs from the placeholder repository"


@pytest.mark.parametrize("path", NOTEBOOK_PAGES)
def test_launch_buttons(visit, path: str) -> None:
    """No Colab/Binder button opens a notebook from the placeholder repository (nobody owned by the project
    controls github.com/klbook/klbook); book/_ext/klbook_notebooks.py drops them until repository.url is real."""
    hrefs = visit(path)["launch"]
    assert not [h for h in hrefs if "klbook/klbook" in h], f"{path}: launch button to the placeholder: {hrefs}"


# --------------------------------------------------------------------------------------------------
# Citations: a preview at the citation, and a way back from the bibliography
# --------------------------------------------------------------------------------------------------

#: A chapter whose citations are checked, and the reference its first citation names.
CITING_PAGE = "book/05_vae.html"


def test_citation_previews_and_leads_back(browser: object, base_url: str) -> None:
    """Hovering a citation shows the full reference (offline); clicking it lands on the bibliography entry,
    whose "Cited in" link leads back to the citing paragraph of the chapter."""
    context, page, log = _open(browser, base_url, CITING_PAGE)
    try:
        page.goto(base_url + CITING_PAGE, wait_until="load")
        citation = page.locator("span.bibtex-citation a").first
        label, preview = citation.text_content().strip(), citation.get_attribute("title") or ""
        cite_id = citation.evaluate("a => a.closest('span.bibtex-citation').id")
        assert label.split(",")[0].split()[0] in preview and len(preview) > 40, \
            f"{CITING_PAGE}: citation {label!r} has no preview of its reference (title={preview!r})"
        citation.click()
        page.wait_for_url("**/bibliography.html#*")
        entry = page.locator("div.citation:target")
        assert entry.count() == 1, f"{CITING_PAGE}: citation {label!r} leads to no bibliography entry"
        assert label in entry.locator("span.label").text_content(), \
            f"{CITING_PAGE}: citation {label!r} leads to {entry.locator('span.label').text_content()!r}"
        back = entry.locator(f"p.klbook-cited-in a[href$='{Path(CITING_PAGE).name}#{cite_id}']")
        assert back.count() == 1, \
            f"bibliography entry {label!r}: no link back to its citation #{cite_id} in {CITING_PAGE}"
        back.click()
        page.wait_for_url(f"**/{CITING_PAGE}#{cite_id}")
        page.wait_for_timeout(300)
        on_screen = page.evaluate("id => { const r = document.getElementById(id).getBoundingClientRect();"
                                  " return r.top >= 0 && r.bottom <= window.innerHeight; }", cite_id)
        assert on_screen, f"the way back from the bibliography does not show citation #{cite_id}"
    finally:
        context.close()
    assert not log.problems(), f"citations: {json.dumps(log.problems(), indent=1)}"


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("word", [SEARCH_WORD, *SEARCH_OTHER_SPELLINGS])
def test_search_finds_elbo(browser: object, base_url: str, word: str) -> None:
    """Search finds the ELBO chapter, also under the American spelling of the book's British words."""
    context, page, log = _open(browser, base_url, "search.html")
    try:
        page.goto(f"{base_url}search.html?q={word}", wait_until="load")
        page.wait_for_selector("ul.search li", timeout=20_000)
        page.wait_for_function("() => !document.querySelector('#search-progress') || "
                               "!/Preparing|Searching/.test(document.querySelector('#search-progress').textContent)",
                               timeout=20_000)
        results = page.evaluate("() => Array.from(document.querySelectorAll('ul.search li a'))"
                                ".map(a => a.href)")
    finally:
        context.close()
    found = {urljoin(base_url, urlsplit(r).path)[len(base_url):] for r in results}
    assert SEARCH_MUST_FIND in found, f"searching {word!r} does not find {SEARCH_MUST_FIND} ({sorted(found)})"
    assert not log.problems(), f"search: {json.dumps(log.problems(), indent=1)}"
