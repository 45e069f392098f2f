"""Bad and unusual inputs across every public function of klbook: one table, every kind of input.

Each public function is described once (its arguments, a good value for each), and every kind of bad
input is put in the place of every argument in turn. The contract (README, "The library"): an input that
is not real numbers raises a ``TypeError`` naming the argument; one that is numbers but unusable raises a
``ValueError`` naming it; no warning escapes from klbook; an empty batch gives an empty result.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

import klbook
from klbook import discrete


class Signature(NamedTuple):
    name: str
    call: Callable[..., Any]
    args: dict[str, Any]  # argument name -> a good value, in call order


MIX = {"weights": [0.3, 0.7], "means": [-1.0, 1.0], "stds": [1.0, 0.5]}
EYE = np.eye(2)

SIGNATURES = [
    Signature("kl_divergence", klbook.kl_divergence, {"p": [0.5, 0.5], "q": [0.25, 0.75]}),
    Signature("entropy", klbook.entropy, {"p": [0.5, 0.5]}),
    Signature("cross_entropy", klbook.cross_entropy, {"p": [0.5, 0.5], "q": [0.25, 0.75]}),
    Signature("js_divergence", klbook.js_divergence, {"p": [0.5, 0.5], "q": [0.25, 0.75]}),
    Signature("mutual_information", klbook.mutual_information, {"joint": [[0.25, 0.25], [0.25, 0.25]]}),
    Signature("kl_normal", klbook.kl_normal, {"mu_p": 0.0, "sigma_p": 1.0, "mu_q": 0.5, "sigma_q": 2.0}),
    Signature(
        "kl_diag_normal",
        klbook.kl_diag_normal,
        {"mu_p": [0.0, 1.0], "logvar_p": [0.0, 0.5], "mu_q": [0.5, 0.0], "logvar_q": [1.0, 0.0]},
    ),
    Signature("kl_std_normal", klbook.kl_std_normal, {"mu": [0.0, 1.0], "logvar": [0.0, 0.5]}),
    Signature("kl_mvn", klbook.kl_mvn, {"mu_p": [0.0, 1.0], "cov_p": EYE, "mu_q": [0.5, 0.0], "cov_q": 2 * EYE}),
    Signature("normal_logpdf", klbook.normal_logpdf, {"x": [0.0, 1.0], "mu": 0.5, "sigma": 2.0}),
    Signature("k1", klbook.k1, {"log_q": [-1.0, -2.0], "log_p": [-1.5, -1.0]}),
    Signature("k2", klbook.k2, {"log_q": [-1.0, -2.0], "log_p": [-1.5, -1.0]}),
    Signature("k3", klbook.k3, {"log_q": [-1.0, -2.0], "log_p": [-1.5, -1.0]}),
    Signature("mc_kl", klbook.mc_kl, {"log_q": [-1.0, -2.0], "log_p": [-1.5, -1.0]}),
    Signature("mixture_logpdf", klbook.mixture_logpdf, {"x": [0.0, 1.0], **MIX}),
    Signature("mixture_entropy", klbook.mixture_entropy, dict(MIX)),
    Signature(
        "kl_normal_mixture",
        lambda *a: klbook.kl_normal_mixture(*a, "forward"),
        {"mu": 0.0, "sigma": 1.0, **MIX},
    ),
    Signature("fit_normal_to_mixture", lambda *a: klbook.fit_normal_to_mixture(*a, "forward"), dict(MIX)),
    Signature("reverse_kl_derivatives", klbook.reverse_kl_derivatives, {"mu": 0.0, "sigma": 1.0, **MIX}),
]


def test_the_table_covers_every_public_function():
    described = {s.name for s in SIGNATURES}
    functions = {name for name in klbook.__all__ if callable(getattr(klbook, name)) and name[0].islower()}
    assert described == functions


def _complex(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64) + 1j


def _huge_int(value: Any) -> Any:
    """The value with one entry replaced by a Python int far beyond the float64 range."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return 10**400
    out = array.astype(object)
    out.flat[0] = 10**400
    return out.tolist()


# kind -> (how to make the bad value from a good one, the exception, what the message must say)
BAD_KINDS = {
    "None": (lambda v: None, TypeError, "got None"),
    "numeric string": (lambda v: "0.5", TypeError, "string"),
    "array of numeric strings": (lambda v: np.asarray(v, dtype=np.float64).astype(str), TypeError, "dtype <U"),
    "complex numpy": (_complex, TypeError, "must be real"),
    "complex Python number": (lambda v: 0.5 + 1j, TypeError, "must be real"),
    "complex tensor": (lambda v: torch.as_tensor(_complex(v)), TypeError, "must be real"),
    "masked array": (
        lambda v: np.ma.masked_array(np.asarray(v, dtype=np.float64), mask=np.ones(np.shape(v), dtype=bool)),
        TypeError,
        "masked array",
    ),
    "huge Python int": (_huge_int, ValueError, "beyond the float64 range"),
    "list with None": (
        lambda v: [None] + list(np.ravel(v)[1:]) if np.ndim(v) else [None],
        TypeError,
        "None",
    ),
}


