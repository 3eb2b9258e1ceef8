"""Variational importance sampling, VIS (Li, Wang, Li & Wu 2024, "Forward chi^2 Divergence Based Variational
Importance Sampling", ICLR).

VIS maximises the log-likelihood itself, estimated by importance sampling with q(z|x) as the proposal, and fits
the proposal to the one that makes that estimate best: the minimiser of the forward chi^2 divergence from the
posterior, which is the variance of the importance weights. With K samples z_k ~ q(z|x) and weights
w_k = p(x, z_k) / q(z_k|x),

    generative network theta:  max  log p^(x) = log (1/K) sum_k w_k                          (the IWAE bound)
    inference network phi:     min  log V(x),   V = E_q[w^2] = p(x)^2 (1 + chi^2(p(z|x) || q(z|x))),

so that, p(x) not depending on phi, the inference network descends log(1 + chi^2(p(z|x) || q(z|x))). Both are
estimated from the same K samples: V^ = (1/K) sum_k w_k^2, and

    log(1 + chi^2)^ = log V^ - 2 log p^(x) = log K + logsumexp_k 2 log w_k - 2 logsumexp_k log w_k   (>= 0),

the term ``chi2``, zero when the weights are all equal (q the exact posterior). Its gradient for phi is the score
function estimator the authors' code takes (``chi2_gradient=score``),

    d/d phi log V = -E_q[w^2 d/d phi log q(z|x)] / E_q[w^2]  ~  -sum_k softmax_k(2 log w) d/d phi log q(z_k|x),

with the samples held fixed, or the reparameterised gradient of log V^ (``chi2_gradient=reparam``). The two
terms reach one network each (:class:`aekit.objectives.Routed`): ``iwae`` = -log p^(x) the decoder, likelihood
and prior, ``chi2`` the encoder and posterior. The authors update theta first and then phi with theta's new
value; here both take one step from the same forward. The paper draws K = 500 samples for its MNIST VAE; the
default here is 64. The logged loss is -log p^(x) + log(1 + chi^2)^, and the bound as ``iwae_bound``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from aekit.config import require, require_choice
from aekit.models.iwae import ImportanceWeighted, IWAEConfig, bound_term
from aekit.models.vae import VAE
from aekit.objectives import Routed, Term, importance_weights, reaching, with_gradient_of
from aekit.parts import register_part
from aekit.registry import register_model

CHI2_GRADIENTS = ("score", "reparam")


def log_second_moment(log_w: torch.Tensor) -> torch.Tensor:
    """log V^ = log (1/K) sum_k w_k^2 per example ``[B]`` from the log weights ``[K, B]``."""
    return (2.0 * log_w).logsumexp(0) - math.log(log_w.shape[0])


def log_one_plus_chi2(log_w: torch.Tensor) -> torch.Tensor:
    """log(1 + chi^2(p(z|x) || q(z|x)))^ = log V^ - 2 log p^(x) per example ``[B]`` from log weights ``[K, B]``:
    log of K times the sum of the squared self-normalised weights, K / ESS; >= 0, and 0 at equal weights."""
    return log_second_moment(log_w) - 2.0 * (log_w.logsumexp(0) - math.log(log_w.shape[0]))


def chi2_term(out, gradient: str = "score") -> torch.Tensor:
    """log(1 + chi^2)^ ``[B]`` over the output's samples, with the gradient of log V^ for the proposal's
    parameters: the score function estimator (the samples fixed; ``log q - log q_path`` is a zero whose gradient is
    d log q(z|x) / d phi at fixed z) or the reparameterised one."""
    log_w = importance_weights(out)  # [K, B]
    value = log_one_plus_chi2(log_w.detach())
    if gradient == "reparam":
        return with_gradient_of(value, log_second_moment(log_w))
    log_q_path = out.latent.log_q_path
    require(log_q_path is not None, "chi2_gradient=score needs a bottleneck that evaluates log q(z|x) with its "
            "parameters held fixed (gaussian); use chi2_gradient=reparam")
    score = out.latent.log_q - log_q_path  # [K, B], zero-valued
    return with_gradient_of(value, 0.5 * log_second_moment(log_w.detach() - score))


@register_part("objectives", "vis", "VIS: -log p^(x) (IWAE) for the decoder, log(1 + chi^2(p(z|x) || q)) for the "
               "encoder")
class VISTerms(ImportanceWeighted):
    """The term ``iwae`` = -log p^(x) for the generative network and ``chi2`` = log(1 + chi^2)^ for the inference
    network, over the output's K samples (module docstring)."""

    bound_terms: ClassVar[dict[str, Term]] = {"iwae": Term(), "chi2": Term()}
    routes_gradients = True

    def __init__(self, terms, model: str = "the model", chi2_gradient: str = "score") -> None:
        super().__init__(terms, model)
        require_choice(chi2_gradient, CHI2_GRADIENTS, "chi2_gradient")
        self.chi2_gradient = chi2_gradient

    def bounds(self, out) -> dict[str, torch.Tensor | Routed]:
        require(out.log_px_z.shape[0] >= 2, f"{self.model}: the chi^2 estimate needs K >= 2 samples per input; "
                f"got {out.log_px_z.shape[0]}")
        return {"iwae": reaching(bound_term(out), "generative"),
                "chi2": reaching(chi2_term(out, self.chi2_gradient), "inference")}

    def derived_logs(self, logs: dict) -> dict:
        return {"iwae_bound": -logs["iwae"]}


@dataclass(frozen=True)
class VISConfig(IWAEConfig):
    """``n_samples`` is K, the importance samples per input both networks' estimates share (>= 2);
    ``chi2_gradient`` the proposal's gradient estimator: score (the paper's) or reparam."""

    n_samples: int = 64
    objective: str = "vis"
    chi2_gradient: str = "score"

    def __post_init__(self) -> None:
        require(self.n_samples >= 2, f"n_samples={self.n_samples}: VIS estimates the chi^2 divergence from the "
                "spread of K importance weights; give K >= 2")
        require_choice(self.chi2_gradient, CHI2_GRADIENTS, "chi2_gradient")
        require(self.gradient_estimator == "reparam", f"gradient_estimator={self.gradient_estimator!r}: VIS "
                "takes the plain gradient of log p^(x) for the decoder; set chi2_gradient for the encoder's")
        super().__post_init__()


register_model("vis", config=VISConfig,
               description="VIS: the decoder on log p^(x), the encoder on the forward chi^2 divergence "
                           "(Li et al. 2024)")(VAE)
