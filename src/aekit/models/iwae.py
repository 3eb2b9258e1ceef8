"""Importance weighted autoencoder (Burda, Grosse & Salakhutdinov 2016), and the gradient estimators of its bound.

The same encoder, decoder and Gaussian posterior as the VAE, trained on the k-sample importance weighted bound

    L_k(x) = E_{z_1..z_k ~ q(z|x)} [ log (1/k) sum_i w_i ],   w_i = p(x|z_i) p(z_i) / q(z_i|x),

which equals the ELBO at k = 1, increases with k (L_k <= L_{k+1} <= log p(x)) and tends to log p(x) as k grows.
All k samples go through the decoder in one batch ``[k, B, ...]``; the bound is a log-sum-exp over them.

Its gradient for the inference network phi, with z_i = z(eps_i; phi) and normalised weights w~_i = w_i / sum_j w_j,

    d L_k / d phi = E[ sum_i w~_i (d log w_i / d z_i  d z_i / d phi  -  d log q_phi(z_i|x) / d phi) ],

is estimated three ways (``gradient_estimator``), each leaving the bound's value and the generative network's
gradient as they are:

- ``reparam``: the total derivative above; its signal-to-noise ratio falls as 1/sqrt(k) (Rainforth et al. 2018).
- ``stl``, sticking the landing (Roeder, Wu & Duvenaud 2017): the score term -d log q / d phi dropped, log q
  evaluated with the posterior's parameters held fixed. It has zero variance at an exact posterior; unbiased for
  the ELBO (k = 1), biased for k > 1 (Tucker et al. 2019).
- ``dreg``, doubly reparameterised (Tucker, Lawson, Gu & Maddison 2019): the score term rewritten by
  reparameterising it a second time, sum_i w~_i^2 d log w_i / d z_i  d z_i / d phi: unbiased, and its
  signal-to-noise ratio grows as sqrt(k). The generative network keeps the usual gradient sum_i w~_i d log w_i.

Every bound here is a mean of M independent IWAE bounds of K samples each (M = 1: IWAE; K = 1: the ELBO), so one
function estimates them all (:func:`bound_term`); MIWAE, PIWAE and CIWAE (:mod:`aekit.models.miwae`,
:mod:`aekit.models.piwae`, :mod:`aekit.models.ciwae`) combine them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from aekit.config import require
from aekit.models.vae import VAE, VAEConfig
from aekit.objectives import ELBO_TERMS, Routed, Term, WeightedTerms, importance_weights, with_gradient_of
from aekit.parts import register_part
from aekit.registry import register_model

GRADIENT_ESTIMATORS = ("reparam", "stl", "dreg")


def check_estimator(name: str) -> None:
    require(name in GRADIENT_ESTIMATORS, f"gradient_estimator={name!r} is unknown; choose one of "
            f"{', '.join(GRADIENT_ESTIMATORS)}")


def grouped(log_w: torch.Tensor, n_bounds: int) -> torch.Tensor:
    """The S = M K samples' log weights ``[S, B]`` as M groups of K: ``[M, K, B]``."""
    require(log_w.shape[0] % n_bounds == 0, f"{log_w.shape[0]} samples per input do not split into n_bounds="
            f"{n_bounds} bounds of equal size; draw a multiple of {n_bounds}")
    return log_w.view(n_bounds, -1, *log_w.shape[1:])  # [M, K, B]


def log_mean_weight(log_w: torch.Tensor, n_bounds: int = 1) -> torch.Tensor:
    """(1/M) sum_m log (1/K) sum_k w_mk per example ``[B]``, from log w ``[M K, B]``: the IWAE bound (M = 1),
    MIWAE's (M > 1), the Monte Carlo ELBO (K = 1)."""
    log_w = grouped(log_w, n_bounds)  # [M, K, B]
    return (log_w.logsumexp(1) - math.log(log_w.shape[1])).mean(0)


def iwae_bound(out) -> torch.Tensor:
    """L_k per example ``[B]``: logsumexp_i log w_i - log k over the k samples of ``out``."""
    return log_mean_weight(importance_weights(out))


def bound_term(out, n_bounds: int = 1, estimator: str = "reparam") -> torch.Tensor | Routed:
    """The negative bound -(1/M) sum_m log (1/K) sum_k w_mk ``[B]`` over the output's samples, with the gradient
    of ``estimator`` (module docstring); DReG's differs by network, a :class:`~aekit.objectives.Routed` term."""
    if estimator == "reparam":
        return -log_mean_weight(importance_weights(out), n_bounds)
    log_w_path = importance_weights(out, path=True)  # [M K, B], q's parameters held fixed
    if estimator == "stl":
        return -log_mean_weight(log_w_path, n_bounds)
    log_w = importance_weights(out)
    bound = log_mean_weight(log_w, n_bounds)  # [B]
    w_tilde = grouped(log_w, n_bounds).detach().softmax(1)  # [M, K, B], normalised within each bound
    doubly_reparameterised = (w_tilde.pow(2) * grouped(log_w_path, n_bounds)).sum(1).mean(0)  # [B]
    return Routed({"inference": -with_gradient_of(bound, doubly_reparameterised), "generative": -bound})


class ImportanceWeighted(WeightedTerms):
    """The weighted terms with negative bounds computed from the output's samples (:meth:`bounds`), declared in
    ``bound_terms`` with their default weights (the model's own declaration wins); the model's ``recon`` and ``kl``
    are logged only (for comparison with a VAE), and each bound itself as ``NAME_bound``. ``gradient_estimator``:
    reparam, stl or dreg (module docstring)."""

    bound_terms: ClassVar[dict[str, Term]] = {}

    def __init__(self, terms: dict[str, Term], model: str = "the model", gradient_estimator: str = "reparam") -> None:
        check_estimator(gradient_estimator)
        self.estimator = gradient_estimator
        logged = {name: dataclasses.replace(terms[name], log_only=True) for name in ELBO_TERMS if name in terms}
        bounds = {name: terms.get(name, default) for name, default in self.bound_terms.items()}
        super().__init__({**terms, **logged, **bounds}, model)

    @property
    def routes_gradients(self) -> bool:
        return self.estimator == "dreg"

    def bounds(self, out) -> dict[str, torch.Tensor | Routed]:
        raise NotImplementedError

    def extra_terms(self, out) -> dict[str, torch.Tensor | Routed]:
        return self.bounds(out)

    def derived_logs(self, logs: dict) -> dict:
        return {f"{name}_bound": -logs[name] for name in self.bound_terms}


@register_part("objectives", "iwae", "negative k-sample importance weighted bound (k = n_samples)")
class IWAEBound(ImportanceWeighted):
    """The term ``iwae`` = -L_k over all the output's samples."""

    bound_terms: ClassVar[dict[str, Term]] = {"iwae": Term()}

    def bounds(self, out) -> dict[str, torch.Tensor | Routed]:
        return {"iwae": bound_term(out, 1, self.estimator)}


@dataclass(frozen=True)
class IWAEConfig(VAEConfig):
    """``n_samples`` is k, the number of importance samples per input (Burda et al. use k = 5 and 50);
    ``gradient_estimator`` the inference network's: reparam, stl (Roeder et al. 2017) or dreg (Tucker et al.
    2019)."""

    n_samples: int = 5
    objective: str = "iwae"
    gradient_estimator: str = "reparam"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_samples >= 1, f"n_samples={self.n_samples}: the IWAE bound needs k >= 1 samples")
        check_estimator(self.gradient_estimator)


register_model("iwae", config=IWAEConfig,
               description="Importance weighted autoencoder: the k-sample bound (Burda et al. 2016)")(VAE)
