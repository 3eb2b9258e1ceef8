"""The suite protocol: what a suite receives for each test batch, where it keeps its running values, and the
registry that names it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from aekit.data.base import Dataset, Splits
from aekit.data.batch import Batch


@dataclass(frozen=True)
class EvalContext:
    """The settings of one evaluation, the same for every suite: the data (``splits`` is None when a lone
    Dataset is scored), the split's name that prefixes every key, and the options of the suites that take any."""

    splits: Splits | None
    test: Dataset
    split: str
    nll_samples: int
    nll_examples: int | None
    batch_size: int
    probe_examples: int
    probe_seeds: int = 10
    seed: int = 0
    progress: Any = None  # the pass's Phase: a suite with a long step calls progress.heartbeat(what)

    def heartbeat(self, detail: str) -> None:
        """Say where a long step is (a line when the pass was silent for a while), if progress is shown."""
        if self.progress is not None:
            self.progress.heartbeat(detail)


@dataclass
class SuiteState:
    """One suite's running values over the pass, fresh for every evaluation, so that a suite object itself keeps
    nothing between evaluations: ``add`` feeds a running mean, ``keep`` gathers rows (on the CPU) for the end,
    ``values`` holds anything else (a flag, a size)."""

    ctx: EvalContext
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    kept: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, values: torch.Tensor, weight: int = 1) -> None:
        """Add per-example ``values [B]`` to the running mean of ``name``, or one 0-dim value that counts as
        ``weight`` examples (a batch statistic weighted by its batch size)."""
        if values.dim() == 0:
            total, n = float(values) * weight, weight
        else:
            total, n = float(values.sum()), values.numel()
        self.sums[name] = self.sums.get(name, 0.0) + total
        self.counts[name] = self.counts.get(name, 0) + n

    def mean(self, name: str) -> float:
        return self.sums[name] / self.counts[name]

    def means(self) -> dict[str, float]:
        """Every running mean, by name."""
        return {name: self.mean(name) for name in self.sums if self.counts[name]}

    def keep(self, name: str, rows: torch.Tensor) -> None:
        self.kept.setdefault(name, []).append(rows.detach().cpu())

    def rows(self, name: str) -> torch.Tensor | None:
        """The rows kept under ``name``, concatenated; None when none were."""
        return torch.cat(self.kept[name]) if name in self.kept else None


class Suite:
    """A group of metrics computed over the one pass of an evaluation (the module docstring of
    :mod:`aekit.evaluation` shows the protocol at work). Subclass it, or register any object with these two
    methods."""

    def update(self, model: nn.Module, batch: Batch, out: Any, state: SuiteState) -> None:
        """Read one test batch: ``out = model(batch)`` is the pass's forward, shared by every suite; anything else
        (``model.embed(batch)``) is computed here from the same batch."""

    def compute(self, model: nn.Module, state: SuiteState) -> dict[str, Any]:
        """The metrics, named without the split (``evaluate`` prefixes it); by default every running mean."""
        return state.means()


@contextmanager
def own_stream(seed: int, key: int, device: torch.device) -> Iterator[None]:
    """Random draws from a stream of their own, seeded by ``(seed, key)``, that leave the pass's stream as it was:
    for a suite that draws more than the pass (importance samples), so that the other suites' metrics stay the
    same with it or without it."""
    accelerator = device.type != "cpu"
    with torch.random.fork_rng(devices=[device.index or 0] if accelerator else [],
                               device_type=device.type if accelerator else None):
        torch.manual_seed(int(np.random.SeedSequence((seed, key)).generate_state(1)[0]))
        yield


SUITES: dict[str, Suite] = {}


def register_suite(name: str) -> Callable[[Any], Any]:
    """Decorator: register a :class:`Suite` subclass (one instance serves every evaluation) or a suite object under
    ``name``, the name models list in ``suites``."""

    def add(suite):
        instance = suite() if isinstance(suite, type) else suite
        if not all(callable(getattr(instance, method, None)) for method in ("update", "compute")):
            raise TypeError(f"evaluation suite {name!r}: {suite!r} lacks update(model, batch, out, state) or "
                            "compute(model, state); subclass aekit.evaluation.Suite")
        if name in SUITES:
            raise ValueError(f"evaluation suite {name!r} is registered twice; pick another name")
        SUITES[name] = instance
        return suite

    return add
