"""The ``reconstruction`` suite: how far E[x | z] lies from x, for any data shape."""

from __future__ import annotations

from typing import Any

import torch

from aekit.evaluation.suite import Suite, SuiteState, register_suite
from aekit.metrics import bce, mse, psnr


def reconstruction_of(model, batch, out) -> torch.Tensor:
    """E[x | z] of ``batch``: ``model.reconstruct``, except for a masked model, whose reconstruction is its visible
    patches with the hidden ones predicted by this pass's ``out`` (``reconstruct`` would draw another mask, a
    second forward)."""
    from aekit.models.masked import MaskedImageModel

    if not isinstance(model, MaskedImageModel):
        return model.reconstruct(batch)
    return model.reconstruction_of(batch.inputs, out)


@register_suite("reconstruction")
class Reconstruction(Suite):
    """``mse`` (averaged over data values), ``psnr`` and, when every test value lies in [0, 1], ``bce`` (summed
    over data values) of the reconstruction, each averaged over the examples. Integer data (token ids) has none."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        x = batch.target if batch.target is not None else batch.inputs  # what the model reconstructs
        if not x.is_floating_point():
            return
        x_hat = reconstruction_of(model, batch, out)
        state.add("mse", mse(x, x_hat))
        state.add("psnr", psnr(x, x_hat))
        state.values["in_unit_range"] = in_range = (state.values.get("in_unit_range", True) and bool(x.min() >= 0)
                                                    and bool(x.max() <= 1))
        if in_range:
            state.add("bce", bce(x, x_hat))

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        metrics = state.means()
        if not state.values.get("in_unit_range", True):  # bce is a likelihood of data in [0, 1] only
            metrics.pop("bce", None)
        return metrics
