"""Tests of klbook.discrete: exact references, conventions, properties, torch support, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.stats import entropy as scipy_entropy

from klbook import cross_entropy, entropy, js_divergence, kl_divergence, mutual_information
from klbook.accuracy import hard_grids, reference_kl_divergence, ulp_error

from .strategies import distributions, joint_tables, stochastic_matrices

LN2 = math.log(2.0)


def test_worked_example_matches_the_definition():
    p, q = np.array([0.9, 0.1]), np.array([0.5, 0.5])
    assert kl_divergence(p, q) == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-15)
    assert kl_divergence(q, p) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5.0), rel=1e-15)


@pytest.mark.parametrize("grid", [g for g in hard_grids() if g.startswith("discrete")])
def test_kl_divergence_within_4_ulp_of_mpmath(grid):
    inputs = hard_grids()[grid]
    errors = ulp_error(kl_divergence(inputs["p"], inputs["q"]), reference_kl_divergence(inputs["p"], inputs["q"]))
    assert errors.max() <= 4, f"max error {errors.max():.3g} ULP"


def test_kl_divergence_agrees_with_scipy_rel_entr():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(7), 50), rng.dirichlet(np.ones(7), 50)
    np.testing.assert_allclose(kl_divergence(p, q), rel_entr(p, q).sum(axis=-1), rtol=1e-12)


def test_zero_times_log_zero_is_zero():
    assert kl_divergence([0.0, 1.0], [0.5, 0.5]) == pytest.approx(math.log(2.0), rel=1e-15)
    assert entropy([0.0, 1.0]) == 0.0


def test_mass_where_q_is_zero_gives_inf_not_a_finite_number():
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert cross_entropy([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(LN2, rel=1e-15)


def test_tiny_p_next_to_large_q_does_not_overflow():
    p = np.array([5e-324, 1.0 - 5e-324])
    q = np.array([0.5, 0.5])
    assert kl_divergence(p, q) == pytest.approx(math.log(2.0), rel=1e-15)


def test_bits_are_nats_divided_by_ln2():
    p, q = [0.9, 0.1], [0.5, 0.5]
    assert kl_divergence(p, q, base=2) == pytest.approx(kl_divergence(p, q) / LN2, rel=1e-15)
    assert entropy([0.5, 0.5], base=2) == pytest.approx(1.0, rel=1e-15)


def test_entropy_and_cross_entropy_match_scipy():
    rng = np.random.default_rng(2)
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    assert entropy(p) == pytest.approx(scipy_entropy(p), rel=1e-14)
    assert cross_entropy(p, q) == pytest.approx(-(p * np.log(q)).sum(), rel=1e-14)


def test_axis_selects_the_outcome_axis():
    rng = np.random.default_rng(3)
    p, q = rng.dirichlet(np.ones(4), 3), rng.dirichlet(np.ones(4), 3)
    np.testing.assert_allclose(kl_divergence(p.T, q.T, axis=0), kl_divergence(p, q), rtol=1e-15)


def test_batches_broadcast():
    rng = np.random.default_rng(4)
    p, q = rng.dirichlet(np.ones(4), (2, 3)), rng.dirichlet(np.ones(4))
    assert kl_divergence(p, q).shape == (2, 3)


@given(distributions(6), distributions(6))
def test_kl_is_non_negative(p, q):
    assert kl_divergence(p, q) >= 0


@given(distributions(6), distributions(6))
def test_kl_is_zero_iff_equal(p, q):
    assert kl_divergence(p, p) == 0
    if np.abs(p - q).max() > 1e-6:
        assert kl_divergence(p, q) > 0


@given(distributions(6), distributions(6))
def test_kl_is_cross_entropy_minus_entropy(p, q):
    assert kl_divergence(p, q) == pytest.approx(cross_entropy(p, q) - entropy(p), abs=1e-12)


@given(joint_tables(3, 4), joint_tables(3, 4))
def test_chain_rule(joint_p, joint_q):
    # D(p(x,y) || q(x,y)) = D(p(x) || q(x)) + E_{p(x)} D(p(y|x) || q(y|x))
    px, qx = joint_p.sum(axis=1), joint_q.sum(axis=1)
    conditional = kl_divergence(joint_p / px[:, None], joint_q / qx[:, None])
    assert kl_divergence(joint_p.ravel(), joint_q.ravel()) == pytest.approx(
        kl_divergence(px, qx) + (px * conditional).sum(), rel=1e-10, abs=1e-13
    )


@given(distributions(5), distributions(5), stochastic_matrices(5, 3))
def test_data_processing_inequality_for_a_shared_channel(p, q, channel):
    assert kl_divergence(p @ channel, q @ channel) <= kl_divergence(p, q) + 1e-13


@given(distributions(6, allow_zeros=True), distributions(6, allow_zeros=True))
def test_jsd_is_symmetric_and_at_most_ln2(p, q):
    value = js_divergence(p, q)
    assert 0 <= value <= LN2 + 1e-15
    assert value == pytest.approx(js_divergence(q, p), abs=1e-15)


def test_jsd_of_disjoint_supports_is_ln2():
    assert js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(LN2, rel=1e-15)
    assert js_divergence([1.0, 0.0], [0.0, 1.0], base=2) == pytest.approx(1.0, rel=1e-15)


@given(joint_tables(3, 4))
def test_mutual_information_is_entropies_difference(joint):
    mi = mutual_information(joint)
    expected = entropy(joint.sum(axis=1)) + entropy(joint.sum(axis=0)) - entropy(joint.ravel())
    assert mi >= 0
    assert mi == pytest.approx(expected, abs=1e-12)


def test_mutual_information_of_independent_variables_is_zero():
    joint = np.outer([0.2, 0.8], [0.1, 0.6, 0.3])
    assert mutual_information(joint) == pytest.approx(0.0, abs=1e-16)


def test_torch_inputs_give_torch_outputs_of_the_same_dtype():
    p = torch.tensor([0.9, 0.1], dtype=torch.float32)
    q = torch.tensor([0.5, 0.5], dtype=torch.float32)
    for fn in (kl_divergence, cross_entropy, js_divergence):
        value = fn(p, q)
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float32
        assert value.item() == pytest.approx(float(fn(p.double().numpy(), q.double().numpy())), rel=1e-6)
    assert entropy(p).dtype == torch.float32


def test_numpy_inputs_give_numpy_float64():
    assert isinstance(kl_divergence([0.9, 0.1], [0.5, 0.5]), np.float64)
    assert kl_divergence(np.full((3, 2), 0.5), np.full((3, 2), 0.5)).dtype == np.float64


def test_gradients_match_autograd_gradcheck():
    torch.manual_seed(0)
    logits_p = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    logits_q = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)

    def kl_of_logits(a, b):
        return kl_divergence(torch.softmax(a, -1), torch.softmax(b, -1))

    assert torch.autograd.gradcheck(kl_of_logits, (logits_p, logits_q))
    assert torch.autograd.gradcheck(lambda a, b: js_divergence(torch.softmax(a, -1), torch.softmax(b, -1)),
                                    (logits_p, logits_q))


def test_gradient_of_kl_near_p_equals_q_is_finite_and_correct():
    q = torch.tensor([0.3, 0.7], dtype=torch.float64)
    p = (q + torch.tensor([1e-9, -1e-9], dtype=torch.float64)).requires_grad_()
    kl_divergence(p, q).backward()
    # d/dp_i [p_i log(p_i/q_i) - p_i + q_i] = log(p_i / q_i)
    expected = torch.log1p((p.detach() - q) / q)
    torch.testing.assert_close(p.grad, expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize(
    ("p", "q", "kwargs", "message"),
    [
        ([0.5, 0.6], [0.5, 0.5], {}, r"p must sum to 1 along axis -1; it is off by 0\.1"),
        ([0.5, 0.5], [0.7, 0.5], {}, r"q must sum to 1 .* off by 0\.2"),
        ([1.2, -0.2], [0.5, 0.5], {}, r"p must be non-negative; its smallest entry is -0\.2"),
        ([np.nan, 1.0], [0.5, 0.5], {}, r"p contains NaN"),
        ([0.5, 0.5], [np.inf, 0.5], {}, r"q must be finite"),
        ([0.5, 0.5], [0.2, 0.3, 0.5], {}, r"shapes do not broadcast: p \(2,\), q \(3,\)"),
        ([0.5, 0.5], [0.5, 0.5], {"axis": 1}, r"axis 1 is out of range for p with 1 dimension"),
        ([0.5, 0.5], [0.5, 0.5], {"base": 1}, r"base must be a number > 0 other than 1"),
        ([0.5, 0.5], [0.5, 0.5], {"base": -2.0}, r"base must be a number > 0"),
        (0.5, 0.5, {}, r"p must have at least one dimension"),
    ],
)
def test_bad_input_raises_a_clear_value_error(p, q, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kl_divergence(p, q, **kwargs)


def test_bad_joint_table_raises():
    with pytest.raises(ValueError, match=r"joint must be a 2-D table"):
        mutual_information([0.5, 0.5])
    with pytest.raises(ValueError, match=r"joint must sum to 1"):
        mutual_information([[0.5, 0.5], [0.5, 0.5]])


def test_sum_tolerance_is_documented_and_applied():
    from klbook.discrete import SUM_TOLERANCE

    off = 0.5 * SUM_TOLERANCE
    assert np.isfinite(kl_divergence([0.5 + off, 0.5], [0.5, 0.5]))
    with pytest.raises(ValueError, match="off by"):
        kl_divergence([0.5 + 4 * SUM_TOLERANCE, 0.5], [0.5, 0.5])


@given(st.floats(1e-300, 1.0), st.floats(1e-300, 1.0))
def test_binary_kl_matches_mpmath(a, b):
    p, q = np.array([a, 1.0 - a]), np.array([b, 1.0 - b])
    if p[1] < 0 or q[1] < 0:
        return
    exact = reference_kl_divergence(p, q)
    assert ulp_error(kl_divergence(p, q), exact) <= 4


@pytest.mark.parametrize("base", [1, 1.0, 0, 0.0, -0.5, -2])
def test_base_one_and_bases_not_above_zero_are_refused_with_the_documented_message(base):
    with pytest.raises(ValueError, match=r"base must be a number > 0 other than 1 \(or None for nats\)"):
        kl_divergence([0.9, 0.1], [0.5, 0.5], base=base)


@pytest.mark.parametrize("base", [0.5, 2, 10.0, np.float64(2.0), np.int64(3)])
def test_every_base_above_zero_other_than_one_divides_by_its_log(base):
    p, q = [0.9, 0.1], [0.5, 0.5]
    assert kl_divergence(p, q, base=base) == pytest.approx(kl_divergence(p, q) / math.log(base), rel=1e-15)
    assert entropy(p, base=base) == pytest.approx(entropy(p) / math.log(base), rel=1e-15)


@pytest.mark.parametrize("fn", [kl_divergence, cross_entropy, js_divergence])
def test_mixed_dtypes_give_the_wider_dtype_and_the_float64_value(fn):
    p64 = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    q64 = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    for p, q in ((p64.float(), q64), (p64, q64.float())):
        result = fn(p, q)
        assert result.dtype == torch.float64
        exact = fn(p.double().numpy() / p.double().sum().item(), q.double().numpy() / q.double().sum().item())
        assert result.item() == pytest.approx(float(exact), rel=1e-15)


def _loop_over_last_axis(fn, *arrays):
    batch = arrays[0].shape[:-1]
    out = np.empty(batch)
    for index in np.ndindex(batch):
        out[index] = fn(*(a[index] for a in arrays))
    return out


@pytest.mark.parametrize("fn", [kl_divergence, cross_entropy, js_divergence])
def test_batches_with_more_than_two_axes_reduce_the_last_axis_by_default(fn):
    rng = np.random.default_rng(3)
    p, q = rng.dirichlet(np.ones(4), size=(2, 3)), rng.dirichlet(np.ones(4), size=(2, 3))
    np.testing.assert_array_equal(fn(p, q), _loop_over_last_axis(fn, p, q))
    moved = fn(np.moveaxis(p, -1, 1), np.moveaxis(q, -1, 1), axis=1)
    np.testing.assert_allclose(moved, fn(p, q), rtol=1e-15)


def test_entropy_and_mutual_information_of_three_axis_batches():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(5), size=(2, 3))
    np.testing.assert_array_equal(entropy(p), _loop_over_last_axis(entropy, p))
    joint = rng.dirichlet(np.ones(6), size=(2, 3)).reshape(2, 3, 2, 3)
    expected = np.empty((2, 3))
    for index in np.ndindex(2, 3):
        expected[index] = mutual_information(joint[index])
    np.testing.assert_array_equal(mutual_information(joint), expected)
