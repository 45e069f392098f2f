r"""Toy autoregressive models over short sequences, small enough to enumerate every sequence exactly.

A sequence is :math:`y = (y_1, \dots, y_L)` over the vocabulary :math:`\{0, \dots, V-1\}`; all
:math:`V^L` sequences are listed by :func:`all_sequences` in lexicographic order, and a distribution
over them is a vector of log-probabilities in that order. Two model families:

* a first-order Markov chain, :math:`q(y) = \pi_0(y_1)\prod_{t\ge2}A(y_t\mid y_{t-1})`
  (:func:`markov_logprob`), the *student*;
* a mixture of such chains, :math:`p(y) = \sum_k w_k\,q_k(y)` (:func:`mixture_logprob`), the *teacher*.
  Its next-token distribution :math:`p(y_t\mid y_{<t})` depends on the whole prefix (through the posterior
  over the component), which no first-order chain can represent.

:func:`next_token_logprobs` returns the exact conditionals :math:`p(y_t\mid y_{<t})` of *any* distribution
given as a vector over all sequences, by summing over suffixes.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "all_sequences",
    "markov_logprob",
    "mixture_logprob",
    "next_token_logprobs",
    "markov_fit_forward",
    "markov_fit_reverse_tokenwise",
    "markov_fit_reverse",
    "chain_logits_to_tables",
]


def all_sequences(vocab_size: int, length: int) -> np.ndarray:
    """Every sequence of ``length`` tokens from ``range(vocab_size)``, shape ``(vocab_size**length, length)``."""
    for name, value in (("vocab_size", vocab_size), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if vocab_size**length > 10**6:
        raise ValueError(f"vocab_size**length = {vocab_size**length} sequences is too many to enumerate")
    return np.array(list(itertools.product(range(vocab_size), repeat=length)), dtype=np.int64).reshape(
        -1, length
    )


def _log_tables(log_init: Any, log_trans: Any) -> tuple[np.ndarray, np.ndarray]:
    init = np.asarray(log_init, dtype=np.float64)
    trans = np.asarray(log_trans, dtype=np.float64)
    v = init.shape[-1] if init.ndim else 0
    if init.ndim != 1 or trans.shape != (v, v):
        raise ValueError(f"log_init must have shape (V,) and log_trans (V, V), got {init.shape} and {trans.shape}")
    if np.isnan(init).any() or np.isnan(trans).any() or (init == np.inf).any() or (trans == np.inf).any():
        raise ValueError("log_init and log_trans must be log-probabilities (no NaN, no +inf)")
    if abs(logsumexp(init)) > 1e-9 or np.abs(logsumexp(trans, axis=1)).max() > 1e-9:
        raise ValueError("exp(log_init) and every row of exp(log_trans) must sum to 1")
    return init, trans


def markov_logprob(sequences: Any, log_init: Any, log_trans: Any) -> np.ndarray:
    r""":math:`\log q(y) = \log\pi_0(y_1) + \sum_{t=2}^L\log A(y_t\mid y_{t-1})` for each row of ``sequences``.

    ``log_trans[i, j]`` is :math:`\log A(j\mid i)`.
    """
    init, trans = _log_tables(log_init, log_trans)
    seqs = np.asarray(sequences)
    if seqs.ndim != 2 or seqs.dtype.kind not in "iu" or seqs.min() < 0 or seqs.max() >= init.size:
        raise ValueError(f"sequences must be a 2-D integer array of tokens in 0..{init.size - 1}")
    return init[seqs[:, 0]] + trans[seqs[:, :-1], seqs[:, 1:]].sum(axis=1)


def mixture_logprob(sequences: Any, weights: Any, log_inits: Any, log_transs: Any) -> np.ndarray:
    r""":math:`\log\sum_k w_k q_k(y)` for first-order chains :math:`q_k` (log-sum-exp over components)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or (w <= 0).any() or abs(w.sum() - 1) > 1e-9:
        raise ValueError(f"weights must be positive and sum to 1, got {weights!r}")
    if len(log_inits) != w.size or len(log_transs) != w.size:
        raise ValueError("need one log_init and one log_trans per weight")
    parts = [np.log(wk) + markov_logprob(sequences, i, a) for wk, i, a in zip(w, log_inits, log_transs)]
    return logsumexp(np.stack(parts), axis=0)


