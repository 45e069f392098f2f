"""klbook._mvn_loops: the compiled rounding correction of kl_mvn agrees with the array operations of
klbook._mvn, and is the path that float64 numpy arrays and CPU tensors take."""

import numpy as np
import pytest
import torch

from klbook import _mvn, _mvn_loops, kl_mvn
from klbook._linalg import solve_lower
from klbook.accuracy import reference_kl_mvn, ulp_error


def _pairs(seed: int, count: int, k: int, cond: float, near: float | None = None) -> tuple[np.ndarray, ...]:
    """Random pairs whose covariances have condition numbers up to ``cond`` (eigenvalues spread
    geometrically, random rotations) and random means; with ``near``, cov_p is cov_q moved by that
    relative amount (close pairs, in the series branch for small ``near``)."""
    rng = np.random.default_rng(seed)

    def covariance() -> np.ndarray:
        rotation = np.linalg.qr(rng.standard_normal((count, k, k)))[0]
        spread = np.geomspace(1.0, cond, k) * rng.uniform(0.5, 2.0, (count, 1))
        c = (rotation * spread[:, None, :]) @ np.swapaxes(rotation, -1, -2)
        return np.tril(c) + np.swapaxes(np.tril(c, -1), -1, -2)  # exactly symmetric

    cov_q = covariance()
    if near is None:
        cov_p = covariance()
    else:
        chol_q = np.linalg.cholesky(cov_q)
        step = np.tril(rng.standard_normal((count, k, k)))
        factor = chol_q @ (np.eye(k) + near * step / np.linalg.norm(step, axis=(-2, -1), keepdims=True))
        cov_p = factor @ np.swapaxes(factor, -1, -2)
        cov_p = np.tril(cov_p) + np.swapaxes(np.tril(cov_p, -1), -1, -2)
    return rng.standard_normal((count, k)), cov_p, rng.standard_normal((count, k)), cov_q


def _corrections(monkeypatch, *inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kl_mvn's value, and the correction computed by the compiled loop and by the array operations,
    from the very terms kl_mvn computes (caught on their way into rounding_correction)."""
    caught = []
    original = _mvn.rounding_correction

    def catch(xp, solve, terms, *matrices):
        caught.append((terms, matrices))
        return original(xp, solve, terms, *matrices)

    monkeypatch.setattr(_mvn, "rounding_correction", catch)
    value = kl_mvn(*inputs)
    monkeypatch.undo()
    assert len(caught) == 1  # one block
    terms, matrices = caught[0]
    compiled = _mvn.rounding_correction(np, lambda a, b: solve_lower(np, a, b), terms, *matrices)
    by_passes = _mvn._rounding_correction_by_passes(np, lambda a, b: solve_lower(np, a, b), terms, *matrices)
    return value, compiled, by_passes


@pytest.mark.parametrize("k", [1, 2, 3, 8, 16, 23])
@pytest.mark.parametrize("cond", [1.0, 1e3, 1e6])
def test_compiled_correction_agrees_with_the_array_operations(monkeypatch, k, cond):
    # The two compute the same first-order correction from residuals accurate to ~2^-23 of their size,
    # but add up in other orders (BLAS in its own): they agree to ~1e-7 of the correction (measured: at
    # most 0.03 ULP of the KL where the correction is 60,000 ULP, at condition number 1e6), and on
    # well-conditioned pairs to far below an ULP.
    inputs = _pairs(k, 40, k, cond)
    value, compiled, by_passes = _corrections(monkeypatch, *inputs)
    assert np.any(compiled != 0.0)
    tolerance = 2.0**-16 * np.abs(by_passes) + 0.01 * np.spacing(np.abs(value))
    np.testing.assert_array_less(np.abs(compiled - by_passes), tolerance)


def test_compiled_correction_is_not_the_uncorrected_value(monkeypatch):
    # The correction is what brings these ill-conditioned pairs within 4 ULP: without it they are off by
    # far more, so a loop that computed 0 (or nonsense) would fail the agreement test above and this one.
    inputs = _pairs(5, 40, 8, 1e6)
    exact = reference_kl_mvn(*inputs)
    value, compiled, _ = _corrections(monkeypatch, *inputs)
    assert ulp_error(value, exact).max() <= 4
    assert ulp_error(value - compiled, exact).max() > 20


def test_pairs_in_the_series_branch_keep_the_array_operations_in_a_mixed_batch(monkeypatch):
    far, near = _pairs(1, 10, 4, 1e3), _pairs(2, 10, 4, 1e3, near=1e-3)
    inputs = [np.concatenate(parts) for parts in zip(far, near)]
    value, compiled, by_passes = _corrections(monkeypatch, *inputs)
    np.testing.assert_array_equal(compiled[10:], by_passes[10:])  # the same operations on the near pairs
    tolerance = 2.0**-16 * np.abs(by_passes) + 0.01 * np.spacing(np.abs(value))
    np.testing.assert_array_less(np.abs(compiled - by_passes), tolerance)
    assert ulp_error(value, reference_kl_mvn(*inputs)).max() <= 4


@pytest.mark.parametrize("kind", ["numpy", "tensor", "tensor requiring gradients"])
def test_numpy_arrays_and_cpu_tensors_take_the_compiled_loop(monkeypatch, kind):
    calls = []
    original = _mvn_loops.far_correction
    monkeypatch.setattr(_mvn_loops, "far_correction", lambda *a: calls.append(len(a[0])) or original(*a))
    inputs = _pairs(3, 300, 16, 10.0)  # several blocks
    if kind != "numpy":
        inputs = [torch.tensor(a, requires_grad=kind.endswith("gradients")) for a in inputs]
    value = kl_mvn(*inputs)
    assert sum(calls) == 300
    sample = [np.asarray(a.detach() if torch.is_tensor(a) else a)[::30] for a in inputs]  # the reference is slow
    value = np.asarray(value.detach() if torch.is_tensor(value) else value)[::30]
    assert ulp_error(value, reference_kl_mvn(*sample)).max() <= 4


def test_empty_batches_and_a_single_pair():
    assert _mvn_loops.far_correction(*(np.zeros((0, 3, 3)),) * 5, *(np.zeros((0, 3)),) * 3).shape == (0,)
    assert kl_mvn(np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros((0, 3, 3))).shape == (0,)
    inputs = [a[0] for a in _pairs(4, 1, 5, 1e4)]
    assert ulp_error(kl_mvn(*inputs), reference_kl_mvn(*inputs)) <= 4


def test_is_symmetric_finds_a_single_asymmetric_entry():
    flat = _pairs(6, 50, 7, 10.0)[1]
    assert _mvn_loops.is_symmetric(flat)
    flat[31, 5, 2] = np.nextafter(flat[31, 5, 2], np.inf)
    assert not _mvn_loops.is_symmetric(flat)


def test_where_the_kl_overflows_the_correction_is_dropped_not_nan():
    # Far covariances (the compiled loop's branch) and means 2e200 apart, 1e-200-sized covariances: the
    # mean term overflows, and so does y = Lq^-T z in the correction, whose inf * 0 would be NaN.
    cov_p, cov_q = 1e-200 * np.eye(2), 1e-200 * np.diag([2.0, 3.0])
    mu_p, mu_q = np.full(2, 1e200), np.full(2, -1e200)
    assert kl_mvn(mu_p, cov_p, mu_q, cov_q) == np.inf
    tensors = [torch.tensor(a) for a in (mu_p, cov_p, mu_q, cov_q)]
    assert kl_mvn(*tensors).item() == np.inf
