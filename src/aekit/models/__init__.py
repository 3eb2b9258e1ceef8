"""Built-in models; importing this package registers them."""

from aekit.models.ae import AE, AEConfig, DAEConfig
from aekit.models.base import Autoencoder, AutoencoderConfig, AutoencoderOutput
from aekit.models.vae import VAE, BetaVAEConfig, VAEConfig

__all__ = [
    "AE", "AEConfig", "Autoencoder", "AutoencoderConfig", "AutoencoderOutput", "BetaVAEConfig", "DAEConfig",
    "VAE", "VAEConfig",
]
