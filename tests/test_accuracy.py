"""Tests of klbook.accuracy: the yardstick itself must be right before it measures anything."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import integrate, stats

from klbook.accuracy import (
    AccuracyRow,
    accuracy_table,
    format_table,
    reference_kl_mvn,
    reference_kl_normal,
    textbook_kl_std_normal,
    ulp_error,
)


def test_ulp_error_counts_units_in_the_last_place():
    assert ulp_error(1.0 + 2 * np.spacing(1.0), 1.0) == 2
    assert ulp_error(0.0, 0.0) == 0
    assert ulp_error(1e-300, 0.0) == math.inf
    assert ulp_error(math.inf, math.inf) == 0
    assert ulp_error(1.0, math.inf) == math.inf
    assert ulp_error(math.nan, 1.0) == math.inf
    assert ulp_error(np.float32(1.0) + np.spacing(np.float32(1.0)), 1.0, dtype=np.float32) == 1


def test_reference_matches_an_independent_quadrature():
    p, q = stats.norm(0.3, 0.8), stats.norm(-0.5, 1.3)
    value, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -np.inf, np.inf, epsrel=1e-13)
    assert reference_kl_normal(0.3, 0.8, -0.5, 1.3) == pytest.approx(value, rel=1e-10)


def test_reference_mvn_reduces_to_the_univariate_reference():
    expected = reference_kl_normal(0.3, 0.8, -0.5, 1.3)
    assert reference_kl_mvn([0.3], [[0.64]], [-0.5], [[1.69]]) == pytest.approx(expected, rel=1e-15)


def test_textbook_formula_loses_every_digit_near_logvar_zero():
    # This is the failure klbook exists to avoid: the true value is ~ 2.5e-19 (a quarter of logvar^2).
    with mpmath.workdps(50):
        exact = float((mpmath.expm1(mpmath.mpf(1e-9)) - mpmath.mpf(1e-9)) / 2)
    assert ulp_error(textbook_kl_std_normal([0.0], [1e-9]), exact) > 1e6


def test_accuracy_table_and_its_markdown():
    rows = accuracy_table(include_torch=False)
    klbook_rows = [r for r in rows if r.implementation == "klbook"]
    assert klbook_rows and all(r.max_ulp <= 8 for r in klbook_rows)
    table = format_table(rows)
    assert table.splitlines()[0].startswith("| function | inputs | klbook max / median ULP")


def test_errors_with_no_correct_digit_are_shown_as_such_not_as_kernel_dependent_counts():
    rows = [
        AccuracyRow("kl_normal", "grid: hard", "klbook", 1.0, 0.0),
        AccuracyRow("kl_normal", "grid: hard", "textbook", 9.9e27, 2.0**52 - 1),
    ]
    line = format_table(rows).splitlines()[-1]
    assert line == "| `kl_normal` | hard | 1.0 / 0.0 | ≥2⁵² / 4.5e+15 |"
