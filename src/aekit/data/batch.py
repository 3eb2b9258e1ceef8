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
    weights: ``[B]`` per-example weights of the loss (an objective averages the terms with them).
    """

    inputs: torch.Tensor
    labels: torch.Tensor | None = None
    condition: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.inputs.shape[0] if self.inputs.dim() else 0
        for name in ("labels", "condition", "mask", "weights"):
            value = getattr(self, name)
            if value is not None and (value.dim() == 0 or value.shape[0] != n):
                raise DataError(
                    f"batch {name} of shape {tuple(value.shape)} does not match {n} inputs; give one row per example"
                )

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(**{f.name: None if (v := getattr(self, f.name)) is None else v.to(device, non_blocking=non_blocking)
                        for f in dataclasses.fields(self)})

    def select(self, index: torch.Tensor | slice) -> Batch:
        """The examples at ``index`` (a DDP rank's share of a batch)."""
        return Batch(**{f.name: None if (v := getattr(self, f.name)) is None else v[index]
                        for f in dataclasses.fields(self)})

    @classmethod
    def of(cls, item: Any) -> Batch:
        """A batch from what a user's iterable or ``DataLoader`` yields: a Batch, a tensor or array of inputs, an
        ``(inputs, labels)`` pair, or a dict with the field names as keys (``x``/``y`` accepted)."""
        if isinstance(item, Batch):
            return item
        if isinstance(item, dict):
            renamed = {{"x": "inputs", "y": "labels"}.get(k, k): v for k, v in item.items()}
            unknown = sorted(set(renamed) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise DataError(f"batch keys {', '.join(unknown)} are unknown; use inputs, labels, condition, mask, "
                                "weights")
            return cls(**{k: None if v is None else torch.as_tensor(v) for k, v in renamed.items()})
        if isinstance(item, (tuple, list)):
            if not 1 <= len(item) <= 2:
                raise DataError(f"a batch tuple of {len(item)} items; yield inputs, (inputs, labels) or a dict")
            return cls(torch.as_tensor(item[0]), None if len(item) < 2 else torch.as_tensor(item[1]))
        try:
            return cls(torch.as_tensor(item))
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"cannot make a batch of a {type(item).__name__}; yield tensors, arrays or dicts") from None
