"""Fine-tuning a pre-trained encoder: a ViT with a linear head, trained on the labels (He et al. 2022, Sec. 4 and
Appendix A.2: the pre-trained encoder, all tokens, global pooling, and layer-wise lr decay, Clark et al. 2020).

    p(y | x) = softmax(W h(x) + b),    L = -log p(y | x)  (with label smoothing eps: the target is (1 - eps)
    on the label and eps / K spread over the K classes)

``init`` names an aekit ``mae`` (a model or run folder) whose encoder starts the classifier: its sizes are copied
into this config when the run is set up, its weights are loaded once at the start of training. With
``layer_decay = d < 1`` (a training setting) block i of a depth-L encoder learns at lr * d^(L + 1 - i) and the
patch embedding at lr * d^(L + 1); the head and the final norm at lr.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.data.batch import Batch
from aekit.errors import DataError
from aekit.models.base import Model, _numpy_in_numpy_out
from aekit.nn.vit import ViTConfig, ViTEncoder, pooled
from aekit.objectives import Term
from aekit.registry import register_model

# The encoder's settings, taken from the ``init`` model's config.
ENCODER_KEYS = tuple(f.name for f in fields(ViTConfig) if f.name not in ("data_shape", "pool"))


@dataclass(frozen=True)
class ClassifierConfig(ViTConfig):
    """``classes``: the number of classes (0: from the data). ``pool``: ``mean`` of the patch tokens (MAE's
    fine-tuning) or the ``cls`` token."""

    pool: str = "mean"
    classes: int = 0
    init: str = ""
    label_smoothing: float = 0.1
    objective: str = ""
    terms: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.classes >= 0, f"classes={self.classes} must be >= 0 (0: from the data's labels)")
        require(0 <= self.label_smoothing < 1, f"label_smoothing={self.label_smoothing} must be in [0, 1)")


@dataclass
class ClassifierOutput:
    logits: torch.Tensor
    terms: dict[str, torch.Tensor]
    stats: dict[str, torch.Tensor]


@register_model("classifier", config=ClassifierConfig,
                description="A ViT with a linear head for fine-tuning a pre-trained mae encoder (init=RUN)")
class Classifier(Model):
    config_class = ClassifierConfig
    suites = ("classification",)

    def own_terms(self) -> dict[str, Term]:
        """``ce``, the cross-entropy with label smoothing; ``correct``, the top-1 hits, logged only."""
        return {"ce": Term(), "correct": Term(log_only=True)}

    def __init__(self, config: ClassifierConfig, name: str = "classifier") -> None:
        super().__init__(config, name)
        c = config
        require(c.classes > 0, "classes=0: set the number of classes, or train on labelled data to take it from")
        self.encoder = c.encoder()
        self.head = nn.Linear(c.width, c.classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)  # MAE's fine-tuning head: near zero
        nn.init.zeros_(self.head.bias)

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        values, notes = super().fit_to_data(values, splits)
        if not values.get("classes"):
            y = splits.train.y
            if y is None:
                raise DataError(f"{splits.train.name}: has no labels; a classifier trains on labelled data")
            values["classes"] = len(splits.train.classes) if splits.train.classes else int(y.max()) + 1
        if values.get("init"):
            from aekit.io import read_json, resolve_model_dir

            source = read_json(resolve_model_dir(values["init"]) / "config.json")["config"]
            taken = [k for k in ENCODER_KEYS if k in source and k not in values]
            values.update({k: source[k] for k in taken})
            notes.append(f"the encoder's {', '.join(taken)} from {values['init']}")
        return values, notes

    def initial_weights(self) -> None:
        """Load the ``init`` model's encoder (a fresh run; a resumed one reads its checkpoint instead)."""
        if not self.config.init:
            return
        from aekit.io import load

        source = load(self.config.init)
        if not hasattr(source, "encoder") or not isinstance(source.encoder, ViTEncoder):
            raise DataError(f"{self.config.init}: is a {source.name}, whose encoder is not a ViT; init takes a mae")
        mine = self.encoder.state_dict()
        theirs = source.encoder.state_dict()
        wrong = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape]
        if wrong:
            raise DataError(f"{self.config.init}: its encoder does not fit this classifier ({wrong[0]}); leave the "
                            "encoder settings to init")
        self.encoder.load_state_dict(theirs)

    def layer_of(self, name: str) -> tuple[int, int]:
        """(layer, number of layers) for layer-wise lr decay: embeddings 0, block i i + 1, the rest depth + 1."""
        depth = self.config.depth
        if name.startswith("encoder.blocks."):
            return int(name.split(".")[2]) + 1, depth + 1
        if name.startswith(("encoder.patch_embed", "encoder.cls_token")):
            return 0, depth + 1
        return depth + 1, depth + 1

    def no_weight_decay(self) -> tuple[str, ...]:
        return ("encoder.cls_token",)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.encoder.patch_tokens(x))  # [B, (1 +) L, D], every token
        return pooled(h, self.config.pool, self.config.class_token)

    def forward(self, x: torch.Tensor | Batch) -> ClassifierOutput:
        labels = None
        if isinstance(x, Batch):
            x, labels = x.inputs, x.labels
        self.check_input(x)
        logits = self.head(self.features(x))  # [B, K]
        terms = {}
        if labels is None and self.training and torch.is_grad_enabled():
            raise DataError("the batch has no labels; a classifier trains on labelled data")
        if labels is not None:
            labels = labels.to(logits.device)
            terms["ce"] = F.cross_entropy(logits, labels, reduction="none",
                                          label_smoothing=self.config.label_smoothing)
            terms["correct"] = (logits.argmax(-1) == labels).float()
        return ClassifierOutput(logits, terms, {})

    @_numpy_in_numpy_out
    @torch.no_grad()
    def embed(self, x: torch.Tensor, condition: Any = None) -> torch.Tensor:
        return self.features(x)

    @_numpy_in_numpy_out
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, K]``."""
        return self.head(self.features(x)).softmax(-1)
