"""Divergences between two sets of latent codes, estimated from samples: the codes of a batch and as many draws
from the prior. Plain functions; the randomness they use (prior draws, projection directions) is passed in.

Every function takes codes ``[n, d]``: a grid of latents ``[n, *L, D]`` is one vector per example, flattened,
``[n, prod(L) D]`` (:func:`flat_codes`), and d counts every coordinate of it.

**Maximum mean discrepancy** (Gretton et al. 2012), the unbiased U-statistic of MMD^2 between samples x_1..x_n of
q and y_1..y_m of p with a kernel k:

    MMD_u^2 = 1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j) - 2/(n m) sum_{i,j} k(x_i, y_j),

the diagonal i = j left out of the two within-set sums. It is unbiased, so a single batch may give a value below
zero. Kernels, each summed over several widths C_s = s * 2 d sigma_z^2 (s in :data:`KERNEL_SCALES`; 2 d sigma_z^2
is the expected squared distance between two draws of N(0, sigma_z^2 I_d)), as the WAE authors do (Tolstikhin,
Bousquet, Gelly & Schoelkopf 2018):

- ``imq``, inverse multiquadric: k_C(x, y) = C / (C + ||x - y||^2), whose heavy tails keep a gradient for codes
  far from the prior's mass;
- ``rbf``, Gaussian: k_C(x, y) = exp(-||x - y||^2 / C).

**Sliced Wasserstein distance** (Kolouri, Pope, Martin & Rohde 2019), squared, between two sets of n codes over
L unit directions theta_l:

    SW_2^2 = (1/L) sum_l (1/n) sum_i (sort(X theta_l)_i - sort(Y theta_l)_i)^2,

each direction's term being the exact squared 2-Wasserstein distance between the two projected empirical
distributions (in one dimension, the optimal coupling matches the sorted values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from aekit.config import require, require_choice

KERNEL_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def flat_codes(z: torch.Tensor) -> torch.Tensor:
    """Codes ``[n, *L, D]`` as one vector per example, ``[n, prod(L) D]``."""
    return z.flatten(1)


def imq_kernel(distances: torch.Tensor, width: float) -> torch.Tensor:
    """k_C(x, y) = C / (C + ||x - y||^2), from the squared distances ||x - y||^2."""
    return width / (width + distances)


def rbf_kernel(distances: torch.Tensor, width: float) -> torch.Tensor:
    """k_C(x, y) = exp(-||x - y||^2 / C), from the squared distances ||x - y||^2."""
    return torch.exp(-distances / width)


KERNELS = {"imq": imq_kernel, "rbf": rbf_kernel}


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 ``[n, m]`` for ``x [n, d]``, ``y [m, d]``, from the differences themselves (exact at zero
    distance, unlike the expanded ||x||^2 - 2 x.y + ||y||^2). Where a gradient is needed, a block of rows of x at a
    time, so that the differences stay within about 2^24 numbers (a batch's codes are one block); where none is
    (scoring thousands of codes), ``torch.cdist`` without its matrix-product shortcut, the same differences in a
    fused kernel, an order of magnitude faster."""
    if not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
        return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
    rows = max(1, 2**24 // max(1, y.shape[0] * x.shape[1]))
    return torch.cat([(x[i:i + rows].unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1)  # [r, m, d] -> [r, m]
                      for i in range(0, x.shape[0], rows)])


def check_kernel(kernel: str, scales: Sequence[float], prior_variance: float) -> None:
    """A one-line ConfigError for an unknown kernel or a width that is not a positive finite number."""
    require_choice(kernel, KERNELS, "kernel")
    require(len(scales) > 0 and all(math.isfinite(s) and s > 0 for s in scales),
            f"kernel_scales={tuple(scales)} must hold positive finite numbers (the widths are each times "
            "2 d prior_variance), e.g. 0.1,1,10")
    require(math.isfinite(prior_variance) and prior_variance > 0,
            f"prior_variance={prior_variance} must be a positive finite number (1 for N(0, I))")


def kernel_widths(scales: Sequence[float], dim: int, prior_variance: float = 1.0) -> tuple[float, ...]:
    """C_s = s * 2 d sigma_z^2 for each scale s, over codes of d coordinates."""
    return tuple(s * 2.0 * dim * prior_variance for s in scales)


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str = "imq", widths: Sequence[float] = (1.0,)) -> torch.Tensor:
    """The unbiased U-statistic of MMD^2 between ``x [n, d]`` and ``y [m, d]`` (n, m >= 2), with ``kernel``
    summed over ``widths``: a 0-dim tensor (module docstring)."""
    n, m = x.shape[0], y.shape[0]
    require(n >= 2 and m >= 2, f"the MMD U-statistic needs two codes or more on each side, got {n} and {m}")
    k = KERNELS[kernel]

    def summed(distances: torch.Tensor) -> torch.Tensor:  # sum_C k_C over the widths, [n, m]
        return sum(k(distances, width) for width in widths)

    within_x, within_y = summed(squared_distances(x, x)), summed(squared_distances(y, y))  # [n, n], [m, m]
    off_x = within_x.sum() - within_x.diagonal().sum()
    off_y = within_y.sum() - within_y.diagonal().sum()
    return off_x / (n * (n - 1)) + off_y / (m * (m - 1)) - 2.0 * summed(squared_distances(x, y)).mean()


def random_directions(count: int, dim: int, device=None, dtype=None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` directions drawn uniformly on the unit sphere of R^d: ``[L, d]``."""
    theta = torch.randn(count, dim, device=device, dtype=dtype, generator=generator)
    return theta / theta.norm(dim=1, keepdim=True)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """SW_2^2 between ``x [n, d]`` and ``y [n, d]`` over the unit ``directions [L, d]``: a 0-dim tensor."""
    require(x.shape == y.shape, f"the sliced Wasserstein distance matches sets of the same size, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}")
    x_proj = (x @ directions.T).sort(dim=0).values  # [n, L], each column sorted
    y_proj = (y @ directions.T).sort(dim=0).values  # [n, L]
    return (x_proj - y_proj).pow(2).mean()
