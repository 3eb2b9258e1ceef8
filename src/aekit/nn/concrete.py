"""Joint continuous and discrete latents: Gaussian units beside one or more concrete (Gumbel-softmax) units.

A categorical unit c ~ Cat(alpha) with K categories is relaxed in training to the concrete distribution
(Maddison et al. 2017; Jang et al. 2017),

    y_k = exp((log alpha_k + g_k) / tau) / sum_j exp((log alpha_j + g_j) / tau),   g_k = -log(-log u_k),  u ~ U(0, 1),

a point of the simplex that tends to the one-hot of a draw from Cat(alpha) as the temperature tau -> 0; at
evaluation the unit is the one-hot of argmax_k alpha_k. Its KL to the uniform prior is closed form,

    KL(Cat(alpha) || U(K)) = sum_k alpha_k log(K alpha_k) = log K - H(alpha)  <=  log K,

so a unit carries at most log K nats: the cap of its capacity in JointVAE (Dupont 2018).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput, DiagonalGaussian
from aekit.nn.priors import Prior, StandardNormal
from aekit.objectives import Term
from aekit.parts import PartContext, register_part

TINY = 1e-20  # keeps log(-log u) finite at u = 0 or 1


def gumbel_noise(shape: torch.Size | tuple[int, ...], dtype: torch.dtype = torch.float32, device=None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel draws g = -log(-log u), u ~ U(0, 1)."""
    u = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    return -torch.log(-torch.log(u + TINY) + TINY)


def relaxed_one_hot(logits: torch.Tensor, temperature: float, gumbel: torch.Tensor | None = None) -> torch.Tensor:
    """A concrete sample softmax((log alpha + g) / tau) over the last axis ``[..., K]`` (log alpha: ``logits``,
    normalised or not); ``gumbel`` passes the noise g in (drawn when None)."""
    if gumbel is None:
        gumbel = gumbel_noise(logits.shape, logits.dtype, logits.device)
    return F.softmax((logits + gumbel) / temperature, dim=-1)


def categorical_kl_uniform(log_alpha: torch.Tensor) -> torch.Tensor:
    """KL(Cat(alpha) || U(K)) = sum_k alpha_k (log alpha_k + log K) over the last axis: ``[..., K] -> [...]``
    (``log_alpha`` normalised: log-probabilities)."""
    k = log_alpha.shape[-1]
    return (log_alpha.exp() * (log_alpha + math.log(k))).sum(-1)


def discrete_capacity(sizes: tuple[int, ...]) -> float:
    """The most the categorical units can carry, sum_i log K_i nats (each KL to its uniform prior is <= log K_i)."""
    return float(sum(math.log(k) for k in sizes))


