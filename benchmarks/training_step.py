"""Wall time of a whole VAE training step with klbook's KL term beside the same step with torch.distributions'.

Run with ``python benchmarks/training_step.py`` (part of ``make benchmark``). Writes its Markdown table
into its section of ``benchmarks/RESULTS.md`` and prints it.

``gradient_speed.py`` times the KL term alone. What a practitioner pays is the step: encoder, sampling,
decoder, reconstruction loss, the KL term, the backward pass and the optimiser update. Here a small
fully connected VAE (784 → 256 → 2 × latent, latent → 256 → 784, Adam, float32, seeded) is trained on a
fixed batch of random data (nothing is downloaded), with ``klbook.kl_std_normal`` in one copy of the step
and ``torch.distributions.kl_divergence`` in the other; the two steps are alternated and the median wall
time of each is reported, for the batch sizes of ``gradient_speed.py`` and one and two torch threads.
Wall time, not CPU time: with two threads torch spreads its kernels over both cores, which only the
clock on the wall shows.
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

BEGIN, END = "% training_step.py: begin (a MyST comment)", "% training_step.py: end"
SIZES = ((128, 32), (4_096, 64))  # batch, latent dimension
PIXELS, HIDDEN = 784, 256


def _torch_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return kl_divergence(Independent(Normal(mu, torch.exp(0.5 * logvar)), 1), prior)


def training_step(kl: Callable[..., torch.Tensor], batch: int, latent: int, seed: int = 0) -> Callable[[], None]:
    """One optimiser step of a small VAE with ``kl(mu, logvar)`` as its KL term (its own model and data)."""
    torch.manual_seed(seed)
    encoder = torch.nn.Sequential(torch.nn.Linear(PIXELS, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 2 * latent))
    decoder = torch.nn.Sequential(torch.nn.Linear(latent, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, PIXELS))
    optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    x = (torch.rand(batch, PIXELS) < 0.2).float()

    def step() -> None:
        optimiser.zero_grad()
        mu, logvar = encoder(x).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        reconstruction = torch.nn.functional.binary_cross_entropy_with_logits(decoder(z), x, reduction="none")
        loss = (reconstruction.sum(-1) + kl(mu, logvar)).mean()
        loss.backward()
        optimiser.step()

    return step


def _median_wall_seconds_alternated(fns: list[Callable[[], None]], repeats: int) -> list[float]:
    for fn in fns:  # warm-up
        fn()
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, column in zip(fns, times):
            start = time.perf_counter()
            fn()
            column.append(time.perf_counter() - start)
    return [statistics.median(column) for column in times]


def rows(repeats: int, threads: tuple[int, ...]) -> list[tuple]:
    out = []
    saved = torch.get_num_threads()
    try:
        for n in threads:
            torch.set_num_threads(n)
            for batch, latent in SIZES:
                ours = training_step(klbook.kl_std_normal, batch, latent)
                theirs = training_step(_torch_kl, batch, latent)
                out.append((n, batch, latent, *_median_wall_seconds_alternated([ours, theirs], repeats)))
    finally:
        torch.set_num_threads(saved)
    return out


def section(repeats: int = 21, threads: tuple[int, ...] = (1, 2)) -> str:
    """The Markdown section for RESULTS.md, between the markers."""
    lines = [
        "| threads | batch × latent | step with klbook, ms | step with torch.distributions, ms | ratio |",
        "|---|---|---|---|---|",
    ]
    for n, batch, latent, ours, theirs in rows(repeats, threads):
        lines.append(f"| {n} | {batch:,} × {latent} | {1e3 * ours:.2f} | {1e3 * theirs:.2f} | {ours / theirs:.2f} |")
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )
    table = "\n".join(lines)
    return f"""{BEGIN}
## A whole training step (median wall time of {repeats} steps; `benchmarks/training_step.py`)

A small VAE (784 → {HIDDEN} → 2 × latent, latent → {HIDDEN} → 784, Adam, float32) trained on a fixed batch,
its KL term computed by `klbook.kl_std_normal` in one copy of the step and by `torch.distributions` in
the other, the two steps alternated:

{table}

Measured on: {machine}. Times vary between runs on a shared machine by tens of percent.
{END}"""


def main() -> None:
    run_section_script(__doc__.splitlines()[0], section, 21, BEGIN, END)


if __name__ == "__main__":
    main()
