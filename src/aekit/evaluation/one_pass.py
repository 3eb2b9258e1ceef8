"""The pass itself: one forward of the model per test batch, handed to the generic terms and to every suite."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from aekit.data.base import Dataset, Splits
from aekit.data.batch import Batch
from aekit.data.factors import has_factors
from aekit.errors import ConfigError
from aekit.evaluation.suite import SUITES, EvalContext, Suite, SuiteState


def batches(data: Dataset, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
    """``data`` in order, in batches of ``batch_size`` (the last one partial), its first ``limit`` examples."""
    n = len(data) if limit is None else min(limit, len(data))
    for start in range(0, n, batch_size):
        yield data.batch(slice(start, min(start + batch_size, n)))


@torch.no_grad()
def embed_dataset(model: nn.Module, data: Dataset, batch_size: int = 500, limit: int | None = None,
                  progress: Callable[[str], None] | None = None) -> torch.Tensor:
    """``model.embed`` of ``data``'s first ``limit`` examples (all by default), on the CPU: ``[N, *Z]``;
    ``progress(detail)`` is called after each batch."""
    device = next(model.parameters()).device
    rows = []
    for b in batches(data, batch_size, limit):
        rows.append(model.embed(b.to(device)).cpu())
        if progress is not None:
            progress(f"embedding {sum(map(len, rows)):,} examples")
    return torch.cat(rows)


class BatchTerms(Suite):
    """What every model's pass reports, whatever its suites: the mean of each per-example term ``[B]`` of
    ``out.terms`` and of each 0-dim statistic of ``out.stats`` (weighted by batch size), and of each whole-batch
    term (a 0-dim tensor in ``out.terms``, such as an MMD between the batch's codes and prior draws).

    A whole-batch term depends on how many examples the batch held, so it is averaged over the batches of the
    full evaluation size only (the last, partial batch is left out; a split smaller than one batch is scored
    whole), and ``batch_terms_batch_size`` states that size. It is the ``batch_size`` of :func:`evaluate`, so the
    two are coupled: the per-example means come out the same at any batch size, the whole-batch terms do not."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        ctx, n = state.ctx, len(batch)
        full_size = n == ctx.batch_size or len(ctx.test) <= ctx.batch_size
        for name, value in out.terms.items():
            if value.dim() == 1:
                state.add(name, value)
            elif value.dim() == 0 and full_size:
                state.add(name, value)
                state.values["batch_terms_batch_size"] = n
        for name, value in getattr(out, "stats", {}).items():
            if value.dim() == 0:
                state.add(name, value, weight=n)

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        return state.means() | state.values


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Splits | Dataset,
    nll_samples: int = 0,
    nll_examples: int | None = None,
    batch_size: int = 250,
    probe_examples: int = 10000,
    seed: int = 0,
    split: str = "test",
    suites: tuple[str, ...] | None = None,
    examples: int | None = None,
    protocol: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The metrics of ``model``'s suites (or of ``suites``) on the test split, or on ``data`` itself when it is a
    Dataset, from one pass in batches of ``batch_size``. Keys are flat, prefixed by the split: ``test/examples``;
    the mean of every loss term (``test/recon`` = -log p(x|z) per example, ``test/kl``, ...) and batch statistic;
    ``test/mse``, ``test/psnr``, ``test/bce``; ``test/elbo``, ``test/active_units``, ``test/kl_per_dim``; with
    ``nll_samples = K > 0`` ``test/nll`` = -log p(x) by importance sampling with K samples, averaged over the first
    ``nll_examples`` examples (all by default, counted in ``test/nll_examples``), with its standard error
    ``test/nll_stderr`` and, for discrete likelihoods, ``test/bits_per_dim`` = nll / (D ln 2); with labels
    ``test/linear_probe_acc`` and ``test/knn_acc`` (probes fit on the embeddings of ``probe_examples`` training
    examples); on a ground-truth factor dataset, the ``disentanglement`` suite's metrics for a model that embeds
    (unless ``suites`` names others). Random draws come from ``seed``; the caller's random state is left as it was.

    ``examples``: score only that many test examples, a fixed random subset (the same for every model: see
    :func:`aekit.evaluation.budget.subset_indices`), and say so in ``test/subset_of`` (the split's size);
    ``protocol`` (quick or full, :mod:`aekit.evaluation.budget`) is recorded as ``test/protocol``; ``progress``
    shows the pass on standard error (:class:`aekit.progress.Phase`).
    """
    from aekit.evaluation.budget import subset_indices
    from aekit.progress import Phase

    test = data.test if isinstance(data, Splits) else data
    if len(test) == 0:
        return {f"{split}/examples": 0}
    names = tuple(suites or model.suites)
    if suites is None and "representation" in names and has_factors(test):  # codes of a factor dataset: score them
        names += ("disentanglement",)
    unknown = [s for s in names if s not in SUITES]
    if unknown:
        raise ConfigError(f"evaluation suite {unknown[0]!r} is unknown; choose from {', '.join(SUITES)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be a positive number of test examples per batch")
    whole = len(test)
    if examples is not None and examples < whole:
        test = test.subset(subset_indices(whole, examples))
    model.eval()
    what = f"evaluating {getattr(model, 'name', type(model).__name__)} on {split}"
    phase = Phase(what + (f" ({protocol})" if protocol else ""), len(test), enabled=progress)
    ctx = EvalContext(data if isinstance(data, Splits) else None, test, split, nll_samples, nll_examples,
                      batch_size, probe_examples, seed=seed, progress=phase)
    parts = [(BatchTerms(), SuiteState(ctx))] + [(SUITES[name], SuiteState(ctx)) for name in names]
    device = next(model.parameters()).device
    seen = 0
    with phase, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for batch in batches(test, batch_size):
            batch = batch.to(device)
            out = model(batch)  # the one forward of this batch, for every suite
            for suite, state in parts:
                suite.update(model, batch, out, state)
            seen += len(batch)
            phase.update(len(batch))
        metrics: dict[str, Any] = {"examples": seen}
        if len(test) < whole:
            metrics["subset_of"] = whole
        if protocol:
            metrics["protocol"] = protocol
        for suite, state in parts:  # a suite's key replaces the generic one of the same name
            metrics.update(suite.compute(model, state))
    return {f"{split}/{k}": (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in metrics.items()}
