"""A conditionally factorial Gaussian prior p(z|u) = prod_d N(z_d; mu_d(u), sigma_d^2(u)), the prior of iVAE
(Khemakhem, Kingma, Monti & Hyvarinen 2020): an exponential family with sufficient statistics
T(z) = (z, z^2) whose natural parameters are a function lambda(u) of an observed auxiliary variable u, here the mean
and log-variance given by a small MLP of u. u is the batch's condition (``batch.condition``, ``[B, U]``).

The KL from a diagonal Gaussian posterior is closed form per coordinate (:func:`~aekit.nn.priors.gaussian_kl`),

    KL(N(m, s^2) || N(mu(u), sigma^2(u))) = 1/2 (log sigma^2 - log s^2 + (s^2 + (m - mu)^2) / sigma^2 - 1).

With ``auxiliary_vae``, the prior is also the encoder r(z|u) of a second VAE, over u, the Identifiable Double VAE's
conditional prior (Mita, Filippone & Michiardi 2021): a decoder p(u|z) and the prior N(0, I) give it the ELBO

    E_r(z|u)[log p(u|z)] - KL(r(z|u) || N(0, I)),

whose terms (:meth:`ConditionalGaussian.auxiliary_terms`: ``u_recon``, ``u_kl``) the model adds to its own, so that
p(z|u) = r(z|u) is a sufficient and compact representation of u rather than any function of it.
"""

from __future__ import annotations

import torch
from torch import nn

from aekit.config import require
from aekit.errors import DataError
from aekit.nn.priors import LOG_2PI, Prior, gaussian_kl
from aekit.parts import PartContext, register_part


@register_part("priors", "conditional-gaussian", "p(z|u) = N(mu(u), diag sigma^2(u)), an MLP of the auxiliary "
               "variable u (the condition): iVAE's conditionally factorial prior")
class ConditionalGaussian(Prior):
    """p(z|u) over ``latent_shape`` ``(D,)`` (or ``(*L, D)``, the same prior at each position) for u ``[B, U]``,
    U = ``context.condition_dim``; ``hidden``: the MLP's width (one hidden layer, leaky ReLU of slope 0.1);
    ``learn_mean``: False fixes mu(u) = 0, a prior whose variances alone depend on u."""

    conditional = True

    def __init__(self, context: PartContext, hidden: int = 50, learn_mean: bool = True,
                 auxiliary_vae: bool = False) -> None:
        super().__init__(context)
        u_dim = context.condition_dim
        require(u_dim >= 1, "the conditional-gaussian prior needs an auxiliary variable u (condition_dim >= 1); use "
                "it in a conditional model such as ivae")
        require(hidden >= 1, f"prior.hidden={hidden} must be >= 1")
        d = self.latent_dim
        self.learn_mean = bool(learn_mean)
        self.net = nn.Sequential(nn.Linear(u_dim, hidden), nn.LeakyReLU(0.1),
                                 nn.Linear(hidden, 2 * d if self.learn_mean else d))
        self.auxiliary_vae = bool(auxiliary_vae)
        if self.auxiliary_vae:  # p(u|z), the second VAE's decoder
            self.u_decoder = nn.Sequential(nn.Linear(d, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, u_dim))

    def params(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu(u), log sigma^2(u) ``[B, 1.., D]``, broadcasting over a grid of positions."""
        out = self.net(u.to(self.net[0].weight.dtype))  # [B, 2D] or [B, D]
        mu, logvar = out.chunk(2, dim=-1) if self.learn_mean else (torch.zeros_like(out), out)
        grid = [1] * (len(self.latent_shape) - 1)
        return mu.view(len(u), *grid, -1), logvar.view(len(u), *grid, -1)

    def auxiliary_terms(self, u: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The negative ELBO of u ``[B, U]`` under the second VAE, per example ``[B]``: ``u_recon`` = -log p(u|z) for
        one reparameterised z ~ r(z|u) (``eps`` passes its noise in), a Gaussian of unit variance around the
        decoder's output, and ``u_kl`` = KL(r(z|u) || N(0, I)) in closed form."""
        mu, logvar = (t.flatten(1) for t in self.params(u))  # [B, D] (one position: r(z|u) is the same at each)
        if eps is None:
            eps = torch.randn_like(mu)
        u_hat = self.u_decoder(mu + torch.exp(0.5 * logvar) * eps)  # [B, U]
        recon = 0.5 * ((u.to(u_hat.dtype) - u_hat).pow(2) + LOG_2PI).sum(-1)
        return {"u_recon": recon, "u_kl": gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(mu)).sum(-1)}

    def condition(self, batch) -> torch.Tensor:
        u = getattr(batch, "condition", None)
        if u is None:
            raise DataError("the conditional-gaussian prior needs the auxiliary variable u (the batch's condition)")
        return u

    def log_prob(self, z: torch.Tensor, batch=None) -> torch.Tensor:
        """log p(z|u) ``[S, B]`` for z ``[S, B, *L, D]``."""
        mu, logvar = self.params(self.condition(batch))
        return self._sum_latent(-0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI))

    def kl_from_gaussian(self, mu: torch.Tensor, logvar: torch.Tensor, batch=None) -> torch.Tensor | None:
        """Closed form per coordinate ``[B, *L, D]`` given the batch's u; None without a batch (Monte Carlo)."""
        if batch is None:
            return None
        mu_p, logvar_p = self.params(self.condition(batch))
        return gaussian_kl(mu, logvar, mu_p, logvar_p)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None,
               condition: torch.Tensor | None = None) -> torch.Tensor:
        """``[n, *latent_shape]`` from p(z|u) for ``condition`` u ``[n, U]``."""
        if condition is None:
            raise DataError("sampling the conditional-gaussian prior needs u; pass condition= (a label or a vector)")
        mu, logvar = self.params(condition.to(self.net[0].weight.device))
        eps = torch.randn(n, *self.latent_shape, generator=generator, device=generator.device if generator else None)
        return mu + torch.exp(0.5 * logvar) * eps.to(mu.device, mu.dtype)
