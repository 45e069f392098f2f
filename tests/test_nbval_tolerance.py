"""The numeric comparison that nbval applies to cells declaring a tolerance (tests/nbval_tolerance.py)."""

from __future__ import annotations

import nbformat
import pytest

from tests.nbval_tolerance import (
    CONFIGURATIONS,
    main,
    numeric_difference,
    snap_to_reference,
    text_outputs,
    within,
)


def test_numbers_within_the_tolerance_are_accepted():
    assert within("share: 0.692", "share: 0.696", {"abs": 0.005})
    assert within("loss 120.0", "loss 121.0", {"rel": 0.01})
    assert within("a 1.0 b 2.0", "a 1.004 b 1.996", {"abs": 0.005})


def test_numbers_beyond_the_tolerance_are_refused():
    assert not within("share: 0.692", "share: 0.699", {"abs": 0.005})
    assert not within("loss 120.0", "loss 122.0", {"rel": 0.01})
    assert not within("share: 0.692", "share: 0.696", {})  # no tolerance declared: exact


def test_text_between_numbers_must_match_exactly():
    assert not within("crosses a hole: 0.14", "crosses a gap: 0.14", {"abs": 1.0})
    assert not within("0.1 and 0.2", "0.1 or 0.2", {"abs": 1.0})


def test_a_missing_or_extra_number_is_a_difference():
    assert not within("values 1 2 3", "values 1 2", {"abs": 10.0})
    assert numeric_difference("values 1 2 3", "values 1 2 3 4") is None


def test_digits_inside_words_are_text_not_numbers():
    # a glue key or a variable name keeps its digits: ch4 is not "ch" followed by the number 4
    assert not within("ch4_total", "ch5_total", {"abs": 10.0})
    assert not within("x1 = 0.5", "x2 = 0.5", {"abs": 10.0})


def test_thousands_separators_signs_and_exponents_are_read_as_one_number():
    assert numeric_difference("n = 1,234", "n = 1,236") == (0.0, pytest.approx(2 / 1234))
    assert numeric_difference("-0.004", "0.001") == (pytest.approx(0.005), 0.0)
    assert numeric_difference("2.5e-05", "2.6e-05") == (pytest.approx(1e-6), 0.0)


def test_padding_that_follows_the_number_of_digits_is_not_a_difference():
    assert within("loss   9.5 |", "loss  10.5 |", {"abs": 1.0})


def test_small_numbers_are_measured_absolutely_and_large_ones_relatively():
    assert numeric_difference("0 and 200", "1e-9 and 202") == (1e-9, pytest.approx(0.01))


def test_a_tolerance_as_large_as_the_measured_difference_accepts_it():
    reference, computed = "angle 0.149 deg, length 4.10, share 0.692", "angle 0.229 deg, length 4.12, share 0.688"
    measured_abs, measured_rel = numeric_difference(reference, computed)
    assert within(reference, computed, {"abs": measured_abs, "rel": measured_rel * 1.000001})
    assert not within(reference, computed, {"abs": measured_abs * 0.9, "rel": measured_rel})


def _output(**fields):
    return nbformat.from_dict(fields)


def test_snapping_replaces_only_outputs_within_the_tolerance():
    reference = [
        _output(output_type="stream", name="stdout", text="share 0.692\n"),
        _output(output_type="display_data", data={"application/papermill.record/text/plain": "0.692308"}, metadata={}),
        _output(output_type="display_data", data={"text/plain": "pairs 273"}, metadata={}),
    ]
    computed = [
        _output(output_type="stream", name="stdout", text="share 0.696\n"),
        _output(output_type="display_data", data={"application/papermill.record/text/plain": "0.695971"}, metadata={}),
        _output(output_type="display_data", data={"text/plain": "pairs 280"}, metadata={}),
    ]
    snap_to_reference(computed, reference, {"abs": 0.005})
    assert computed[0]["text"] == "share 0.692\n"
    assert computed[1]["data"]["application/papermill.record/text/plain"] == "0.692308"
    assert computed[2]["data"]["text/plain"] == "pairs 280"  # beyond the tolerance: left for nbval to report


def test_streams_are_merged_before_comparison_as_nbval_merges_them():
    split = [_output(output_type="stream", name="stdout", text="a 1\n"), _output(output_type="stream", name="stdout", text="b 2\n")]
    whole = [_output(output_type="stream", name="stdout", text="a 1\nb 2\n")]
    assert text_outputs(split) == text_outputs(whole)


def test_images_are_not_compared_as_text():
    outputs = [_output(output_type="display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"}, metadata={})]
    assert text_outputs(outputs) == ["[text/plain] <Figure>"]


def test_every_configuration_prints_as_environment_words(capsys):
    for name, environment in CONFIGURATIONS.items():
        main(["env", name])
        words = capsys.readouterr().out.split()
        assert dict(word.split("=", 1) for word in words) == environment
