"""Priors p(z): their own part, so that a learned prior (a mixture, VampPrior, a flow) can replace N(0, I).

A prior gives ``log_prob(z)`` summed over the latent dimensions, ``sample(n)``, and, where it is known in closed
form, the KL from a diagonal Gaussian posterior per latent dimension (``kl_from_gaussian``). A bottleneck uses
the closed form when the prior has one and a Monte Carlo estimate, ``E_q[log q(z|x) - log p(z)]``, otherwise.

A prior is built with its :class:`~aekit.parts.PartContext` (its ``latent_shape``); one that needs the built model
(a VampPrior encodes pseudo-inputs with the model's encoder) defines ``bind(model)``; one that depends on the
input or the condition sets ``conditional = True`` and takes the batch, ``log_prob(z, batch)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aekit.parts import PartContext, register_part

LOG_2PI = math.log(2 * math.pi)


class Prior(nn.Module):
    """p(z) over latents of shape ``latent_shape`` (``(D,)``, or ``(*L, D)`` for spatial latents), built from its
    context (or, by hand, from the latent shape itself). ``conditional``: ``log_prob`` takes the batch too."""

    conditional = False

    def __init__(self, context: PartContext | tuple[int, ...] | int) -> None:
        super().__init__()
        shape = context.latent_shape if isinstance(context, PartContext) else context
        self.latent_shape = (shape,) if isinstance(shape, int) else tuple(shape)

    @property
    def latent_dim(self) -> int:
        return self.latent_shape[-1]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the latent dimensions: ``[..., *latent_shape] -> [...]``."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``[n, *latent_shape]``."""
        raise NotImplementedError

    def kl_from_gaussian(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(N(mu, diag exp(logvar)) || p) per latent dimension ``[B, *latent_shape]``, or None where it has no
        closed form."""
        return None

    def _sum_latent(self, t: torch.Tensor) -> torch.Tensor:
        return t.flatten(start_dim=t.dim() - len(self.latent_shape)).sum(-1)


@register_part("priors", "standard-normal", "p(z) = N(0, I), with the closed-form KL from a Gaussian posterior")
class StandardNormal(Prior):
    """p(z) = N(0, I); KL(N(mu, sigma^2) || N(0, 1)) = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2) per dimension."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * self._sum_latent(z.pow(2) + LOG_2PI)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randn(n, *self.latent_shape, generator=generator, device=device)

    def kl_from_gaussian(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
