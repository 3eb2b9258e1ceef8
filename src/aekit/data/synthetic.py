"""Data with a known sparse ground truth, for scoring how well a sparse code recovers its features.

:func:`sparse_feature_data` draws rows x = sum_i a_i f_i + noise from F features f_i (random unit directions in a
space of ``dim`` < F dimensions, so that the features sit in superposition), where each row activates a sparse
set of features:

- **power-law frequencies**: feature i is active with probability p_i proportional to (i + 1)^(-alpha), scaled so
  that sum_i p_i = ``mean_active`` (the expected L0 of the true code), each at most 1 (the features that would
  exceed 1 are always active, and the others share the rest of the mass in proportion);
- **correlated co-occurrence**: features come in groups of ``group_size``; feature i is active when
  Phi(g_i) < p_i with g_i = sqrt(rho) s_group + sqrt(1 - rho) e_i (s, e standard normal, Phi the normal CDF),
  a Gaussian copula: each feature keeps its frequency p_i exactly and features of a group co-occur more often
  the larger ``correlation`` rho is;
- **magnitudes**: a_i = |1 + 0.25 n| (n standard normal) where active, else 0.

Score a learned code on it with :func:`aekit.metrics.sparsity.feature_recovery` (the codes of the same rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class SparseFeatureData:
    """``x [N, dim]`` float32 rows; ``codes [N, F]`` the true activations; ``directions [F, dim]`` the unit
    feature directions; ``frequencies [F]`` each feature's probability of being active."""

    x: torch.Tensor
    codes: torch.Tensor
    directions: torch.Tensor
    frequencies: torch.Tensor


def _power_law(features: int, alpha: float, total: float) -> torch.Tensor:
    """p_i proportional to (i + 1)^(-alpha), each at most 1, summing to ``total``: the weights are scaled, and the
    mass of any that reach 1 is spread over the others in proportion, until none exceeds it."""
    weights = (torch.arange(features, dtype=torch.float64) + 1) ** (-alpha)
    capped = torch.zeros(features, dtype=torch.bool)
    while True:
        free = total - float(capped.sum())
        p = torch.where(capped, torch.ones_like(weights), weights * free / weights[~capped].sum())
        if not (p > 1).any():
            return p
        capped |= p > 1


def sparse_feature_data(rows: int, features: int = 512, dim: int = 64, mean_active: float = 8.0,
                        alpha: float = 0.5, correlation: float = 0.0, group_size: int = 8, noise: float = 0.0,
                        seed: int = 0) -> SparseFeatureData:
    """Rows with a known sparse code (module docstring); the same ``seed`` gives the same data."""
    if rows < 1 or features < 1 or dim < 1:
        raise ValueError(f"rows={rows}, features={features} and dim={dim} must all be >= 1")
    if not 0 < mean_active <= features:
        raise ValueError(f"mean_active={mean_active} must lie in (0, features={features}]")
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation={correlation} must lie in [0, 1)")
    if group_size < 1:
        raise ValueError(f"group_size={group_size} must be >= 1")
    g = torch.Generator().manual_seed(seed)
    frequencies = _power_law(features, alpha, mean_active)
    groups = math.ceil(features / group_size)
    shared = torch.randn(rows, groups, generator=g, dtype=torch.float64).repeat_interleave(group_size, 1)[:, :features]
    own = torch.randn(rows, features, generator=g, dtype=torch.float64)
    latent = math.sqrt(correlation) * shared + math.sqrt(1 - correlation) * own  # standard normal, correlated
    uniform = 0.5 * (1 + torch.erf(latent / math.sqrt(2)))  # Phi(g): uniform on [0, 1] for each feature
    active = uniform < frequencies
    magnitudes = (1 + 0.25 * torch.randn(rows, features, generator=g, dtype=torch.float64)).abs()
    codes = torch.where(active, magnitudes, torch.zeros_like(magnitudes))
    directions = torch.randn(features, dim, generator=g, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    x = codes @ directions + noise * torch.randn(rows, dim, generator=g, dtype=torch.float64)
    return SparseFeatureData(x.float(), codes.float(), directions.float(), frequencies.float())
