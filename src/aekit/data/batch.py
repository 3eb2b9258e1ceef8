"""The typed batch every data source yields and every model, objective and evaluation receives."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from aekit.errors import DataError


@dataclass
class Batch:
    """One batch of examples.

    inputs: ``[B, *S]`` float32 (images, tables) or integer (token ids, codes);
    labels: ``[B]`` int64 class ids, where the data has them;
    condition: ``[B, C]`` a conditioning vector (a conditional model's input besides x);
    mask: ``[B, *S]`` bool, True where an input element is present;
    weights: ``[B]`` per-example weights of the loss (an objective averages the terms with them);
    target: ``[B, *S]`` what the model reconstructs when it is not the inputs themselves (a transcoder maps a layer's
    input to its output);
    gradient: ``[B, *S]`` the gradient of a downstream loss with respect to the inputs (a gradient-guided sparse
    autoencoder chooses its latents with it);
    factors: ``[B, K]`` int64 ground-truth factor indices, where the data is a factor dataset
    (:mod:`aekit.data.factors`), for models that read them as auxiliary variables or attributes.
    """

    inputs: torch.Tensor
    labels: torch.Tensor | None = None
    condition: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    target: torch.Tensor | None = None
    gradient: torch.Tensor | None = None
    factors: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.inputs.shape[0] if self.inputs.dim() else 0
        for name in ("labels", "condition", "mask", "weights", "target", "gradient", "factors"):
            value = getattr(self, name)
            if value is not None and (value.dim() == 0 or value.shape[0] != n):
                raise DataError(
                    f"batch {name} of shape {tuple(value.shape)} does not match {n} inputs; give one row per example"
                )

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def fields(self) -> dict[str, torch.Tensor | None]:
        """Every field by name, None where the batch has none."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return type(self)(**{k: None if v is None else v.to(device, non_blocking=non_blocking)
                             for k, v in self.fields().items()})

    def select(self, index: torch.Tensor | slice) -> Batch:
        """The examples at ``index`` (a DDP rank's share of a batch)."""
        return Batch(**{k: None if v is None else v[index] for k, v in self.fields().items()})

    @classmethod
    def of(cls, item: Any, example: bool = False) -> Batch:
        """A batch from what a user's iterable or ``DataLoader`` yields: a Batch, a tensor or array of inputs, an
        ``(inputs, labels)`` pair, or a dict with the field names as keys (``x``/``y`` accepted).

        example: ``item`` is one example rather than a batch (inputs ``[*S]``, a label of shape ``[]``); the
        batch holds it alone, every field with a batch axis of 1 put in front.
        """
        fields = cls._fields_of(item)
        if example:
            fields = {k: None if v is None else v.unsqueeze(0) for k, v in fields.items()}
        return item if isinstance(item, Batch) and not example else cls(**fields)

    @classmethod
    def _fields_of(cls, item: Any) -> dict[str, torch.Tensor | None]:
        if isinstance(item, Batch):
            return item.fields()
        if isinstance(item, dict):
            renamed = {{"x": "inputs", "y": "labels"}.get(k, k): v for k, v in item.items()}
            unknown = sorted(set(renamed) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise DataError(f"batch keys {', '.join(unknown)} are unknown; use inputs, labels, condition, mask, "
                                "weights, target, gradient, factors")
            if "inputs" not in renamed:
                raise DataError(f"a batch dict without inputs (keys {', '.join(sorted(item))}); give inputs or x")
            return {k: None if v is None else torch.as_tensor(v) for k, v in renamed.items()}
        if isinstance(item, (tuple, list)):
            if not 1 <= len(item) <= 2:
                raise DataError(f"a batch tuple of {len(item)} items; yield inputs, (inputs, labels) or a dict")
            return {"inputs": torch.as_tensor(item[0]), "labels": None if len(item) < 2 else torch.as_tensor(item[1])}
        try:
            return {"inputs": torch.as_tensor(item)}
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"cannot make a batch of a {type(item).__name__}; yield tensors, arrays or dicts") from None
