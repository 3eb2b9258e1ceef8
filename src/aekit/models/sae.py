"""Sparse autoencoders and transcoders: a dictionary of atoms and a sparse code over it.

A sparse autoencoder (SAE) writes an activation x in R^X as a sparse non-negative combination of D > X learned
atoms (the columns of W_dec), x_hat = W_dec z + b_dec, with the code z = sigma(W_enc (x - b_dec) + b_enc), trained
on ||x - x_hat||^2 (here the Gaussian likelihood's ||x - x_hat||^2 / 2, up to a constant) plus, for some codes, a
sparsity penalty (Bricken et al. 2023; Cunningham et al. 2023). A transcoder reconstructs a layer's output from
its input instead (Dunefsky et al. 2024): the same parts, trained on batches that carry a ``target``, without the
pre-encoder bias. Each model here is the one :class:`~aekit.models.base.Autoencoder` with the ``dictionary``
backbone and one sparse bottleneck (:mod:`aekit.nn.sparse`, :mod:`aekit.nn.sparse_penalised`):

    topk-sae        ReLU(TopK_k(.)), AuxK on dead latents             Gao et al. 2024
    batchtopk-sae   the k * B largest of the batch; a threshold        Bussmann et al. 2024
    matryoshka-sae  BatchTopK, nested prefixes each reconstructing    Bussmann et al. 2025
    gradient-sae    TopK chosen with a downstream gradient            Olmo et al. 2024
    relu-sae        ReLU and the decoder-norm-weighted L1             Bricken et al. 2023; Conerly et al. 2024
    gated-sae       a gate and a magnitude path                       Rajamanoharan et al. 2024a
    jumprelu-sae    a learned threshold, L0 by pseudo-derivatives     Rajamanoharan et al. 2024b

The config's shorthands (``k``, ``sparsity_coefficient``, ``transcoder``, ...) set the parts' options and the
``sparsity`` term's weight; ``bottleneck.KEY=VALUE`` and ``terms.NAME=...`` win where both are set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from aekit.config import require
from aekit.data.sample import sample_batch
from aekit.errors import ConfigError
from aekit.models.base import Autoencoder, AutoencoderConfig
from aekit.registry import register_model


@dataclass(frozen=True)
class SAEConfig(AutoencoderConfig):
    """``latent_dim`` D, the dictionary's size; 0: ``expansion`` times the input's size. ``transcoder``: the
    batches carry the target to reconstruct (a layer's output), so the input is not centred on b_dec.
    ``dead_tokens``: a latent that has not fired in that many training tokens is dead."""

    backbone: str = "dictionary"
    likelihood: str = "gaussian"
    latent_dim: int = 0
    expansion: int = 8
    transcoder: bool = False
    dead_tokens: int = 10_000_000
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"dead_tokens": ("bottleneck", "dead_tokens")}

    def __post_init__(self) -> None:
        require(self.expansion >= 1, f"expansion={self.expansion} must be a whole number >= 1")
        if self.latent_dim == 0:
            object.__setattr__(self, "latent_dim", self.expansion * math.prod(self.data_shape))
        if self.backbone == "dictionary":
            options: dict[str, dict[str, Any]] = {kind: dict(values) for kind, values in self.options.items()}
            options.setdefault("backbone", {}).setdefault("pre_bias", not self.transcoder)
            object.__setattr__(self, "options", options)
        super().__post_init__()


@dataclass(frozen=True)
class TopKSAEConfig(SAEConfig):
    """``k``: the active latents of each example; ``aux_k``: AuxK's latents (0: no AuxK)."""

    bottleneck: str = "topk"
    k: int = 32
    aux_k: int = 512
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {
        **SAEConfig.shorthands, "k": ("bottleneck", "k"), "aux_k": ("bottleneck", "aux_k")}


@dataclass(frozen=True)
class BatchTopKSAEConfig(TopKSAEConfig):
    bottleneck: str = "batchtopk"


@dataclass(frozen=True)
class MatryoshkaSAEConfig(TopKSAEConfig):
    """``groups``: the nested prefixes D / 2^(groups - 1), ..., D / 2, D."""

    bottleneck: str = "matryoshka"
    groups: int = 5
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {**TopKSAEConfig.shorthands, "groups": ("bottleneck", "groups")}


@dataclass(frozen=True)
class GradientSAEConfig(TopKSAEConfig):
    """``beta``: how much a latent's effect on the downstream loss weighs in choosing it."""

    bottleneck: str = "gradient-topk"
    beta: float = 1.0
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {**TopKSAEConfig.shorthands, "beta": ("bottleneck", "beta")}


@dataclass(frozen=True)
class PenalisedSAEConfig(SAEConfig):
    """``sparsity_coefficient``: lambda, the ``sparsity`` term's weight (``terms.sparsity``), for data of unit mean
    squared norm (:mod:`aekit.nn.sparse_penalised`)."""

    bottleneck: str = "relu-l1"
    sparsity_coefficient: float = 0.3

    def __post_init__(self) -> None:
        require(self.sparsity_coefficient >= 0, f"sparsity_coefficient={self.sparsity_coefficient} must be >= 0")
        if "sparsity" not in self.terms:
            object.__setattr__(self, "terms", {**self.terms, "sparsity": self.sparsity_coefficient})
        super().__post_init__()


@dataclass(frozen=True)
class GatedSAEConfig(PenalisedSAEConfig):
    bottleneck: str = "gated"


@dataclass(frozen=True)
class JumpReLUSAEConfig(PenalisedSAEConfig):
    """``threshold`` and ``bandwidth``: the starting threshold and the pseudo-derivative's kernel width, in units of
    the data's norm (the paper's 0.001 barely moves in a few thousand steps: ``benchmarks/RESULTS.md`` 14c)."""

    bottleneck: str = "jumprelu"
    threshold: float = 0.03
    bandwidth: float = 0.03
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {
        **SAEConfig.shorthands, "threshold": ("bottleneck", "threshold"), "bandwidth": ("bottleneck", "bandwidth")}


MODELS = {
    "topk-sae": (TopKSAEConfig, "TopK sparse autoencoder with AuxK (Gao et al. 2024)"),
    "batchtopk-sae": (BatchTopKSAEConfig, "BatchTopK sparse autoencoder (Bussmann et al. 2024)"),
    "matryoshka-sae": (MatryoshkaSAEConfig, "Matryoshka sparse autoencoder: nested dictionaries (Bussmann et al. "
                       "2025)"),
    "gradient-sae": (GradientSAEConfig, "g-SAE: TopK chosen with a downstream gradient (Olmo et al. 2024)"),
    "relu-sae": (PenalisedSAEConfig, "ReLU sparse autoencoder with the decoder-norm-weighted L1 (Bricken et al. "
                 "2023)"),
    "gated-sae": (GatedSAEConfig, "Gated sparse autoencoder (Rajamanoharan et al. 2024)"),
    "jumprelu-sae": (JumpReLUSAEConfig, "JumpReLU sparse autoencoder (Rajamanoharan et al. 2024)"),
}


class SAE(Autoencoder):
    """The one autoencoder with a sparse bottleneck over a dictionary (module docstring)."""

    suites = ("reconstruction", "sparsity", "representation")

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        """The data's shape; the likelihood stays the squared error's (Gaussian) unless one is chosen. A
        transcoder needs data whose batches carry a target."""
        if values.get("transcoder") and sample_batch(splits.train, 1).target is None:
            raise ConfigError("transcoder=true reconstructs a target, and this data has none; write an activation "
                              "store with --hook both (a layer's input and output), or drop transcoder")
        return super().fit_to_data({"likelihood": "gaussian", **values}, splits)


for _name, (_config, _description) in MODELS.items():
    register_model(_name, config=_config, description=_description)(SAE)
