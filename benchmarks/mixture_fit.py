"""Time and peak memory of fit_normal_to_mixture on kernel density estimates of growing size.

A kernel density estimate of K samples is a K-component mixture of equal weights and equal (Silverman)
bandwidths: the case in which the quadrature's break points (each component's mean and multiples of its
width, and the points where two components cross) are densest. Each fit runs in a fresh process, so that
the peak resident memory (``ru_maxrss``) is that fit's; ``tracemalloc`` gives the peak of the numpy
allocations. Prints a Markdown table.

    .venv/bin/python benchmarks/mixture_fit.py [K ...]
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, tracemalloc
import numpy as np
from klbook import fit_normal_to_mixture

k, direction = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
samples = np.concatenate([rng.normal(-2.0, 1.0, k // 2), rng.normal(2.0, 0.5, k - k // 2)])
bandwidth = 1.06 * samples.std() * k ** -0.2
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
start = time.process_time()
fit = fit_normal_to_mixture(np.full(k, 1.0 / k), samples, np.full(k, bandwidth), direction)
seconds = time.process_time() - start
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"seconds": seconds, "traced_mib": traced / 2**20,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "divergence": fit.divergence}))
"""


def main(sizes: list[int]) -> None:
    print("| components | direction | CPU seconds | peak traced (MiB) | peak RSS of the process (MiB) | divergence |")
    print("|---:|---|---:|---:|---:|---:|")
    for k in sizes:
        for direction in ("forward", "reverse"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(k), direction], capture_output=True, text=True, check=True
            )
            r = json.loads(out.stdout)
            print(
                f"| {k} | {direction} | {r['seconds']:.2f} | {r['traced_mib']:.0f} | {r['maxrss_mib']:.0f} "
                f"| {r['divergence']:.6f} |"
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 300, 600, 1000, 2000])
