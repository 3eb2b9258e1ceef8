"""Images as they are asked for, and the augmentations of image pre-training, written on torch.

:class:`ImageFolderSource` is a map-style source over a folder of image files (one class per subfolder, as
ImageNet's), decoded when a batch asks for them: a folder larger than memory trains with a batch's worth of
pixels in memory. Each image is resized so that its shorter side is ``size`` and centre-cropped to
``size x size`` (any size and aspect in the folder).

:func:`random_resized_crop` and :func:`horizontal_flip` are MAE's pre-training augmentations (Szegedy et al.
2015's crop of a random area and aspect, resized back; a flip with probability 1/2), batched: one sampling grid
per image, one ``grid_sample`` per batch, on the batch's device.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aekit.data.base import Index, check_classes
from aekit.data.batch import Batch
from aekit.errors import ConfigError, DataError

AUGMENTATIONS = ("crop", "flip")


def _decode(path: Path, size: int, grey: bool) -> np.ndarray:
    """One image file as uint8 ``[C, size, size]``: shorter side resized to ``size``, then the centre crop."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L" if grey else "RGB")
            w, h = img.size
            scale = size / min(w, h)
            img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
            w, h = img.size
            left, top = (w - size) // 2, (h - size) // 2
            array = np.asarray(img.crop((left, top, left + size, top + size)))
    except OSError as err:
        raise DataError(f"{path}: not a readable image ({err}); remove or replace it") from None
    return array.reshape(size, size, -1).transpose(2, 0, 1)  # [H, W, C] -> [C, H, W]


class ImageFolderSource:
    """A folder of images read batch by batch (see the module docstring). ``size``: the side of the square images
    it gives; ``grey``: one channel (default: what the first image is, grey or RGB). Inputs are float32 in
    [0, 1]."""

    def __init__(self, folder: str | os.PathLike, size: int, grey: bool | None = None, name: str | None = None
                 ) -> None:
        from aekit.data.formats import _GREY_MODES, find_images

        if size < 1:
            raise ConfigError(f"image_size={size} must be a positive number of pixels")
        files, labels, classes = find_images(folder)
        if not files:
            raise DataError(f"{folder}: no images in it or its subfolders; pass a folder of image files")
        if grey is None:
            from PIL import Image

            with Image.open(files[0]) as first:
                grey = first.mode in _GREY_MODES
        self.source, self.size, self.grey = str(folder), size, grey
        self._files = np.array([str(f) for f in files])
        self._all_labels = None if labels is None else torch.tensor(labels, dtype=torch.int64)
        self._rows = np.arange(len(files))
        self.name = name or Path(folder).name
        self.classes = check_classes(self.name, classes, self._all_labels)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"ImageFolderSource({self.name!r}: {len(self)} images as {self.shape} from {self.source})"

    @property
    def shape(self) -> tuple[int, ...]:
        return (1 if self.grey else 3, self.size, self.size)

    @property
    def y(self) -> torch.Tensor | None:
        return None if self._all_labels is None else self._all_labels[torch.from_numpy(self._rows)]

    def _select(self, index: Index) -> np.ndarray:
        if index is None:
            return self._rows
        if isinstance(index, slice):
            return self._rows[index]
        positions = np.asarray(index.cpu() if torch.is_tensor(index) else index).astype(np.int64)
        if len(positions) and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise IndexError(f"{self.name}: an index is out of range for {len(self)} images")
        return self._rows[positions]

    def inputs(self, index: Index = None) -> torch.Tensor:
        rows = self._select(index)
        pixels = np.stack([_decode(Path(self._files[r]), self.size, self.grey) for r in rows]) if len(rows) else \
            np.zeros((0, *self.shape), np.uint8)
        return torch.from_numpy(pixels).float().div_(255.0)  # [B, C, size, size]

    def labels(self, index: Index = None) -> torch.Tensor | None:
        if self._all_labels is None:
            return None
        return self._all_labels[torch.from_numpy(self._select(index))]

    def batch(self, index: Index = None) -> Batch:
        return Batch(self.inputs(index), self.labels(index))

    def subset(self, index: Index, name: str | None = None) -> ImageFolderSource:
        view = object.__new__(ImageFolderSource)
        view.__dict__.update(self.__dict__, _rows=self._select(index), name=name or self.name)
        return view


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float] = (0.2, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = False,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """For each image of ``x [B, C, H, W]``: a crop of area share s ~ U(scale) and aspect a, log a ~ U(log ratio)
    (clipped to the image), at a uniform position, resized back to H x W (bilinear); mirrored left-right with
    probability 1/2 when ``flip``."""
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ConfigError(f"crop_scale={tuple(scale)} must satisfy 0 < low <= high <= 1")
    b = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(b, generator=generator) * (high - low) + low

    area = uniform(*scale)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width and height as shares of the image's
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * (1 - w) + w / 2) * 2 - 1  # crop centre in [-1, 1]
    cy = (torch.rand(b, generator=generator) * (1 - h) + h / 2) * 2 - 1
    sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)  # [B, H, W, 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def horizontal_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of ``x [B, C, H, W]`` mirrored left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment(batch: Batch, names: tuple[str, ...], crop_scale: tuple[float, float] = (0.2, 1.0)) -> Batch:
    """``batch`` with its images augmented by ``names`` (``crop``: random resized crop, ``flip``)."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"augment={unknown[0]!r} is unknown; choose from {', '.join(AUGMENTATIONS)}")
    x = batch.inputs
    if not names:
        return batch
    if x.dim() != 4 or not x.is_floating_point():
        raise ConfigError(f"augment={','.join(names)} needs float images [B, C, H, W], got {tuple(x.shape)} "
                          f"{x.dtype}; drop augment for this data")
    if "crop" in names:
        x = random_resized_crop(x, tuple(crop_scale), flip="flip" in names)
    elif "flip" in names:
        x = horizontal_flip(x)
    return Batch(x, batch.labels, batch.condition, batch.mask, batch.weights)
