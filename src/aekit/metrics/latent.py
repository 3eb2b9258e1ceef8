"""Diagnostics of the latent space."""

from __future__ import annotations

import torch


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
