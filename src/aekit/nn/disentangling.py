"""Parts of the disentangling VAEs: penalties on the aggregate posterior q(z) = E_{p(x)} q(z|x), estimated over the
batch, that push it towards a factorised distribution.

- :class:`TCDecomposition`, an objective: the KL term split into index-code mutual information, total correlation
  and dimension-wise KL (Chen et al. 2018, beta-TCVAE), log q(z) estimated over the minibatch by minibatch-weighted
  or minibatch-stratified sampling (:func:`log_importance_weights`, :func:`tc_decomposition`);
- :func:`permute_dims` and :func:`factor_tc_terms`: the total correlation estimated by a discriminator between
  q(z) and the product of its marginals (Kim & Mnih 2018, FactorVAE);
- :class:`DIPPenalty`, a regulariser: the covariance of the codes pushed to the identity (Kumar et al. 2018,
  DIP-VAE I and II).

Codes on a grid ``[*L, D]`` are one vector of d = prod(L) D coordinates per example.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice
from aekit.nn.divergences import flat_codes
from aekit.nn.priors import LOG_2PI
from aekit.nn.regularisers import Regulariser
from aekit.objectives import ELBO, Term
from aekit.parts import PartContext, register_part

ESTIMATORS = ("mss", "mws")
DIP_TYPES = ("I", "II")


def gaussian_params(latent, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``mu`` and ``logvar`` ``[B, d]`` of a diagonal Gaussian posterior, flattened over a grid."""
    params = latent.params
    require("mu" in params and "logvar" in params, f"{who} needs a diagonal Gaussian posterior (mu, logvar); use "
            "bottleneck=gaussian")
    return params["mu"].flatten(1), params["logvar"].flatten(1)


