"""klbook: verified helpers for the book *KL Divergence, Autoencoders and Variational Autoencoders*.

Every function accepts Python floats, numpy arrays and torch tensors, broadcasts, and returns the kind it
got (numpy float64 for numpy input; for torch the inputs' dtype and device, differentiable by autograd).
"""

from .discrete import cross_entropy, entropy, js_divergence, kl_divergence, mutual_information
from .estimators import MCEstimate, k1, k2, k3, mc_kl
from .gaussian import kl_diag_normal, kl_mvn, kl_normal, kl_std_normal, normal_logpdf
from .mixtures import (
    KLDerivatives,
    NormalFit,
    fit_normal_to_mixture,
    kl_normal_mixture,
    mixture_entropy,
    mixture_logpdf,
    reverse_kl_derivatives,
)

__all__ = [
    "kl_divergence",
    "entropy",
    "cross_entropy",
    "js_divergence",
    "mutual_information",
    "kl_normal",
    "kl_diag_normal",
    "kl_std_normal",
    "kl_mvn",
    "normal_logpdf",
    "k1",
    "k2",
    "k3",
    "mc_kl",
    "MCEstimate",
    "mixture_logpdf",
    "mixture_entropy",
    "kl_normal_mixture",
    "fit_normal_to_mixture",
    "reverse_kl_derivatives",
    "NormalFit",
    "KLDerivatives",
]

__version__ = "0.1.0"
