"""Tests of klbook.book: the one glue helper of the chapters."""

from __future__ import annotations

import math

import myst_nb
import numpy as np
import pytest
import torch

from klbook.book import glue, rounded


@pytest.fixture
def glued(monkeypatch):
    records = []
    def record(name, value, display=True):
        records.append((name, value, display))

    monkeypatch.setattr(myst_nb, "glue", record)
    return records


def test_floats_keep_the_requested_significant_digits():
    assert rounded(math.pi) == 3.1415927
    assert rounded(math.pi, digits=3) == 3.14
    assert rounded(1.23456789e-17, digits=4) == 1.235e-17
    assert rounded(-2.0 / 3.0, digits=2) == -0.67


def test_numpy_and_torch_scalars_become_plain_python_numbers():
    for value in (np.float64(0.125), np.float32(0.125), np.array(0.125), torch.tensor(0.125)):
        out = rounded(value)
        assert type(out) is float and out == 0.125
    for value in (7, np.int64(7), np.array(7), torch.tensor(7)):
        out = rounded(value)
        assert type(out) is int and out == 7


def test_rounding_hides_last_digit_differences():
    a = sum([0.1] * 10)               # 0.9999999999999999
    assert a != 1.0 and rounded(a) == rounded(1.0) == 1.0


def test_infinity_stays_infinite_and_strings_pass_through():
    assert rounded(math.inf) == math.inf and rounded(-np.inf) == -math.inf
    assert rounded("forward KL") == "forward KL"


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (math.nan, ValueError, "NaN"),
        (np.float32("nan"), ValueError, "NaN"),
        (np.array([1.0, 2.0]), TypeError, "shape"),
        (torch.ones(2), TypeError, "shape"),
        (True, TypeError, "bool"),
        (np.bool_(True), TypeError, "bool"),
        (1 + 2j, TypeError, "complex"),
        (None, TypeError, "NoneType"),
    ],
)
def test_bad_values_are_rejected(value, error, match):
    with pytest.raises(error, match=match):
        rounded(value)


@pytest.mark.parametrize("digits", [0, 18, 2.5, True])
def test_bad_digits_are_rejected(digits):
    with pytest.raises(ValueError, match="digits"):
        rounded(1.0, digits=digits)


def test_glue_records_the_rounded_value_without_displaying_it(glued):
    # None: a cell that ends with a glue call must not show the value under the cell
    assert glue("ch0_pi", np.float64(math.pi), digits=4) is None
    assert glued == [("ch0_pi", 3.142, False)] and rounded(np.float64(math.pi), 4) == 3.142


@pytest.mark.parametrize("name", ["", "two words", 3])
def test_glue_rejects_bad_names(glued, name):
    with pytest.raises(ValueError, match="name"):
        glue(name, 1.0)
    assert glued == []
