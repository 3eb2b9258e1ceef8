"""Data sources: in-memory datasets, the protocol every map-style source follows, and train/val/test splits.

A map-style source (:class:`MapSource`) is what the training loop and the evaluation index by example:

- ``len(source)``: the number of examples; ``source.shape``: one example's shape, e.g. ``(1, 28, 28)``;
- ``source.name`` (settable) and ``source.classes`` (the name of each class id, or None);
- ``source.inputs(index)``: ``[B, *shape]`` float32 for float data and 8-bit images (scaled to ``[0, 1]``),
  int64 for other integer data (token ids, codes); ``source.labels(index)``: ``[B]`` int64 or None;
  ``source.batch(index)``: both as a :class:`~aekit.data.batch.Batch`, with the examples' ``target`` and
  ``gradient`` where the source has them (a layer's output beside its input, for a transcoder; a downstream
  loss's gradient, for a gradient-guided sparse autoencoder);
- ``source.y``: every label (``[N]`` int64) or None;
- ``source.subset(index, name=None)``: the examples at ``index`` as a source of the same kind.

``index`` is a 1-D int64 tensor (a batch of ids), a slice, or None (every example). :class:`Dataset` holds the
whole array in memory; :class:`aekit.data.sources.MemmapDataset` reads the rows of a ``.npy`` file or of
safetensors shards as they are asked for. Streams, which are iterated rather than indexed, are
:class:`aekit.data.sources.StreamingSource`.

Every loader returns images as ``[N, C, H, W]`` and tables as ``[N, D]``. 8-bit images stay ``uint8`` (a
quarter of the memory of float32) and are scaled to ``[0, 1]`` only when a batch is taken, so that a
discretised likelihood can still see the 256 levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from aekit.data.batch import Batch
from aekit.errors import DataError

Index = torch.Tensor | np.ndarray | slice | None

INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16)  # token ids, codes
STORED_DTYPES = (torch.uint8, torch.float32, *INTEGER_DTYPES)


@runtime_checkable
class MapSource(Protocol):
    """A source indexed by example (see the module docstring); :class:`Dataset` is the in-memory one."""

    name: str

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def classes(self) -> tuple[str, ...] | None: ...

    @property
    def y(self) -> torch.Tensor | None: ...

    def __len__(self) -> int: ...

    def inputs(self, index: Index = None) -> torch.Tensor: ...

    def labels(self, index: Index = None) -> torch.Tensor | None: ...

    def batch(self, index: Index = None) -> Batch: ...

    def subset(self, index: torch.Tensor | np.ndarray, name: str | None = None) -> MapSource: ...


def first_nonfinite(x: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or Inf in ``x``, or None when every value is finite."""
    if x.dtype.kind != "f":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(x.sum()):  # any NaN or Inf makes the sum non-finite; one pass, no mask
            return None
    bad = ~np.isfinite(x)  # the sum overflowed, or there is a bad value: find it
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None


def check_classes(name: str, classes: tuple[str, ...] | None, y: torch.Tensor | None) -> tuple[str, ...] | None:
    """``classes`` as a tuple of texts, once every label is known to be one of their ids."""
    if classes is None:
        return None
    classes = tuple(str(c) for c in classes)
    low, high = (int(y.min()), int(y.max())) if y is not None and len(y) else (0, -1)
    if low < 0 or high >= len(classes):
        raise DataError(
            f"{name}: labels run from {low} to {high} but {len(classes)} class names are given; "
            "give one name per class id 0..K-1"
        )
    return classes


