"""Forward + backward time of klbook's diagonal and univariate Gaussian KLs beside torch.distributions.

Run with ``python benchmarks/gradient_speed.py`` (part of ``make benchmark``). Writes the Markdown table
into its section of ``benchmarks/RESULTS.md`` (which the book's accuracy appendix includes; ``make
benchmark`` runs it as part of ``benchmarks/accuracy_speed.py``) and prints it.

What is timed is one training step's KL term: the KL of a batch, summed, and its backward pass into leaf
tensors that require gradients (every argument), as a VAE's loss does. ``torch.distributions`` gets the
same tensors (for the log-variance forms it also computes ``exp(0.5 * logvar)``, as a user of it must).
Median wall-clock time per call (what a training step waits for; CPU time would also count threads that
spin-wait between operations), the two libraries' calls alternated so that both see the same machine state, for float32 and float64, one and two torch threads, and batches from
128 × 32 to 200,000 × 64. Time linear in the batch shows as a ratio of about 2 between the two largest
batches.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.distributions import Independent, Normal, kl_divergence

import klbook
from _results import cpu_name, run_section_script  # benchmarks/_results.py

# The section of RESULTS.md this script owns lies between these two lines.
BEGIN, END = "% gradient_speed.py: begin (a MyST comment)", "% gradient_speed.py: end"
SIZES = ((128, 32), (4_096, 64), (100_000, 64), (200_000, 64))


def _wall_seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_seconds_alternated(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    for fn in fns:  # warm-up
        fn()
    times = [[_wall_seconds(fn) for fn in fns] for _ in range(repeats)]
    return [statistics.median(column) for column in zip(*times)]


def _step(kl: Callable[..., torch.Tensor], args: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for a in args:
            a.grad = None
        kl(*args).sum().backward()

    return run


def _torch_diag(mu_p, logvar_p, mu_q, logvar_q):
    return kl_divergence(
        Independent(Normal(mu_p, torch.exp(0.5 * logvar_p)), 1), Independent(Normal(mu_q, torch.exp(0.5 * logvar_q)), 1)
    )


def _torch_std(mu, logvar):
    prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return kl_divergence(Independent(Normal(mu, torch.exp(0.5 * logvar)), 1), prior)


def _torch_normal(mu_p, sigma_p, mu_q, sigma_q):
    return kl_divergence(Normal(mu_p, sigma_p), Normal(mu_q, sigma_q))


def cases(batch: int, dim: int, dtype: torch.dtype) -> dict[str, tuple[Callable, Callable, list[torch.Tensor]]]:
    generator = torch.Generator().manual_seed(0)

    def leaf(transform: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> torch.Tensor:
        return transform(torch.randn(batch, dim, generator=generator, dtype=dtype)).requires_grad_()

    mu_p, logvar_p, mu_q, logvar_q = (leaf() for _ in range(4))
    sigma_p, sigma_q = (leaf(lambda x: torch.exp(0.5 * x)) for _ in range(2))
    return {
        "kl_std_normal": (klbook.kl_std_normal, _torch_std, [mu_p, logvar_p]),
        "kl_diag_normal": (klbook.kl_diag_normal, _torch_diag, [mu_p, logvar_p, mu_q, logvar_q]),
        "kl_normal": (klbook.kl_normal, _torch_normal, [mu_p, sigma_p, mu_q, sigma_q]),
    }


def speed_rows(repeats: int, threads: tuple[int, ...]) -> list[tuple]:
    rows = []
    saved = torch.get_num_threads()
    try:
        for n in threads:
            torch.set_num_threads(n)
            for dtype in (torch.float32, torch.float64):
                for batch, dim in SIZES:
                    for name, (ours, theirs, args) in cases(batch, dim, dtype).items():
                        seconds = _median_seconds_alternated([_step(ours, args), _step(theirs, args)], repeats)
                        rows.append((name, str(dtype).replace("torch.", ""), n, batch, dim, *seconds))
    finally:
        torch.set_num_threads(saved)
    return rows


def format_rows(rows: list[tuple]) -> str:
    lines = [
        "| function | dtype | threads | batch | klbook ms | torch ms | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, dtype, n, batch, dim, ours, theirs in rows:
        lines.append(
            f"| `{name}` | {dtype} | {n} | {batch:,} × {dim} | {1e3 * ours:.2f} | {1e3 * theirs:.2f} | {ours / theirs:.2f} |"
        )
    return "\n".join(lines)


def format_growth(rows: list[tuple]) -> str:
    """klbook's time at the largest batch over its time at the second largest (2 is linear)."""
    (b1, _), (b2, _) = SIZES[-2], SIZES[-1]
    by_key = {(r[0], r[1], r[2], r[3]): r[5] for r in rows}
    lines = [
        f"| function | dtype | threads | klbook time at {b2:,} / at {b1:,} rows |",
        "|---|---|---|---|",
    ]
    for name, dtype, n, batch, *_ in rows:
        if batch == b2:
            lines.append(f"| `{name}` | {dtype} | {n} | {by_key[(name, dtype, n, b2)] / by_key[(name, dtype, n, b1)]:.2f} |")
    return "\n".join(lines)


def section(repeats: int = 7, threads: tuple[int, ...] = (1, 2)) -> str:
    """The Markdown section for RESULTS.md, between the markers."""
    rows = speed_rows(repeats, threads)
    ratios = [r[5] / r[6] for r in rows]
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )
    return f"""{BEGIN}
## Forward + backward (median wall-clock time of {repeats} calls, klbook and `torch.distributions`; the KL of a batch summed, gradients into every argument)

{format_rows(rows)}

Largest ratio: {max(ratios):.2f}; median {statistics.median(ratios):.2f}. Growth with the batch:

{format_growth(rows)}

Measured on: {machine}, torch's calls and klbook's alternated (`benchmarks/gradient_speed.py`). klbook's
backward pass evaluates the derivatives in closed form, chunk by chunk, in float64 (rounded once to the
inputs' dtype). Times vary between runs on a shared machine by tens of percent, and with the
state of the memory allocator (glibc's returns freed memory to the system, so new temporaries are
page-faulted in again; the project's README measures the difference).
{END}"""


def main() -> None:
    run_section_script(__doc__.splitlines()[0], section, 7, BEGIN, END)


if __name__ == "__main__":
    main()
