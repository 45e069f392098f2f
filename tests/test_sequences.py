"""Tests of klbook.sequences: enumeration, exact conditionals, and the three student fits."""

import numpy as np
import pytest
from scipy.special import logsumexp

from klbook.sequences import (
    all_sequences,
    chain_logits_to_tables,
    markov_fit_forward,
    markov_fit_reverse,
    markov_fit_reverse_tokenwise,
    markov_logprob,
    mixture_logprob,
    next_token_logprobs,
)

V, L = 3, 4
SEQS = all_sequences(V, L)
RNG = np.random.default_rng(0)


def _random_chain(rng):
    init, trans = rng.standard_normal(V), rng.standard_normal((V, V))
    return init - logsumexp(init), trans - logsumexp(trans, axis=1, keepdims=True)


CHAIN = _random_chain(RNG)
TEACHER = mixture_logprob(SEQS, [0.7, 0.3], [CHAIN[0], _random_chain(RNG)[0]], [CHAIN[1], _random_chain(RNG)[1]])


def test_all_sequences_lists_every_sequence_once_in_lexicographic_order():
    assert SEQS.shape == (V**L, L)
    assert len({tuple(s) for s in SEQS}) == V**L
    assert np.all(SEQS[:-1] @ V ** np.arange(L)[::-1] < SEQS[1:] @ V ** np.arange(L)[::-1])


def test_distributions_sum_to_one():
    assert np.exp(markov_logprob(SEQS, *CHAIN)).sum() == pytest.approx(1.0, abs=1e-12)
    assert np.exp(TEACHER).sum() == pytest.approx(1.0, abs=1e-12)


def test_conditionals_multiply_back_to_the_joint_and_are_normalised():
    cond = next_token_logprobs(SEQS, TEACHER, V)
    np.testing.assert_allclose(logsumexp(cond, axis=2), 0.0, atol=1e-12)
    chosen = np.take_along_axis(cond, SEQS[:, :, None], axis=2)[:, :, 0].sum(axis=1)
    np.testing.assert_allclose(chosen, TEACHER, atol=1e-12)


def test_conditionals_of_a_markov_chain_are_its_transition_table():
    cond = next_token_logprobs(SEQS, markov_logprob(SEQS, *CHAIN), V)
    np.testing.assert_allclose(cond[:, 0, :], np.broadcast_to(CHAIN[0], (len(SEQS), V)), atol=1e-12)
    np.testing.assert_allclose(cond[:, 1:, :], CHAIN[1][SEQS[:, :-1]], atol=1e-12)


@pytest.mark.parametrize("fit", ["forward", "tokenwise", "reverse"])
def test_every_fit_recovers_a_teacher_that_is_itself_a_chain(fit):
    logp = markov_logprob(SEQS, *CHAIN)
    if fit == "forward":
        tables = markov_fit_forward(SEQS, logp, V)
    elif fit == "tokenwise":
        tables = markov_fit_reverse_tokenwise(SEQS, logp, V)
    else:
        tables = markov_fit_reverse(SEQS, logp, V, init=np.zeros(V + V * V))[:2]
    np.testing.assert_allclose(markov_logprob(SEQS, *tables), logp, atol=1e-5 if fit == "reverse" else 1e-12)


def _objectives(init, trans):
    lq = markov_logprob(SEQS, init, trans)
    p = np.exp(TEACHER)
    cond = next_token_logprobs(SEQS, TEACHER, V)
    student = np.concatenate([np.broadcast_to(init, (len(SEQS), 1, V)), trans[SEQS[:, :-1]]], axis=1)
    return {"forward": p @ (TEACHER - lq),
            "tokenwise": p @ np.sum(np.exp(student) * (student - cond), axis=(1, 2)),
            "reverse": np.exp(lq) @ (lq - TEACHER)}


@pytest.mark.parametrize("fit", ["forward", "tokenwise", "reverse"])
def test_every_fit_minimises_its_own_objective(fit):
    tables = {"forward": lambda: markov_fit_forward(SEQS, TEACHER, V),
              "tokenwise": lambda: markov_fit_reverse_tokenwise(SEQS, TEACHER, V),
              "reverse": lambda: markov_fit_reverse(SEQS, TEACHER, V, init=np.zeros(V + V * V))[:2]}[fit]()
    best = _objectives(*tables)[fit]
    rng = np.random.default_rng(3)
    for _ in range(20):
        params = np.concatenate([tables[0], tables[1].ravel()]) + 1e-3 * rng.standard_normal(V + V * V)
        assert _objectives(*chain_logits_to_tables(params, V))[fit] >= best - 1e-10


def test_reverse_fit_reports_the_divergence_of_its_tables():
    init, trans, value = markov_fit_reverse(SEQS, TEACHER, V, init=np.zeros(V + V * V))
    assert value == pytest.approx(_objectives(init, trans)["reverse"], abs=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: all_sequences(0, 3), "vocab_size"),
    (lambda: all_sequences(10, 7), "too many"),
    (lambda: markov_logprob(SEQS, CHAIN[0][:2], CHAIN[1]), "shape"),
    (lambda: markov_logprob(SEQS, np.zeros(V), CHAIN[1]), "sum to 1"),
    (lambda: markov_logprob(SEQS + 5, *CHAIN), "tokens"),
    (lambda: mixture_logprob(SEQS, [0.5, 0.6], [CHAIN[0]] * 2, [CHAIN[1]] * 2), "weights"),
    (lambda: next_token_logprobs(SEQS[::-1], TEACHER, V), "order"),
    (lambda: markov_fit_reverse(SEQS, TEACHER, V, init=np.zeros(3)), "init"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
