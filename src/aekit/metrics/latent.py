"""Diagnostics of the latent space."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from aekit.nn.divergences import KERNEL_SCALES, flat_codes, kernel_widths, mmd


def kl_per_dimension(kl_per_dim: torch.Tensor) -> torch.Tensor:
    """Average KL(q(z_d|x) || p(z_d)) of each latent dimension over the data: ``[N, D] -> [D]``."""
    return kl_per_dim.mean(0)


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of active latent units (Burda et al. 2016): A_u = Cov_x(E_q(z|x)[z_u]) > threshold.

    ``mu [N, D]`` holds the posterior means E_q[z] of N data points.
    """
    if mu.shape[0] < 2:
        return 0
    return int((mu.var(0, unbiased=True) > threshold).sum())


def _log_normal_pairs(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_i; mu_j, diag exp(logvar_j)) per dimension for every pair: ``[N, D] x [M, D] -> [N, M, D]``."""
    diff = z[:, None, :] - mu[None, :, :]
    return -0.5 * (diff.pow(2) / logvar.exp()[None] + logvar[None] + math.log(2 * math.pi))


def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, per_unit: bool = False,
                       chunk: int | None = None) -> torch.Tensor:
    """I_q(x; z), the mutual information between the examples and their codes under the encoder's joint
    q(x, z) = p_data(x) q(z|x) over the N given examples (Hoffman & Johnson 2016; the estimator of He et al. 2019,
    "Lagging Inference Networks"):

        I = E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)],   q(z) = (1/N) sum_n q(z|x_n),

    for diagonal Gaussian posteriors ``mu``, ``logvar`` ``[N, D]`` and one code ``z [N, D]`` drawn from each:
    the first term in closed form (the negative entropy, -1/2 sum_d (log 2 pi e + logvar_d), averaged over the
    examples), the second by log q(z_i) = logsumexp_j log q(z_i|x_j) - log N over all N posteriors. In nats; it
    cannot exceed log N, the information N examples can carry. ``per_unit``: the same for each dimension alone,
    with its own marginal, ``[D]`` (a collapsed unit scores about 0, one that splits the data in two equal halves
    about log 2). Pairs are taken ``chunk`` codes at a time (memory N x chunk x D; by default about 2^24 numbers)."""
    mu, logvar, z = mu.double(), logvar.double(), z.double()
    n = mu.shape[0]
    chunk = chunk or max(1, 2**24 // max(1, n * mu.shape[1]))
    neg_entropy = -0.5 * (math.log(2 * math.pi * math.e) + logvar)  # [N, D]
    log_qz = []
    for start in range(0, n, chunk):
        pairs = _log_normal_pairs(z[start:start + chunk], mu, logvar)  # [c, N, D]
        pairs = pairs if per_unit else pairs.sum(-1, keepdim=True)
        log_qz.append(pairs.logsumexp(1) - math.log(n))  # [c, D] or [c, 1]
    log_qz = torch.cat(log_qz)
    if per_unit:
        return neg_entropy.mean(0) - log_qz.mean(0)
    return neg_entropy.sum(-1).mean() - log_qz.mean()


def collapsed_units(kl_per_dim: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """``[D]`` bool: the units whose KL(q(z_d|x) || p(z_d)), averaged over the examples ``kl_per_dim [N, D]``, is
    below ``threshold`` nats: their posterior is the prior whatever the input (posterior collapse)."""
    return kl_per_dim.double().mean(0) < threshold


def _max_abs_correlation(x: torch.Tensor) -> torch.Tensor:
    """``[D]``: each column's largest |Pearson correlation| with another column of ``x [N, D]``; a column that
    does not vary (standard deviation below 1e-8 of the largest) correlates with nothing."""
    x = x.double() - x.double().mean(0)
    std = x.pow(2).mean(0).sqrt()
    varies = std > 1e-8 * std.max().clamp(min=1e-300)
    x = torch.where(varies, x / std.clamp(min=1e-300), torch.zeros_like(x))
    corr = (x.T @ x / x.shape[0]).abs().fill_diagonal_(0)
    return corr.max(1).values if x.shape[1] > 1 else torch.zeros(x.shape[1], dtype=x.dtype)


def mean_sample_correlation_gap(mu: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``[D]``: for each unit, its largest |correlation| with another unit among the posterior means ``mu [N, D]``
    less the same among the sampled codes ``z [N, D]``. Bonheme & Grzes (2023, "Be More Active! Understanding the
    Differences between Mean and Sampled Representations of Variational Autoencoders") show that units the KL has
    made passive can stay correlated in the mean representation while their samples, dominated by the prior's
    noise, are not: such a unit has a gap near 1; a unit whose means and samples agree, a gap near 0."""
    return _max_abs_correlation(mu) - _max_abs_correlation(z)


def aggregate_posterior_mmd(z: torch.Tensor, prior_draws: torch.Tensor, kernel: str = "imq",
                            widths: Sequence[float] | None = None) -> torch.Tensor:
    """MMD_u^2 between the aggregate posterior q(z) = (1/N) sum_n q(z|x_n) and the prior p(z), from one code
    ``z [N, *L, D]`` drawn from each example's posterior and ``prior_draws [M, *L, D]`` from p(z): the unbiased
    U-statistic of Gretton et al. (2012) (:func:`aekit.nn.divergences.mmd`), 0-dim, in float64.

    A grid of latents is one vector per example, ``[N, prod(L) D]`` (:func:`~aekit.nn.divergences.flat_codes`).
    The kernel (``imq`` by default, or ``rbf``) is summed over ``widths``; by default C_s = s * 2 d for s in
    :data:`~aekit.nn.divergences.KERNEL_SCALES` (0.1 to 10), 2 d being the mean squared distance between two draws
    of N(0, I_d) over the d flattened coordinates, as the WAE authors choose them (Tolstikhin et al. 2018). About 0
    (either sign: the statistic is unbiased) when the codes fill the prior as it is, the same whatever the input
    or not; it grows as the codes gather where the prior has little mass, or leave part of it empty (the "holes"
    that samples from p(z) decode badly from). It cannot tell a collapsed posterior from an informative one whose
    mixture matches the prior: read it with ``mutual_information``."""
    x, y = flat_codes(z).double(), flat_codes(prior_draws).double()  # [N, d], [M, d]
    widths = kernel_widths(KERNEL_SCALES, x.shape[1]) if widths is None else widths
    return mmd(x, y, kernel, widths)
