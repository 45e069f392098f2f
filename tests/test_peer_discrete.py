"""Cases from the KL test suites of scipy, PyTorch, TensorFlow Probability and dit, re-expressed with klbook's
discrete API. Each docstring names its source (repository, file, test). Where klbook deliberately differs,
the test asserts klbook's documented behaviour and says so:

* scipy.stats.entropy divides ``pk`` and ``qk`` by their sums; klbook refuses distributions that do not sum
  to 1 (a ``ValueError``): a vector of counts or weights passed by mistake should not give a number. The
  scipy values are checked on the normalised inputs.
* scipy's default axis is 0, klbook's -1: the cases pass ``axis=0`` explicitly where scipy used its default.
* scipy.special.rel_entr/kl_div return inf for negative arguments; klbook raises a ValueError.
* dit compares distributions over named outcomes; here they are vectors over the union of the outcomes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from klbook import cross_entropy, entropy, js_divergence, kl_divergence
from klbook.discrete import kl_terms

LN2 = math.log(2.0)
PK = np.array([[0.1, 0.2], [0.6, 0.3], [0.3, 0.5]])
QK = np.array([[0.2, 0.1], [0.3, 0.6], [0.5, 0.3]])


# ---------------------------------------------------------------------------------------------------
# scipy: scipy/stats/tests/test_entropy.py, class TestEntropy
# ---------------------------------------------------------------------------------------------------


def test_scipy_entropy_positive():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_positive (ticket #497)."""
    pk, qk = [0.5, 0.2, 0.3], [0.1, 0.25, 0.65]
    assert kl_divergence(pk, pk) == 0.0
    assert kl_divergence(pk, qk) > 0


def test_scipy_entropy_base():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_base. scipy passes
    unnormalised ones(16) and a 2/1 weighting; klbook refuses them (documented difference) and gives the
    scipy values for the normalised vectors."""
    with pytest.raises(ValueError, match="p must sum to 1"):
        entropy(np.ones(16), base=2.0)
    pk = np.full(16, 1 / 16)
    assert abs(entropy(pk, base=2.0) - 4.0) < 1e-5
    qk = np.where(np.arange(16) < 8, 2.0, 1.0)
    qk = qk / qk.sum()
    ratio = kl_divergence(pk, qk) / kl_divergence(pk, qk, base=2.0)
    assert abs(ratio - LN2) < 1e-5


def test_scipy_entropy_zero():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_zero (PR-479): [0, 1, 2]
    normalised by scipy; klbook refuses the raw vector and agrees on [0, 1/3, 2/3]."""
    with pytest.raises(ValueError, match="off by 2"):
        entropy([0.0, 1.0, 2.0])
    assert entropy([0.0, 1 / 3, 2 / 3]) == pytest.approx(0.63651416829481278, rel=1e-13)