def next_token_logprobs(sequences: Any, logprob: Any, vocab_size: int) -> np.ndarray:
    r"""Exact conditionals :math:`\log p(y_t = v\mid y_{<t})` along every sequence, shape ``(N, L, V)``.

    ``sequences`` must be :func:`all_sequences` ``(vocab_size, L)`` and ``logprob`` the log-probability of
    each. The prefix marginals :math:`p(y_{\le t})` are log-sums over the suffixes (the enumeration is
    lexicographic, so a prefix of length :math:`t` is a contiguous block of :math:`V^{L-t}` rows).
    Conditionals after a prefix of probability 0 are set to ``-inf``.
    """
    seqs = np.asarray(sequences)
    n, length = seqs.shape
    logp = np.asarray(logprob, dtype=np.float64)
    if n != vocab_size**length or logp.shape != (n,):
        raise ValueError("sequences must list all vocab_size**L sequences and logprob one value per sequence")
    if not np.array_equal(seqs, all_sequences(vocab_size, length)):
        raise ValueError("sequences must be all_sequences(vocab_size, L), in its order")
    out = np.empty((n, length, vocab_size))
    # marginal[t] has shape (V,)*t: log p(y_1..y_t)
    marginals = [np.zeros(())]
    full = logp.reshape((vocab_size,) * length)
    for t in range(1, length + 1):
        marginals.append(logsumexp(full, axis=tuple(range(t, length))) if t < length else full)
    for t in range(length):
        prefix = marginals[t]  # shape (V,)*t
        joint = marginals[t + 1]  # shape (V,)*(t+1)
        with np.errstate(invalid="ignore"):
            cond = joint - prefix[..., None]
        cond = np.where(np.isfinite(prefix)[..., None], cond, -np.inf)
        index = tuple(seqs[:, s] for s in range(t))
        out[:, t, :] = cond[index] if t else np.broadcast_to(cond, (n, vocab_size))
    return out


