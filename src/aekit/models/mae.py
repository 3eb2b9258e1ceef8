"""Masked autoencoder (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners").

An image is cut into L patches; a masker hides a share r of them (r = 0.75), the ViT encoder runs on the K
visible patches only, and a light Transformer decoder, given the encoded visible tokens and a shared learned
[MASK] token at every hidden position (each with its position embedding), predicts the pixels of every patch.
The loss is the mean squared error on the hidden patches only:

    L(x) = (1 / |M|) sum_{i in M} (1 / P) || x_hat_i - t_i ||^2,    t_i = x_i, or with norm_pix_loss
    t_i = (x_i - mean(x_i)) / sqrt(var(x_i) + 1e-6), each patch normalised by its own pixels' statistics.

The masker is a part (``masker=random|block|grid|red-noise|...``, :mod:`aekit.nn.maskers`), as is the ViT
(:mod:`aekit.nn.vit`). ``embed`` gives the class token (or the mean patch token) of the unmasked image: what the
linear probe and k-NN read.

A frozen teacher (``teacher=``: an aekit ViT checkpoint, or any ``nn.Module`` passed to ``build_model``;
:mod:`aekit.nn.teachers`) adds a feature loss on the K visible tokens, where the pixel loss is not taken:

    L_teacher(x) = (1 / K) sum_{i visible} (1 / T) || W s_i - LN(f_i) ||^2

with s_i the student's token (its encoder output, or block ``student_layer``'s), W a linear projection to the
teacher's width T and f_i the teacher's feature of patch i, layer-normalised without affine (``teacher_norm``).
``teacher_mode=mimic`` is MR-MAE (Gao et al. 2023): the teacher sees the whole image. ``teacher_mode=distill``
is DMAE (Bai et al. 2023): the teacher runs on the visible patches only, through its first ``teacher_layer``
blocks, and an intermediate student block is aligned to it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from aekit.config import require
from aekit.data.batch import Batch
from aekit.errors import DataError
from aekit.models.base import _numpy_in_numpy_out
from aekit.models.masked import MaskedImageModel, MaskedOutput, MaskingConfig
from aekit.nn.maskers import Masking
from aekit.nn.teachers import FrozenTeacher, load_teacher
from aekit.nn.vit import PRESETS, Block, ViTConfig, block_flops, init_weights, pooled, sincos_position_embedding
from aekit.objectives import Term
from aekit.registry import register_model

_FROM_PRESET = ("width", "depth", "heads", "decoder_width", "decoder_depth", "decoder_heads")


@dataclass(frozen=True)
class MAEConfig(MaskingConfig, ViTConfig):
    """``preset`` (tiny, small, base) fills the sizes left at 0; ``patch_size=0``: 16 for images of 128 pixels or
    more, else 4. ``pos_order="wh"`` reproduces MAE's (and ViTMAE's) position-embedding layout for their weights.
    ``pool``: what ``embed`` returns (``cls``, or ``mean`` of the patch tokens; default cls when there is one).
    ``options``: the masker's own settings (``masker.min_patches=4``). ``teacher``: an aekit ViT checkpoint
    folder whose features the visible tokens learn (module docstring); ``teacher_dim`` is filled from it."""

    width: int = 0
    depth: int = 0
    heads: int = 0
    preset: str = "tiny"
    decoder_width: int = 0
    decoder_depth: int = 0
    decoder_heads: int = 0
    hpm_weight: float = 1.0
    teacher: str = ""
    teacher_mode: str = "mimic"
    teacher_layer: int = 0
    student_layer: int = 0
    teacher_dim: int = 0
    teacher_weight: float = 1.0
    teacher_loss: str = "l2"
    teacher_norm: bool = True

    def __post_init__(self) -> None:
        require(self.preset in PRESETS, f"preset={self.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        for key in _FROM_PRESET:  # frozen: fill the sizes left at 0 once, so the saved config holds them
            if getattr(self, key) == 0:
                object.__setattr__(self, key, getattr(preset, key))
        super().__post_init__()
        require(all(getattr(self, k) > 0 for k in _FROM_PRESET), f"{', '.join(_FROM_PRESET)} must be positive")
        require(self.hpm_weight >= 0, f"hpm_weight={self.hpm_weight} must be >= 0")
        require(self.teacher_mode in TEACHER_MODES,
                f"teacher_mode={self.teacher_mode!r} is unknown; choose mimic (MR-MAE) or distill (DMAE)")
        require(self.teacher_loss in TEACHER_LOSSES,
                f"teacher_loss={self.teacher_loss!r} is unknown; choose one of {', '.join(TEACHER_LOSSES)}")
        require(self.teacher_weight >= 0 and self.teacher_layer >= 0 and self.teacher_dim >= 0,
                "teacher_weight, teacher_layer and teacher_dim must be >= 0")
        require(0 <= self.student_layer <= self.depth,
                f"student_layer={self.student_layer}: the encoder has {self.depth} blocks; choose 0 (its output) "
                f"to {self.depth}")


TEACHER_MODES = ("mimic", "distill")
TEACHER_LOSSES = {
    "l2": lambda a, b: (a - b).pow(2),
    "l1": lambda a, b: (a - b).abs(),
    "smooth-l1": lambda a, b: nn.functional.smooth_l1_loss(a, b, reduction="none"),
}


class MAEDecoder(nn.Module):
    """Embed the encoder's tokens to the decoder width, put the [MASK] token at each hidden position, undo the
    shuffle, add position embeddings, run the blocks and predict each patch's pixels."""

    def __init__(self, config: MAEConfig, out_dim: int) -> None:
        super().__init__()
        c = config
        self.class_token = c.class_token
        self.embed = nn.Linear(c.width, c.decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_width))
        self.register_buffer("pos_embed", sincos_position_embedding(*c.grid, c.decoder_width, c.pos_order)[None],
                             persistent=False)  # [1, L, D']
        self.blocks = nn.ModuleList(Block(c.decoder_width, c.decoder_heads, c.mlp_ratio, c.qkv_bias, c.norm_eps)
                                    for _ in range(c.decoder_depth))
        self.norm = nn.LayerNorm(c.decoder_width, eps=c.norm_eps)
        self.pred = nn.Linear(c.decoder_width, out_dim)
        self.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def tokens(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """The decoder's input ``[B, (1 +) L, D']``: visible tokens and [MASK] tokens in the original order, with
        their position embeddings."""
        h = self.embed(latent)  # [B, (1 +) K, D']
        cls, visible = (h[:, :1], h[:, 1:]) if self.class_token else (None, h)
        b, length = ids_restore.shape
        tokens = torch.cat([visible, self.mask_token.expand(b, length - visible.shape[1], -1)], 1)  # [B, L, D']
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, h.shape[-1]))  # original order
        tokens = tokens + self.pos_embed
        return tokens if cls is None else torch.cat([cls, tokens], 1)  # the class token's position embedding: 0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        out = self.pred(self.norm(tokens))  # [B, (1 +) L, p*p*C]
        return out[:, 1:] if self.class_token else out


