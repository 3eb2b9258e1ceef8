"""SparK: masked image modeling for convolutional networks (Tian et al. 2023, "Designing BERT for Convolutional
Networks: Sparse and Hierarchical Masked Modeling").

The image is cut into patches of the CNN's total stride (2^(stages - 1) here, so that the deepest feature map
has one position per patch) and a masker hides a share r of them (r = 0.6, SparK's). The encoder treats the
visible patches as a sparse image: every convolution is followed by zeroing the hidden positions and batch
normalisation counts visible positions only (:mod:`aekit.nn.sparse_conv`), so nothing hidden leaks in at any
scale. The hierarchical decoder fills each scale's hidden positions with a learned [MASK] embedding
("densifying"), and a light U-Net from the deepest scale up predicts every pixel. The loss is MAE's, on the hidden
patches only, with per-patch normalised targets (``norm_pix_loss``, on by default as in SparK):

    L(x) = (1 / |M|) sum_{i in M} (1 / P) || x_hat_i - t_i ||^2.

``embed`` runs the encoder on the whole image (a dense CNN then) and averages the deepest map over space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from aekit.config import require
from aekit.data.batch import Batch
from aekit.errors import ShapeConfigError
from aekit.models.base import _numpy_in_numpy_out
from aekit.models.masked import MaskedImageModel, MaskedOutput, MaskingConfig
from aekit.nn.maskers import Masking, visible_count
from aekit.nn.sparse_conv import LightDecoder, SparseResNet
from aekit.registry import register_model


def default_stages(data_shape: tuple[int, ...]) -> int:
    """The most stages (at most 4) whose patch 2^(stages - 1) divides the image and leaves a grid of at least
    4 x 4: 32 x 32 -> 4 (patch 8), 28 x 28 -> 3 (patch 4), 8 x 8 -> 2 (patch 2)."""
    height, width = data_shape[1:]
    for stages in (4, 3, 2):
        patch = 2 ** (stages - 1)
        if height % patch == 0 and width % patch == 0 and min(height, width) // patch >= 4:
            return stages
    return 1


@dataclass(frozen=True)
class SparKConfig(MaskingConfig):
    """``stages=0``: :func:`default_stages`; stage i is ``width * 2^i`` channels wide with ``blocks`` residual
    blocks; ``decoder_width``: the decoder's width at the deepest scale (halved at each scale up; default the
    encoder's deepest width)."""

    data_shape: tuple[int, ...] = (3, 32, 32)
    stages: int = 0
    width: int = 32
    blocks: int = 1
    decoder_width: int = 0
    mask_ratio: float = 0.6
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        if len(self.data_shape) != 3:
            raise ShapeConfigError(f"spark takes images [C, H, W], got data shape {tuple(self.data_shape)}; use ae "
                                   "or vae for vectors")
        if self.stages == 0:
            object.__setattr__(self, "stages", default_stages(tuple(self.data_shape)))
        require(1 <= self.stages <= 6, f"stages={self.stages} must be in 1..6")
        require(self.width > 0 and self.blocks > 0 and self.decoder_width >= 0,
                "width and blocks must be positive, decoder_width >= 0")
        if self.decoder_width == 0:
            object.__setattr__(self, "decoder_width", self.widths[-1])
        super().__post_init__()
        _, height, width = self.data_shape
        if height % self.patch_size or width % self.patch_size:
            raise ShapeConfigError(f"image size {height}x{width} is not divisible by spark's patch {self.patch_size} "
                                   f"(2^(stages - 1), stages={self.stages}); choose fewer stages or crop the images")
        visible_count(math.prod(self.grid), self.mask_ratio)  # a ratio that hides every patch is an error
        require(self.target == "pixels", f"target={self.target}: spark predicts pixels; use target=pixels")
        require(self.masker != "hpm", "masker=hpm needs mae's loss predictor on decoder tokens; use mae for hpm")

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.width * 2**i for i in range(self.stages))

    @property
    def patch_size(self) -> int:
        return 2 ** (self.stages - 1)

    @property
    def grid(self) -> tuple[int, int]:
        return self.data_shape[1] // self.patch_size, self.data_shape[2] // self.patch_size


@register_model("spark", config=SparKConfig,
                description="Masked modeling for a CNN with sparse convolutions and a hierarchical decoder (SparK)")
class SparK(MaskedImageModel):
    config_class = SparKConfig

    def __init__(self, config: SparKConfig, name: str = "spark") -> None:
        super().__init__(config, name)
        c = config
        self.encoder = SparseResNet(c.data_shape[0], c.widths, c.blocks)
        self.decoder = LightDecoder(c.widths, c.decoder_width, c.data_shape[0])
        self.masker = c.make_masker()
        self.target_part = c.make_target(c.patch_size)

    # The paper's steps.
    def random_masking(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> Masking:
        """The masker's choice of visible patches on the ``h x w`` grid (``noise [B, L]`` makes it exact)."""
        placeholder = x.new_zeros(x.shape[0], math.prod(self.config.grid), 0)  # [B, L, 0]: the masker reads shapes
        return self.masker(placeholder, self.config.grid, noise)

    def active_map(self, masking: Masking) -> torch.Tensor:
        """The visible patches as a map ``[B, 1, h, w]`` (1 = visible)."""
        return (1 - masking.mask).view(-1, 1, *self.config.grid)

    def forward_encoder(self, x: torch.Tensor, active: torch.Tensor) -> list[torch.Tensor]:
        """The sparse CNN on the visible pixels: every stage's map, hidden positions zero."""
        pixels = F.interpolate(active, scale_factor=self.config.patch_size, mode="nearest")  # [B, 1, H, W]
        return self.encoder(x * pixels, active)

    def forward_decoder(self, features: list[torch.Tensor], active: torch.Tensor) -> torch.Tensor:
        """Densify every scale, decode from the deepest up: each patch's prediction ``[B, L, p*p*C]``."""
        return self.patchify(self.decoder(features, active))

    def forward(self, x: torch.Tensor | Batch, noise: torch.Tensor | None = None) -> MaskedOutput:
        """Mask, encode the visible patches sparsely, decode every pixel, score the hidden patches."""
        if isinstance(x, Batch):
            x = x.inputs
        self.check_input(x)
        masking = self.random_masking(x, noise)
        active = self.active_map(masking)
        features = self.forward_encoder(x, active)
        pred = self.forward_decoder(features, active)
        mask = masking.mask  # [B, L]
        return MaskedOutput(pred=pred, mask=mask, ids_restore=masking.ids_restore, latent=features[-1],
                            terms={"recon": self.forward_loss(x, pred, mask)}, stats={"mask_ratio": mask.mean()})

    # What a user calls.
    @_numpy_in_numpy_out
    @torch.no_grad()
    def embed(self, x: torch.Tensor, condition: Any = None) -> torch.Tensor:
        """Features of the whole image ``[B, D]``: the deepest map of the dense encoder, averaged over space."""
        self.check_input(x)
        self.check_condition(condition, x.shape[0])
        return self.encoder(x)[-1].mean((2, 3))

    def no_weight_decay(self) -> tuple[str, ...]:
        return tuple(f"decoder.mask_tokens.{i}" for i in range(self.config.stages))
