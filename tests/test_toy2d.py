"""Tests of klbook.toy2d: the mixture's log-density against scipy, and its samples."""

import numpy as np
import pytest
from scipy import stats

from klbook.toy2d import mixture_logpdf, mixture_sample

MEANS = np.array([[-1.0, -1.0], [1.0, 2.0], [0.5, -0.5]])


def test_logpdf_is_the_equal_mixture_of_scipy_normals():
    x = np.random.default_rng(0).normal(size=(50, 2)) * 3
    expected = np.log(sum(stats.multivariate_normal(m, 0.3**2 * np.eye(2)).pdf(x) for m in MEANS) / 3)
    np.testing.assert_allclose(mixture_logpdf(x, MEANS, 0.3), expected, rtol=1e-12)


def test_samples_are_seeded_and_have_the_mixture_mean():
    a, b = mixture_sample(MEANS, 0.3, 20000, seed=1), mixture_sample(MEANS, 0.3, 20000, seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.mean(axis=0), MEANS.mean(axis=0), atol=0.05)


@pytest.mark.parametrize("call, match", [
    (lambda: mixture_sample(MEANS[:, :1], 0.3, 5, seed=0), "means"),
    (lambda: mixture_sample(MEANS, 0.0, 5, seed=0), "std"),
    (lambda: mixture_sample(MEANS, 0.3, 0, seed=0), "n must"),
    (lambda: mixture_logpdf(np.zeros(2), MEANS, 0.3), "x must"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
