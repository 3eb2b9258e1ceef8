"""In-memory datasets and their train/validation/test splits.

Every loader returns a :class:`Dataset`: the whole array in memory, images as ``[N, C, H, W]`` and tables
as ``[N, D]``. 8-bit images stay ``uint8`` (a quarter of the memory of float32) and are scaled to
``[0, 1]`` only when a batch is taken, so that a discretised likelihood can still see the 256 levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aekit.errors import DataError


def first_nonfinite(x: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or Inf in ``x``, or None when every value is finite."""
    if x.dtype.kind != "f":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(x.sum()):  # any NaN or Inf makes the sum non-finite; one pass, no mask
            return None
    bad = ~np.isfinite(x)  # the sum overflowed, or there is a bad value: find it
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None


@dataclass
class Dataset:
    """An array dataset held in memory.

    x: ``[N, C, H, W]`` (images) or ``[N, D]`` (tables); ``uint8`` for 8-bit images, else ``float32``.
    y: ``[N]`` int64 class labels, or None where the data has none.
    classes: the name of each class id (label ``k`` is ``classes[k]``), where the data names its classes.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    name: str
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise DataError(
                f"{self.name}: {len(self.x)} examples but {len(self.y)} labels; "
                "the image and label files must hold the same number of items"
            )
        if self.x.dtype not in (torch.uint8, torch.float32):
            raise DataError(f"{self.name}: dtype {self.x.dtype} is not supported; use uint8 or float32")
        bad = first_nonfinite(self.x.detach().cpu().numpy())
        if bad is not None:
            raise DataError(f"{self.name}: example {bad[0]} holds NaN or Inf values; clean or drop it first")
        if self.classes is not None:
            self.classes = tuple(str(c) for c in self.classes)
            low, high = (int(self.y.min()), int(self.y.max())) if self.y is not None and len(self.y) else (0, -1)
            if low < 0 or high >= len(self.classes):
                raise DataError(
                    f"{self.name}: labels run from {low} to {high} but {len(self.classes)} class names are "
                    "given; give one name per class id 0..K-1"
                )

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)`` or ``(64,)``."""
        return tuple(self.x.shape[1:])

    @property
    def is_8bit(self) -> bool:
        return self.x.dtype == torch.uint8

    def inputs(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float32 inputs for ``index`` (all when None); 8-bit images are scaled to ``[0, 1]``."""
        if index is None:
            x = self.x
        elif torch.is_tensor(index) and index.dtype == torch.int64 and index.dim() == 1:
            x = self.x.index_select(0, index)  # a batch of ids: faster than advanced indexing (a contiguous gather)
        else:
            x = self.x[index]
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x

    def labels(self, index: torch.Tensor | slice | None = None) -> torch.Tensor | None:
        if self.y is None:
            return None
        return self.y if index is None else self.y[index]

    def subset(self, index: torch.Tensor | np.ndarray, name: str | None = None) -> Dataset:
        index = torch.as_tensor(index, dtype=torch.long)
        y = None if self.y is None else self.y[index]
        return Dataset(self.x[index], y, name or self.name, self.classes)


@dataclass
class Splits:
    """Train, validation and test parts of one dataset."""

    train: Dataset
    val: Dataset
    test: Dataset

    @property
    def shape(self) -> tuple[int, ...]:
        return self.train.shape

    def with_val_in_train(self) -> Splits:
        """The validation examples added to the training part; validation left empty, test unchanged."""
        train, val = self.train, self.val
        y = None if train.y is None or val.y is None else torch.cat([train.y, val.y])
        merged = Dataset(torch.cat([train.x, val.x]), y, train.name, train.classes or val.classes)
        return Splits(merged, val.subset(torch.arange(0)), self.test)


def random_split(data: Dataset, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Seeded split of one dataset into train/val/test (the same seed gives the same split)."""
    for label, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise DataError(f"{label}={frac} must lie in [0, 1)")
    n = len(data)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise DataError(f"{data.name}: {n} examples leave none for training; lower val/test fractions")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test_idx, val_idx, train_idx = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    return Splits(
        train=data.subset(train_idx.sort().values, f"{data.name}/train"),
        val=data.subset(val_idx.sort().values, f"{data.name}/val"),
        test=data.subset(test_idx.sort().values, f"{data.name}/test"),
    )


def holdout_split(train: Dataset, test: Dataset, val_fraction: float, seed: int) -> Splits:
    """Split a validation part off ``train`` where the data ships its own test set."""
    parts = random_split(train, val_fraction, 0.0, seed)
    return Splits(train=parts.train, val=parts.val, test=test)
