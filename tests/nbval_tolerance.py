"""Numeric tolerances for nbval, declared cell by cell.

nbval compares a re-executed cell's outputs with the stored ones character for character. That is right
for closed forms, which the book computes bit-identically on every CPU, and wrong for results of training
or iterative optimisation: their last printed digits depend on which BLAS and ATen kernels the CPU gets
(AVX-512 or AVX2, another OpenBLAS core type, another thread count). Such a cell declares, in its
metadata, how far its numbers may move and why::

    "klbook": {
        "tolerance": {"abs": 0.006, "rel": 0.0},
        "spread": {"abs": 0.004, "rel": 0.0},
        "reason": "an autoencoder trained by Adam; ..."
    }

``spread`` is the largest difference measured across :data:`CONFIGURATIONS` (absolute among numbers
below 1, relative among the others; ``benchmarks/kernel_spread.py`` measures it); the hygiene test holds
every tolerance to at most three times it. For such a cell, nbval compares the text between numbers
exactly (runs of spaces aside, since padding follows the number of digits) and each number ``x`` with its
stored ``r`` as ``|x - r| <= abs + rel * |r|``. Every other cell is compared exactly, as nbval does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# The kernel configurations every chapter must pass in (issue 11): each selects other numerical kernels
# on the same machine, as another CPU would. "avx2" is a typical laptop or CI runner without AVX-512
# (OpenBLAS, ATen, MKL and numpy's own SIMD loops all limited to AVX2).
CONFIGURATIONS: dict[str, dict[str, str]] = {
    "default": {},
    "haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "skylakex": {"OPENBLAS_CORETYPE": "SkylakeX"},
    "generic": {"OPENBLAS_CORETYPE": "Sandybridge", "ATEN_CPU_CAPABILITY": "default"},
    "one-thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "avx2": {
        "OPENBLAS_CORETYPE": "Haswell",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4",
    },
}

# A number as the chapters print it: optional sign, digits with optional thousands separators, optional
# fraction and exponent. Not when glued to a word ("ch4_n", "x1"): those digits are text.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?(?![\w])")
SPACES = re.compile(r"\s+")
IMAGE_KEYS = ("image/", "application/papermill.record/image/")


def _pieces(text: str) -> tuple[list[str], list[float]]:
    words, numbers, start = [], [], 0
    for match in NUMBER.finditer(text):
        words.append(SPACES.sub(" ", text[start : match.start()]))
        numbers.append(float(match.group().replace(",", "")))
        start = match.end()
    words.append(SPACES.sub(" ", text[start:]))
    return words, numbers


def numeric_difference(reference: str, computed: str) -> tuple[float, float] | None:
    """How far the numbers of ``computed`` are from those of ``reference``, in the two terms of a tolerance.

    Returns ``(abs, rel)``: the largest absolute difference among numbers whose reference is below 1 in
    magnitude, and the largest relative difference among the others. A tolerance at least this large in
    both terms accepts ``computed``. ``None`` when the texts differ in more than their numbers (other
    words, another count of numbers).
    """
    ref_words, ref_numbers = _pieces(reference)
    new_words, new_numbers = _pieces(computed)
    if ref_words != new_words or len(ref_numbers) != len(new_numbers):
        return None
    worst_abs = worst_rel = 0.0
    for r, x in zip(ref_numbers, new_numbers):
        if abs(r) < 1:
            worst_abs = max(worst_abs, abs(x - r))
        else:
            worst_rel = max(worst_rel, abs(x - r) / abs(r))
    return worst_abs, worst_rel


def within(reference: str, computed: str, tolerance: Mapping[str, float]) -> bool:
    """Whether ``computed`` reads as ``reference`` with every number within ``tolerance``."""
    ref_words, ref_numbers = _pieces(reference)
    new_words, new_numbers = _pieces(computed)
    if ref_words != new_words or len(ref_numbers) != len(new_numbers):
        return False
    absolute, relative = float(tolerance.get("abs", 0.0)), float(tolerance.get("rel", 0.0))
    return all(abs(x - r) <= absolute + relative * abs(r) for r, x in zip(ref_numbers, new_numbers))


def _is_text(key: str, value: Any) -> bool:
    return isinstance(value, str) and not key.startswith(IMAGE_KEYS) and key != "image/svg+xml"


def text_outputs(outputs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The texts of a cell's outputs: each stream merged (as nbval merges them), then each text MIME type."""
    streams: dict[str, str] = {}
    texts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
        for key, value in sorted(output.get("data", {}).items()):
            if _is_text(key, value):
                texts.append(f"[{key}] {value}")
    return [f"[{name}] {text}" for name, text in sorted(streams.items())] + texts


def cell_tolerance(metadata: Mapping[str, Any]) -> Mapping[str, float] | None:
    """The tolerance a cell declares, if any."""
    return metadata.get("klbook", {}).get("tolerance")


def snap_to_reference(computed: list[Any], reference: list[Any], tolerance: Mapping[str, float]) -> None:
    """Replace each text of ``computed`` that is within ``tolerance`` of its stored counterpart by it.

    Outputs are paired in order (nbval has already merged streams); anything that does not pair up, or
    differs beyond the tolerance, is left for nbval's exact comparison to report.
    """
    for new, old in zip(computed, reference):
        if new.get("output_type") != old.get("output_type"):
            continue
        if new.get("output_type") == "stream":
            if new.get("name") == old.get("name") and within(old["text"], new["text"], tolerance):
                new["text"] = old["text"]
            continue
        new_data, old_data = new.get("data", {}), old.get("data", {})
        for key, value in new_data.items():
            if _is_text(key, value) and _is_text(key, old_data.get(key)) and within(old_data[key], value, tolerance):
                new_data[key] = old_data[key]



def kernels_in_use() -> dict[str, str]:
    """Which numerical kernels this process gets: recorded by ``make refresh`` in each notebook."""
    import os
    import platform

    import numpy
    import torch
    from threadpoolctl import threadpool_info

    blas = [f"{i['internal_api']} {i.get('architecture') or ''}".strip() for i in threadpool_info() if i["user_api"] == "blas"]
    settings = ("OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")
    return {
        "machine": platform.machine(),
        "numpy_blas": ", ".join(blas),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "threads": str(torch.get_num_threads()),
        "environment": " ".join(f"{k}={os.environ[k]}" for k in settings if k in os.environ) or "(none set)",
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }


def main(argv: list[str]) -> None:
    """``env NAME``: configuration NAME as VAR=value words (for `env $(...) pytest` in the Makefile);
    ``stamp NOTEBOOK...``: record in each notebook's metadata which kernels wrote its outputs."""
    if argv[:1] == ["env"] and len(argv) == 2:
        print(" ".join(f"{key}={value}" for key, value in CONFIGURATIONS[argv[1]].items()))
    elif argv[:1] == ["stamp"]:
        import nbformat

        kernels = kernels_in_use()
        for path in argv[1:]:
            notebook = nbformat.read(path, as_version=4)
            notebook.metadata.setdefault("klbook", {})["outputs_written_with"] = kernels
            nbformat.write(notebook, path)
            print(f"{path}: outputs written with {kernels}")
    else:
        raise SystemExit("usage: nbval_tolerance.py env NAME | stamp NOTEBOOK...")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