# beta-TCVAE (Chen et al. 2018).
def log_importance_weights(batch_size: int, dataset_size: int, estimator: str = "mss",
                           dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """log w_ij ``[M, M]``: the weight of q(z_i | x_j) in the estimate q(z_i) ~ sum_j w_ij q(z_i | x_j) of the
    aggregate posterior at example i's code, from a batch of M = ``batch_size`` out of N = ``dataset_size``
    (Chen et al. 2018, Sec. 4.1 and Appendix C.1):

    - ``mws``, minibatch-weighted sampling: w_ij = 1 / (N M) for every j, the paper's
      E[log q(z)] ~ 1/M sum_i [log sum_j q(z_i | x_j) - log(N M)]; its q(z_i) is low, by a factor between M
      (posteriors that do not overlap) and N (posteriors that all do), so its MI reads high and its TC and
      dimension-wise KL shift with it (their sum stays the KL);
    - ``mss``, minibatch-stratified sampling: w_ii = 1/N, one other example (j = i + 1 mod M) (N - M + 1) / (N (M -
      1)), the remaining M - 2 each 1 / (M - 1). Each row sums to 1, and over batches drawn without replacement
      sum_j w_ij q(z_i | x_j) is unbiased for q(z_i) (each of the other N - 1 examples weighs 1/N in expectation).
      The authors' code gives the second-to-last row two of the large weights and the last none; here every row has
      one.

    A batch of one has w = 1: its own posterior is all the batch knows of q(z)."""
    require_choice(estimator, ESTIMATORS, "estimator")
    M, N = batch_size, max(dataset_size, batch_size)
    if estimator == "mws":
        return torch.full((M, M), -math.log(N * M), dtype=dtype, device=device)
    if M == 1:
        return torch.zeros(1, 1, dtype=dtype, device=device)
    w = torch.full((M, M), 1.0 / (M - 1), dtype=torch.float64)
    rows = torch.arange(M)
    w[rows, (rows + 1) % M] = (N - M + 1) / (N * (M - 1))
    w[rows, rows] = 1.0 / N
    return w.log().to(dtype=dtype, device=device)


def pairwise_log_q(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(z_{s,i,k} | x_j) per coordinate: ``z [S, B, d]``, ``mu, logvar [B, d] -> [S, B(i), B(j), d]``."""
    z = z.unsqueeze(2)  # [S, B, 1, d]
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)


def tc_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, log_p: torch.Tensor,
                     dataset_size: int, estimator: str = "mss") -> dict[str, torch.Tensor]:
    """The three parts of log q(z|x) - log p(z) at each sample ``z [S, B, d]`` (Chen et al. 2018, eq. 2),

        mi     = log q(z|x) - log q(z)                       (index-code mutual information)
        tc     = log q(z) - sum_k log q(z_k)                 (total correlation)
        dim_kl = sum_k log q(z_k) - log p(z)                 (dimension-wise KL, for a factorised p(z)),

    each ``[S, B]``, with log q(z) and log q(z_k) estimated over the batch with the weights of
    :func:`log_importance_weights`; ``log_p [S, B]``: log p(z). They sum to log q(z|x) - log p(z) whatever the
    estimates."""
    S, B, _ = z.shape
    log_qzx_pairs = pairwise_log_q(z, mu, logvar)  # [S, B, B, d]
    log_w = log_importance_weights(B, dataset_size, estimator, z.dtype, z.device).view(1, B, B)  # [1, B, B]
    log_qz_x = log_qzx_pairs.diagonal(dim1=1, dim2=2).sum(1)  # [S, d, B] -> [S, B]
    log_qz = torch.logsumexp(log_w + log_qzx_pairs.sum(-1), dim=2)  # [S, B]
    log_prod_qzk = torch.logsumexp(log_w.unsqueeze(-1) + log_qzx_pairs, dim=2).sum(-1)  # [S, B, d] -> [S, B]
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_prod_qzk, "dim_kl": log_prod_qzk - log_p}


@register_part("objectives", "tc-decomposition", "beta-TCVAE: the KL split into index-code MI, total correlation "
               "and dimension-wise KL, estimated over the batch (Chen et al. 2018)")
class TCDecomposition(ELBO):
    """The weighted terms plus the KL's three parts ``mi``, ``tc`` and ``dim_kl`` per example ``[B]``
    (:func:`tc_decomposition`, averaged over the posterior samples), computed from the output's codes and
    posteriors with the batch's statistics; ``estimator``: ``mss`` (default) or ``mws``. N is the training set's
    size (``dataset_size``, set by the training loop; the batch's own size where unknown or smaller). The ELBO is
    logged from the closed-form KL."""

    def __init__(self, terms: dict[str, Term], model: str = "the model", estimator: str = "mss") -> None:
        super().__init__(terms, model)
        require_choice(estimator, ESTIMATORS, "estimator")
        self.estimator = estimator

    def extra_terms(self, out) -> dict[str, Any]:
        latent = out.latent
        mu, logvar = gaussian_params(latent, "objective=tc-decomposition")
        z = latent.z.flatten(2)  # [S, B, *L, D] -> [S, B, d]
        parts = tc_decomposition(z, mu, logvar, latent.log_p, self.dataset_size or z.shape[1], self.estimator)
        return {name: latent.expectation(value) for name, value in parts.items()}


# FactorVAE (Kim & Mnih 2018).
def permute_dims(z: torch.Tensor, permutation: torch.Tensor | None = None) -> torch.Tensor:
    """Each coordinate of the codes ``z [B, d]`` shuffled across the batch on its own, z~_ik = z_{pi_k(i), k}
    (Kim & Mnih 2018, Algorithm 1): samples of prod_k q(z_k), each marginal kept and the dependence between
    coordinates broken. ``permutation [B, d]``: pi_k in column k (drawn uniformly when None)."""
    if permutation is None:
        permutation = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)  # [B, d], a permutation a column
    return z.gather(0, permutation)


def with_fixed_parameters(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """``module(*inputs)`` with its parameters held fixed: the gradient reaches the inputs, none of its weights."""
    fixed = {name: p.detach() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, fixed, inputs)


def factor_tc_terms(discriminator: nn.Module, z: torch.Tensor,
                    permutation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(tc, disc, accuracy)`` for codes ``z [B, d]`` and a discriminator D giving the logit that a code comes
    from q(z) rather than from prod_k q(z_k) (Kim & Mnih 2018, eq. 3 and Algorithm 1):

        tc   = log D(z) / (1 - D(z)) = logit D(z)                      [B]; its gradient reaches the encoder only
        disc = -log D(z) - log(1 - D(z~)),  z~ = permute_dims(z)       [B]; the codes detached, D's weights only

    and D's accuracy on both. The permuted codes come from the same batch."""
    tc = with_fixed_parameters(discriminator, z)  # [B]
    z = z.detach()
    d_joint, d_product = discriminator(z), discriminator(permute_dims(z, permutation))  # [B] each
    disc = F.softplus(-d_joint) + F.softplus(d_product)
    with torch.no_grad():
        accuracy = 0.5 * ((d_joint > 0).float().mean() + (d_product < 0).float().mean())
    return tc, disc, accuracy


# DIP-VAE (Kumar et al. 2018).
def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor | None, dip_type: str) -> torch.Tensor:
    """The covariance ``[d, d]`` DIP-VAE matches to the identity (Kumar et al. 2018, eqs. 6 and 7), over the batch
    ``mu, logvar [B, d]``: I, Cov_p(x)[mu(x)]; II, Cov_q(z)[z] = E_p(x)[Sigma(x)] + Cov_p(x)[mu(x)]. The batch
    covariance divides by B."""
    centred = mu - mu.mean(0)  # [B, d]
    cov = centred.T @ centred / mu.shape[0]  # [d, d]
    if dip_type == "II":
        cov = cov + torch.diag(logvar.exp().mean(0))
    return cov


def dip_penalties(cov: torch.Tensor) -> dict[str, torch.Tensor]:
    """``dip_od`` = sum_{i != j} Cov_ij^2 and ``dip_d`` = sum_i (Cov_ii - 1)^2, one value each ``[]``."""
    diagonal = torch.diagonal(cov)
    return {"dip_od": cov.pow(2).sum() - diagonal.pow(2).sum(), "dip_d": (diagonal - 1.0).pow(2).sum()}


@register_part("regularisers", "dip", "DIP-VAE: the covariance of the posterior means (I) or of q(z) (II) pushed "
               "to the identity (Kumar et al. 2018)")
class DIPPenalty(Regulariser):
    """``dip_od`` and ``dip_d`` (:func:`dip_penalties`) of the batch's :func:`dip_covariance`, one value per batch;
    ``dip_type``: I (the posterior means) or II (q(z), which needs a Gaussian posterior's variances). The model
    weighs them lambda_od and lambda_d:

        L = -ELBO + lambda_od sum_{i != j} Cov_ij^2 + lambda_d sum_i (Cov_ii - 1)^2.
    """

    terms: ClassVar[dict[str, Term]] = {"dip_od": Term(batch=True), "dip_d": Term(batch=True)}
    part_name = "dip"

    def __init__(self, context: PartContext, dip_type: str = "I") -> None:
        super().__init__(context)
        require_choice(dip_type, DIP_TYPES, "dip_type")
        self.dip_type = dip_type

    def forward(self, latent, x, condition=None) -> dict[str, torch.Tensor]:
        if self.dip_type == "II":
            mu, logvar = gaussian_params(latent, "dip_type=II")
        else:
            mu, logvar = flat_codes(latent.mean), None  # [B, d]
        return dip_penalties(dip_covariance(mu, logvar, self.dip_type))
