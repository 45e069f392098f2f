"""Writing one script's section of ``benchmarks/RESULTS.md`` (the text between its two marker lines)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
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


def run_section_script(description: str, section: Callable[[int, tuple[int, ...]], str], repeats: int,
                       begin: str, end: str) -> None:
    """The command line of a script that owns one section: ``--repeats``, ``--threads``, ``--no-write``;
    prints ``section(repeats, threads)`` and writes it into RESULTS.md unless told not to."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed runs per case (default {repeats})")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    text = section(args.repeats, tuple(args.threads))
    print(text)
    if not args.no_write:
        replace_section(text, begin, end)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    import platform
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    return platform.processor() or platform.machine()
