"""What every masked image model shares: a masker on a grid of patches, a target per patch, and the loss on the
hidden patches only,

    L(x) = (1 / |M|) sum_{i in M} (1 / T) || y_hat_i - t_i ||^2,

with t_i the patch's pixels (normalised by its own mean and variance with ``norm_pix_loss``) or another target
part (``hog``). The masked views of the report (original | masked | reconstruction) and the ``masked`` suite read
the same methods for every such model: ``mae`` (a ViT on the visible patches) and ``spark`` (a CNN on a sparse,
masked image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from aekit.config import require
from aekit.data.batch import Batch
from aekit.errors import DataError
from aekit.models.base import Model, _numpy_in_numpy_out
from aekit.nn.maskers import RATIO_SCHEDULES, Masker, make_masker
from aekit.nn.targets import Target, make_target, patchify
from aekit.objectives import Term
from aekit.parts import PartContext, part_names


@dataclass(frozen=True)
class MaskingConfig:
    """The settings every masked image model takes: the masker and its ratio (and schedule), the target, the
    objective and the parts' own settings (``masker.KEY=VALUE`` and ``target.KEY=VALUE`` into ``options``)."""

    mask_ratio: float = 0.75
    masker: str = "random"
    ratio_schedule: str = "constant"
    ratio_start: float = -1.0
    ratio_steps: int = 0
    norm_pix_loss: bool = False
    target: str = "pixels"
    objective: str = ""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    terms: dict[str, Any] = field(default_factory=dict)
    part_options: ClassVar[tuple[str, ...]] = ("masker", "target")  # masker.KEY=VALUE: options["masker"]

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        require(0.0 <= self.mask_ratio < 1.0, f"mask_ratio={self.mask_ratio} must be in [0, 1); 0.75 is MAE's")
        require(self.masker in part_names("maskers"),
                f"masker={self.masker!r} is unknown; choose one of {', '.join(part_names('maskers'))}")
        require(self.ratio_schedule in RATIO_SCHEDULES,
                f"ratio_schedule={self.ratio_schedule!r} is unknown; choose one of {', '.join(RATIO_SCHEDULES)}")
        require(self.target in part_names("targets"),
                f"target={self.target!r} is unknown; choose one of {', '.join(part_names('targets'))}")
        unknown = sorted(set(self.options) - set(self.part_options))
        require(not unknown, f"options for {', '.join(unknown)}: the parts with settings here are "
                f"{', '.join(self.part_options)}")

    def make_masker(self) -> Masker:
        return make_masker(self.masker, self.mask_ratio, self.options.get("masker", {}), self.ratio_schedule,
                           None if self.ratio_start < 0 else self.ratio_start, self.ratio_steps,
                           PartContext(data_shape=tuple(self.data_shape)))

    def make_target(self, patch: int) -> Target:
        return make_target(self.target, PartContext(data_shape=tuple(self.data_shape)), patch, self.norm_pix_loss,
                           self.options.get("target", {}))


@dataclass
class MaskedOutput:
    """pred ``[B, L, T]``: every patch's prediction (its pixels, normalised ones with norm_pix_loss); mask
    ``[B, L]`` (1 = hidden); latent: the encoder's output (a ViT's visible tokens ``[B, 1 + K, D]``, a CNN's
    deepest feature map); terms: ``recon`` ``[B]``, the loss on the hidden patches (and the model's other
    terms); stats: ``mask_ratio``."""

    pred: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor
    latent: torch.Tensor
    terms: dict[str, torch.Tensor]
    stats: dict[str, torch.Tensor]



class MaskedImageModel(Model):
    """A model that hides patches of ``config.patch_size`` on ``config.grid`` and predicts ``target_part`` at each
    (subclasses build ``masker`` and ``target_part``, and their own encoder and decoder)."""

    masker: Masker
    target_part: Target

    def own_terms(self) -> dict[str, Term]:
        """``recon``, the loss on the hidden patches; a model may add terms of its own (HPM's ranking loss, a
        teacher's feature loss)."""
        return {"recon": Term()}

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W] -> [B, L, p*p*C]``, each patch's pixels row by row with the channels last."""
        return patchify(x, self.config.patch_size)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, L, p*p*C] -> [B, C, H, W]``, the inverse of :meth:`patchify`."""
        p, (h, w) = self.config.patch_size, self.config.grid
        b, c = patches.shape[0], self.config.data_shape[0]
        x = patches.reshape(b, h, w, p, p, c).permute(0, 5, 1, 3, 2, 4)  # [B, C, h, p, w, p]
        return x.reshape(b, c, h * p, w * p)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What to predict at each patch ``[B, L, T]``: its pixels (normalised per patch with norm_pix_loss), or
        its HOG features (``target=hog``)."""
        return self.target_part(x)

    @property
    def suites(self) -> tuple[str, ...]:
        pixels = self.config.target == "pixels"
        return ("reconstruction", "masked", "representation") if pixels else ("masked", "representation")

    def patch_errors(self, x: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Each patch's mean squared error ``[B, L]``."""
        return (pred - self.target(x)).pow(2).mean(-1)

    @staticmethod
    def hidden_mean(per_patch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The mean of ``per_patch [B, L]`` over each example's hidden patches ``[B]``."""
        return (per_patch * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward_loss(self, x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per example ``[B]``: the mean over hidden patches of each patch's mean squared error."""
        return self.hidden_mean(self.patch_errors(x, pred), mask)

    def predicted_pixels(self, x: torch.Tensor, out: MaskedOutput) -> torch.Tensor:
        """The predictions in pixel space ``[B, L, p*p*C]``: with norm_pix_loss, each patch is un-normalised with
        its own statistics (those of the true patch, as MAE's visualisation does)."""
        if self.config.target != "pixels":
            raise DataError(f"target={self.config.target}: this model predicts features, not pixels")
        if not self.config.norm_pix_loss:
            return out.pred
        t = self.patchify(x)
        return out.pred * (t.var(-1, keepdim=True) + 1e-6).sqrt() + t.mean(-1, keepdim=True)

    @torch.no_grad()
    def masked_views(self, x: torch.Tensor | Batch, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``original``, ``masked`` (hidden patches set to 0.5 grey), ``prediction`` (every patch predicted) and
        ``reconstruction`` (visible patches pasted over the prediction), each ``[B, C, H, W]``."""
        x = x.inputs if isinstance(x, Batch) else x
        out = self(x, noise=noise)
        patches, hidden = self.patchify(x), out.mask.unsqueeze(-1)  # [B, L, P], [B, L, 1]
        views = {"original": x, "masked": self.unpatchify(patches * (1 - hidden) + 0.5 * hidden)}
        if self.config.target == "pixels":  # feature targets have no image to show
            views["prediction"] = self.unpatchify(self.predicted_pixels(x, out))
            views["reconstruction"] = self.reconstruction_of(x, out)
        return views

    def reconstruction_of(self, x: torch.Tensor, out: MaskedOutput) -> torch.Tensor:
        """The image ``[B, C, H, W]`` of one forward's ``out``: the visible patches of x as they are, the hidden
        ones as predicted."""
        hidden = out.mask.unsqueeze(-1)  # [B, L, 1], 1 = hidden
        return self.unpatchify(self.patchify(x) * (1 - hidden) + self.predicted_pixels(x, out) * hidden)

    @_numpy_in_numpy_out
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, condition: Any = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The image from its visible patches: those patches as they are, the hidden ones predicted."""
        self.check_condition(condition, x.shape[0])
        return self.masked_views(x, noise)["reconstruction"]
