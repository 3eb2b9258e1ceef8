"""Parts of the trial models that other processes must register too (``imports=trial_parts`` for DDP)."""

import math

import torch
from torch import nn

from aekit.nn.priors import Prior
from aekit.parts import ModelRef, PartContext, register_part


@register_part("priors", "trial-vamp", "VampPrior: a mixture of the posteriors of K learned pseudo-inputs")
class VampPrior(Prior):
    """Tomczak & Welling 2018: p(z) = (1/K) sum_k q(z | u_k), the u_k learned pseudo-inputs of the data's shape,
    encoded with the model's own encoder and posterior (bound after the model is built)."""

    def __init__(self, context: PartContext, components: int = 5) -> None:
        super().__init__(context)
        self.pseudo_inputs = nn.Parameter(torch.rand(components, *context.data_shape))  # u_k [K, *S]
        self.model = None

    def bind(self, model) -> None:
        self.model = ModelRef(model)

    def components(self) -> dict[str, torch.Tensor]:
        model = self.model()
        h = model.encoder(self.pseudo_inputs)  # [K, F]
        return model.bottleneck.posterior(h)  # mu, logvar [K, D]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        q = self.components()
        mu, logvar = q["mu"], q["logvar"]  # [K, D]
        z = z.unsqueeze(-2)  # [..., 1, D]
        log_n = -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)  # [..., K]
        return torch.logsumexp(log_n, -1) - math.log(mu.shape[0])

    def sample(self, n, generator=None, device=None):
        q = self.components()
        k = torch.randint(0, q["mu"].shape[0], (n,), generator=generator)
        eps = torch.randn(n, self.latent_dim, generator=generator)
        return (q["mu"][k] + torch.exp(0.5 * q["logvar"][k]) * eps.to(q["mu"].device)).detach()