def test_scipy_entropy_2d():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_2d (scipy's default axis 0)."""
    np.testing.assert_allclose(kl_divergence(PK, QK, axis=0), [0.1933259, 0.18609809], rtol=1e-7)


def test_scipy_entropy_2d_zero():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_2d_zero: a zero in q under mass
    of p gives inf; a zero in p drops its term."""
    # scipy normalises each column; klbook needs them normalised: q's first column [0, .3, .5] / 0.8
    qk = np.array([[0.0, 0.1], [0.375, 0.6], [0.625, 0.3]])
    result = kl_divergence(PK, qk, axis=0)
    assert result[0] == math.inf
    assert result[1] == pytest.approx(0.18609809, rel=1e-7)
    pk = np.array([[0.0, 0.2], [2 / 3, 0.3], [1 / 3, 0.5]])  # p's first column [0, .6, .3] / 0.9
    np.testing.assert_allclose(kl_divergence(pk, qk, axis=0), [0.17403988, 0.18609809], rtol=1e-7)


def test_scipy_entropy_base_2d_nondefault_axis():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_base_2d_nondefault_axis: the
    rows of PK do not sum to 1 (scipy normalises them); klbook refuses, and agrees on the normalised rows."""
    with pytest.raises(ValueError, match="p must sum to 1 along axis 1"):
        entropy(PK, axis=1)
    rows = PK / PK.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(entropy(rows, axis=1), [0.63651417, 0.63651417, 0.66156324], rtol=1e-7)


def test_scipy_entropy_2d_nondefault_axis():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_2d_nondefault_axis, on the
    normalised rows (documented difference: scipy normalises)."""
    p = PK / PK.sum(axis=1, keepdims=True)
    q = QK / QK.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(kl_divergence(p, q, axis=1), [0.23104906, 0.23104906, 0.12770641], rtol=1e-7)


def test_scipy_entropy_raises_value_error():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_raises_value_error and
    ::test_entropy_shape_mismatch: shapes that do not broadcast."""
    with pytest.raises(ValueError, match=r"shapes do not broadcast: p \(3, 2\), q \(2, 2\)"):
        kl_divergence(PK, QK[:2])
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        kl_divergence(np.full((10, 1, 12), 1 / 12), np.full((11, 2), 0.5))


def test_scipy_entropy_with_axis_0_is_equal_to_default_and_transposed():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_base_entropy_with_axis_0_is_equal_to_default,
    ::test_entropy_with_axis_0_is_equal_to_default, ::test_base_entropy_transposed, ::test_entropy_transposed
    (klbook's default axis is -1, so the default is compared with the transposed inputs)."""
    np.testing.assert_array_equal(entropy(PK, axis=0), entropy(PK.T))
    np.testing.assert_array_equal(kl_divergence(PK, QK, axis=0), kl_divergence(PK.T, QK.T))


def test_scipy_entropy_broadcasting():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_entropy_broadcasting: p of shape (3,)
    against q of shape (2, 1) broadcasts to two pairs. (scipy's inputs are random positive numbers that it
    normalises; here q is a batch of two distributions over 3 outcomes broadcast against one p.)"""
    rng = np.random.default_rng(74187315492831452)
    x = rng.dirichlet(np.ones(3))
    y = rng.dirichlet(np.ones(3), size=2)
    res = kl_divergence(x, y)
    assert res[0] == kl_divergence(x, y[0])
    assert res[1] == kl_divergence(x, y[1])


def test_scipy_entropy_input_validation():
    """scipy/scipy scipy/stats/tests/test_entropy.py::TestEntropy::test_input_validation: base=-2 refused."""
    with pytest.raises(ValueError, match="base must be a number > 0"):
        entropy(np.full(10, 0.1), base=-2)


# ---------------------------------------------------------------------------------------------------
# scipy: scipy/special/tests/test_basic.py, test_kl_div and test_rel_entr
# ---------------------------------------------------------------------------------------------------

_VALUES = (0.0, 0.5, 1.0)


def _scipy_kl_div_reference(x, y):
    """The reference function of scipy's test_kl_div, for x, y >= 0."""
    if y == 0 and x != 0:
        return math.inf
    if x == 0:
        return y
    return x * math.log(x / y) - x + y


def test_scipy_special_kl_div_pointwise():
    """scipy/scipy scipy/special/tests/test_basic.py::test_kl_div: over x, y in {0, 0.5, 1}, klbook's
    elementwise term (klbook.discrete.kl_terms, whose sum is the divergence) equals kl_div(x, y) =
    x log(x/y) - x + y, with kl_div(0, y) = y and inf for x > 0 = y. scipy's negative arguments give inf;
    klbook's public functions raise instead (test_scipy_special_negative_arguments_raise)."""
    pairs = np.array(list(itertools.product(_VALUES, _VALUES)))
    got = kl_terms(np, pairs[:, 0], pairs[:, 1])
    expected = [_scipy_kl_div_reference(x, y) for x, y in pairs]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


def test_scipy_special_rel_entr_pointwise():
    """scipy/scipy scipy/special/tests/test_basic.py::test_rel_entr: rel_entr(x, y) = x log(x/y), 0 for
    x = 0 <= y, inf for x > 0 = y. klbook's sum of kl_terms equals the sum of rel_entr for distributions
    (the -x + y parts cancel); checked on two-outcome distributions built from the same values."""
    for a, b in itertools.product(_VALUES, _VALUES):
        p, q = np.array([a, 1 - a]), np.array([b, 1 - b])
        expected = sum(
            0.0 if x == 0 else (math.inf if y == 0 else x * math.log(x / y)) for x, y in zip(p, q)
        )
        assert kl_divergence(p, q) == pytest.approx(expected, rel=1e-13, abs=1e-13)


@pytest.mark.parametrize("fn", [kl_divergence, cross_entropy, js_divergence])
def test_scipy_special_negative_arguments_raise(fn):
    """scipy/scipy scipy/special/tests/test_basic.py::test_kl_div and ::test_rel_entr give inf for negative
    arguments (extension preserving convexity); klbook deliberately raises: a negative probability is an
    error in the input."""
    with pytest.raises(ValueError, match="must be non-negative"):
        fn([-0.5, 1.5], [0.5, 0.5])


# ---------------------------------------------------------------------------------------------------
# PyTorch: test/distributions/test_distributions.py, class TestKL
# ---------------------------------------------------------------------------------------------------


def test_torch_kl_edgecases():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::test_kl_edgecases: Bernoulli(0) vs
    itself, Bernoulli(1) vs itself and Categorical([0, 1]) vs itself all have divergence exactly 0."""
    for p in ([1.0, 0.0], [0.0, 1.0]):
        assert kl_divergence(p, p) == 0.0
        assert kl_divergence(torch.tensor(p), torch.tensor(p)).item() == 0.0


def test_torch_kl_infinite():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::test_kl_infinite (the discrete
    pairs of infinite_examples): Bernoulli(0) vs Bernoulli(1), Bernoulli(1) vs Bernoulli(0),
    Categorical([0.9, 0.1]) vs Categorical([1, 0]), and a batch of the latter broadcast against one q."""
    assert kl_divergence([1.0, 0.0], [0.0, 1.0]) == math.inf  # Bernoulli(0) as (P(0), P(1))
    assert kl_divergence([0.0, 1.0], [1.0, 0.0]) == math.inf
    assert kl_divergence(torch.tensor([0.9, 0.1]), torch.tensor([1.0, 0.0])).item() == math.inf
    batch = kl_divergence(torch.tensor([[0.9, 0.1], [0.9, 0.1]]), torch.tensor([1.0, 0.0]))
    assert batch.shape == (2,) and (batch == math.inf).all()


CATEGORICAL_PARAMS = [[0.4, 0.3, 0.3], [0.2, 0.7, 0.1], [0.33, 0.33, 0.34], [0.2, 0.2, 0.6]]


def test_torch_kl_categorical_pairs_agree_with_torch_distributions():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::setUp, the `categorical` pairwise
    examples (used by test_kl_monte_carlo and test_kl_shape): all 4 x 4 pairs, as a batch, agree with
    torch.distributions.kl_divergence and have the batch's shape."""
    from torch.distributions import Categorical
    from torch.distributions import kl_divergence as torch_kl

    params = torch.tensor(CATEGORICAL_PARAMS, dtype=torch.float64)
    p = params[:, None, :].expand(4, 4, 3)  # varies along the first axis
    q = params[None, :, :].expand(4, 4, 3)  # varies along the second
    ours = kl_divergence(p, q)
    assert ours.shape == (4, 4)
    torch.testing.assert_close(ours, torch_kl(Categorical(probs=p), Categorical(probs=q)), rtol=1e-12, atol=1e-15)


def test_torch_kl_monte_carlo_categorical():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::test_kl_monte_carlo for the categorical
    pairs: the mean of log p(x) - log q(x) over samples of p approaches the divergence (relative error
    |expected - actual| / (1 + expected) < 0.1, torch's precision), here with klbook's k1 estimator."""
    from klbook import mc_kl

    generator = torch.Generator().manual_seed(0)
    params = torch.tensor(CATEGORICAL_PARAMS, dtype=torch.float64)
    for i, j in itertools.product(range(4), range(4)):
        x = torch.multinomial(params[i], 20000, replacement=True, generator=generator)
        # mc_kl estimates D(q||p) from samples of q (its first argument): here q = params[i]
        estimate = mc_kl(torch.log(params[i][x]), torch.log(params[j][x]), estimator="k1").estimate
        actual = kl_divergence(params[i], params[j])
        assert abs(estimate - actual) / (1 + estimate) < 0.1


# ---------------------------------------------------------------------------------------------------
# TensorFlow Probability: tensorflow_probability/python/distributions/categorical_test.py
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("categories", [2, 4, 10])
@pytest.mark.parametrize("batch_size", [1, 2, 10])
def test_tfp_categorical_categorical_kl(categories, batch_size):
    """tensorflow/probability tensorflow_probability/python/distributions/categorical_test.py::
    CategoricalTest::testCategoricalCategoricalKL (categories 2, 4; batches 1, 10) and
    onehot_categorical_test.py::OneHotCategoricalTest::testCategoricalCategoricalKL (categories 2, 10;
    batches 1, 2): the divergence of softmax(a) from softmax(b) is sum p (log p - log q), and D(a||a) = 0."""
    rng = np.random.default_rng(categories * 100 + batch_size)
    a_logits, b_logits = rng.standard_normal((2, batch_size, categories))

    def softmax(logits):
        e = np.exp(logits)
        return e / e.sum(axis=-1, keepdims=True)

    prob_a, prob_b = softmax(a_logits), softmax(b_logits)
    expected = np.sum(prob_a * (np.log(prob_a) - np.log(prob_b)), axis=-1)
    got = kl_divergence(prob_a, prob_b)
    assert got.shape == (batch_size,)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(kl_divergence(prob_a, prob_a), np.zeros(batch_size))


# ---------------------------------------------------------------------------------------------------
# dit: dit/divergences/tests/
# ---------------------------------------------------------------------------------------------------

# dit's example distributions as vectors over the union of their outcomes, in bits.
D1 = [0.5, 0.5, 0.0]  # outcomes '0', '1' (of '0', '1', '2')
D2 = [0.5, 0.0, 0.5]  # outcomes '0', '2'
D3 = [1 / 3, 1 / 3, 1 / 3]  # outcomes '0', '1', '2'
D4 = [0.4, 0.6]  # outcomes '00', '11'; marginals of either variable are the same
D5 = [0.5, 0.5]


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [
        (D1, D3, 0.5849625007211563),
        ([0.5, 0.5], D4, 0.0294468445267841),  # d1 against d4's first variable ('0', '1')
        (D4, [0.5, 0.5], 0.029049405545331419),
        (D4, D5, 0.029049405545331419),
        (D5, D4, 0.0294468445267841),
        (D1, D2, math.inf),
        (D2, D1, math.inf),
        (D3, D1, math.inf),
    ],
)
def test_dit_dkl_known_values(p, q, expected):
    """dit/dit dit/divergences/tests/test_kullback_leibler_divergence.py::test_dkl_1: known values, in bits.
    (The rvs arguments select a variable; d4's variables are equal, so each marginal is [0.4, 0.6].)"""
    assert kl_divergence(p, q, base=2) == pytest.approx(expected, rel=1e-13)


def test_dit_dkl_conditional_on_the_other_variable_is_zero():
    """dit/dit dit/divergences/tests/test_kullback_leibler_divergence.py::test_dkl_1, the cases
    [d4, d5, [0], [1]] and [d4, d5, [1], [0]]: given one variable the other is determined in d4 and d5, so
    the conditional distributions (the rows of a batch) are equal point masses and every divergence is 0."""
    rows_d4 = np.array([[1.0, 0.0], [0.0, 1.0]])  # p(x0 | x1 = 0), p(x0 | x1 = 1)
    rows_d5 = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(kl_divergence(rows_d4, rows_d5, base=2), [0.0, 0.0])


@pytest.mark.parametrize("d", [D1, D2, D3, D4, D5])
def test_dit_dkl_of_a_distribution_with_itself_is_zero(d):
    """dit/dit dit/divergences/tests/test_kullback_leibler_divergence.py::test_dkl_2."""
    assert kl_divergence(d, d) == 0.0


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [
        (D1, D3, 1.5849625007211563),
        ([0.5, 0.5], D4, 1.0294468445267841),
        (D4, [0.5, 0.5], 1.0),
        (D4, D5, 1.0),
        (D5, D4, 1.0294468445267841),
        (D1, D2, math.inf),
        (D2, D1, math.inf),
        (D3, D1, math.inf),
    ],
)
def test_dit_cross_entropy_known_values(p, q, expected):
    """dit/dit dit/divergences/tests/test_cross_entropy.py::test_cross_entropy_1, in bits."""
    assert cross_entropy(p, q, base=2) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("d", [D1, D2, D3, D4, D5])
def test_dit_cross_entropy_with_itself_is_the_entropy(d):
    """dit/dit dit/divergences/tests/test_cross_entropy.py::test_cross_entropy_2: xH(d, d) = H(d)."""
    assert cross_entropy(d, d, base=2) == pytest.approx(entropy(d, base=2), rel=1e-15)


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [
        ([0.5, 0.5], [0.5, 0.5], 0.0),  # test_jsd1
        ([0.5, 0.5, 0.0], [0.0, 0.5, 0.5], 0.5),  # test_jsd2: 'AB' and 'BC'
        ([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], 1.0),  # test_jsd3: disjoint supports
    ],
)
def test_dit_jensen_shannon_divergence(p, q, expected):
    """dit/dit dit/divergences/tests/test_jensen_shannon_divergence.py::test_jsd1, ::test_jsd2, ::test_jsd3
    (bits). dit's weighted JSD (test_jsd4, test_jsd5) has no counterpart: klbook's js_divergence is the
    equal-weight form."""
    assert js_divergence(p, q, base=2) == pytest.approx(expected, abs=1e-15)
