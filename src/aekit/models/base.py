"""The composed autoencoder: ``[corruption ->] encoder -> bottleneck -> decoder``, scored by a likelihood.

The class holds only the glue; variants change a part (bottleneck, corruption) or the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aekit.config import require
from aekit.errors import DataError
from aekit.nn.backbones import ACTIVATIONS, BACKBONES, make_backbone
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.nn.likelihoods import LIKELIHOODS, Likelihood, make_likelihood


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture shared by the whole family. ``data_shape`` is one example's shape: ``(C, H, W)`` or ``(D,)``."""

    data_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16
    backbone: str = "mlp"
    hidden: tuple[int, ...] = (512, 256)
    channels: tuple[int, ...] = (32, 64, 128)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    sigma: float = 1.0

    def __post_init__(self) -> None:
        require(len(self.data_shape) >= 1 and all(s > 0 for s in self.data_shape),
                f"data_shape={self.data_shape} must hold positive sizes, e.g. (1, 28, 28)")
        require(self.latent_dim > 0, f"latent_dim={self.latent_dim} must be a positive integer")
        require(self.backbone in BACKBONES,
                f"backbone={self.backbone!r} is unknown; choose one of {', '.join(BACKBONES)}")
        require(self.likelihood in LIKELIHOODS,
                f"likelihood={self.likelihood!r} is unknown; choose one of {', '.join(LIKELIHOODS)}")
        require(self.activation in ACTIVATIONS,
                f"activation={self.activation!r} is unknown; choose one of {', '.join(ACTIVATIONS)}")
        require(all(h > 0 for h in self.hidden) and all(c > 0 for c in self.channels),
                "hidden and channels must hold positive widths")
        require(self.sigma > 0, f"sigma={self.sigma} must be positive")


@dataclass
class AutoencoderOutput:
    """x_params: decoder output ``[S, B, *P]`` for S latent samples; latent: the bottleneck's output;
    terms: per-example loss terms ``[B]`` in nats (``recon`` = -log p(x|z) averaged over the S samples,
    plus the bottleneck's terms such as ``kl``); log_px_z: ``[S, B]`` for bounds that need each sample."""

    x_params: torch.Tensor
    latent: BottleneckOutput
    terms: dict[str, torch.Tensor]
    log_px_z: torch.Tensor


class Autoencoder(nn.Module):
    """encoder -> bottleneck -> decoder with likelihood p(x|z); subclasses choose the bottleneck and objective."""

    config_class = AutoencoderConfig

    def __init__(
        self,
        config: AutoencoderConfig,
        name: str = "ae",
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        bottleneck: Bottleneck | None = None,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__()
        self.config, self.name = config, name
        shape = tuple(config.data_shape)
        self.likelihood = likelihood or make_likelihood(config.likelihood, shape, config.sigma)
        default_encoder, default_decoder = (None, None)
        if encoder is None or decoder is None:
            default_encoder, default_decoder = make_backbone(
                config.backbone, shape, config.latent_dim, config.hidden, config.channels, config.activation,
                self.likelihood.param_multiplier,
            )
        self.encoder = encoder or default_encoder
        self.decoder = decoder or default_decoder
        features = getattr(self.encoder, "out_features", None)
        if bottleneck is None and features is None:
            raise DataError("a user encoder must set `out_features` (its output width) or come with a bottleneck")
        self.bottleneck = bottleneck or self.make_bottleneck(features, config.latent_dim)
        self.corruption = self.make_corruption()

    # The parts a variant chooses.
    def make_bottleneck(self, in_features: int, latent_dim: int) -> Bottleneck:
        raise NotImplementedError

    def make_corruption(self) -> nn.Module | None:
        return None

    def objective(self):
        """The default training objective for this model's config."""
        from aekit.objectives import Reconstruction

        return Reconstruction()

    # The forward pass.
    def check_input(self, x: torch.Tensor) -> None:
        expected = tuple(self.config.data_shape)
        if tuple(x.shape[1:]) != expected:
            raise DataError(
                f"input of shape {tuple(x.shape[1:])} per example does not fit {self.name}'s data_shape {expected}; "
                "train a model for this data or reshape the inputs"
            )
        if not x.is_floating_point():
            raise DataError(f"input dtype {x.dtype} is not floating point; scale the data to float32 in [0, 1]")

    def encode(self, x: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None) -> BottleneckOutput:
        self.check_input(x)
        return self.bottleneck(self.encoder(x), n_samples=n_samples, eps=eps)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters for latents ``z [..., D] -> [..., *P]``."""
        lead = z.shape[:-1]
        params = self.decoder(z.reshape(-1, z.shape[-1]))  # [N, *P]
        return params.view(*lead, *params.shape[1:])

    def forward(
        self,
        x: torch.Tensor,
        n_samples: int = 1,
        eps: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
    ) -> AutoencoderOutput:
        """Score ``x [B, *S]``: the target is x itself unless given; a corruption (if any) applies in training
        mode or whenever ``noise`` is passed."""
        self.check_input(x)
        target = x if target is None else target
        if self.corruption is not None and (self.training or noise is not None):
            x = self.corruption(x, noise)
        latent = self.encode(x, n_samples=n_samples, eps=eps)
        x_params = self.decode(latent.z)  # [S, B, *P]
        log_px_z = -self.likelihood.nll(x_params, target)  # [S, B]
        terms = {"recon": -log_px_z.mean(0), **latent.terms}
        return AutoencoderOutput(x_params=x_params, latent=latent, terms=terms, log_px_z=log_px_z)

    # What a user calls.
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Point embedding ``[B, D]``: the posterior mean, or the code of a deterministic bottleneck."""
        return self.encode(x).mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z = embed(x)], in the data's shape."""
        return self.likelihood.mean(self.decode(self.embed(x)))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Means of p(x|z) for z drawn from the prior."""
        prior = getattr(self.bottleneck, "prior", None)
        if prior is None:
            raise DataError(f"{self.name} has no prior to sample from; use a variational model such as vae")
        device = next(self.parameters()).device
        z = prior.sample(n, generator=generator).to(device)
        return self.likelihood.mean(self.decode(z))

    @property
    def has_prior(self) -> bool:
        return getattr(self.bottleneck, "prior", None) is not None
