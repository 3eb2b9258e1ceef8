"""Bottlenecks: the part between encoder features and decoder input.

A bottleneck maps encoder features ``h [B, F]`` to latent samples ``z [S, B, *L, D]`` (S posterior samples per
input; ``L`` empty for a vector latent) and returns, in a :class:`BottleneckOutput`, its auxiliary terms per
example (KL, later commitment or sparsity) and, for a stochastic one, ``log q(z|x)`` and ``log p(z)`` of each
sample. Variational, quantised and sparse models differ only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from aekit.nn.priors import LOG_2PI, Prior, StandardNormal
from aekit.parts import build_part, register_part


@dataclass
class BottleneckOutput:
    """z: ``[S, B, *L, D]`` samples; mean: ``[B, *L, D]`` the point embedding (posterior mean or the code);
    params: distribution parameters (e.g. ``mu``, ``logvar``); terms: per-example loss terms ``[B]``;
    stats: diagnostics (``kl_per_dim [B, D]``; 0-dim tensors are logged); log_q, log_p: ``[S, B]`` the log
    densities of each sample under the posterior and the prior (stochastic bottlenecks only)."""

    z: torch.Tensor
    mean: torch.Tensor
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    log_q: torch.Tensor | None = None
    log_p: torch.Tensor | None = None


class Bottleneck(nn.Module):
    stochastic: bool = False

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.in_features, self.latent_dim = in_features, latent_dim
        self.prior: Prior | None = None  # what samples are drawn from, where the model has one

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)


@register_part("bottlenecks", "deterministic", "z = W h + b: the plain autoencoder code")
class Deterministic(Bottleneck):
    """z = W h + b: the plain autoencoder code."""

    def __init__(self, in_features: int, latent_dim: int, prior: Prior | None = None) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, latent_dim)
        if prior is not None:  # a prior to match in latent space (adversarial autoencoders) and to sample from
            self.prior = prior

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None) -> BottleneckOutput:
        z = self.proj(h)  # [B, D]
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z)


@register_part("bottlenecks", "gaussian", "q(z|x) = N(mu, diag sigma^2), reparameterised; KL to the prior")
class DiagonalGaussian(Bottleneck):
    """q(z|x) = N(mu(x), diag sigma^2(x)), sampled by reparameterisation z = mu + sigma * eps
    (Kingma & Welling 2014). The KL to the prior is the closed form where the prior has one, for N(0, I)

        KL(q || N(0, I)) = 1/2 sum_d (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2),

    and otherwise the Monte Carlo estimate (1/S) sum_s log q(z_s|x) - log p(z_s) over the S samples.
    """

    stochastic = True

    def __init__(self, in_features: int, latent_dim: int, prior: Prior | None = None) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, 2 * latent_dim)
        self.prior = prior if prior is not None else StandardNormal(latent_dim)

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.proj(h).chunk(2, dim=-1)  # [B, D] each
        return mu, logvar

    def rsample(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None) -> torch.Tensor:
        """``n_samples`` reparameterised draws ``[S, B, D]`` (``eps`` passes the standard-normal noise in)."""
        mu, logvar = params["mu"], params["logvar"]
        if eps is None:
            eps = torch.randn(n_samples, *mu.shape, device=mu.device, dtype=mu.dtype)  # [S, B, D]
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None) -> BottleneckOutput:
        mu, logvar = self.posterior(h)
        params = {"mu": mu, "logvar": logvar}
        z = self.rsample(params, n_samples, eps)  # [S, B, D]
        log_q, log_p = self.log_q(z, params), self.log_p(z)  # [S, B] each
        kl_per_dim = self.prior.kl_from_gaussian(mu, logvar)  # [B, D], or None without a closed form
        if kl_per_dim is None:
            kl, stats = (log_q - log_p).mean(0), {}
        else:
            kl, stats = kl_per_dim.flatten(1).sum(-1), {"kl_per_dim": kl_per_dim}
        return BottleneckOutput(z=z, mean=mu, params=params, terms={"kl": kl}, stats=stats, log_q=log_q, log_p=log_p)

    def log_q(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log q(z|x) summed over latent dims: ``z [S, B, *L, D] -> [S, B]``."""
        mu, logvar = params["mu"], params["logvar"]
        return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).flatten(2).sum(-1)

    def log_p(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior.log_prob(z)


def make_bottleneck(name: str, in_features: int, latent_dim: int, prior: str | None = None,
                    options: dict | None = None, prior_options: dict | None = None) -> Bottleneck:
    """Bottleneck ``name`` with prior ``prior`` (a registered prior name; the bottleneck's default when None),
    each with its own settings."""
    p = None if prior is None else build_part("priors", prior, latent_dim, **(prior_options or {}))
    return build_part("bottlenecks", name, in_features, latent_dim, prior=p, **(options or {}))
