"""VAEs scored by a perceptual reconstruction loss in place of a pixel likelihood (:mod:`aekit.nn.perceptual`).

- ``msssim-vae`` (Pythae's MSSSIM_VAE; Snell et al. 2017, "Learning to generate images with perceptual
  similarity metrics"): L = E_q[1 - MS-SSIM(x, Dec(z))] + beta KL(q(z|x) || p(z)), the VAE with
  ``likelihood=msssim`` (the same as ``aekit train vae likelihood=msssim``).
- ``dfc-vae`` (Hou, Shen, Sun & Qiu 2017, "Deep Feature Consistent Variational Autoencoder", eq. 7):
  L = sum_l alpha_l ||phi_l(x) - phi_l(Dec(z))||^2 + beta KL(q(z|x) || p(z)), phi a frozen network: an aekit
  model folder (``feature_network=runs/xyz``, its encoder) or a module passed in,
  ``build_model("dfc-vae", feature_network=module, feature_layers=[...])``; a model built with a module is
  loaded back with the same module passed again, ``aekit.load(path, feature_network=module)`` (its weights come
  from the saved model).

Both keep the VAE's parts, terms and objective; only the likelihood part changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from aekit.config import require, require_weight
from aekit.errors import ConfigError
from aekit.models.vae import VAE, VAEConfig
from aekit.nn import perceptual  # noqa: F401  (registers the msssim and feature likelihoods)
from aekit.nn.likelihoods import make_likelihood
from aekit.parts import PartContext
from aekit.registry import register_model


@dataclass(frozen=True)
class MSSSIMVAEConfig(VAEConfig):
    """The VAE's config with ``likelihood=msssim``; its settings (``likelihood.window_size``, ``likelihood.form``)
    go in ``options``."""

    likelihood: str = "msssim"


@register_model("msssim-vae", config=MSSSIMVAEConfig,
                description="VAE scored by 1 - MS-SSIM(x, x_hat) plus beta KL (Pythae's MSSSIM_VAE; Wang et al. 2003)")
class MSSSIMVAE(VAE):
    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits):
        """The data's shape; the likelihood stays msssim unless one is chosen."""
        return super().fit_to_data({"likelihood": "msssim", **values}, splits)


@dataclass(frozen=True)
class DFCVAEConfig(VAEConfig):
    """``feature_network``: an aekit model folder whose encoder is phi (empty: a module passed in);
    ``feature_layers``: names of phi's submodules whose activations are compared (none: phi's output);
    ``layer_weights``: alpha_l, one per layer (1 each by default); ``pixel_weight``: a squared pixel error's weight
    added to the feature loss (0 by default, as the paper)."""

    likelihood: str = "feature"
    feature_network: str = ""
    feature_layers: tuple[str, ...] = ()
    layer_weights: tuple[float, ...] = ()
    pixel_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_weight(self.pixel_weight, "pixel_weight")
        require(all(w >= 0 for w in self.layer_weights), f"layer_weights={self.layer_weights} must be >= 0")
        require(not self.layer_weights or len(self.layer_weights) == max(len(self.feature_layers), 1),
                f"layer_weights={self.layer_weights}: give one weight per feature layer {self.feature_layers}")


@register_model("dfc-vae", config=DFCVAEConfig,
                description="DFC-VAE: feature-consistent loss through a frozen network plus beta KL (Hou et al. 2017)")
class DFCVAE(VAE):
    def __init__(self, config: DFCVAEConfig, name: str = "dfc-vae", feature_network: nn.Module | None = None,
                 **parts: Any) -> None:
        if config.likelihood == "feature" and parts.get("likelihood") is None:
            parts["likelihood"] = self.feature_likelihood(config, name, feature_network)
        elif feature_network is not None:
            raise ConfigError(f"feature_network= is given but likelihood={config.likelihood!r}; use likelihood=feature")
        super().__init__(config, name, **parts)

    @staticmethod
    def feature_likelihood(config: DFCVAEConfig, name: str, network: nn.Module | None):
        """The ``feature`` likelihood with the config's settings over ``options["likelihood"]``, phi the module
        passed in or the config's ``feature_network`` folder."""
        settings = {**config.options.get("likelihood", {}), "feature_layers": list(config.feature_layers),
                    "layer_weights": list(config.layer_weights), "pixel_weight": config.pixel_weight}
        source = network if network is not None else config.feature_network
        if source == "":
            raise ConfigError("dfc-vae needs its frozen network: feature_network=<model folder>, or "
                              "build_model('dfc-vae', feature_network=<nn.Module>) (and aekit.load(path, "
                              "feature_network=<the same module>))")
        context = PartContext(data_shape=tuple(config.data_shape), latent_shape=(config.latent_dim,), model=name)
        return make_likelihood("feature", context, config.sigma, **{**settings, "feature_network": source})

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits):
        """The data's shape; the likelihood stays the feature loss unless one is chosen."""
        return super().fit_to_data({"likelihood": "feature", **values}, splits)
