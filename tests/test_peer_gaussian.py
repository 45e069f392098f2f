"""Cases from the Gaussian KL tests of TensorFlow Probability and PyTorch, re-expressed with klbook's API
(kl_normal, kl_diag_normal, kl_std_normal, kl_mvn). Each docstring names its source (repository, file,
test). klbook takes log-variances in kl_diag_normal/kl_std_normal and covariances in kl_mvn, where the
sources take standard deviations and Cholesky factors; the inputs are converted, not the expectations.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, constraints, transform_to
from torch.distributions import kl_divergence as torch_kl

from klbook import kl_diag_normal, kl_mvn, kl_normal, kl_std_normal


def test_tfp_normal_normal_kl():
    """tensorflow/probability tensorflow_probability/python/distributions/normal_test.py::NormalTest::
    testNormalNormalKL: batch of 6, the closed form
    (mu_a - mu_b)^2 / (2 sigma_b^2) + (sigma_a^2 / sigma_b^2 - 1 - 2 log(sigma_a / sigma_b)) / 2, and a
    Monte Carlo check at rtol 1e-2 (100,000 samples)."""
    mu_a = np.full(6, 3.0)
    sigma_a = np.array([1.0, 2.0, 3.0, 1.5, 2.5, 3.5])
    mu_b = np.full(6, -3.0)
    sigma_b = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    expected = (mu_a - mu_b) ** 2 / (2 * sigma_b**2) + 0.5 * (
        (sigma_a**2 / sigma_b**2) - 1 - 2 * np.log(sigma_a / sigma_b)
    )
    kl = kl_normal(mu_a, sigma_a, mu_b, sigma_b)
    assert kl.shape == (6,)
    np.testing.assert_allclose(kl, expected, rtol=1e-13)
    rng = np.random.default_rng(0)
    x = mu_a + sigma_a * rng.standard_normal((100_000, 6))

    def logpdf(x, mu, sigma):
        return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)

    sample_mean = np.mean(logpdf(x, mu_a, sigma_a) - logpdf(x, mu_b, sigma_b), axis=0)
    np.testing.assert_allclose(sample_mean, kl, rtol=1e-2)


NORMAL_LOC = [-2.0, 2.0, -3.0, 3.0]
NORMAL_SCALE = [1.0, 2.0, 1.0, 2.0]


def test_torch_normal_pairs_agree_with_torch_distributions():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::setUp, the `normal` pairwise examples
    (Normal with loc [-2, 2, -3, 3], scale [1, 2, 1, 2]; all 4 x 4 pairs, used by test_kl_monte_carlo,
    test_kl_exponential_family and test_kl_shape): klbook agrees with torch.distributions, batch shape kept."""
    loc = torch.tensor(NORMAL_LOC, dtype=torch.float64)
    scale = torch.tensor(NORMAL_SCALE, dtype=torch.float64)
    p = (loc[:, None].expand(4, 4), scale[:, None].expand(4, 4))
    q = (loc[None, :].expand(4, 4), scale[None, :].expand(4, 4))
    ours = kl_normal(*p, *q)
    assert ours.shape == (4, 4)
    torch.testing.assert_close(ours, torch_kl(Normal(*p), Normal(*q)), rtol=1e-12, atol=1e-15)
    diag = kl_diag_normal(p[0], 2 * torch.log(p[1]), q[0], 2 * torch.log(q[1]))
    torch.testing.assert_close(diag, ours.sum(-1), rtol=1e-14, atol=0)


def test_torch_kl_monte_carlo_normal():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::test_kl_monte_carlo, the (normal,
    normal) pairs: the Monte Carlo mean of log p(x) - log q(x) over samples of p is within torch's precision
    0.1 of the divergence, relative to 1 + expected."""
    generator = torch.Generator().manual_seed(0)
    for (mp, sp), (mq, sq) in itertools.product(zip(NORMAL_LOC, NORMAL_SCALE), repeat=2):
        x = mp + sp * torch.randn(100_000, generator=generator, dtype=torch.float64)
        expected = (Normal(mp, sp).log_prob(x) - Normal(mq, sq).log_prob(x)).mean()
        actual = kl_normal(mp, sp, mq, sq)
        assert abs(float(expected) - actual) / (1 + float(expected)) < 0.1


def test_torch_kl_independent_normal():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::setUp, `independent` =
    Independent(normal, 1) pairs, and ::test_kl_transformed (shape of Independent(Normal) with (2, 3)
    parameters is (2,)): kl_diag_normal reduces the last axis as Independent does."""
    loc = torch.tensor(NORMAL_LOC, dtype=torch.float64)
    scale = torch.tensor(NORMAL_SCALE, dtype=torch.float64)
    p_loc, p_scale = loc[:, None].expand(4, 4), scale[:, None].expand(4, 4)
    q_loc, q_scale = loc[None, :].expand(4, 4), scale[None, :].expand(4, 4)
    expected = torch_kl(Independent(Normal(p_loc, p_scale), 1), Independent(Normal(q_loc, q_scale), 1))
    ours = kl_diag_normal(p_loc, 2 * p_scale.log(), q_loc, 2 * q_scale.log())
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-15)
    zeros, ones = torch.zeros(2, 3), torch.ones(2, 3)
    assert kl_diag_normal(zeros, ones.log(), zeros, ones.log()).shape == (2,)
    assert kl_std_normal(zeros, ones.log()).shape == (2,)
    assert (kl_std_normal(zeros, zeros) == 0).all()


