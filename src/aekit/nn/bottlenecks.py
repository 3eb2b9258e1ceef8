"""Bottlenecks: the part between encoder features and decoder input.

A bottleneck maps encoder features ``h [B, F]`` to latent samples ``z [S, B, D]`` (S posterior samples per
input) and returns its auxiliary terms per example (KL, later commitment or sparsity) in a
:class:`BottleneckOutput`. Variational, quantised and sparse models differ only here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


@dataclass
class BottleneckOutput:
    """z: ``[S, B, D]`` samples; mean: ``[B, D]`` the point embedding (posterior mean or the code);
    params: distribution parameters (e.g. ``mu``, ``logvar``); terms: per-example loss terms ``[B]``;
    stats: diagnostics such as ``kl_per_dim [B, D]``."""

    z: torch.Tensor
    mean: torch.Tensor
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


class StandardNormal(nn.Module):
    """The prior p(z) = N(0, I)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over latent dims: ``[..., D] -> [...]``."""
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=device)


class Bottleneck(nn.Module):
    stochastic: bool = False

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.in_features, self.latent_dim = in_features, latent_dim


class Deterministic(Bottleneck):
    """z = W h + b: the plain autoencoder code."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, latent_dim)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None) -> BottleneckOutput:
        z = self.proj(h)  # [B, D]
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z)


class DiagonalGaussian(Bottleneck):
    """q(z|x) = N(mu(x), diag sigma^2(x)), sampled by reparameterisation z = mu + sigma * eps
    (Kingma & Welling 2014), with the analytic KL to a standard normal prior:

        KL(q || N(0, I)) = 1/2 sum_d (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2).
    """

    stochastic = True

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, 2 * latent_dim)
        self.prior = StandardNormal(latent_dim)

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.proj(h).chunk(2, dim=-1)  # [B, D] each
        return mu, logvar

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None) -> BottleneckOutput:
        mu, logvar = self.posterior(h)
        if eps is None:
            eps = torch.randn(n_samples, *mu.shape, device=mu.device, dtype=mu.dtype)  # [S, B, D]
        z = mu + torch.exp(0.5 * logvar) * eps  # [S, B, D]
        kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # [B, D]
        return BottleneckOutput(
            z=z,
            mean=mu,
            params={"mu": mu, "logvar": logvar},
            terms={"kl": kl_per_dim.sum(-1)},
            stats={"kl_per_dim": kl_per_dim},
        )

    def log_q(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log q(z|x) summed over latent dims: ``z [S, B, D] -> [S, B]``."""
        mu, logvar = params["mu"], params["logvar"]
        return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)

    def log_p(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior.log_prob(z)


BOTTLENECKS = {"deterministic": Deterministic, "gaussian": DiagonalGaussian}