def as_inputs(x: torch.Tensor) -> torch.Tensor:
    """Stored examples as a model takes them: 8-bit images scaled to float32 ``[0, 1]``, other integers as
    int64, floats as float32."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype.is_floating_point:
        return x.float()
    return x.long()


@dataclass
class Dataset:
    """An array dataset held in memory.

    x: ``[N, C, H, W]`` (images) or ``[N, D]`` (tables); ``uint8`` for 8-bit images, ``float32`` for other
    numbers, or an integer type (int8, int16, int32, int64, uint16) for token ids and codes.
    y: ``[N]`` int64 class labels, or None where the data has none.
    classes: the name of each class id (label ``k`` is ``classes[k]``), where the data names its classes.
    owned: x was read for this dataset alone (from a file), so a split may rearrange it in place and hand out
    views of it (:meth:`partition`) instead of copies; False for an array a caller passed, which is never
    changed.
    target: ``[N, *T]`` float32, what the model reconstructs from each example where it is not the example
    itself (a layer's output, for a transcoder that reads the layer's input), or None.
    gradient: ``[N, *shape]`` float32, the gradient of a downstream loss with respect to each example, or None.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    name: str
    classes: tuple[str, ...] | None = None
    owned: bool = field(default=False, repr=False, compare=False)
    target: torch.Tensor | None = field(default=None, repr=False, compare=False)
    gradient: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise DataError(
                f"{self.name}: {len(self.x)} examples but {len(self.y)} labels; "
                "the image and label files must hold the same number of items"
            )
        for key, value in self.extras().items():
            if len(value) != len(self.x) or not value.dtype.is_floating_point:
                raise DataError(f"{self.name}: {len(self.x)} examples but a {key} of shape {tuple(value.shape)} and "
                                f"dtype {value.dtype}; give one float row per example")
            bad = first_nonfinite(value.detach().cpu().float().numpy())  # bfloat16 has no numpy dtype
            if bad is not None:
                raise DataError(f"{self.name}: the {key} of example {bad[0]} holds NaN or Inf values; clean or drop it "
                                "first")
        if self.x.dtype not in STORED_DTYPES:
            raise DataError(
                f"{self.name}: dtype {self.x.dtype} is not supported; use uint8 (8-bit images), float32, or "
                "int8, int16, int32, int64 or uint16 (token ids, codes)"
            )
        bad = first_nonfinite(self.x.detach().cpu().numpy()) if self.x.dtype.is_floating_point else None
        if bad is not None:
            raise DataError(f"{self.name}: example {bad[0]} holds NaN or Inf values; clean or drop it first")
        self.classes = check_classes(self.name, self.classes, self.y)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)`` or ``(64,)``."""
        return tuple(self.x.shape[1:])

    @property
    def is_8bit(self) -> bool:
        return self.x.dtype == torch.uint8

    def inputs(self, index: Index = None) -> torch.Tensor:
        """Inputs for ``index`` (all when None): float32 (8-bit images scaled to ``[0, 1]``), or int64 for
        integer data."""
        if index is None:
            x = self.x
        elif torch.is_tensor(index) and index.dtype == torch.int64 and index.dim() == 1:
            x = self.x.index_select(0, index)  # a batch of ids: faster than advanced indexing (a contiguous gather)
        else:
            x = self.x[torch.as_tensor(index) if isinstance(index, np.ndarray) else index]
        return as_inputs(x)

    def labels(self, index: Index = None) -> torch.Tensor | None:
        return None if self.y is None else _rows(self.y, index)

    def extras(self) -> dict[str, torch.Tensor]:
        """The ``target`` and ``gradient`` tensors this dataset holds, by name."""
        return {key: value for key in ("target", "gradient") if (value := getattr(self, key)) is not None}

    def batch(self, index: Index = None) -> Batch:
        """The inputs, labels, and target and gradient where held, at ``index`` as one :class:`Batch`."""
        extras = {key: _rows(value, index).float() for key, value in self.extras().items()}
        return Batch(self.inputs(index), self.labels(index), **extras)

    def subset(self, index: torch.Tensor | np.ndarray, name: str | None = None) -> Dataset:
        index = torch.as_tensor(index, dtype=torch.long)
        y = None if self.y is None else self.y[index]
        extras = {key: value[index] for key, value in self.extras().items()}
        return Dataset(self.x[index], y, name or self.name, self.classes, **extras)

    def partition(self, indices: list[torch.Tensor], names: list[str],
                  chunk_bytes: int = 64 * 2**20) -> list[Dataset]:
        """The examples at each of ``indices`` (disjoint, each sorted, together every example) as datasets that are
        views of this one's array, which is rearranged in place into them, one after the other: at most one copy
        of the data is held (plus the parts after the first, copied out while the first is moved up). Only for
        an ``owned`` dataset, which is used up."""
        if not self.owned:
            raise DataError(f"{self.name}: partition rearranges the array in place, which only a dataset read "
                            "from a file owns; take subset() of each part instead")
        first, *rest = (torch.as_tensor(index, dtype=torch.long) for index in indices)
        for tensor in (self.x, *self.extras().values()):
            _move_rows(tensor, first, rest, chunk_bytes)
        parts, start = [], 0
        for index, name in zip([first, *rest], names, strict=True):
            rows = slice(start, start + len(index))
            y = None if self.y is None else self.y[index]
            extras = {key: value[rows] for key, value in self.extras().items()}
            parts.append(Dataset(self.x[rows], y, name, self.classes, **extras))
            start += len(index)
        self.owned = False
        return parts

    def concat(self, other: Dataset, name: str | None = None) -> Dataset:
        """This dataset's examples followed by ``other``'s."""
        y = None if self.y is None or other.y is None else torch.cat([self.y, other.y])
        theirs = other.extras() if isinstance(other, Dataset) else {}
        if theirs.keys() != self.extras().keys():
            raise DataError(f"{self.name}: holds {sorted(self.extras()) or 'no target or gradient'} but "
                            f"{other.name} holds {sorted(theirs) or 'none'}; join sources with the same fields")
        extras = {key: torch.cat([value, theirs[key]]) for key, value in self.extras().items()}
        return Dataset(torch.cat([self.x, other.x]), y, name or self.name, self.classes or other.classes, **extras)


def _rows(tensor: torch.Tensor, index: Index) -> torch.Tensor:
    """The rows of ``tensor`` at ``index`` (all when None)."""
    return tensor if index is None else tensor[torch.as_tensor(index) if isinstance(index, np.ndarray) else index]


def _move_rows(x: torch.Tensor, first: torch.Tensor, rest: list[torch.Tensor], chunk_bytes: int) -> None:
    """Rearrange ``x`` in place so that its rows at ``first`` come first, then those of each of ``rest`` (the
    indices disjoint and sorted); the rows of ``rest`` are copied out before the first part overwrites them."""
    copies = [x[index] for index in rest]
    row_bytes = max(1, x[:1].numel() * x.element_size())
    step = max(1, chunk_bytes // row_bytes)
    for start in range(0, len(first), step):  # row first[k] >= k: each chunk is read before any write reaches it
        chunk = first[start:start + step]
        x[start:start + len(chunk)] = x[chunk]
    start = len(first)
    for copy in copies:
        x[start:start + len(copy)] = copy
        start += len(copy)


@dataclass
class Splits:
    """Train, validation and test parts of one dataset.

    notes: one line each about how the data was read where the reader had to guess (which arrays of a
    ``.npz`` are the inputs and the labels), for the caller to show the user.
    """

    train: MapSource
    val: MapSource
    test: MapSource
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.train.shape

    def with_val_in_train(self) -> Splits:
        """The validation examples added to the training part; validation left empty, test unchanged."""
        train, val = self.train, self.val
        if not hasattr(train, "concat"):
            raise DataError(f"{train.name}: a {type(train).__name__} cannot take the validation examples in; "
                            "train on train alone")
        return Splits(train.concat(val), val.subset(torch.arange(0)), self.test, list(self.notes))


def random_split(data: MapSource, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Seeded split of one source into train/val/test (the same seed gives the same split).

    A part asked for (a fraction above 0) gets at least one example, else the data is refused as too small.
    """
    for label, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise DataError(f"{label}={frac} must lie in [0, 1)")
    n = len(data)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n - n_val - n_test < 1 or (val_fraction > 0 and n_val == 0) or (test_fraction > 0 and n_test == 0):
        raise DataError(
            f"{data.name}: {n} examples are too few to split into train/val/test (val_fraction={val_fraction}, "
            f"test_fraction={test_fraction}); give more examples or set the fractions to 0"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test_idx, val_idx, train_idx = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    if isinstance(data, Dataset) and data.owned:  # read from a file: the parts are views of its one array
        return Splits(*data.partition([train_idx.sort().values, val_idx.sort().values, test_idx.sort().values],
                                      [f"{data.name}/{part}" for part in ("train", "val", "test")]))
    return Splits(
        train=data.subset(train_idx.sort().values, f"{data.name}/train"),
        val=data.subset(val_idx.sort().values, f"{data.name}/val"),
        test=data.subset(test_idx.sort().values, f"{data.name}/test"),
    )


def holdout_split(train: MapSource, test: MapSource, val_fraction: float, seed: int) -> Splits:
    """Split a validation part off ``train`` where the data ships its own test set."""
    parts = random_split(train, val_fraction, 0.0, seed)
    return Splits(train=parts.train, val=parts.val, test=test)
