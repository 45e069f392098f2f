"""Sphinx extension: figures of panels side by side show their panels stacked on a phone.

Registered in ``_config.yml`` under ``sphinx: local_extensions: {klbook_figures: book/_ext}``.

A figure of panels side by side is drawn for the 672 px column. On a phone (a 358 px column at 390 px) it
would either shrink until its text is ~7 px or scroll sideways. ``klbook.plotting.panel_figure`` therefore
draws the same panels a second time, stacked, 4.2 in wide, and IPython stores that PNG in the figure
output's *metadata* (key ``klbook/phone``; see ``klbook.plotting.style``): the output's data, which a
notebook shows and nbval compares, is that of any matplotlib figure.

Here, when a chapter is read, every such output's picture gets a sibling image, the stacked one (same alt
text), inside the same figure (same number, caption and target); the figure gets the class
``klbook-stacks``, the two pictures ``klbook-wide`` and ``klbook-phone``. ``static/klbook-site.css``
("Figure sizes") shows the stacked picture only where the figure is narrower than the side-by-side one
needs (a container query on the figure's width), and the side-by-side picture everywhere else. Builders
that are not HTML (the PDF) drop the stacked picture, so the book, like the reader's notebook, has one
picture per figure.

A caption that says where a panel is reads wrong once the panels are stacked ("Left: ..." over the top
panel). The role ``{panel}`Left|Top``` writes the word for either layout: the HTML page holds both, as
``span.klbook-wide`` and ``span.klbook-phone`` (the same container query chooses), every other builder and
the reader's notebook the first ("Left").
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

__version__ = "1.0.0"

#: Output metadata key of the stacked rendering (klbook.plotting.style.PHONE_KEY).
PHONE_KEY = "klbook/phone"
WIDE_CLASS, PHONE_CLASS, FIGURE_CLASS = "klbook-wide", "klbook-phone", "klbook-stacks"


def _png_bytes(data: Any) -> bytes:
    return base64.b64decode("".join(data) if isinstance(data, list) else data)


def phone_renderings(notebook: dict) -> dict[str, dict]:
    """``sha256 of the output's PNG -> its stacked rendering`` for every figure output that has one.

    myst-nb names an output's image file by the SHA-256 of its PNG bytes, so this finds the image.
    """
    found = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            phone = output.get("metadata", {}).get(PHONE_KEY)
            png = output.get("data", {}).get("image/png")
            if phone and png:
                found[hashlib.sha256(_png_bytes(png)).hexdigest()] = phone
    return found


def _add_phone_images(app: Sphinx, doctree: nodes.document) -> None:
    source = Path(app.env.doc2path(app.env.docname))
    if source.suffix != ".ipynb":
        return
    phones = phone_renderings(json.loads(source.read_text(encoding="utf8")))
    if not phones:
        return
    for image in list(doctree.findall(nodes.image)):
        uri = PurePosixPath(image["uri"])
        phone = phones.get(uri.stem)
        figure = image.parent
        while figure is not None and not isinstance(figure, nodes.figure):
            figure = figure.parent
        if phone is None or figure is None:
            continue
        data = _png_bytes(phone["image/png"])
        name = hashlib.sha256(data).hexdigest() + uri.suffix
        # next to the wide picture, where myst-nb wrote it (a URI starting with "/" is relative to srcdir)
        target = Path(app.srcdir, str(uri).lstrip("/")).parent / name
        if not target.exists():
            target.write_bytes(data)
        stacked = nodes.image(uri=str(uri.parent / name), alt=image.get("alt", ""),
                              width=str(phone["width"]), height=str(phone["height"]), classes=[PHONE_CLASS])
        stacked.source, stacked.line = image.source, image.line
        image["classes"].append(WIDE_CLASS)
        image.parent.insert(image.parent.index(image) + 1, stacked)
        figure["classes"].append(FIGURE_CLASS)


def panel_role(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
               options: dict | None = None, content: list | None = None) -> tuple[list, list]:
    """``{panel}`Left|Top```: "Left" where the panels are side by side, "Top" where they are stacked."""
    wide, bar, phone = text.partition("|")
    if not bar or not wide.strip() or not phone.strip():
        message = inliner.reporter.error(f"panel: write the word for both layouts, 'wide|phone', got {text!r}",
                                         line=lineno)
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    return [nodes.inline(rawtext, "", nodes.inline("", wide.strip(), classes=[WIDE_CLASS]),
                         nodes.inline("", phone.strip(), classes=[PHONE_CLASS]))], []


class DropPhoneImages(SphinxPostTransform):
    """Builders other than HTML keep one picture per figure, the side-by-side one, and a caption's
    :func:`panel_role` words for it."""

    default_priority = 5  # after myst-nb selects the mime type (4)

    def run(self, **kwargs: Any) -> None:
        if self.app.builder.format == "html":
            return
        for node in list(self.document.findall(lambda n: isinstance(n, (nodes.image, nodes.inline)))):
            if PHONE_CLASS in node.get("classes", []):
                node.parent.remove(node)


def setup(app: Sphinx) -> dict[str, Any]:
    # before Sphinx's image collector (priority 500) reads the doctree, so the stacked PNG is copied too
    app.connect("doctree-read", _add_phone_images, priority=400)
    app.add_post_transform(DropPhoneImages)
    app.add_role("panel", panel_role)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
