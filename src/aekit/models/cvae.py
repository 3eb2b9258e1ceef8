"""Conditional variational autoencoder (Sohn, Lee & Yan 2015).

Encoder and decoder both see a condition c (a one-hot label, or any conditioning vector):

    log p(x | c) >= E_q(z|x,c)[log p(x | z, c)] - KL(q(z | x, c) || p(z)),

with q(z|x,c) = N(mu(x, c), diag sigma^2(x, c)) and the prior p(z) = N(0, I) (Sohn et al.'s "CVAE" with a
condition-free prior). c is concatenated to the encoder's features and to the decoder's input, so any encoder
and decoder backbone serves. Sampling a class: ``model.sample(n, condition=3)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from aekit.config import require
from aekit.data.batch import Batch
from aekit.errors import ConfigError, DataError
from aekit.models.vae import VAE, VAEConfig
from aekit.registry import register_model

CONDITIONS = ("labels", "vector")


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    """``condition``: ``labels`` (one-hot class ids of the data; ``condition_dim`` = number of classes, set from
    the data) or ``vector`` (the batch's ``condition`` of width ``condition_dim``)."""

    condition: str = "labels"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.condition in CONDITIONS,
                f"condition={self.condition!r} is unknown; choose one of {', '.join(CONDITIONS)}")


@register_model("cvae", config=CVAEConfig,
                description="Conditional VAE: q(z|x,c), p(x|z,c) for labels or vectors c (Sohn et al. 2015)")
class CVAE(VAE):
    def __init__(self, config: CVAEConfig, *args: Any, **kwargs: Any) -> None:
        if config.condition_dim < 1:
            raise ConfigError("cvae needs condition_dim >= 1: the number of classes (set from labelled data when "
                              "trained) or the width of the condition vector")
        super().__init__(config, *args, **kwargs)

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        values, notes = super().fit_to_data(values, splits)
        if values.get("condition", "labels") == "labels" and not values.get("condition_dim"):
            y = splits.train.labels(None)
            if y is None:
                raise DataError(f"{splits.train.name}: cvae with condition=labels needs labelled data; use data with "
                                "labels or condition=vector")
            classes = splits.train.classes
            values["condition_dim"] = len(classes) if classes else int(y.max()) + 1
        return values, notes

    def condition_of(self, batch: Batch) -> torch.Tensor | None:
        if self.config.condition == "vector":
            return batch.condition
        if batch.labels is None:
            raise DataError("cvae with condition=labels needs a batch with labels")
        return self.one_hot(batch.labels)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        c_dim = self.config.condition_dim
        labels = labels.long()
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= c_dim):
            raise DataError(f"labels {int(labels.min())}..{int(labels.max())} do not fit condition_dim={c_dim}; "
                            f"give class ids 0..{c_dim - 1}")
        return F.one_hot(labels, c_dim).to(torch.get_default_dtype())  # [B, C]

    def make_condition(self, condition: Any, n: int) -> torch.Tensor | None:
        """A class id (``3``) or ids ``[n]`` become one-hot vectors for ``condition=labels``."""
        if self.config.condition == "labels" and condition is not None:
            ids = torch.as_tensor(condition)
            if not ids.is_floating_point() and ids.dim() <= 1:
                return self.one_hot(ids.expand(n) if ids.dim() == 0 else ids)
        return super().make_condition(condition, n)
