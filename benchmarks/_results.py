"""Writing one script's section of ``benchmarks/RESULTS.md`` (the text between its two marker lines)."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def replace_section(text: str, begin: str, end: str, path: Path = RESULTS) -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in place of the section between
    those markers in ``path``, or append it if the file has no such section yet."""
    old = path.read_text()
    if begin in old:
        new = old[: old.index(begin)] + text + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new)
