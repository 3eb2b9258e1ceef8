"""Which batches a step trains on, fixed by (seed, step) alone so that a resumed run draws what an uninterrupted
one would.

A map-style source (``Dataset`` in memory, ``MemmapDataset`` on disk) is read in the order of epoch e's
permutation, seeded by (seed, e); each rank takes every world-th index of a batch. A stream
(``StreamingSource``) is iterated, each rank taking every world-th item; after a resume it skips the items the
run had consumed.
"""

from __future__ import annotations

import torch

from aekit.data.batch import Batch
from aekit.data.images import augment
from aekit.data.sources import StreamingSource
from aekit.errors import ConfigError
from aekit.training.step import step_seed


class StreamCursor:
    """Where a run is in a stream: ``take(n, position)`` gives the n items from ``position`` on, restarting the
    stream at its end (a new epoch). After a resume the first ``take`` skips the items the run had consumed, so a
    stream that yields the same items each pass continues where it stopped."""

    def __init__(self, source) -> None:
        self.source, self.position, self.iterator = source, 0, iter(source)

    def _next(self) -> Batch:
        try:
            item = next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.source)
            try:
                item = next(self.iterator)
            except StopIteration:
                raise ConfigError(f"{self.source.name}: the stream yields nothing (a spent generator?); pass an "
                                  "iterable that can be iterated again") from None
        self.position += 1
        return item

    def take(self, n: int, position: int) -> list[Batch]:
        while self.position < position:
            self._next()
        return [self._next() for _ in range(n)]


class StepBatches:
    """This rank's ``accumulate`` batches of each step: slices of the permutation of epoch (seed, epoch), or the
    stream's next items; augmented (``data.augment``) after the step's seed has drawn them."""

    def __init__(self, source, data_config, accumulate: int, seed: int, rank: int, world: int, device,
                 batch: int = 0, steps_per_epoch: int = 1) -> None:
        self.source, self.data_config, self.accumulate, self.seed = source, data_config, accumulate, seed
        self.rank, self.world, self.device = rank, world, device
        self.batch, self.steps_per_epoch = batch, steps_per_epoch
        self.cursor = None
        if isinstance(source, StreamingSource):
            self.cursor = StreamCursor(source.shard(rank, world) if world > 1 else source)
        self._epoch, self._perm = -1, None  # the epoch whose data order is held

    def __call__(self, step: int) -> list[Batch]:
        if self.cursor is not None:
            batches = [b.to(self.device) for b in self.cursor.take(self.accumulate, step * self.accumulate)]
        else:
            batches = self.from_permutation(step)
        if self.data_config.augment:  # the step's seed drew the data order; it draws the augmentations too
            batches = [augment(b, self.data_config.augment, self.data_config.crop_scale) for b in batches]
        return batches

    def from_permutation(self, step: int) -> list[Batch]:
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:  # the data order of an epoch depends on (seed, epoch) alone
            self._epoch = epoch
            self._perm = torch.randperm(len(self.source),
                                        generator=torch.Generator().manual_seed(step_seed(self.seed, -epoch - 1)))
        batches = []
        for micro in range(self.accumulate):
            first = (in_epoch * self.accumulate + micro) * self.batch
            index = self._perm[first : first + self.batch][self.rank :: self.world]
            batches.append(self.source.batch(index).to(self.device))
        return batches
