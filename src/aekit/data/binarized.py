"""Dynamically binarized images: each pixel a Bernoulli draw with its grey level as the probability.

A Bernoulli likelihood needs 0/1 pixels. The statically binarized MNIST of Larochelle & Murray (2011) drew them
once; dynamic binarization (Burda et al. 2016, Rainforth et al. 2018) draws them afresh every time an image is
trained on, x_ij ~ Bernoulli(g_ij) with g_ij in [0, 1] the grey level, so every epoch sees new binary images
and the model overfits less. Evaluation needs fixed data: a validation or test part is binarized once, with
its own seed, and gives the same 0/1 images every time it is read.

:class:`BinarizedImages` is the map-style source (:class:`aekit.data.base.MapSource`) over the grey levels: with
``seed=None`` each :meth:`~BinarizedImages.inputs` call draws new pixels from torch's global generator (which
the training loop seeds at every step, so a resumed run draws what an uninterrupted one would); with a seed
the pixels are drawn once, from ``torch.Generator().manual_seed(seed)``, and kept.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aekit.data.base import Dataset, Index
from aekit.data.batch import Batch
from aekit.data.formats import load_idx_folder
from aekit.errors import DataError

VAL_EXAMPLES = 10_000  # the last 10,000 MNIST training images, as the statically binarized set holds out
VAL_SEED, TEST_SEED = 1, 2  # the fixed draws of the validation and test images


class BinarizedImages:
    """Grey images ``grey`` (a :class:`Dataset` of levels in [0, 1] or 8-bit) as 0/1 float32 images: drawn
    afresh at every read (``seed=None``) or once with ``seed`` (module docstring)."""

    def __init__(self, grey: Dataset, seed: int | None = None, name: str | None = None) -> None:
        levels = grey.inputs(slice(0, 4096))
        if levels.is_floating_point() and len(levels) and (levels.min() < 0 or levels.max() > 1):
            raise DataError(f"{grey.name}: grey levels run from {float(levels.min()):g} to {float(levels.max()):g}; "
                            "binarization takes probabilities in [0, 1] (or 8-bit images)")
        self.grey, self.seed, self.name = grey, seed, name or grey.name
        self.fixed = None if seed is None else self._draw(None, torch.Generator().manual_seed(seed))

    def _draw(self, index: Index, generator: torch.Generator | None) -> torch.Tensor:
        return torch.bernoulli(self.grey.inputs(index), generator=generator)  # [B, C, H, W] of 0/1

    def __len__(self) -> int:
        return len(self.grey)

    def __repr__(self) -> str:
        how = "drawn at every read" if self.seed is None else f"drawn once (seed {self.seed})"
        return f"BinarizedImages({self.name!r}: {len(self)} images {self.shape}, {how})"

    @property
    def dynamic(self) -> bool:
        return self.seed is None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.grey.shape

    @property
    def classes(self) -> tuple[str, ...] | None:
        return self.grey.classes

    @property
    def y(self) -> torch.Tensor | None:
        return self.grey.y

    def inputs(self, index: Index = None) -> torch.Tensor:
        """float32 0/1 images ``[B, *shape]``: new draws when dynamic, the kept ones otherwise."""
        if self.fixed is None:
            return self._draw(index, None)
        return self.fixed if index is None else self.fixed[index]

    def labels(self, index: Index = None) -> torch.Tensor | None:
        return self.grey.labels(index)

    def batch(self, index: Index = None) -> Batch:
        return Batch(self.inputs(index), self.labels(index))

    def subset(self, index: torch.Tensor, name: str | None = None) -> BinarizedImages:
        """The images at ``index``; a fixed part keeps its draws for them."""
        index = torch.as_tensor(index, dtype=torch.long)
        view = object.__new__(BinarizedImages)
        view.grey, view.seed, view.name = self.grey.subset(index), self.seed, name or self.name
        view.fixed = None if self.fixed is None else self.fixed[index]
        return view

    def concat(self, other: BinarizedImages, name: str | None = None) -> BinarizedImages:
        """These images followed by ``other``'s, binarized as these are: training on the validation images
        (``train_on_val``) draws them afresh too."""
        if not isinstance(other, BinarizedImages):
            raise DataError(f"{self.name}: binarized images join other binarized images, not a "
                            f"{type(other).__name__}; binarize {other.name} too")
        joined = BinarizedImages(self.grey.concat(other.grey), None, name or self.name)
        if self.seed is not None:
            joined.seed, joined.fixed = self.seed, torch.cat([self.fixed, other.inputs()])
        return joined


def load_dynamic_binarized_mnist(folder: Path) -> dict[str, BinarizedImages]:
    """MNIST's IDX files as dynamically binarized train (the first 50,000 training images), and validation (the
    last 10,000) and test (the 10,000 test images) binarized once with seeds ``VAL_SEED`` and ``TEST_SEED``."""
    parts = load_idx_folder(folder)
    train, test = parts["train"], parts["test"]
    n_train = len(train) - VAL_EXAMPLES
    return {
        "train": BinarizedImages(train.subset(torch.arange(n_train)), None, "train"),
        "val": BinarizedImages(train.subset(torch.arange(n_train, len(train))), VAL_SEED, "val"),
        "test": BinarizedImages(test, TEST_SEED, "test"),
    }
