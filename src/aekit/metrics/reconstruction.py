"""Reconstruction error. Each function returns one value per example (``[B]``) unless noted."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error per example, averaged over data dimensions."""
    return (x - x_hat).pow(2).flatten(1).mean(1)


def bce(x: torch.Tensor, x_hat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Binary cross-entropy per example in nats, summed over data dimensions (x, x_hat in [0, 1])."""
    return F.binary_cross_entropy(x_hat.clamp(eps, 1 - eps), x, reduction="none").flatten(1).sum(1)


def psnr(x: torch.Tensor, x_hat: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per example in dB: 10 log10(range^2 / MSE)."""
    return 10.0 * torch.log10(data_range**2 / mse(x, x_hat).clamp(min=1e-12))