class LossPredictor(nn.Module):
    """HPM's auxiliary branch: blocks of the decoder's width on the decoder's input, then one number per patch,
    the predicted reconstruction loss ``[B, L]`` (only its ranking is trained)."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        c = config
        self.class_token = c.class_token
        self.blocks = nn.ModuleList(Block(c.decoder_width, c.decoder_heads, c.mlp_ratio, c.qkv_bias, c.norm_eps)
                                    for _ in range(c.decoder_depth))
        self.norm = nn.LayerNorm(c.decoder_width, eps=c.norm_eps)
        self.head = nn.Linear(c.decoder_width, 1)
        self.apply(init_weights)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        out = self.head(self.norm(tokens))[..., 0]  # [B, (1 +) L]
        return out[:, 1:] if self.class_token else out


def relative_loss(predicted: torch.Tensor, actual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """HPM's ranking objective per example ``[B]``: over ordered pairs (i, j) of hidden patches whose true losses
    differ, the binary cross-entropy of sigmoid(p_j - p_i) against 1[l_j > l_i], averaged over those pairs."""
    diff = predicted.unsqueeze(1) - predicted.unsqueeze(2)  # [B, L, L]: p_j - p_i at (i, j)
    greater = actual.unsqueeze(1) > actual.unsqueeze(2)  # l_j > l_i
    valid = (mask.unsqueeze(1) * mask.unsqueeze(2)).bool() & (actual.unsqueeze(1) != actual.unsqueeze(2))
    bce = nn.functional.binary_cross_entropy_with_logits(diff, greater.to(diff.dtype), reduction="none")
    return (bce * valid).sum((1, 2)) / valid.sum((1, 2)).clamp(min=1)


@register_model("mae", config=MAEConfig,
                description="Masked autoencoder on a ViT that encodes only the visible patches (He et al. 2022)")
class MAE(MaskedImageModel):
    config_class = MAEConfig

    @property
    def training_share(self) -> float:
        """The encoder sees the visible patches only in training, every patch when it embeds."""
        return 1.0 - self.config.mask_ratio

    def __init__(self, config: MAEConfig, name: str = "mae", teacher: nn.Module | None = None) -> None:
        super().__init__(config, name)
        c = config
        self.encoder = c.encoder()
        self.target_part = c.make_target(c.patch_size)
        self.decoder = MAEDecoder(c, self.target_part.dim)
        self.masker = c.make_masker()
        self.loss_predictor = LossPredictor(c) if self.masker.needs_difficulty else None
        self.attach_teacher(teacher)

    def own_terms(self) -> dict[str, Term]:
        """HPM's ranking loss weighted by ``hpm_weight`` and a teacher's feature loss by ``teacher_weight``."""
        c = self.config
        return {**super().own_terms(), "hpm": Term(weight=c.hpm_weight), "teacher": Term(weight=c.teacher_weight)}

    def attach_teacher(self, module: nn.Module | None) -> None:
        """The frozen teacher and the projection to its width (from ``config.teacher`` when no module is given;
        a checkpoint folder that is gone leaves the student usable for everything but training)."""
        c = self.config
        if module is None and c.teacher and (os.path.exists(c.teacher) or not c.teacher_dim):
            module = load_teacher(c.teacher)
        self.teacher = None if module is None else FrozenTeacher(module, c.grid, c.teacher_layer)
        if self.teacher is not None:
            self.freeze("teacher")
            dim = self.teacher.feature_dim(tuple(c.data_shape))
            if c.teacher_dim and dim != c.teacher_dim:
                raise DataError(f"the teacher gives {dim}-dim features but this model was trained with teacher_dim="
                                f"{c.teacher_dim}; pass the teacher it was trained with")
            self.config = c = replace(c, teacher_dim=dim)
        self.teacher_head = nn.Linear(c.width, c.teacher_dim) if c.teacher_dim else None

    # The paper's steps (patchify, unpatchify, target and the loss on hidden patches: MaskedImageModel).
    def random_masking(self, tokens: torch.Tensor, noise: torch.Tensor | None = None,
                       difficulty: torch.Tensor | None = None) -> Masking:
        """The masker's choice of visible tokens (``noise [B, L]`` makes it exact)."""
        return self.masker(tokens, self.config.grid, noise, difficulty=difficulty)

    @torch.no_grad()
    def predicted_difficulty(self, tokens: torch.Tensor) -> torch.Tensor:
        """HPM: the loss predictor's view of the whole image ``[B, L]`` (every patch visible, no gradient)."""
        b, length = tokens.shape[:2]
        order = torch.arange(length, device=tokens.device).expand(b, -1)
        return self.loss_predictor(self.decoder.tokens(self.encoder(tokens), order))

    def forward_encoder(self, x: torch.Tensor, noise: torch.Tensor | None = None, keep_layer: int = 0):
        """``(latent [B, 1 + K, D], masking)``; with ``keep_layer=j`` also block j's visible tokens."""
        tokens = self.encoder.patch_tokens(x)  # [B, L, D]
        difficulty = self.predicted_difficulty(tokens) if self.loss_predictor is not None and self.training else None
        masking = self.random_masking(tokens, noise, difficulty)
        if not keep_layer:
            return self.encoder(masking.visible(tokens)), masking
        latent, hidden = self.encoder(masking.visible(tokens), keep_layer)
        return latent, masking, hidden

    def teacher_loss(self, x: torch.Tensor, student: torch.Tensor, masking: Masking) -> torch.Tensor:
        """MR-MAE's mimic / DMAE's distillation loss per example ``[B]`` on the visible tokens ``student [B, K, D]``
        (the class token dropped)."""
        c = self.config
        if self.teacher is None:
            raise DataError(f"this mae learns a teacher's features (teacher_dim={c.teacher_dim}) but has no teacher: "
                            f"{f'teacher={c.teacher} is not found' if c.teacher else 'none was passed'}; pass "
                            "teacher=<module or checkpoint folder> to build_model / aekit.load")
        target = self.teacher.features(x, masking.ids_keep, visible_only=c.teacher_mode == "distill")  # [B, K, T]
        if c.teacher_norm:
            target = nn.functional.layer_norm(target, target.shape[-1:], eps=1e-6)
        return TEACHER_LOSSES[c.teacher_loss](self.teacher_head(student), target).mean((1, 2))

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels of every patch ``[B, L, p*p*C]``, and the decoder's input tokens."""
        tokens = self.decoder.tokens(latent, ids_restore)
        return self.decoder(tokens), tokens

    def forward(self, x: torch.Tensor | Batch, noise: torch.Tensor | None = None) -> MaskedOutput:
        """Mask, encode the visible patches, decode every patch, score the hidden ones."""
        if isinstance(x, Batch):
            x = x.inputs
        self.check_input(x)
        c, student = self.config, None
        if self.teacher_head is not None and c.student_layer:
            latent, masking, student = self.forward_encoder(x, noise, c.student_layer)
        else:
            latent, masking = self.forward_encoder(x, noise)
        pred, tokens = self.forward_decoder(latent, masking.ids_restore)
        per_patch, mask = self.patch_errors(x, pred), masking.mask  # [B, L] each
        terms = {"recon": self.hidden_mean(per_patch, mask)}
        if self.teacher_head is not None:  # the visible tokens learn the teacher's features
            student = latent if student is None else student
            terms["teacher"] = self.teacher_loss(x, student[:, 1:] if c.class_token else student, masking)
        if self.loss_predictor is not None:  # HPM: learn to rank the hidden patches by their loss
            terms["hpm"] = relative_loss(self.loss_predictor(tokens), per_patch.detach(), mask)
        return MaskedOutput(pred=pred, mask=mask, ids_restore=masking.ids_restore, latent=latent, terms=terms,
                         stats={"mask_ratio": mask.mean()})

    # What a user calls.
    @_numpy_in_numpy_out
    @torch.no_grad()
    def embed(self, x: torch.Tensor, condition: Any = None) -> torch.Tensor:
        """Features of the whole (unmasked) image ``[B, D]``: the class token, or the mean patch token."""
        self.check_input(x)
        self.check_condition(condition, x.shape[0])
        h = self.encoder(self.encoder.patch_tokens(x))  # [B, (1 +) L, D]
        return pooled(h, self.config.pool, self.config.class_token)

    def no_weight_decay(self) -> tuple[str, ...]:
        return ("encoder.cls_token", "decoder.mask_token")

    def flops(self, visible_only: bool = True) -> dict[str, int]:
        """Matrix-product FLOPs of one forward pass per image (2 per multiply-add): the patch embedding, the
        encoder on ``K + 1`` tokens (all ``L + 1`` with ``visible_only=False``), the decoder on ``L + 1`` and the
        prediction head. Training costs about 3x (forward + backward)."""
        return mae_flops(self.config, visible_only)


def mae_flops(c: MAEConfig, visible_only: bool = True) -> dict[str, int]:
    from aekit.nn.maskers import visible_count

    length, cls = math.prod(c.grid), int(c.class_token)
    patch_dim = c.patch_size**2 * c.data_shape[0]
    kept = visible_count(length, c.mask_ratio) if visible_only else length
    encoder = c.depth * block_flops(kept + cls, c.width, c.mlp_ratio) + 2 * length * patch_dim * c.width
    decoder = (c.decoder_depth * block_flops(length + cls, c.decoder_width, c.mlp_ratio)
               + 2 * (kept + cls) * c.width * c.decoder_width + 2 * (length + cls) * c.decoder_width * patch_dim)
    return {"encoder": encoder, "decoder": decoder, "total": encoder + decoder}
