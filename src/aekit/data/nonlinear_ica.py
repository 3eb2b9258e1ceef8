"""Synthetic nonlinear ICA data: piecewise-stationary sources mixed by a random invertible MLP (the setting of
Hyvarinen & Morioka 2016 and of Khemakhem et al. 2020, Sec. 6).

The data is cut into M segments, u = the segment; within segment m each source s_i is Gaussian with its own
mean and standard deviation, drawn once: s_i | u = m ~ N(mu_im, sigma_im^2), mu_im ~ U(-2, 2), sigma_im ~ U(0.25, 2).
The observations are x = f(s), f an MLP of ``layers`` square layers (orthogonal weights, so each is invertible)
with leaky ReLU (slope 0.2) between them: f is invertible, and s is identified from (x, u) up to a permutation and
coordinate-wise maps.
"""

from __future__ import annotations

import numpy as np
import torch

from aekit.config import require


def piecewise_sources(segments: int, per_segment: int, sources: int,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(s ``[M n, K]`` float32, u ``[M n]`` int64 segment ids) for M = ``segments`` of n = ``per_segment``."""
    require(segments >= 2 and per_segment >= 1 and sources >= 1, f"segments={segments}, per_segment={per_segment},"
            f" sources={sources}: give at least 2 segments, 1 example each and 1 source")
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-2, 2, size=(segments, sources))
    sigma = rng.uniform(0.25, 2, size=(segments, sources))
    u = np.repeat(np.arange(segments), per_segment)  # [M n]
    s = mu[u] + sigma[u] * rng.standard_normal((len(u), sources))
    return torch.as_tensor(s, dtype=torch.float32), torch.as_tensor(u, dtype=torch.int64)


def invertible_mlp(s: torch.Tensor, layers: int = 2, seed: int = 0, slope: float = 0.2) -> torch.Tensor:
    """x = f(s) ``[N, K]``: ``layers`` random orthogonal K x K maps with leaky ReLU between them (none after the
    last), each invertible, so f is."""
    require(layers >= 1, f"layers={layers} must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    x = s
    for layer in range(layers):
        q, _ = torch.linalg.qr(torch.randn(s.shape[1], s.shape[1], generator=generator))
        x = x @ q
        if layer < layers - 1:
            x = torch.nn.functional.leaky_relu(x, slope)
    return x
