"""The ``representation`` suite: how much the point embeddings say about the labels, and how many of their
dimensions the data uses."""

from __future__ import annotations

from typing import Any

import torch

from aekit.evaluation.one_pass import embed_dataset
from aekit.evaluation.suite import EvalContext, Suite, SuiteState, register_suite
from aekit.metrics import active_units, knn_accuracy, linear_probe_accuracy


def _probed(ctx: EvalContext) -> bool:
    """Whether the probes run: labels on the test split and on a training split to fit them on."""
    return ctx.splits is not None and ctx.test.y is not None and ctx.splits.train.y is not None


def _counts_codes(model) -> bool:
    """Whether the suite counts the active codes: a bottleneck without a posterior (the variational suite counts
    a posterior's)."""
    return "variational" not in model.suites and hasattr(model, "bottleneck")


@register_suite("representation")
class Representation(Suite):
    """``linear_probe_acc`` and ``knn_acc``: probes fit on the embeddings of the training split's first
    ``probe_examples`` examples and scored on the test embeddings (labels needed); for a model without a posterior,
    ``active_units``, the code dimensions whose variance over the test examples exceeds 0.01."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        if _probed(state.ctx) or _counts_codes(model):
            state.keep("z", model.embed(batch).flatten(1))  # [B, D], what the probes read

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        ctx, z = state.ctx, state.rows("z")
        metrics: dict[str, Any] = {}
        if _counts_codes(model):
            metrics["active_units"] = active_units(z)
        if _probed(ctx):
            z_train = embed_dataset(model, ctx.splits.train, limit=ctx.probe_examples,
                                    progress=lambda done: ctx.heartbeat(f"probes: {done} of the training split"))
            z_train = z_train.flatten(1)
            y_train = ctx.splits.train.labels(slice(0, len(z_train)))
            if len(torch.unique(y_train)) > 1:
                metrics["linear_probe_acc"] = linear_probe_accuracy(z_train, y_train, z, ctx.test.y)
                metrics["knn_acc"] = knn_accuracy(z_train, y_train, z, ctx.test.y)
                metrics["probe_examples"] = len(z_train)
        return metrics
