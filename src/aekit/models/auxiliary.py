"""Observed side information a model reads from the batch: an auxiliary variable u (iVAE) or attributes y (MSP).

``source``: ``labels``, the one-hot class ids ``[B, C]``; ``factors``, a factor dataset's ground-truth factors
(:mod:`aekit.data.factors`, ``Batch.factors``), each index scaled to [0, 1] by its number of levels,
``[B, K]``. The width and the levels are read from the training data (:func:`fit_auxiliary`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from aekit.data.batch import Batch
from aekit.errors import DataError

AUXILIARY = ("labels", "factors")


def fit_auxiliary_values(values: dict[str, Any], splits, width_key: str, who: str) -> dict[str, Any]:
    """A model's config values with ``width_key`` (u's or y's width) and ``factor_levels`` set from the training
    data where the user left the width unset (:func:`fit_auxiliary`)."""
    if not values.get(width_key):
        width, levels = fit_auxiliary(values.get("auxiliary", "labels"), splits, who)
        values = {**values, width_key: width, "factor_levels": list(levels)}
    return values


def fit_auxiliary(source: str, splits, who: str) -> tuple[int, tuple[int, ...]]:
    """(width, factor levels) of ``source`` on the training split: the number of classes and (), or the number of
    factors and their levels; a one-line DataError where the data has neither."""
    train = splits.train
    if source == "factors":
        grid = getattr(train, "grid", None)
        if grid is None:
            raise DataError(f"{train.name}: {who} with auxiliary=factors needs a factor dataset (dsprites, "
                            "shapes3d, ...); use auxiliary=labels for labelled data")
        return len(grid.sizes), tuple(int(s) for s in grid.sizes)
    y = train.labels(None)
    if y is None:
        raise DataError(f"{train.name}: {who} with auxiliary=labels needs labelled data; use auxiliary=factors for a "
                        "factor dataset")
    classes = train.classes
    return (len(classes) if classes else int(y.max()) + 1), ()


def auxiliary_of(batch: Batch, source: str, width: int, levels: tuple[int, ...], who: str) -> torch.Tensor:
    """u or y ``[B, width]`` of ``batch``: its labels one-hot, or its factors scaled to [0, 1]."""
    if source == "factors":
        if batch.factors is None:
            raise DataError(f"{who} with auxiliary=factors needs batches with factors (a factor dataset)")
        f = batch.factors
        scale = torch.tensor([max(n - 1, 1) for n in levels] if levels else [1] * f.shape[1], device=f.device)
        if f.shape[1] != width:
            raise DataError(f"batch factors of width {f.shape[1]} do not fit {who}'s {width}; train on the same data")
        return f.to(torch.get_default_dtype()) / scale  # [B, K] in [0, 1]
    if batch.labels is None:
        raise DataError(f"{who} with auxiliary=labels needs a batch with labels")
    return one_hot(batch.labels, width)


def one_hot(labels: Any, width: int) -> torch.Tensor:
    """Class ids ``[B]`` as one-hot rows ``[B, width]``; a one-line DataError for an id out of range."""
    labels = torch.as_tensor(labels).long()
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= width):
        raise DataError(f"labels {int(labels.min())}..{int(labels.max())} do not fit {width} classes; give class ids "
                        f"0..{width - 1}")
    return F.one_hot(labels, width).to(torch.get_default_dtype())  # [B, C]
