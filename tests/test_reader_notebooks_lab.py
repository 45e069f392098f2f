"""The reader's notebooks opened in JupyterLab, in a real browser: their Markdown shows no raw MyST.

tests/test_reader_notebooks.py checks the notebooks' JSON; this test checks what a reader sees. It copies
the reader's notebooks the HTML build wrote (``<site>/_notebooks/book``, site at ``_build/html`` or
``$KLBOOK_SITE``) into an empty folder, starts one JupyterLab server on 127.0.0.1 over it (plain
JupyterLab as a reader has it: jupyterlab-myst disabled, no announcements, update check or extension
manager, nothing that goes to the network; notebooks open without starting a kernel), and opens every
chapter in one headless Chromium (Debian's, as in tests/test_browser.py). Once every Markdown cell is
rendered it asserts that the rendered text holds no role or directive syntax, that the page's glued
values are there as the page prints them, and that no request went to another host. A screenshot of each
chapter goes to ``test-artifacts/screenshots/lab-<chapter>.png``.

Marker ``site`` (``make reader-notebooks``). Without Chromium or Playwright it skips with a message,
except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_browser import CHROMIUM_ARGS, _unavailable, chromium_executable
from tests.test_reader_notebooks import CHAPTERS, SITE, _glued_values

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = Path(sys.executable).with_name("jupyter")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
TOKEN = "klbook-reader-notebooks-lab"
#: Syntax of MyST roles and directives that must never be visible in the rendered Markdown. A rendered
#: role keeps its name in braces before its (code-formatted) target, so the names are searched for.
RAW_MYST = ("{glue", "{eq}", "{cite", "{doc}", "{prf:", "```{", ":label:", "{numref}", "{ref}", "{math}",
            "{exercise}", "{solution", "{figure}", "{admonition}", "{note}", "{warning}", ":::")
#: Bounded waits (seconds): the server's start, one chapter's rendering, the server's stop.
START_SECONDS = 90
RENDER_SECONDS = 90
STOP_SECONDS = 15

#: The open notebook's panel, once it shows the given file: its cells, not a closing one's, are read.
_PANEL = """const panel = (path) => {
    const widget = window.jupyterapp.shell.currentWidget;
    return widget && widget.context && widget.context.path === path ? widget.node : null;
};"""
#: Close what is open and open one notebook (JupyterLab's own commands).
_OPEN = """async (path) => {
    await window.jupyterapp.commands.execute('application:close-all');
    await window.jupyterapp.commands.execute('docmanager:open', {path});
}"""
#: Every Markdown cell rendered (JupyterLab marks it jp-mod-rendered) and, where the notebook has math,
#: typeset by JupyterLab's MathJax (mjx-container elements).
_RENDERED = """([path, count, math]) => { """ + _PANEL + """
    const node = panel(path);
    if (!node) return false;
    const done = Array.from(node.querySelectorAll('.jp-MarkdownCell')).filter(c =>
        c.classList.contains('jp-mod-rendered') && c.querySelector('.jp-RenderedMarkdown')
        && c.querySelector('.jp-RenderedMarkdown').textContent.trim());
    return done.length === count && (!math || node.querySelectorAll('.jp-MarkdownCell mjx-container').length > 0);
}"""
#: The rendered text of every Markdown cell, folded <details> included (textContent, not innerText).
_TEXT = """(path) => { """ + _PANEL + """
    return Array.from(panel(path).querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown'))
        .map(e => e.textContent).join('\\n\\n');
}"""
#: Scroll the first rendered paragraph or list item holding the given text to the middle of the notebook.
_SHOW = """([path, value]) => { """ + _PANEL + """
    const hit = value && Array.from(panel(path).querySelectorAll(
        '.jp-RenderedMarkdown p, .jp-RenderedMarkdown li')).find(e => e.textContent.includes(value));
    if (hit) hit.scrollIntoView({block: 'center'});
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _offline_jupyter(home: Path) -> dict[str, str]:
    """Environment of a JupyterLab that reads no user configuration and contacts nothing but 127.0.0.1."""
    config, settings = home / "config", home / "settings" / "@jupyterlab" / "notebook-extension"
    (config / "labconfig").mkdir(parents=True)
    settings.mkdir(parents=True)
    # The reader's JupyterLab renders Markdown with its own renderer: no MyST extension.
    (config / "labconfig" / "page_config.json").write_text(
        '{"disabledExtensions": {"jupyterlab-myst": true, "@jupyterlab/extensionmanager-extension": true,'
        ' "@jupyterlab/apputils-extension:announcements": true}}')
    (config / "jupyter_server_config.json").write_text(
        '{"LabApp": {"news_url": null, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",'
        ' "extension_manager": "readonly", "notebook_starts_kernel": false, "expose_app_in_browser": true}}')
    # JupyterLab 4 attaches off-screen cells lazily; every cell must be in the page to be read.
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    return {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "HOME": str(home),
            "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}


def _wait_for_server(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}api/status?token={TOKEN}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {START_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)


def _rendered_markdown_problems(text: str, glued: list[str]) -> list[str]:
    problems = [f"raw MyST {s!r}: ...{text[max(0, i - 60):i + 60]!r}..."
                for s in RAW_MYST if (i := text.find(s)) >= 0]
    flat = re.sub(r"\s+", " ", text)
    missing = [v for v in glued if re.sub(r"\s+", " ", v).strip() not in flat]
    if missing:
        problems.append(f"{len(missing)} of {len(glued)} glued values not shown as the page prints them: "
                        f"{missing[:5]}")
    return problems


def test_reader_notebooks_in_jupyterlab_show_no_raw_myst(tmp_path: Path) -> None:
    """Every chapter's reader's notebook in JupyterLab: rendered Markdown, page's numbers, no raw MyST."""
    started = time.monotonic()
    source = SITE / "_notebooks" / "book"
    if not all((source / name).is_file() for name in CHAPTERS):
        message = f"no reader's notebooks in {source}: build the site first (make html)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    executable = chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed: `pip install -r requirements.txt`")

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in CHAPTERS:
        shutil.copy(source / name, notebooks / name)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [str(JUPYTER), "lab", "--no-browser", f"--IdentityProvider.token={TOKEN}", f"--port={port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--notebook-dir={notebooks}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                  env=_offline_jupyter(tmp_path / "home"), cwd=notebooks)
    problems: dict[str, list[str]] = {}
    other_hosts: list[str] = []
    timings: dict[str, float] = {}
    try:
        _wait_for_server(server, url, log)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")

                def route(request_route: object) -> None:
                    request_url = request_route.request.url
                    if request_url.startswith(("data:", "blob:", "about:")) or \
                            urlsplit(request_url).hostname == "127.0.0.1":
                        request_route.continue_()
                    else:
                        other_hosts.append(request_url)
                        request_route.abort()

                context.route("**/*", route)
                page = context.new_page()
                page.on("websocket", lambda ws: urlsplit(ws.url).hostname != "127.0.0.1"
                        and other_hosts.append(ws.url))
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                # One JupyterLab page (?reset: an empty workspace); each chapter is opened through its
                # command registry, alone, which is much faster than loading JupyterLab again.
                page.goto(f"{url}lab?reset&token={TOKEN}", wait_until="domcontentloaded")
                page.wait_for_function("() => window.jupyterapp", timeout=RENDER_SECONDS * 1000)
                page.evaluate("async () => { await window.jupyterapp.restored; }")
                for name in CHAPTERS:
                    opened = time.monotonic()
                    cells = json.loads((notebooks / name).read_text(encoding="utf-8"))["cells"]
                    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
                    page.evaluate(_OPEN, name)
                    has_math = any("$" in m for m in markdown)
                    page.wait_for_function(_RENDERED, arg=[name, len(markdown), has_math],
                                           timeout=RENDER_SECONDS * 1000, polling=250)
                    page.wait_for_timeout(500)  # let MathJax finish the cells it is typesetting
                    text = page.evaluate(_TEXT, name)
                    glued = _glued_values(name)
                    # The screenshot shows the first paragraph with a glued number, for a person to look at.
                    page.evaluate(_SHOW, [name, next((v for v in glued if re.search(r"\d", v)), "")])
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(SCREENSHOTS / f"lab-{Path(name).stem}.png"))
                    found = _rendered_markdown_problems(text, glued)
                    if found:
                        problems[name] = found
                    timings[name] = time.monotonic() - opened
            finally:
                browser.close()
    finally:
        _stop(server)
    print(f"JupyterLab test: {time.monotonic() - started:.1f} s in all; per chapter: "
          + ", ".join(f"{n} {t:.1f} s" for n, t in timings.items()))
    if other_hosts:
        problems["all chapters"] = [f"requests to other hosts than 127.0.0.1 (blocked): {sorted(set(other_hosts))[:10]}"]
    assert not problems, "reader's notebooks in JupyterLab:\n" + "\n".join(
        f"  {name}: {p}" for name, found in problems.items() for p in found)
