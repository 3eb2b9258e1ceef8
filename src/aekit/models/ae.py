"""Deterministic and denoising autoencoders.

AE (Hinton & Salakhutdinov 2006): z = f(x), x_hat = g(z), trained on -log p(x | g(f(x))) (MSE for a
Gaussian likelihood with unit variance, up to constants; BCE for a Bernoulli one).

DAE (Vincent et al. 2008): corrupt the input, x_tilde ~ C(x_tilde | x), and reconstruct the clean x:
minimise E[-log p(x | g(f(x_tilde)))].
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.config import require
from aekit.models.base import Autoencoder, AutoencoderConfig
from aekit.nn.corruptions import make_corruption
from aekit.parts import part_names
from aekit.registry import register_model


@dataclass(frozen=True)
class AEConfig(AutoencoderConfig):
    pass


@dataclass(frozen=True)
class DAEConfig(AutoencoderConfig):
    noise: str = "gaussian"
    noise_level: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.noise in part_names("corruptions"),
                f"noise={self.noise!r} is unknown; choose one of {', '.join(part_names('corruptions'))}")
        require(self.noise_level >= 0, f"noise_level={self.noise_level} must be >= 0")


@register_model("ae", config=AEConfig, description="Deterministic autoencoder (Hinton & Salakhutdinov 2006)")
@register_model(
    "dae", config=DAEConfig,
    description="Denoising autoencoder: corrupt, then reconstruct the clean input (Vincent et al. 2008)",
)
class AE(Autoencoder):
    def make_corruption(self):
        if isinstance(self.config, DAEConfig):
            return make_corruption(self.config.noise, self.config.noise_level, self.context)
        return None