def _lower_cholesky(generator, *shape):
    return transform_to(constraints.lower_cholesky)(torch.randn(*shape, generator=generator, dtype=torch.float64))


def test_torch_kl_multivariate_normal():
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::test_kl_multivariate_normal: 5 random
    pairs of 4-dimensional Gaussians with random Cholesky factors; the analytic value against a Monte Carlo
    mean (torch's precision 0.1, relative to 1 + expected), and against torch.distributions."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        loc = [torch.randn(4, generator=generator, dtype=torch.float64) for _ in range(2)]
        tril = [_lower_cholesky(generator, 4, 4) for _ in range(2)]
        cov = [t @ t.T for t in tril]
        p = MultivariateNormal(loc[0], scale_tril=tril[0])
        q = MultivariateNormal(loc[1], scale_tril=tril[1])
        actual = kl_mvn(loc[0], cov[0], loc[1], cov[1])
        x = p.sample((100_000,))
        expected = (p.log_prob(x) - q.log_prob(x)).mean()
        assert abs(float(expected - actual)) / (1 + float(expected)) < 0.1
        torch.testing.assert_close(actual, torch_kl(p, q), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("broadcast", [False, True])
def test_torch_kl_multivariate_normal_batched(broadcast):
    """pytorch/pytorch test/distributions/test_distributions.py::TestKL::test_kl_multivariate_normal_batched
    and ::test_kl_multivariate_normal_batched_broadcasted: a batch of 7 pairs of 3-dimensional Gaussians
    gives the values of the pairs taken one by one (with q's covariance shared by the batch when broadcast)."""
    generator = torch.Generator().manual_seed(1)
    loc = [torch.randn(7, 3, generator=generator, dtype=torch.float64) for _ in range(2)]
    tril = [_lower_cholesky(generator, 7, 3, 3), _lower_cholesky(generator, 3, 3) if broadcast else None]
    if not broadcast:
        tril[1] = _lower_cholesky(generator, 7, 3, 3)
    cov = [t @ t.transpose(-1, -2) for t in tril]
    batched = kl_mvn(loc[0], cov[0], loc[1], cov[1])
    one_by_one = torch.stack(
        [kl_mvn(loc[0][i], cov[0][i], loc[1][i], cov[1] if broadcast else cov[1][i]) for i in range(7)]
    )
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=0)
    reference = torch_kl(MultivariateNormal(loc[0], scale_tril=tril[0]), MultivariateNormal(loc[1], scale_tril=tril[1]))
    torch.testing.assert_close(batched, reference, rtol=1e-9, atol=1e-12)


def _tfp_compute_non_batch_kl(mu_a, sigma_a, mu_b, sigma_b):
    """The reference of TFP's mvn_tril_test.py (_compute_non_batch_kl): the textbook formula with explicit
    inverse and determinants (re-written here, not copied)."""
    inv_b = np.linalg.inv(sigma_b)
    diff = mu_b - mu_a
    k = mu_a.shape[-1]
    return 0.5 * (
        np.trace(inv_b @ sigma_a) + diff @ inv_b @ diff - k + np.log(np.linalg.det(sigma_b) / np.linalg.det(sigma_a))
    )


def _tfp_random_mu_and_sigma(rng, batch_shape, k):
    """TFP's _random_mu_and_sigma: sigma = A A^T with A standard normal (no ridge added), mu standard normal."""
    a = rng.standard_normal((*batch_shape, k, k))
    return rng.standard_normal((*batch_shape, k)), a @ np.swapaxes(a, -1, -2)


def test_tfp_mvn_tril_kl_non_batch():
    """tensorflow/probability tensorflow_probability/python/distributions/mvn_tril_test.py::
    MultivariateNormalTriLTest::testKLNonBatch: one pair of 2-dimensional Gaussians with covariances A A^T,
    a scalar result equal to the textbook formula (TFP's assertAllClose: rtol 1e-6)."""
    rng = np.random.RandomState(42)
    mu_a, sigma_a = _tfp_random_mu_and_sigma(rng, (), 2)
    mu_b, sigma_b = _tfp_random_mu_and_sigma(rng, (), 2)
    kl = kl_mvn(mu_a, sigma_a, mu_b, sigma_b)
    assert np.shape(kl) == ()
    np.testing.assert_allclose(kl, _tfp_compute_non_batch_kl(mu_a, sigma_a, mu_b, sigma_b), rtol=1e-6)


@pytest.mark.parametrize("broadcast", [False, True])
def test_tfp_mvn_tril_kl_batch_and_broadcast(broadcast):
    """tensorflow/probability .../mvn_tril_test.py::MultivariateNormalTriLTest::testKLBatch and
    ::testKLBatchBroadcast: a batch of 2 pairs of 3-dimensional Gaussians (q without batch axis when
    broadcast), shape (2,), each entry the textbook value of its pair."""
    rng = np.random.RandomState(42)
    mu_a, sigma_a = _tfp_random_mu_and_sigma(rng, (2,), 3)
    mu_b, sigma_b = _tfp_random_mu_and_sigma(rng, () if broadcast else (2,), 3)
    kl = kl_mvn(mu_a, sigma_a, mu_b, sigma_b)
    assert kl.shape == (2,)
    for i in range(2):
        expected = _tfp_compute_non_batch_kl(
            mu_a[i], sigma_a[i], mu_b if broadcast else mu_b[i], sigma_b if broadcast else sigma_b[i]
        )
        np.testing.assert_allclose(kl[i], expected, rtol=1e-6)


def test_tfp_mvn_tril_kl_of_identical_distributions_is_zero():
    """tensorflow/probability .../mvn_tril_test.py::MultivariateNormalTriLTest::
    testKLTwoIdenticalDistributionsIsZero: KL(p || p) = 0 for a batch of 2 (TFP allows atol 1e-6; klbook
    gives exactly 0)."""
    rng = np.random.RandomState(42)
    mu, sigma = _tfp_random_mu_and_sigma(rng, (2,), 3)
    np.testing.assert_array_equal(kl_mvn(mu, sigma, mu, sigma), np.zeros(2))


def test_tfp_mvn_tril_kl_against_monte_carlo():
    """tensorflow/probability .../mvn_tril_test.py::MultivariateNormalTriLTest::testSampleLarge (its KL
    part): p = N([-1, 1], L L^T) with L = [[3, 0], [1, -2]] / 3 and q = N([0.5, 1.2], M M^T) with
    M = [[3, 0], [1, 2]], float32; the analytical KL against the mean of log p - log q over 10,000 samples
    of p at rtol 0.02. A negative diagonal entry of L gives the same covariance."""
    mu_p = np.array([-1.0, 1.0], dtype=np.float32)
    scale_p = np.array([[3.0, 0.0], [1.0, -2.0]], dtype=np.float32) / 3.0
    mu_q = np.array([0.5, 1.2], dtype=np.float32)
    scale_q = np.array([[3.0, 0.0], [1.0, 2.0]], dtype=np.float32)
    cov_p, cov_q = scale_p @ scale_p.T, scale_q @ scale_q.T
    kl = float(kl_mvn(torch.from_numpy(mu_p), torch.from_numpy(cov_p), torch.from_numpy(mu_q), torch.from_numpy(cov_q)))
    rng = np.random.default_rng(0)
    x = mu_p + rng.standard_normal((10_000, 2)) @ scale_p.astype(np.float64).T

    def logpdf(x, mu, cov):
        diff = x - mu
        return -0.5 * np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff) - 0.5 * np.log(
            np.linalg.det(2 * math.pi * cov)
        )

    sample_kl = np.mean(logpdf(x, mu_p, cov_p.astype(np.float64)) - logpdf(x, mu_q, cov_q.astype(np.float64)))
    np.testing.assert_allclose(sample_kl, kl, rtol=0.02)
    np.testing.assert_allclose(kl, _tfp_compute_non_batch_kl(mu_p, cov_p, mu_q, cov_q), rtol=1e-6)
