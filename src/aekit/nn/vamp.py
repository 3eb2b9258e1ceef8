"""The VampPrior, a variational mixture of posteriors (Tomczak & Welling 2018, "VAE with a VampPrior").

The prior that maximises the ELBO is the aggregated posterior (1/N) sum_n q(z|x_n); the VampPrior approximates it
with K learned pseudo-inputs u_k of the data's shape, encoded by the model's own encoder and posterior:

    p_lambda(z) = (1/K) sum_{k=1..K} q_phi(z | u_k),

so that the prior and the posterior share the encoder phi and p is a mixture of K diagonal Gaussians
N(mu_phi(u_k), diag sigma_phi^2(u_k)). KL(q(z|x) || p_lambda) has no closed form: the bottleneck takes the Monte
Carlo estimate E_q[log q(z|x) - log p_lambda(z)] over its samples, and the gradient of log p_lambda reaches both the
pseudo-inputs and the encoder. The paper's experiments use K = 500.

The pseudo-inputs are u_k = hardtanh(w_k) = min(max(w_k, 0), 1), clamped to the range [0, 1] of images as in the
paper's code (``squash=true``; ``squash=false`` leaves u_k = w_k free, for data outside [0, 1]). They start
(``init``) at random, w_k ~ U(0, 1) (N(0, I) unsquashed), or from the data (``init=data``): the first K examples of
the training sample a fresh run starts from (:func:`aekit.parts.init_from_data`), pulled into [0.01, 0.99] when
squashed, so that the clamp passes their gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice
from aekit.errors import DataError
from aekit.nn.bottlenecks import DiagonalGaussian
from aekit.nn.priors import Prior, diagonal_mixture_log_prob, draw_from_mixture
from aekit.parts import ModelRef, PartContext, register_part

VAMP_INITS = ("random", "data")
DATA_MARGIN = 0.01  # how far inside [0, 1] squashed pseudo-inputs started from the data lie


@register_part("priors", "vamp", "VampPrior: (1/K) sum_k q(z|u_k) over K learned pseudo-inputs encoded by the "
               "model's encoder (Tomczak & Welling 2018); Monte Carlo KL")
class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z|u_k) (module docstring). ``components``: K, the number of pseudo-inputs;
    ``init``: random or data; ``squash``: clamp the pseudo-inputs to [0, 1]. Needs a model whose posterior is a
    diagonal Gaussian (``bottleneck=gaussian``) and no condition; the model is bound once built."""

    def __init__(self, context: PartContext, components: int = 500, init: str = "random",
                 squash: bool = True) -> None:
        super().__init__(context)
        require(int(components) == components and components >= 1, f"prior.components={components}: the VampPrior "
                "needs at least one pseudo-input; give a whole number >= 1 (the paper uses 500)")
        require_choice(init, VAMP_INITS, "prior.init")
        require(isinstance(context, PartContext) and len(context.data_shape) > 0, "prior=vamp needs the data's "
                "shape for its pseudo-inputs; build it with the model (prior='vamp')")
        require(context.condition_dim == 0, f"prior=vamp encodes its pseudo-inputs without a condition, but the "
                f"model is conditional (condition_dim={context.condition_dim}); use it with an unconditional model")
        self.init, self.squash = init, bool(squash)
        shape = (int(components), *context.data_shape)  # w_k [K, *S]
        self.pseudo_weights = nn.Parameter(torch.rand(shape) if self.squash else torch.randn(shape))
        self.model = None

    def bind(self, model) -> None:
        bottleneck = getattr(model, "bottleneck", None)
        require(isinstance(bottleneck, DiagonalGaussian), f"prior=vamp mixes the Gaussian posteriors q(z|u_k) of "
                f"its pseudo-inputs, but {model.name}'s bottleneck is {type(bottleneck).__name__}; use "
                "bottleneck=gaussian")
        self.model = ModelRef(model)

    @property
    def components(self) -> int:
        return len(self.pseudo_weights)

    def pseudo_inputs(self) -> torch.Tensor:
        """u_k ``[K, *S]``: hardtanh(w_k) into [0, 1] when squashed, w_k otherwise."""
        return F.hardtanh(self.pseudo_weights, 0.0, 1.0) if self.squash else self.pseudo_weights

    def posteriors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """mu_phi(u_k) and log sigma_phi^2(u_k) of the pseudo-inputs' posteriors, flattened: ``[K, d]`` each."""
        model = self.model()
        q = model.bottleneck.posterior(model.features(self.pseudo_inputs()))  # mu, logvar [K, *L, D]
        return q["mu"].flatten(1), q["logvar"].flatten(1)  # [K, *L, D] -> [K, d]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log (1/K) sum_k q(z|u_k): ``[..., *latent_shape] -> [...]``."""
        mu, logvar = self.posteriors()
        flat = z.flatten(start_dim=z.dim() - len(self.latent_shape))  # [..., d]
        log_weights = torch.full((self.components,), -math.log(self.components), device=z.device, dtype=z.dtype)
        return diagonal_mixture_log_prob(flat, log_weights, mu, logvar)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``[n, *latent_shape]``: a pseudo-input k uniformly, then z ~ q(z|u_k)."""
        mu, logvar = self.posteriors()
        uniform = torch.ones(self.components, device=mu.device, dtype=mu.dtype)
        z = draw_from_mixture(uniform, mu, torch.exp(0.5 * logvar), n, generator)  # [n, d]
        return z.view(n, *self.latent_shape).to(device if device is not None else z.device)

    def init_from_data(self, batch) -> None:
        """With ``init=data``, w_k = x_k for the first K examples of ``batch`` (moved into [0.01, 0.99] when
        squashed); a fresh run calls it once, before its first step."""
        if self.init != "data":
            return
        x = batch.inputs
        if len(x) < self.components:
            raise DataError(f"prior.init=data starts {self.components} pseudo-inputs from as many training examples, "
                            f"but the sample holds {len(x)}; lower prior.components or use prior.init=random")
        x = x[: self.components].to(self.pseudo_weights)
        if self.squash:
            low, high = x.min().item(), x.max().item()
            if low < 0 or high > 1:
                raise DataError(f"prior.squash=true clamps the pseudo-inputs to [0, 1], but the data lie in "
                                f"[{low:.3g}, {high:.3g}]; set prior.squash=false or scale the data to [0, 1]")
            x = x.clamp(DATA_MARGIN, 1.0 - DATA_MARGIN)
        self.pseudo_weights.copy_(x)
