"""Accuracy and speed of klbook's closed forms beside torch.distributions and the textbook formulas.

Run with ``make benchmark`` (or ``python benchmarks/accuracy_speed.py``). Writes the Markdown tables to
``benchmarks/RESULTS.md`` (included in the book's accuracy appendix) and prints them.

* Accuracy: max and median error in ULPs against a 50-digit mpmath reference on ``klbook.accuracy``'s hard
  grids (``--size`` scales them), in float64.
* Speed: median CPU time per call (process time, all threads) over ``--repeats`` calls on a batch of
  100,000 x 64 (the diagonal and univariate forms) and 2,000 full 16 x 16 covariance pairs (``kl_mvn``),
  float32 and float64 inputs, forward pass only, in one process and alternating the two libraries' calls,
  so that both see the same machine state. CPU time rather than wall time, because on a shared machine
  other processes inflate wall times unpredictably; torch's intra-op threads are counted in both columns.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

import klbook
from klbook.accuracy import accuracy_table, format_table

RESULTS = Path(__file__).with_name("RESULTS.md")


def _cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _median_seconds_side_by_side(
    ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median CPU time of the process per call (all threads), for two functions timed alternately.

    Alternating the calls exposes both to the same drift of the machine (other load, frequency
    changes), which on a shared machine moves single timings by tens of percent.
    """
    ours(), theirs()  # warm-up
    times = [(_cpu_seconds(ours), _cpu_seconds(theirs)) for _ in range(repeats)]
    return statistics.median(t for t, _ in times), statistics.median(t for _, t in times)


def speed_rows(repeats: int, batch: int = 100_000, dim: int = 64) -> list[tuple[str, str, float, float]]:
    generator = torch.Generator().manual_seed(0)
    rows = []
    for dtype in (torch.float32, torch.float64):
        def randn(*shape):
            return torch.randn(*shape, generator=generator, dtype=dtype)

        mu_p, mu_q = randn(batch, dim), randn(batch, dim)
        logvar_p, logvar_q = randn(batch, dim), randn(batch, dim)
        sigma_p, sigma_q = torch.exp(0.5 * logvar_p), torch.exp(0.5 * logvar_q)
        zeros, ones = torch.zeros_like(mu_p), torch.ones_like(mu_p)
        cases = {
            "kl_normal": (
                lambda: klbook.kl_normal(mu_p, sigma_p, mu_q, sigma_q),
                lambda: kl_divergence(Normal(mu_p, sigma_p), Normal(mu_q, sigma_q)),
            ),
            "kl_diag_normal": (
                lambda: klbook.kl_diag_normal(mu_p, logvar_p, mu_q, logvar_q),
                lambda: kl_divergence(
                    Independent(Normal(mu_p, torch.exp(0.5 * logvar_p)), 1),
                    Independent(Normal(mu_q, torch.exp(0.5 * logvar_q)), 1),
                ),
            ),
            "kl_std_normal": (
                lambda: klbook.kl_std_normal(mu_p, logvar_p),
                lambda: kl_divergence(
                    Independent(Normal(mu_p, torch.exp(0.5 * logvar_p)), 1), Independent(Normal(zeros, ones), 1)
                ),
            ),
        }
        k, pairs = 16, 2_000
        a, b = randn(pairs, k, k), randn(pairs, k, k)
        cov_p = a @ a.mT + k * torch.eye(k, dtype=dtype)
        cov_q = b @ b.mT + k * torch.eye(k, dtype=dtype)
        m_p, m_q = randn(pairs, k), randn(pairs, k)
        cases["kl_mvn"] = (
            lambda: klbook.kl_mvn(m_p, cov_p, m_q, cov_q),
            lambda: kl_divergence(MultivariateNormal(m_p, cov_p), MultivariateNormal(m_q, cov_q)),
        )
        for name, (ours, theirs) in cases.items():
            rows.append((name, str(dtype).replace("torch.", ""), *_median_seconds_side_by_side(ours, theirs, repeats)))
    return rows


def format_speed(rows: list[tuple[str, str, float, float]]) -> str:
    lines = [
        "| function | dtype | klbook CPU ms / call | torch.distributions CPU ms / call | ratio |",
        "|---|---|---|---|---|",
    ]
    for name, dtype, ours, theirs in rows:
        lines.append(f"| `{name}` | {dtype} | {1e3 * ours:.1f} | {1e3 * theirs:.1f} | {ours / theirs:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4, help="scale of the accuracy grids (default 4)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per case (default 15)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    accuracy = format_table(accuracy_table(args.size))
    speed = format_speed(speed_rows(args.repeats))
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads, numpy {np.__version__}"
    )
    text = f"""## Accuracy (float64, error in ULP against a 50-digit mpmath reference)

{accuracy}

`inf` means a result of inf or NaN where the exact value is finite (or the reverse). The float32 results of
klbook (inputs in float32, computed in float64, rounded once) are within 1 ULP of the exact value on the
same grids (`tests/test_gaussian.py`). `kl_mvn` goes through Cholesky factors and triangular solves, whose
rounding errors grow with the condition number of the covariances; in float64 it adds a first-order
correction for them, computed from residuals such as Σ − LLᵀ evaluated with exact matrix products, so what
is left is of second order. The third `kl_mvn` grid has condition numbers up to 10³; `tests/test_gaussian.py`
checks up to 10⁶.

## Speed (median CPU time of {args.repeats} calls; batch 100,000 × 64, `kl_mvn`: 2,000 pairs of 16 × 16 covariances)

{speed}

Measured on: {machine}. Rerun with `make benchmark`; times vary between machines and runs (on a shared
machine by tens of percent, even with the two libraries' calls alternated), the accuracy columns do not. For float32 inputs klbook evaluates short formulas in float64, chunk
by chunk. In float64, `kl_mvn`'s correction costs about fifteen batched k × k matrix products per call, several
times the work of the uncorrected value (roughly what its float32 row costs).
"""
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
