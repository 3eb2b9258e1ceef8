"""A sample of a training source: what data-dependent set-up reads (a likelihood chosen from the data's range, a
sparse dictionary's bias at the geometric median)."""

from __future__ import annotations

from typing import Any

import torch

from aekit.data.batch import Batch


def sample_batch(source: Any, rows: int, seed: int = 0) -> Batch:
    """Up to ``rows`` examples of ``source`` as one :class:`Batch`: drawn at random without replacement from a
    map-style source (under ``seed``), or the first items of a stream until ``rows`` are gathered."""
    if hasattr(source, "batch") and hasattr(source, "__len__"):
        n = len(source)
        if n <= rows:
            return source.batch(slice(0, n))
        index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:rows].sort().values
        return source.batch(index)
    parts: list[Batch] = []
    for item in source:
        parts.append(item)
        if sum(len(b) for b in parts) >= rows:
            break
    fields = {name: [getattr(b, name) for b in parts] for name in parts[0].fields()}
    return Batch(**{name: None if values[0] is None else torch.cat(values)[:rows] for name, values in fields.items()})