class GaussianCategoricalPrior(Prior):
    """p(z, c) = N(z; 0, I) prod_i U(c_i; K_i) over the code ``[*L, D_z + sum_i K_i]``: the Gaussian units first,
    then each categorical unit as a one-hot block."""

    def __init__(self, latent_shape: tuple[int, ...], sizes: tuple[int, ...]) -> None:
        super().__init__(latent_shape)
        self.sizes = tuple(sizes)
        self.continuous = self.latent_dim - sum(self.sizes)
        self.gaussian = StandardNormal((*self.latent_shape[:-1], self.continuous))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z_cont; 0, I) - sum_i log K_i per position (a one-hot block has probability 1/K_i)."""
        positions = math.prod(self.latent_shape[:-1])
        return self.gaussian.log_prob(z[..., : self.continuous]) - positions * discrete_capacity(self.sizes)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        z = self.gaussian.sample(n, generator=generator, device=device)  # [n, *L, D_z]
        blocks = [F.one_hot(torch.randint(k, z.shape[:-1], generator=generator, device=device), k).to(z.dtype)
                  for k in self.sizes]  # each [n, *L, K_i]
        return torch.cat([z, *blocks], dim=-1)  # [n, *L, D_z + sum K_i]


@register_part("bottlenecks", "gaussian-concrete", "Gaussian units and Gumbel-softmax categorical units: relaxed "
               "samples in training, one-hot argmax at evaluation; KLs to N(0, I) and to the uniform")
class GaussianConcrete(Bottleneck):
    """The code z = [z_cont, c_1, ..., c_n] ``[S, B, *L, D]``: D_z = D - sum_i K_i Gaussian units (the ``gaussian``
    bottleneck, reparameterised) and n categorical units of K_i = ``discrete[i]`` categories, each a concrete sample
    at ``temperature`` tau in training and the one-hot of argmax alpha at evaluation (module docstring). Terms:
    ``kl``, the Gaussian units' KL to N(0, I), and ``kl_disc``, sum_i KL(Cat(alpha_i) || U(K_i)); params: ``mu``,
    ``logvar`` of the Gaussian units and ``log_alpha`` ``[B, *L, sum K_i]`` (each block normalised)."""

    stochastic = True
    terms: ClassVar[dict[str, Term]] = {"kl": Term(label="beta"), "kl_disc": Term()}

    def __init__(self, context: PartContext, prior: Prior | None = None, discrete: tuple[int, ...] = (10,),
                 temperature: float = 0.67) -> None:
        super().__init__(context)
        self.sizes = check_discrete(discrete, self.latent_dim, "bottleneck.discrete")
        require(math.isfinite(temperature) and temperature > 0, f"bottleneck.temperature={temperature}: the "
                "concrete relaxation needs a temperature > 0 (the paper: 0.67)")
        self.temperature = float(temperature)
        self.continuous = self.latent_dim - sum(self.sizes)
        gaussian_shape = (*self.latent_shape[:-1], self.continuous)
        self.gaussian = DiagonalGaussian(context.replace(latent_shape=gaussian_shape), StandardNormal(gaussian_shape))
        self.logits = nn.Linear(self.in_features, sum(self.sizes))
        self.prior = GaussianCategoricalPrior(self.latent_shape, self.sizes)

    def log_alpha(self, h: torch.Tensor) -> list[torch.Tensor]:
        """log alpha_i ``[B, *L, K_i]`` of each categorical unit from the features ``h [B, *L, F]``."""
        return [block.log_softmax(-1) for block in self.logits(h).split(self.sizes, dim=-1)]

    def categorical_codes(self, log_alpha: list[torch.Tensor], n_samples: int) -> torch.Tensor:
        """``[S, B, *L, sum K_i]``: concrete samples in training, the one-hot argmax (the same for every S) else."""
        if self.training:
            return torch.cat([relaxed_one_hot(a.expand(n_samples, *a.shape), self.temperature) for a in log_alpha], -1)
        return self.hard_codes(log_alpha).expand(n_samples, *log_alpha[0].shape[:-1], sum(self.sizes))

    def hard_codes(self, log_alpha: list[torch.Tensor]) -> torch.Tensor:
        """The one-hot of argmax_k alpha_k of each unit, ``[B, *L, sum K_i]``."""
        return torch.cat([F.one_hot(a.argmax(-1), a.shape[-1]).to(a.dtype) for a in log_alpha], dim=-1)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        continuous = self.gaussian(h, n_samples=n_samples, eps=eps)  # z_cont [S, B, *L, D_z]
        log_alpha = self.log_alpha(h)
        c = self.categorical_codes(log_alpha, continuous.z.shape[0])  # [S, B, *L, sum K_i]
        kl_disc = sum(categorical_kl_uniform(a) for a in log_alpha)  # [B, *L]
        params = {**continuous.params, "log_alpha": torch.cat(log_alpha, dim=-1)}
        return BottleneckOutput(
            z=torch.cat([continuous.z, c], dim=-1), mean=torch.cat([continuous.mean, self.hard_codes(log_alpha)], -1),
            params=params, terms={"kl": continuous.terms["kl"], "kl_disc": kl_disc.reshape(len(h), -1).sum(-1)},
            stats=continuous.stats)


def check_discrete(discrete: tuple[int, ...] | int, latent_dim: int, key: str = "discrete") -> tuple[int, ...]:
    """The categorical units' sizes as a tuple; a one-line ConfigError for a unit of fewer than 2 categories or
    for units that leave no Gaussian unit in a code of ``latent_dim``."""
    sizes = (discrete,) if isinstance(discrete, int) else tuple(discrete)
    require(len(sizes) >= 1 and all(int(k) == k and k >= 2 for k in sizes), f"{key}={list(sizes)}: each discrete "
            "latent needs at least 2 categories; give sizes such as 10 or 10,3")
    require(latent_dim > sum(sizes), f"latent_dim={latent_dim} holds the Gaussian units and the {sum(sizes)} "
            f"categories of {key}={list(sizes)}; give latent_dim > {sum(sizes)} (the Gaussian units are the rest)")
    return tuple(int(k) for k in sizes)
