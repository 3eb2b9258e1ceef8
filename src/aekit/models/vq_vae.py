"""Autoencoders with quantised latents: the one :class:`~aekit.models.base.Autoencoder` with a quantising
bottleneck (:mod:`aekit.nn.quantize`), on a grid of codes by default (the ``conv-grid`` backbone; ``mlp`` or
``conv`` give one code vector per example, and tabular data takes ``mlp`` by itself):

    vq-vae    the nearest of K learnt entries, EMA updates, k-means start, restarts    van den Oord et al. 2017
    rvq-vae   residual VQ: a stack of codebooks, each on the residual                    Zeghidour et al. 2021
    fsq-ae    finite scalar quantisation: bounded, rounded coordinates                   Mentzer et al. 2023
    lfq-ae    lookup-free quantisation: signs, an entropy term                           Yu et al. 2023
    qlae      latent quantisation: a learnt scalar codebook per coordinate               Hsu et al. 2023

The config's shorthands (``codebook_size``, ``stages``, ``levels``, ``bits``) set the bottleneck's settings;
``bottleneck.KEY=VALUE`` sets any other (``bottleneck.gradient=rotation``, ``bottleneck.ema=false``) and wins
where both are set. Each is evaluated by the ``codebook`` suite beside reconstruction and representation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from aekit.config import require
from aekit.errors import DataError
from aekit.models.base import Autoencoder, AutoencoderConfig
from aekit.registry import register_model


@dataclass(frozen=True)
class QuantisedConfig(AutoencoderConfig):
    """A grid of codes from two stride-2 levels (28 x 28 -> 7 x 7) by default; ``latent_dim`` is the width D of
    each code vector the decoder reads."""

    backbone: str = "conv-grid"
    channels: tuple[int, ...] = (32, 64)
    likelihood: str = "gaussian"
    latent_dim: int = 16

    def __post_init__(self) -> None:
        if self.latent_dim == 0:  # the code itself: one coordinate per level or bit
            object.__setattr__(self, "latent_dim", self.code_width())
        super().__post_init__()

    def code_width(self) -> int:
        """The latent width that is the code itself, where ``latent_dim`` = 0 asks for it."""
        return 0


@dataclass(frozen=True)
class VQVAEConfig(QuantisedConfig):
    """``codebook_size`` K entries."""

    bottleneck: str = "vq"
    codebook_size: int = 512
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"codebook_size": ("bottleneck", "codebook_size")}


@dataclass(frozen=True)
class RVQVAEConfig(VQVAEConfig):
    """``stages`` codebooks of ``codebook_size`` entries each."""

    bottleneck: str = "rvq"
    codebook_size: int = 256
    stages: int = 4
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {**VQVAEConfig.shorthands, "stages": ("bottleneck", "stages")}


@dataclass(frozen=True)
class FSQAEConfig(QuantisedConfig):
    """``levels`` per coordinate (the default 8, 5, 5, 5 makes 1,000 codes, the paper's smallest); ``latent_dim``
    0: the code itself, one coordinate per level."""

    bottleneck: str = "fsq"
    levels: tuple[int, ...] = (8, 5, 5, 5)
    latent_dim: int = 0
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"levels": ("bottleneck", "levels")}

    def code_width(self) -> int:
        require(len(self.levels) >= 1, "levels=[] gives FSQ no coordinate; give one level count per coordinate")
        return len(self.levels)


@dataclass(frozen=True)
class LFQAEConfig(QuantisedConfig):
    """``bits`` per code (2^bits codes); ``latent_dim`` 0: the code itself, one coordinate per bit."""

    bottleneck: str = "lfq"
    bits: int = 10
    latent_dim: int = 0
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"bits": ("bottleneck", "bits")}

    def code_width(self) -> int:
        return max(self.bits, 1)


@dataclass(frozen=True)
class QLAEConfig(QuantisedConfig):
    """One code vector per example (the ``conv`` backbone), ``latent_dim`` coordinates of ``values`` learnt
    scalars each (the paper's 10; it takes twice as many coordinates as the data have factors)."""

    backbone: str = "conv"
    channels: tuple[int, ...] = (32, 64, 128)
    bottleneck: str = "latent-quantize"
    latent_dim: int = 10
    values: int = 10
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"values": ("bottleneck", "values")}


@register_model("vq-vae", config=VQVAEConfig, description="VQ-VAE: the nearest of K learnt codes, EMA codebook, "
                "k-means start, dead-code restarts (van den Oord et al. 2017)")
@register_model("rvq-vae", config=RVQVAEConfig, description="Residual VQ autoencoder: a stack of codebooks, each "
                "on what the ones before left (Zeghidour et al. 2021)")
@register_model("fsq-ae", config=FSQAEConfig, description="Finite scalar quantisation autoencoder: bounded, "
                "rounded coordinates, no codebook (Mentzer et al. 2023)")
@register_model("lfq-ae", config=LFQAEConfig, description="Lookup-free quantisation autoencoder: the signs of the "
                "coordinates, an entropy term (Yu et al. 2023)")
class QuantisedAutoencoder(Autoencoder):
    """encoder -> quantiser -> decoder, trained on the reconstruction and the quantiser's terms."""

    suites = ("reconstruction", "codebook", "representation")

    def sample(self, n: int, generator: torch.Generator | None = None, condition: Any = None) -> torch.Tensor:
        raise DataError(f"{self.name} has no prior over its codes to sample from; train one on this run: aekit train "
                        "code-prior --data DATA --out OUT init=RUN, then sample from OUT")

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        """Data that are not images (one vector per example) take the ``mlp`` backbone unless one is chosen."""
        values, notes = super().fit_to_data(values, splits)
        if "backbone" not in values and len(values["data_shape"]) != 3:
            values["backbone"] = "mlp"
            notes.append("backbone=mlp (the examples are not images; one code vector per example)")
        return values, notes


@register_model("qlae", config=QLAEConfig, description="Quantised latent autoencoder: a learnt scalar codebook per "
                "coordinate, high weight decay (Hsu et al. 2023)")
class QLAE(QuantisedAutoencoder):
    """Latent quantisation with the authors' strong weight decay (AdamW, 0.1) on every weight, which with the
    finite codebook per coordinate is what they find pushes the code towards disentanglement."""

    train_defaults: ClassVar[dict[str, Any]] = {"weight_decay": 0.1}
