"""Windows of a long multivariate series as a map-style source: example i is the window ``[T, C]`` of rows
``start_i .. start_i + T - 1``, read from one copy of the series (``Tensor.unfold`` is a view), so a series is
never copied into windows in memory; only a batch's windows are.

``pad="start"`` (the default, for online scoring) repeats the first row ``T - 1`` times in front, so that every
row has a window that ends at it and holds only that row and the ones before it: window i ends at row i.
``pad="none"`` keeps whole windows only (the first ends at row ``T - 1``); ``pad="both"`` also repeats the last
row, so that windows centred on each row exist (window i is centred on row i). ``stride`` keeps every s-th
window. ``end_rows`` gives each window's last row in the series (its ``timestamps`` where they are kept);
``labels`` per row give each window the label of its last row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aekit.data.base import Index, first_nonfinite
from aekit.data.batch import Batch
from aekit.errors import DataError

PADDINGS = ("start", "none", "both")


class WindowDataset:
    """Windows ``[T, C]`` of ``series [N, C]`` (or ``[N]``): ``window`` T, ``stride``, ``pad`` (module docstring),
    optional ``timestamps [N]`` and per-row ``labels [N]``."""

    def __init__(self, series, window: int, stride: int = 1, pad: str = "start", *, timestamps: Sequence | None = None,
                 labels=None, name: str = "series", classes: Sequence[str] | None = None) -> None:
        x = torch.as_tensor(np.asarray(series), dtype=torch.float32)
        x = x[:, None] if x.dim() == 1 else x
        if x.dim() != 2 or len(x) == 0:
            raise DataError(f"{name}: a series must be [N] or [N, C] with N > 0, got shape {tuple(x.shape)}")
        if window < 1 or stride < 1:
            raise DataError(f"{name}: window={window} and stride={stride} must be >= 1")
        if pad not in PADDINGS:
            raise DataError(f"{name}: pad={pad!r} is unknown; choose one of {', '.join(PADDINGS)}")
        if pad == "none" and len(x) < window:
            raise DataError(f"{name}: {len(x)} rows are fewer than the window of {window}; use a shorter window or "
                            "pad='start'")
        bad = first_nonfinite(x.numpy())
        if bad is not None:
            raise DataError(f"{name}: row {bad[0]}, column {bad[1]} is NaN or Inf; fill or drop it first")
        self.name, self.window, self.stride, self.pad, self.rows_in_series = name, window, stride, pad, len(x)
        before = window - 1 if pad == "start" else (window - 1) // 2 if pad == "both" else 0
        after = window - 1 - before if pad == "both" else 0
        padded = torch.cat([x[:1].expand(before, -1), x, x[-1:].expand(after, -1)])  # [N + T - 1 (or N), C]
        self._windows = padded.unfold(0, window, 1)  # [W, C, T], a view of the one padded copy
        self._first_end = window - 1 - before  # the series row the first window ends at
        self._ids = np.arange(0, self._windows.shape[0], stride)  # the windows this source holds
        self.timestamps = None if timestamps is None else np.asarray(timestamps)
        if self.timestamps is not None and len(self.timestamps) != len(x):
            raise DataError(f"{name}: {len(self.timestamps)} timestamps for {len(x)} rows; give one per row")
        self._row_labels = None
        if labels is not None:
            y = torch.as_tensor(np.asarray(labels)).long()
            if y.shape != (len(x),):
                raise DataError(f"{name}: labels of shape {tuple(y.shape)} do not match the series' {len(x)} rows; "
                                "give one label per row")
            self._row_labels = y
        self.classes = None if classes is None else tuple(classes)

    # -- the MapSource protocol --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return (f"WindowDataset({self.name!r}: {len(self)} windows of {self.window} x {self.shape[1]} over "
                f"{self.rows_in_series} rows, stride {self.stride}, pad {self.pad})")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.window, self._windows.shape[1])

    is_8bit = False

    @property
    def end_rows(self) -> np.ndarray:
        """Each window's last row in the series (for ``pad="both"``: the row it is centred on)."""
        return self._ids + self._first_end if self.pad != "both" else self._ids

    @property
    def end_timestamps(self) -> np.ndarray | None:
        return None if self.timestamps is None else self.timestamps[np.clip(self.end_rows, 0, None)]

    @property
    def y(self) -> torch.Tensor | None:
        if self._row_labels is None:
            return None
        return self._row_labels[torch.from_numpy(np.clip(self.end_rows, 0, self.rows_in_series - 1))]

    def _positions(self, index: Index) -> np.ndarray:
        n = len(self)
        if index is None:
            return np.arange(n)
        if isinstance(index, slice):
            return np.arange(*index.indices(n))
        positions = np.asarray(index.cpu() if torch.is_tensor(index) else index).astype(np.int64).reshape(-1)
        if len(positions) and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"{self.name}: a window index is out of range for {n} windows")
        return np.where(positions < 0, positions + n, positions)

    def inputs(self, index: Index = None) -> torch.Tensor:
        """The windows at ``index`` ``[B, T, C]`` (only these are copied)."""
        ids = torch.from_numpy(self._ids[self._positions(index)])
        return self._windows[ids].transpose(1, 2).contiguous()  # [B, C, T] -> [B, T, C]

    def labels(self, index: Index = None) -> torch.Tensor | None:
        y = self.y
        return None if y is None else y[torch.from_numpy(self._positions(index))]

    def batch(self, index: Index = None) -> Batch:
        return Batch(self.inputs(index), self.labels(index))

    def subset(self, index, name: str | None = None) -> WindowDataset:
        """The windows at ``index``: a view of the same series."""
        view = object.__new__(WindowDataset)
        view.__dict__.update(self.__dict__, _ids=self._ids[self._positions(index)], name=name or self.name)
        return view
