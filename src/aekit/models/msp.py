"""Matrix Subspace Projection (Li, Liu, Gao & Han 2020, "Latent Space Factorisation and Manipulation via Matrix
Subspace Projection").

An autoencoder z = E(x), x_hat = D(z) whose code holds its labelled attributes y in the subspace of a learnt
linear map M and nothing of them elsewhere (:mod:`aekit.nn.subspace`),

    L = E[-log p(x|z)] + alpha ||M z - y||^2 + beta ||N z||^2,   N: orthonormal rows spanning the null space of M,

and edits an attribute by replacing its part of [M z; N z]: z' = z + M^+ (y' - M z), so that M z' = y' and
N z' = N z, then decodes z' (``model.edit(x, attribute=i, value=v)``). y is read from the batch: one-hot labels,
or a factor dataset's factors scaled to [0, 1] (``auxiliary``). The encoder and decoder never see y. The code is
deterministic by default; ``bottleneck=gaussian`` makes the model variational (the KL joins the loss, the projection
reads the posterior mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from aekit.config import require, require_choice, require_weight
from aekit.data.batch import Batch
from aekit.errors import ConfigError
from aekit.models.auxiliary import AUXILIARY, auxiliary_of, fit_auxiliary_values
from aekit.models.base import Autoencoder, AutoencoderConfig, AutoencoderOutput, _numpy_in_numpy_out
from aekit.nn.subspace import SubspaceProjection
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class MSPConfig(AutoencoderConfig):
    """``attributes``: K, the width of y (set from the data: the number of classes or of factors);
    ``auxiliary``: ``labels`` or ``factors``; ``factor_levels``: each factor's number of levels (set from the data);
    ``alpha`` and ``beta``: the weights of ||M z - y||^2 and ||N z||^2 (shorthand for ``terms.msp_attr`` and
    ``terms.msp_null``)."""

    attributes: int = 0
    auxiliary: str = "labels"
    factor_levels: tuple[int, ...] = ()
    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.attributes >= 0, f"attributes={self.attributes} must be >= 0 (0: set from the data)")
        require_choice(self.auxiliary, AUXILIARY, "auxiliary")
        require_weight(self.alpha, "alpha")
        require_weight(self.beta, "beta")


@register_model("msp", config=MSPConfig,
                description="Matrix Subspace Projection: attributes y = M z in a learnt subspace, none in its "
                            "complement N z; edit z' = z + M^+ (y' - M z) (Li et al. 2020)")
class MSP(Autoencoder):
    def __init__(self, config: MSPConfig, *args: Any, **kwargs: Any) -> None:
        if config.attributes < 1:
            raise ConfigError("msp needs attributes >= 1: the width of y (set from labelled or factor data when "
                              "trained)")
        super().__init__(config, *args, **kwargs)
        d = math.prod(self.bottleneck.latent_shape)
        if config.attributes > d:
            raise ConfigError(f"attributes={config.attributes} do not fit a code of {d} coordinates; give "
                              f"latent_dim so that the code has at least {config.attributes}")
        self.projection = SubspaceProjection(d, config.attributes)

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        values, notes = super().fit_to_data(values, splits)
        return fit_auxiliary_values(values, splits, "attributes", "msp"), notes

    def own_terms(self) -> dict[str, Term]:
        """The reconstruction, ``msp_attr`` weighted alpha and ``msp_null`` beta."""
        c = self.config
        return {**super().own_terms(), "msp_attr": Term(weight=c.alpha), "msp_null": Term(weight=c.beta)}

    def attributes_of(self, batch: Batch) -> torch.Tensor:
        """y ``[B, K]`` of a batch: its labels one-hot, or its factors in [0, 1]."""
        c = self.config
        return auxiliary_of(batch, c.auxiliary, c.attributes, tuple(c.factor_levels), "msp")

    def forward(self, x: torch.Tensor | Batch, *args: Any, attributes: torch.Tensor | None = None,
                **kwargs: Any) -> AutoencoderOutput:
        """The autoencoder's output with the projection's terms (``msp_attr`` where y is known: from a batch, or
        ``attributes [B, K]``)."""
        if isinstance(x, Batch) and attributes is None:
            attributes = self.attributes_of(x)
        out = super().forward(x, *args, **kwargs)
        out.terms.update(self.projection(out.latent.mean.flatten(1), attributes))  # z [B, d]
        return out

    @_numpy_in_numpy_out
    @torch.no_grad()
    def predict_attributes(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """y_hat = M z ``[B, K]`` of inputs ``x``."""
        return self.projection.attributes(self.embed(x).flatten(1))

    @_numpy_in_numpy_out
    @torch.no_grad()
    def edit(self, x: torch.Tensor, attribute: int | Sequence[int], value: float | Sequence[float],
             condition: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z'] for z' = z + M^+ (y' - M z), y' = M z with ``attribute`` (an index or several) set to
        ``value``: the inputs with those attributes changed and the rest of the code kept."""
        index = [attribute] if isinstance(attribute, int) else list(attribute)
        k = self.config.attributes
        if not index or any(not 0 <= i < k for i in index):
            raise ConfigError(f"attribute={attribute}: msp has attributes 0..{k - 1}; give indices in that range")
        z = self.embed(x)  # [B, *L, D]
        y = self.projection.attributes(z.flatten(1))  # [B, K]
        y[:, index] = torch.as_tensor(value, dtype=y.dtype, device=y.device)
        edited = self.projection.edit(z.flatten(1), y).view(z.shape)  # [B, d] -> [B, *L, D]
        return self.likelihood.mean(self.decode(edited))
