"""What the compiled loops cost the first time: klbook's first forward + backward pass in a fresh process.

Run with ``python benchmarks/first_call.py`` (part of ``make benchmark``). Writes its section of
``benchmarks/RESULTS.md`` and prints it.

klbook's hottest loops (``src/klbook/_kernels.py``) are compiled by numba on first use and cached on
disk (and ``src/klbook/_mvn_loops.py``'s). In a new Python process: the first forward + backward
pass of ``kl_normal``, ``kl_diag_normal`` and ``kl_std_normal`` on 128 × 32 float64 and float32
tensors and of ``kl_mvn`` on 128 pairs of 16 × 16 covariances, then the same steps again. "Compiling" starts from an empty cache (a fresh ``NUMBA_CACHE_DIR``), as after installing
klbook; "cached" reuses the cache that run left, as every later process does. Wall-clock seconds,
median of ``--repeats`` processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from _results import cpu_name, run_section_script  # benchmarks/_results.py

BEGIN, END = "% first_call.py: begin (a MyST comment)", "% first_call.py: end"

_CHILD = r"""
import json, time
import torch
import klbook

def step(function, args):
    start = time.perf_counter()
    function(*args).sum().backward()
    return time.perf_counter() - start

generator = torch.Generator().manual_seed(0)
first = later = 0.0
for dtype in (torch.float64, torch.float32):
    def leaf(positive=False):
        x = torch.randn(128, 32, generator=generator, dtype=dtype)
        return (x.exp() if positive else x).requires_grad_()
    factors = [torch.randn(128, 16, 16, generator=generator, dtype=dtype) for _ in range(2)]
    cov_p, cov_q = ((a @ a.mT + 16 * torch.eye(16, dtype=dtype)).requires_grad_() for a in factors)
    means = [torch.randn(128, 16, generator=generator, dtype=dtype).requires_grad_() for _ in range(2)]
    cases = [
        (klbook.kl_normal, [leaf(), leaf(True), leaf(), leaf(True)]),
        (klbook.kl_diag_normal, [leaf() for _ in range(4)]),
        (klbook.kl_std_normal, [leaf(), leaf()]),
        (klbook.kl_mvn, [means[0], cov_p, means[1], cov_q]),
    ]
    first += sum(step(f, args) for f, args in cases)
    later += sum(step(f, args) for f, args in cases)
print(json.dumps({"first": first, "later": later}))
"""


def _run(cache_dir: str) -> dict[str, float]:
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    result = subprocess.run([sys.executable, "-c", _CHILD], env=environment, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def section(repeats: int = 3, threads: tuple[int, ...] = ()) -> str:
    compiling, cached = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            compiling.append(_run(cache_dir))
            cached.append(_run(cache_dir))
    rows = [
        ("compiling (empty cache)", compiling),
        ("cached (every later process)", cached),
    ]
    lines = [
        "| process | the eight cases' first steps, s (sum) | the same eight steps again, s (sum) |",
        "|---|---|---|",
    ]
    for label, runs in rows:
        first = statistics.median(r["first"] for r in runs)
        later = statistics.median(r["later"] for r in runs)
        lines.append(f"| {label} | {first:.2f} | {later:.3f} |")
    table = "\n".join(lines)
    return f"""{BEGIN}
## The first call (compiling klbook's loops)

{table}

Eight cases: `kl_normal`, `kl_diag_normal` and `kl_std_normal` on 128 × 32 tensors and `kl_mvn` on 128 pairs
of 16 × 16 covariances, forward + backward, float64 and float32, each in a new Python process (median of
{repeats}). klbook compiles its hottest loops (`src/klbook/_kernels.py`, `src/klbook/_mvn_loops.py`, with
numba) on first use and caches the machine code on disk, next to the
module or in numba's user cache, so only the first process after an install (or a change of the file)
compiles; later ones load the cache and import numba. Measured on: {cpu_name()}, {os.cpu_count()} cores
(`benchmarks/first_call.py`).
{END}"""


def main() -> None:
    run_section_script(__doc__.splitlines()[0], section, 3, BEGIN, END)


if __name__ == "__main__":
    main()
