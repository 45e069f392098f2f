r"""Regularised autoencoders: the sparsity penalty (a Bernoulli KL) and the contractive penalty.

A plain autoencoder only asks for a small reconstruction error. Two classic penalties ask more of the
hidden code :math:`h = s(Wx + b)` of a one-hidden-layer autoencoder with sigmoid units
:math:`s(a) = 1/(1 + e^{-a})`:

* **Sparsity** (Ng, *Sparse autoencoder*, CS294A lecture notes, section 3): with
  :math:`\hat\rho_j = \frac1m\sum_{i=1}^m h_j(x^{(i)})` the average activation of hidden unit :math:`j`
  over the training set and a target :math:`\rho` close to 0, add

  .. math::

      \beta\sum_j D_{\mathrm{KL}}(\rho\,\Vert\,\hat\rho_j), \qquad
      D_{\mathrm{KL}}(\rho\,\Vert\,\hat\rho_j) = \rho\log\frac{\rho}{\hat\rho_j}
      + (1 - \rho)\log\frac{1-\rho}{1-\hat\rho_j},

  the KL divergence between a Bernoulli variable of mean :math:`\rho` and one of mean :math:`\hat\rho_j`
  (:func:`sparsity_penalty`).
* **Contraction** (Rifai, Vincent, Muller, Glorot & Bengio 2011): add :math:`\lambda\lVert J_f(x)\rVert_F^2`,
  the squared Frobenius norm of the encoder's Jacobian :math:`J_f(x) = \partial h / \partial x`, which for
  a sigmoid encoder is

  .. math::

      \lVert J_f(x)\rVert_F^2 = \sum_j \big(h_j(1 - h_j)\big)^2 \sum_i W_{ji}^2

  because :math:`\partial h_j/\partial x_i = h_j(1 - h_j)\,W_{ji}` (:func:`contractive_penalty`).

:class:`TiedSigmoidAutoencoder` and :func:`fit_regularised` train the small model these penalties were
written for, in float64 with full-batch L-BFGS, so that the chapter can compare a plain, a sparse and a
contractive autoencoder on the digits.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import nn

from ._array import ArrayLike, detached_numpy, real_array
from .discrete import kl_divergence

__all__ = [
    "TiedSigmoidAutoencoder",
    "contractive_penalty",
    "fit_regularised",
    "sparsity_penalty",
]


def _number(name: str, value: Any, *, low: float, high: float = math.inf, open_low: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    below = out <= low if open_low else out < low
    if math.isnan(out) or below or out >= high and high != math.inf or math.isinf(out):
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must lie in {bracket}{low:g}, {high:g}), got {value!r}")
    return out


def _unit_interval(name: str, a: ArrayLike) -> Any:
    a = real_array(name, a)
    values = detached_numpy(a) if not isinstance(a, np.ndarray) else a
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"{name} contains NaN")
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{values.min():g}, {values.max():g}]")
    return a


def sparsity_penalty(mean_activations: ArrayLike, rho: float, *, beta: float = 1.0) -> Any:
    r"""The sparse autoencoder's penalty :math:`\beta\sum_j D_{\mathrm{KL}}(\rho\,\Vert\,\hat\rho_j)`.

    Each term is the KL divergence between Bernoulli distributions of means :math:`\rho` and
    :math:`\hat\rho_j`, :math:`\rho\log\frac{\rho}{\hat\rho_j} + (1-\rho)\log\frac{1-\rho}{1-\hat\rho_j}`
    (Ng, CS294A lecture notes, "Sparse autoencoder"), evaluated by :func:`klbook.kl_divergence` on the
    two-outcome distributions :math:`(\rho, 1-\rho)` and :math:`(\hat\rho_j, 1-\hat\rho_j)`: without
    cancellation near :math:`\hat\rho_j = \rho`, and :math:`+\infty` (never a large finite number) at
    :math:`\hat\rho_j \in \{0, 1\}`, where the Bernoulli of mean :math:`\hat\rho_j` rules out an outcome
    that :math:`\rho` gives positive probability. It is 0 exactly when every :math:`\hat\rho_j = \rho`,
    where its gradient :math:`\beta\big(-\rho/\hat\rho_j + (1-\rho)/(1-\hat\rho_j)\big)` vanishes.

    Parameters
    ----------
    mean_activations
        :math:`\hat\rho`, the average activation of each hidden unit over the training set, in [0, 1],
        along the last axis (other axes are a batch). A torch tensor gives a tensor, differentiable.
    rho
        The target activation :math:`\rho`, strictly between 0 and 1.
    beta
        The weight :math:`\beta \ge 0` of the penalty.

    Returns
    -------
    The penalty in nats: numpy float64 (or an array of the batch shape), or a tensor for torch input.

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If ``mean_activations`` has an entry outside [0, 1] or NaN, or ``rho`` is not in (0, 1), or
        ``beta`` is negative or not finite.
    """
    rho = _number("rho", rho, low=0.0, high=1.0)
    beta = _number("beta", beta, low=0.0, open_low=False)
    rho_hat = _unit_interval("mean_activations", mean_activations)
    if isinstance(rho_hat, torch.Tensor):
        rho_hat = rho_hat.to(torch.float64) if rho_hat.dtype != torch.float64 else rho_hat
        q = torch.stack([rho_hat, 1.0 - rho_hat], dim=-1)
        p = torch.tensor([rho, 1.0 - rho], dtype=torch.float64, device=q.device).expand_as(q)
        return beta * kl_divergence(p, q).sum(dim=-1)
    rho_hat = np.asarray(rho_hat, dtype=np.float64)
    q = np.stack([rho_hat, 1.0 - rho_hat], axis=-1)
    p = np.broadcast_to(np.array([rho, 1.0 - rho]), q.shape)
    return np.float64(beta) * np.asarray(kl_divergence(p, q)).sum(axis=-1)


def contractive_penalty(hidden: ArrayLike, weight: ArrayLike) -> Any:
    r"""The squared Frobenius norm :math:`\lVert J_f(x)\rVert_F^2` of a sigmoid encoder's Jacobian.

    For :math:`h = s(Wx + b)` with the logistic sigmoid :math:`s`, :math:`\partial h_j/\partial x_i =
    h_j(1-h_j)W_{ji}`, so (Rifai et al. 2011)

    .. math::

        \lVert J_f(x)\rVert_F^2 = \sum_{j,i}\Big(\frac{\partial h_j}{\partial x_i}\Big)^2
        = \sum_j \big(h_j(1-h_j)\big)^2 \sum_i W_{ji}^2 ,

    evaluated in this second form: one pass over the code and one over the weights, instead of the
    :math:`k \times d` Jacobian of every example.

    Parameters
    ----------
    hidden
        The codes :math:`h`, shape ``(batch, k)`` (or ``(k,)``), entries in [0, 1].
    weight
        The encoder's weight matrix :math:`W`, shape ``(k, d)``.

    Returns
    -------
    One value per example, shape ``(batch,)`` (a scalar for a single code); numpy float64 or, for torch
    input, a differentiable tensor.

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If ``hidden`` has entries outside [0, 1] or NaN, ``weight`` is not a finite 2-D matrix, or the
        number of hidden units differs between them.
    """
    hidden = _unit_interval("hidden", hidden)
    weight = real_array("weight", weight)
    w_values = np.asarray(detached_numpy(weight) if not isinstance(weight, np.ndarray) else weight, dtype=np.float64)
    if w_values.ndim != 2:
        raise ValueError(f"weight must be a 2-D matrix (hidden units x inputs), got shape {w_values.shape}")
    if not np.isfinite(w_values).all():
        raise ValueError("weight contains NaN or infinite values")
    h_shape = tuple(hidden.shape) if hasattr(hidden, "shape") else np.shape(hidden)
    if len(h_shape) not in (1, 2) or h_shape[-1] != w_values.shape[0]:
        raise ValueError(
            f"hidden must have shape (batch, {w_values.shape[0]}) to match weight {w_values.shape}, got {h_shape}"
        )
    if isinstance(hidden, torch.Tensor) or isinstance(weight, torch.Tensor):
        h = torch.as_tensor(hidden, dtype=torch.float64) if not isinstance(hidden, torch.Tensor) else hidden
        w = torch.as_tensor(weight, dtype=torch.float64) if not isinstance(weight, torch.Tensor) else weight
        dtype = torch.promote_types(h.dtype, w.dtype)
        h, w = h.to(torch.float64), w.to(h.device, torch.float64)
        return (((h * (1.0 - h)) ** 2) @ (w**2).sum(dim=1)).to(dtype)
    h = np.asarray(hidden, dtype=np.float64)
    return ((h * (1.0 - h)) ** 2) @ (w_values**2).sum(axis=1)


class TiedSigmoidAutoencoder(nn.Module):
    r"""One hidden layer of sigmoid units with tied weights, in float64.

    Encoder :math:`h = s(Wx + b)` with :math:`W` of shape ``(hidden_dim, input_dim)``; decoder
    :math:`\hat x = s(W^\top h + c)`, so reconstructions lie in (0, 1) like the pixels. Tying the decoder
    to :math:`W^\top` fixes the scale of the code: an untied decoder could undo any shrinking of
    :math:`W`, which would let the contractive penalty be lowered without changing what the code keeps.

    Parameters
    ----------
    input_dim, hidden_dim
        Number of pixels :math:`d` and of hidden units :math:`k` (positive integers).
    seed
        Seed of the ``torch.Generator`` drawing the initial weights, uniform in
        :math:`\pm\sqrt{6/(d + k + 1)}` (the range of Ng's notes); biases start at 0.
    """

    def __init__(self, input_dim: int = 64, hidden_dim: int = 25, *, seed: int = 0) -> None:
        super().__init__()
        for name, value in (("input_dim", input_dim), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.input_dim, self.hidden_dim = int(input_dim), int(hidden_dim)
        bound = math.sqrt(6.0 / (input_dim + hidden_dim + 1))
        generator = torch.Generator().manual_seed(int(seed))
        weight = (torch.rand(hidden_dim, input_dim, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(hidden_dim, dtype=torch.float64))
        self.out_bias = nn.Parameter(torch.zeros(input_dim, dtype=torch.float64))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code :math:`h = s(Wx + b)`, shape ``(batch, hidden_dim)``."""
        return torch.sigmoid(x @ self.weight.T + self.bias)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        r"""The reconstruction :math:`s(W^\top h + c)`."""
        return torch.sigmoid(h @ self.weight + self.out_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _batch(name: str, x: Any, input_dim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(detached_numpy(real_array(name, x)), dtype=np.float64))
    if t.ndim != 2 or t.shape[1] != input_dim or t.shape[0] == 0:
        raise ValueError(f"{name} must have shape (batch, {input_dim}) with batch >= 1, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def fit_regularised(
    model: TiedSigmoidAutoencoder,
    x: ArrayLike,
    *,
    rho: float | None = None,
    beta: float = 0.0,
    contraction: float = 0.0,
    weight_decay: float = 0.0,
    iterations: int = 400,
) -> dict[str, float]:
    r"""Train ``model`` in place by full-batch L-BFGS (float64, one thread) on a regularised objective.

    .. math::

        \frac1m\sum_{i=1}^m \tfrac12\lVert x^{(i)} - \hat x^{(i)}\rVert^2
        + \frac{\lambda_{\mathrm{wd}}}{2}\sum W^2
        + \beta\sum_j D_{\mathrm{KL}}(\rho\,\Vert\,\hat\rho_j)
        + \lambda\,\frac1m\sum_{i=1}^m\lVert J_f(x^{(i)})\rVert_F^2 ,

    the cost of Ng's notes (reconstruction, weight decay, sparsity) with the contractive term of Rifai
    et al. (2011) added; ``rho=None`` or ``beta=0`` drops the sparsity term, ``contraction=0`` the last.

    Parameters
    ----------
    model
        A :class:`TiedSigmoidAutoencoder`.
    x
        Training inputs, shape ``(m, input_dim)``.
    rho, beta
        Sparsity target in (0, 1) and its weight :math:`\beta \ge 0`.
    contraction
        :math:`\lambda \ge 0`, the weight of the contractive penalty.
    weight_decay
        :math:`\lambda_{\mathrm{wd}} \ge 0`.
    iterations
        Maximal number of L-BFGS iterations (strong-Wolfe line search).

    Returns
    -------
    dict
        The terms at the end of training, as floats: ``"reconstruction"`` (the first term),
        ``"sparsity"`` (:math:`\sum_j D_{\mathrm{KL}}(\rho\Vert\hat\rho_j)` without :math:`\beta`, NaN
        if ``rho`` is None), ``"contraction"`` (the mean of :math:`\lVert J_f\rVert_F^2`) and
        ``"objective"``.

    Raises
    ------
    TypeError
        For a model that is not a :class:`TiedSigmoidAutoencoder`, or arguments that are not numbers.
    ValueError
        For inputs of the wrong shape or with NaN, or weights out of range.
    """
    if not isinstance(model, TiedSigmoidAutoencoder):
        raise TypeError(f"model must be a TiedSigmoidAutoencoder, got {type(model).__name__}")
    data = _batch("x", x, model.input_dim)
    if rho is not None:
        rho = _number("rho", rho, low=0.0, high=1.0)
    beta = _number("beta", beta, low=0.0, open_low=False)
    contraction = _number("contraction", contraction, low=0.0, open_low=False)
    weight_decay = _number("weight_decay", weight_decay, low=0.0, open_low=False)
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    use_sparsity = rho is not None and beta > 0

    def terms() -> dict[str, torch.Tensor]:
        h = model.encode(data)
        out = {
            "reconstruction": 0.5 * ((model.decode(h) - data) ** 2).sum(dim=1).mean(),
            "decay": 0.5 * (model.weight**2).sum(),
            "contraction": contractive_penalty(h, model.weight).mean(),
        }
        if rho is not None:
            out["sparsity"] = sparsity_penalty(h.mean(dim=0), rho)
        return out

    def objective(t: dict[str, torch.Tensor]) -> torch.Tensor:
        total = t["reconstruction"] + weight_decay * t["decay"]
        if use_sparsity:
            total = total + beta * t["sparsity"]
        if contraction > 0:
            total = total + contraction * t["contraction"]
        return total

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        optimiser = torch.optim.LBFGS(
            model.parameters(),
            lr=1.0,
            max_iter=int(iterations),
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-9,
            tolerance_change=1e-14,
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = objective(terms())
            loss.backward()
            return loss

        optimiser.step(closure)
        with torch.no_grad():
            final = terms()
            result = {
                "reconstruction": float(final["reconstruction"]),
                "sparsity": float(final["sparsity"]) if rho is not None else math.nan,
                "contraction": float(final["contraction"]),
                "objective": float(objective(final)),
            }
    finally:
        torch.set_num_threads(previous)
    return result
