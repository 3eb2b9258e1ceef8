"""The ``sparsity`` suite: how sparse a code is and how much of the data it explains (sparse autoencoders and
transcoders), each metric with the definition of :mod:`aekit.metrics.sparsity`."""

from __future__ import annotations

from typing import Any

import torch

from aekit.evaluation.suite import Suite, SuiteState, register_suite
from aekit.metrics.sparsity import VarianceAccumulator, l0


@register_suite("sparsity")
class Sparsity(Suite):
    """Over the pass's codes z = ``out.latent.mean`` (``[B, *L, D]``, a grid's positions as rows) and
    reconstructions of the batch's target (its inputs, or a transcoder's ``target``):

    - ``l0``: the mean over the rows of their non-zero latents;
    - ``fvu``: sum_n ||x_n - x_hat_n||^2 / sum_n ||x_n - mean(x)||^2 over the whole split, and
      ``explained_variance`` = 1 - fvu;
    - ``dead_fraction``: the share of the D latents that fire on none of the split's rows (and ``dead_latents``,
      their number); ``dense_fraction``: the share that fire on more than 10 % of them (Gao et al. 2024 call
      such latents dense)."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        z = out.latent.mean
        rows = z.reshape(-1, z.shape[-1])  # [B * L, D]
        state.add("l0", l0(rows))
        fired = (rows != 0).sum(0).double().cpu()  # rows each latent fired on, [D]
        state.values["fired"] = fired + state.values.get("fired", 0)
        state.values["rows"] = state.values.get("rows", 0) + rows.shape[0]
        target = batch.target if batch.target is not None else batch.inputs
        x_hat = model.likelihood.mean(out.x_params[-1])  # the whole code's reconstruction [B, *S]
        state.values.setdefault("variance", VarianceAccumulator()).add(target, x_hat)

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        fired: torch.Tensor = state.values["fired"]
        accumulator: VarianceAccumulator = state.values["variance"]
        return {**state.means(), "fvu": accumulator.fvu, "explained_variance": accumulator.explained_variance,
                "dead_latents": int((fired == 0).sum()), "dead_fraction": float((fired == 0).double().mean()),
                "dense_fraction": float((fired > 0.1 * state.values["rows"]).double().mean())}
