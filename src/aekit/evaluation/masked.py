"""The ``masked`` suite: a masked image model's errors on the hidden and on the visible patches."""

from __future__ import annotations

from aekit.evaluation.suite import Suite, SuiteState, register_suite


@register_suite("masked")
class Masked(Suite):
    """``masked_mse`` and ``visible_mse``: the mean squared error over each example's hidden (visible) patches, in
    pixels (with norm_pix_loss un-normalised) or, for a feature target, in the target's units; ``mask_ratio``: the
    share hidden. All read the pass's own :class:`~aekit.models.masked.MaskedOutput` (``pred``, ``mask``); the
    loss itself (``recon``) is among the generic terms."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        x = batch.inputs
        if model.config.target == "pixels":
            per_patch = (model.predicted_pixels(x, out) - model.patchify(x)).pow(2).mean(-1)  # [B, L]
        else:
            per_patch = model.patch_errors(x, out.pred)  # [B, L]
        state.add("masked_mse", model.hidden_mean(per_patch, out.mask))
        state.add("visible_mse", model.hidden_mean(per_patch, 1 - out.mask))
        state.add("mask_ratio", out.mask.mean(1))
