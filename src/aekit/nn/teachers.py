"""Frozen teachers: networks whose per-patch features a masked student learns to predict.

A teacher maps images ``x [B, C, H, W]`` to one feature vector per patch of the student's grid ``[B, L, T]``.
Two kinds are accepted:

- an aekit Vision Transformer model (``mae``, ``classifier``; from its checkpoint folder or in memory): its
  encoder can run on the visible patches only and stop after its first ``layer`` blocks, as DMAE's partially
  executed teacher does (Bai et al. 2023);
- any ``nn.Module``: its output ``[B, L, T]`` (tokens), ``[B, 1 + L, T]`` (a class token first, dropped),
  ``[B, T, h, w]`` (a feature map of the student's ``h x w`` grid), or an object with ``last_hidden_state``
  (Hugging Face models); a tuple's first element is read. It always sees the whole image.

The teacher is kept in evaluation mode and out of the gradients, the optimisers and the saved weights.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from aekit.errors import ConfigError, DataError


def _vit_encoder(module: nn.Module):
    from aekit.nn.vit import ViTEncoder

    encoder = getattr(module, "encoder", module)
    return encoder if isinstance(encoder, ViTEncoder) else None


def load_teacher(path: str | os.PathLike) -> nn.Module:
    """An aekit model from its run or model folder, to serve as a teacher."""
    from aekit.io import load

    if not os.path.exists(path):
        raise DataError(f"teacher={path}: no such checkpoint folder; train the teacher first (aekit train mae ...) "
                        "or pass a module, build_model('mae', teacher=module)")
    model = load(path)
    if _vit_encoder(model) is None:
        raise DataError(f"teacher={path}: a {getattr(model, 'name', type(model).__name__)} has no Vision "
                        "Transformer encoder; use a mae or classifier checkpoint, or pass an nn.Module")
    return model


class FrozenTeacher(nn.Module):
    """``features(x, ids_keep=None)``: the teacher's features of each patch ``[B, L, T]``, or of the visible ones
    ``[B, K, T]`` when ``ids_keep [B, K]`` is given: with ``visible_only`` a ViT teacher runs on those patches
    only (DMAE), else it sees the whole image and its features at those patches are read (MR-MAE)."""

    def __init__(self, module: nn.Module, grid: tuple[int, int], layer: int = 0) -> None:
        super().__init__()
        self.module = module
        self.vit = _vit_encoder(module)
        self.grid, self.layer = tuple(grid), layer
        if layer and self.vit is None:
            raise ConfigError(f"teacher_layer={layer} needs a ViT teacher (an aekit mae or classifier); a module's "
                              "own output is its only feature: set teacher_layer=0")
        if self.vit is not None and not 0 <= layer <= len(self.vit.blocks):
            raise ConfigError(f"teacher_layer={layer}: the teacher has {len(self.vit.blocks)} blocks; choose 0 (all) "
                              f"to {len(self.vit.blocks)}")
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)  # always evaluation mode: no dropout, running BatchNorm statistics

    @torch.no_grad()
    def features(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None, visible_only: bool = False
                 ) -> torch.Tensor:
        if self.vit is not None and visible_only and ids_keep is not None:
            return self._vit_features(x, ids_keep)
        out = self._vit_features(x) if self.vit is not None else _tokens_of(self.module(x), self.grid)  # [B, L, T]
        return out if ids_keep is None else _gather(out, ids_keep)  # [B, K, T]

    def _vit_features(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        vit = self.vit
        if tuple(vit.grid) != self.grid:
            raise DataError(f"the teacher's patch grid {tuple(vit.grid)} is not the student's {self.grid}; use a "
                            "teacher of the same image size and patch_size")
        tokens = vit.patch_tokens(x)  # [B, L, D]
        if ids_keep is not None:
            tokens = _gather(tokens, ids_keep)  # [B, K, D]
        h = vit.first_blocks(tokens, self.layer) if self.layer else vit(tokens)  # [B, (1 +) K, D]
        return h[:, 1:] if vit.cls_token is not None else h

    def feature_dim(self, data_shape: tuple[int, ...]) -> int:
        """T, found by one forward pass on a blank image; a teacher whose output does not fit is an error."""
        blank = torch.zeros(1, *data_shape, device=next(iter(self.module.parameters()), torch.empty(0)).device)
        return self.features(blank).shape[-1]


def _gather(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))  # [B, K, T]


def _tokens_of(out: Any, grid: tuple[int, int]) -> torch.Tensor:
    """A module's output as per-patch tokens ``[B, L, T]``."""
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise DataError(f"the teacher returned a {type(out).__name__}; it must return a tensor of per-patch features")
    length = grid[0] * grid[1]
    if out.dim() == 4:  # a feature map [B, T, h, w]
        if tuple(out.shape[2:]) != grid:
            raise DataError(f"the teacher's feature map is {out.shape[2]}x{out.shape[3]}, the student's patch grid "
                            f"{grid[0]}x{grid[1]}; choose a patch_size or teacher whose grids agree")
        return out.flatten(2).transpose(1, 2)  # [B, L, T]
    if out.dim() == 3 and out.shape[1] in (length, length + 1):
        return out[:, -length:]  # a leading class token dropped
    shape = tuple(out.shape)
    raise DataError(f"the teacher gives features of shape {shape}; the student needs one per patch of its "
                    f"{grid[0]}x{grid[1]} grid: [B, {length}, T], [B, {length + 1}, T] or [B, T, {grid[0]}, {grid[1]}]")