CASES = [
    pytest.param(sig, arg, kind, id=f"{sig.name}-{arg}-{kind}")
    for sig in SIGNATURES
    for arg in sig.args
    for kind in BAD_KINDS
]


@pytest.mark.parametrize(("sig", "arg", "kind"), CASES)
def test_bad_input_kind_raises_an_error_naming_the_argument_without_warnings(sig, arg, kind):
    make, error, says = BAD_KINDS[kind]
    args = dict(sig.args)
    args[arg] = make(args[arg])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error) as info:
            sig.call(*args.values())
    message = str(info.value)
    assert arg in message and says in message, message


def test_the_good_values_of_the_table_are_accepted_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for sig in SIGNATURES:
            sig.call(*sig.args.values())


def test_a_huge_int_that_fits_in_float64_is_an_ordinary_number():
    big = 2**70  # numpy cannot make it an int64 (an object array); float64 holds it exactly
    assert klbook.k1(big, 0.0) == float(big)  # k1 = log_q - log_p
    assert klbook.k1([0.0, big], [0.0, 0.0])[1] == float(big)


# ------------------------------------------------------------------------------------------------
# Empty batches
# ------------------------------------------------------------------------------------------------

EMPTY_BATCHES = [
    ("kl_divergence", lambda e: klbook.kl_divergence(e((0, 3)), e((0, 3))), (0,)),
    ("kl_divergence, broadcast", lambda e: klbook.kl_divergence(e((0, 3)), e((3,)) + 1 / 3), (0,)),
    ("kl_divergence, axis 0", lambda e: klbook.kl_divergence(e((3, 0)), e((3, 0)), axis=0), (0,)),
    ("kl_divergence, no outcomes and no batch", lambda e: klbook.kl_divergence(e((0, 0)), e((0, 0))), (0,)),
    ("entropy", lambda e: klbook.entropy(e((0, 4))), (0,)),
    ("cross_entropy", lambda e: klbook.cross_entropy(e((2, 0, 3)), e((2, 0, 3))), (2, 0)),
    ("js_divergence", lambda e: klbook.js_divergence(e((0, 3)), e((0, 3))), (0,)),
    ("mutual_information", lambda e: klbook.mutual_information(e((0, 2, 2))), (0,)),
    ("kl_normal", lambda e: klbook.kl_normal(e((0,)), e((0,)) + 1, e((0,)), e((0,)) + 1), (0,)),
    ("kl_diag_normal", lambda e: klbook.kl_diag_normal(e((0, 3)), e((0, 3)), e((0, 3)), e((0, 3))), (0,)),
    ("kl_std_normal", lambda e: klbook.kl_std_normal(e((0, 3)), e((0, 3))), (0,)),
    ("normal_logpdf", lambda e: klbook.normal_logpdf(e((0,)), 0.0, 1.0), (0,)),
    ("k1", lambda e: klbook.k1(e((0,)), e((0,))), (0,)),
    ("k2", lambda e: klbook.k2(e((0,)), e((0,))), (0,)),
    ("k3", lambda e: klbook.k3(e((0,)), e((0,))), (0,)),
    ("mc_kl", lambda e: klbook.mc_kl(e((0, 5)), e((0, 5))).estimate, (0,)),
    ("mixture_logpdf", lambda e: klbook.mixture_logpdf(e((0,)), *MIX.values()), (0,)),
]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(("label", "call", "shape"), EMPTY_BATCHES, ids=[c[0] for c in EMPTY_BATCHES])
def test_an_empty_batch_gives_an_empty_result(label, call, shape, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if backend == "numpy":
            result = call(lambda s: np.zeros(s))
            assert isinstance(result, np.ndarray) and result.dtype == np.float64
        else:
            result = call(lambda s: torch.zeros(s, dtype=torch.float32))
            assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
    assert tuple(result.shape) == shape


def test_kl_mvn_of_an_empty_batch_is_empty():
    result = klbook.kl_mvn(np.zeros((0, 2)), np.zeros((0, 2, 2)) + EYE, np.zeros((0, 2)), np.zeros((0, 2, 2)) + EYE)
    assert result.shape == (0,)


def test_kl_normal_mixture_of_an_empty_batch_of_gaussians_is_empty():
    assert klbook.kl_normal_mixture(np.zeros(0), np.ones(0), *MIX.values(), "forward").shape == (0,)


@pytest.mark.parametrize("fn", [klbook.kl_divergence, klbook.cross_entropy, klbook.js_divergence])
def test_a_distribution_without_outcomes_in_a_non_empty_batch_is_refused(fn):
    with pytest.raises(ValueError, match=r"p has no outcomes along axis -1 \(shape \(3, 0\)\): it cannot sum to 1"):
        fn(np.zeros((3, 0)), np.zeros((3, 0)))


# ------------------------------------------------------------------------------------------------
# Sums of narrow-dtype distributions, as training produces them
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("classes", [10, 1000])
def test_softmax_outputs_of_every_float_dtype_are_accepted(dtype, classes):
    generator = torch.Generator().manual_seed(classes)
    logits_p = 3 * torch.randn(500, classes, generator=generator)
    logits_q = 3 * torch.randn(500, classes, generator=generator)
    p, q = torch.softmax(logits_p.to(dtype), -1), torch.softmax(logits_q.to(dtype), -1)
    assert (p.double().sum(-1) != 1).any()  # the rounding this test is about is there
    for fn in (klbook.kl_divergence, klbook.cross_entropy, klbook.js_divergence):
        assert fn(p, q).dtype == dtype
    assert klbook.entropy(p).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_narrow_distributions_are_evaluated_as_the_normalised_distributions_they_represent(dtype):
    generator = torch.Generator().manual_seed(7)
    p = torch.softmax(3 * torch.randn(200, 10, generator=generator), -1).to(dtype)
    q = torch.softmax(3 * torch.randn(200, 10, generator=generator), -1).to(dtype)
    p64, q64 = p.double().numpy(), q.double().numpy()
    p64, q64 = p64 / p64.sum(-1, keepdims=True), q64 / q64.sum(-1, keepdims=True)
    cases = [
        (klbook.kl_divergence(p, q), klbook.kl_divergence(p64, q64)),
        (klbook.entropy(p), klbook.entropy(p64)),
        (klbook.cross_entropy(p, q), klbook.cross_entropy(p64, q64)),
        (klbook.js_divergence(p, q), klbook.js_divergence(p64, q64)),
    ]
    for got, exact in cases:
        # the exact value of the normalised inputs, rounded once to the dtype
        torch.testing.assert_close(got, torch.as_tensor(exact).to(dtype), rtol=0, atol=0)
    # a distribution against itself: exactly 0, however far its sum is from 1
    assert (klbook.kl_divergence(p, p) == 0).all()


def test_mutual_information_of_a_narrow_joint_table_is_that_of_the_normalised_table():
    joint = torch.tensor([[0.3, 0.2], [0.1, 0.4]], dtype=torch.bfloat16)
    exact = joint.double().numpy() / joint.double().sum().item()
    assert klbook.mutual_information(joint).item() == float(
        torch.tensor(klbook.mutual_information(exact)).to(torch.bfloat16)
    )


@pytest.mark.parametrize(
    ("dtype", "n", "tolerance"),
    [
        (np.float64, 10, discrete.SUM_TOLERANCE),
        (np.float32, 10, discrete.SUM_TOLERANCE_LOW_PRECISION),
        (np.float16, 10, 10 * 2.0**-10),
        (torch.bfloat16, 10, 10 * 2.0**-7),
        (torch.float32, 10**6, 10**6 * 2.0**-23),
    ],
)
def test_the_sum_tolerance_scales_with_the_dtype_and_the_number_of_outcomes(dtype, n, tolerance):
    value = torch.zeros(1, dtype=dtype) if isinstance(dtype, torch.dtype) else np.zeros(1, dtype=dtype)
    assert discrete.sum_tolerance(value, n) == tolerance


def test_a_float16_distribution_beyond_its_tolerance_is_refused():
    p = np.array([0.5, 0.5 + 3 * 2.0**-10], dtype=np.float16)  # off by 3 eps > 2 eps (n = 2)
    with pytest.raises(ValueError, match=r"p must sum to 1 along axis -1; it is off by 0\.00293"):
        klbook.entropy(p)


def test_each_argument_is_judged_by_its_own_dtype():
    off = np.array([0.5, 0.5 + 1e-3])
    with pytest.raises(ValueError, match="q must sum to 1"):
        klbook.kl_divergence(off.astype(np.float16), off)  # p is float16 (accepted), q float64 (not)


# ------------------------------------------------------------------------------------------------
# Estimators at log_p = +inf
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [klbook.k1, klbook.k2, klbook.k3, klbook.mc_kl])
def test_a_log_density_of_plus_infinity_is_refused(fn):
    with pytest.raises(ValueError, match=r"log_p must be finite or -inf; it contains \+inf"):
        fn([0.0, 0.0], [math.inf, 0.0])


def test_a_log_density_of_minus_infinity_still_gives_plus_infinity():
    for fn in (klbook.k1, klbook.k2, klbook.k3):
        assert fn([0.0], torch.tensor([-math.inf]))[0] == math.inf
