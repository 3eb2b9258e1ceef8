"""A masked autoregressive flow prior (Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow for
Density Estimation").

p(z) is N(0, I) pushed through K autoregressive affine steps. Each step generates its output coordinate by
coordinate from the ones before it,

    z_i = u_i exp(alpha_i) + mu_i,   (mu_i, alpha_i) = MADE(z_{<i}),   u ~ N(0, I),

so its inverse is one pass of the MADE (Germain et al. 2015), u_i = (z_i - mu_i) exp(-alpha_i), with the triangular
Jacobian |det du/dz| = exp(-sum_i alpha_i). With z = f(u) = f_K o ... o f_1(u), the change of variables gives

    log p(z) = log N(f^{-1}(z); 0, I) - sum_{k=1..K} sum_i alpha_i^(k),

exact and parallel over the coordinates, while a sample takes D passes per step (z_i needs z_{<i}). The order of
the coordinates is reversed between steps, as in :mod:`aekit.nn.flows`, whose MADE it reuses (without a context).
Every step starts with alpha's bias at 0. KL(q(z|x) || p) has no closed form: the bottleneck takes the Monte Carlo
estimate. On a grid of latents ``(*L, D)`` one flow over the last axis serves every position.
"""

from __future__ import annotations

import torch
from torch import nn

from aekit.config import require, require_choice
from aekit.nn.backbones import ACTIVATIONS
from aekit.nn.flows import MADE
from aekit.nn.priors import LOG_2PI, Prior
from aekit.parts import PartContext, register_part


@register_part("priors", "maf", "a masked autoregressive flow on N(0, I): K MADE steps, exact log p(z) in one pass "
               "(Papamakarios et al. 2017); Monte Carlo KL")
class MAFPrior(Prior):
    """p(z) = N(f^{-1}(z); 0, I) |det df^{-1}/dz| (module docstring). ``length``: K, the number of MADE steps;
    ``hidden``: each MADE's hidden widths; ``activation``: their nonlinearity."""

    def __init__(self, context: PartContext, length: int = 4, hidden: tuple[int, ...] = (64,),
                 activation: str = "elu") -> None:
        super().__init__(context)
        hidden = tuple(int(w) for w in hidden)
        require(int(length) == length and length >= 1, f"prior.length={length}: a flow needs at least one step; "
                "give a whole number >= 1")
        require(all(w >= 1 for w in hidden), f"prior.hidden={list(hidden)} must hold positive widths (the MADE's "
                "hidden layers)")
        require_choice(activation, tuple(ACTIVATIONS), "prior.activation")
        order = torch.arange(1, self.latent_dim + 1)
        self.steps = nn.ModuleList(MADE(order.flip(0) if k % 2 else order, 0, hidden, activation, s_bias=0.0)
                                   for k in range(int(length)))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u = f^{-1}(z) ``[..., D]`` and -sum_k alpha_i^(k) per coordinate ``[..., D]``, whose sum over i is
        log |det df^{-1}/dz|."""
        log_det = torch.zeros_like(z)
        for made in reversed(self.steps):
            mu, alpha = made(z)  # [..., D] each, from the coordinates before each i
            z = (z - mu) * torch.exp(-alpha)
            log_det = log_det - alpha
        return z, log_det

    def forward_flow(self, u: torch.Tensor) -> torch.Tensor:
        """z = f(u) ``[..., D]``: per step, D passes of its MADE, the i-th fixing z_i from the z_{<i} before it."""
        for made in self.steps:
            z = torch.zeros_like(u)
            for _ in range(self.latent_dim):
                mu, alpha = made(z)
                z = u * torch.exp(alpha) + mu
            u = z
        return u

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u, log_det = self.inverse(z)  # [..., *L, D] each
        return self._sum_latent(-0.5 * (u.pow(2) + LOG_2PI) + log_det)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``[n, *latent_shape]``: u ~ N(0, I) (on the CPU with a ``generator``), then z = f(u)."""
        weight = self.steps[0].out.weight
        u = torch.randn(n, *self.latent_shape, generator=generator, device=None if generator else weight.device,
                        dtype=weight.dtype)
        z = self.forward_flow(u.to(weight.device))
        return z.to(device if device is not None else z.device)