def markov_fit_forward(sequences: Any, logprob: Any, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The first-order chain minimising :math:`D_{\mathrm{KL}}(p\,\Vert\,q)` over chains :math:`q` (maximum likelihood).

    Expected counts under :math:`p`: :math:`\pi_0(i) = p(y_1 = i)` and
    :math:`A(j\mid i) = \sum_t p(y_{t-1} = i, y_t = j) / \sum_t p(y_{t-1} = i)`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``log_init`` (V,) and ``log_trans`` (V, V).
    """
    seqs = np.asarray(sequences)
    p = np.exp(np.asarray(logprob, dtype=np.float64))
    if seqs.ndim != 2 or p.shape != (seqs.shape[0],) or abs(p.sum() - 1) > 1e-9:
        raise ValueError("logprob must hold one log-probability per sequence, summing to 1")
    init = np.bincount(seqs[:, 0], weights=p, minlength=vocab_size)
    counts = np.zeros((vocab_size, vocab_size))
    for t in range(1, seqs.shape[1]):
        np.add.at(counts, (seqs[:, t - 1], seqs[:, t]), p)
    with np.errstate(divide="ignore"):
        return np.log(init), np.log(counts / counts.sum(axis=1, keepdims=True))


def chain_logits_to_tables(params: Any, vocab_size: int) -> tuple[Any, Any]:
    """Split a flat parameter vector (numpy or torch) of ``V + V*V`` logits into normalised log-tables."""
    v = vocab_size
    if params.shape != (v + v * v,):
        raise ValueError(f"params must have shape ({v + v * v},), got {tuple(params.shape)}")
    init, trans = params[:v], params[v:].reshape(v, v)
    if hasattr(params, "logsumexp"):  # torch
        return init - init.logsumexp(0), trans - trans.logsumexp(1, keepdim=True)
    return init - logsumexp(init), trans - logsumexp(trans, axis=1, keepdims=True)


def _student_conditionals(sequences: np.ndarray, log_init: Any, log_trans: Any) -> Any:
    """The chain's next-token log-probabilities along every sequence, shape (N, L, V) (numpy or torch)."""
    first = log_init[None, None, :].expand(sequences.shape[0], 1, -1) if hasattr(log_init, "expand") else (
        np.broadcast_to(log_init, (sequences.shape[0], 1, log_init.shape[0]))
    )
    rest = log_trans[sequences[:, :-1]]
    if hasattr(rest, "expand"):
        import torch

        return torch.cat([first, rest], dim=1)
    return np.concatenate([first, rest], axis=1)


def markov_fit_reverse_tokenwise(sequences: Any, logprob: Any, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The chain minimising the token-level reverse KL on prefixes drawn from :math:`p` (off-policy).

    The objective is :math:`\mathbb E_{y\sim p}\sum_t D_{\mathrm{KL}}\big(q(\cdot\mid y_{t-1})\,\Vert\,p(\cdot\mid y_{<t})\big)`.
    It separates over the conditioning token :math:`i` (and the first position), and
    :math:`\min_q\sum_j c_j D_{\mathrm{KL}}(q\,\Vert\,p_j)` over distributions :math:`q` is the normalised
    weighted geometric mean :math:`q\propto\exp\big(\sum_j c_j\log p_j/\sum_j c_j\big)`: the targets are the
    teacher's conditionals after every prefix ending in :math:`i`, weighted by the prefix's probability.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``log_init`` (V,) and ``log_trans`` (V, V).
    """
    seqs = np.asarray(sequences)
    logp = np.asarray(logprob, dtype=np.float64)
    cond = next_token_logprobs(seqs, logp, vocab_size)
    p = np.exp(logp)
    if (~np.isfinite(cond[p > 0])).any():
        raise ValueError("the teacher's conditionals must be positive along its sequences (no log 0)")
    log_init = p @ cond[:, 0, :]
    sums = np.zeros((vocab_size, vocab_size))
    weights = np.zeros(vocab_size)
    for t in range(1, seqs.shape[1]):
        np.add.at(sums, seqs[:, t - 1], p[:, None] * cond[:, t, :])
        np.add.at(weights, seqs[:, t - 1], p)
    log_trans = sums / weights[:, None]
    return log_init - logsumexp(log_init), log_trans - logsumexp(log_trans, axis=1, keepdims=True)


def markov_fit_reverse(
    sequences: Any, logprob: Any, vocab_size: int, *, init: Any
) -> tuple[np.ndarray, np.ndarray, float]:
    r"""A local minimiser over first-order chains :math:`q` of the sequence-level :math:`D_{\mathrm{KL}}(q\,\Vert\,p)`.

    The divergence :math:`F = \sum_y q(y)\,\ell(y)`, :math:`\ell = \log q - \log p`, is evaluated exactly
    over all sequences and minimised by L-BFGS (scipy) over the logits of the chain, started at ``init``
    (shape ``(V + V*V,)``), with the exact gradient
    :math:`\nabla F = \sum_y q(y)\,\ell(y)\,\nabla\log q(y)` (the term :math:`\sum_y q\nabla\log q` vanishes).
    By the chain rule :math:`F` equals the token-level reverse KL on prefixes drawn from :math:`q` itself
    (on-policy). :math:`F` is not convex: different ``init`` can give different local minima.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, float)
        ``log_init``, ``log_trans`` and the divergence reached.
    """
    from scipy import optimize

    seqs = np.asarray(sequences)
    logp = np.asarray(logprob, dtype=np.float64)
    v = vocab_size
    start = np.asarray(init, dtype=np.float64)
    if start.shape != (v + v * v,) or not np.isfinite(start).all():
        raise ValueError(f"init must hold {v + v * v} finite logits")
    if seqs.ndim != 2 or logp.shape != (seqs.shape[0],):
        raise ValueError("logprob must hold one value per sequence")
    prev, nxt = seqs[:, :-1], seqs[:, 1:]

    def value_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_i, log_t = chain_logits_to_tables(params, v)
        log_q = log_i[seqs[:, 0]] + log_t[prev, nxt].sum(axis=1)
        q = np.exp(log_q)
        with np.errstate(invalid="ignore"):
            ell = np.where(q > 0, log_q - logp, 0.0)
        c = q * ell
        grad_init = np.bincount(seqs[:, 0], weights=c, minlength=v) - np.exp(log_i) * c.sum()
        pair_counts = np.zeros((v, v))
        np.add.at(pair_counts, (prev, nxt), np.broadcast_to(c[:, None], prev.shape))
        from_counts = pair_counts.sum(axis=1, keepdims=True)
        grad_trans = pair_counts - np.exp(log_t) * from_counts
        return float(c.sum()), np.concatenate([grad_init, grad_trans.ravel()])

    result = optimize.minimize(
        value_and_gradient, start, jac=True, method="L-BFGS-B",
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-11},
    )
    log_i, log_t = chain_logits_to_tables(result.x, v)
    return log_i, log_t, float(result.fun)
