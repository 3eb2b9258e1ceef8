"""Input corruptions for denoising autoencoders (Vincent et al. 2008, 2010) and context encoders.

A corruption maps clean inputs ``x`` to ``x_tilde ~ C(x_tilde | x)``; the model reconstructs the clean x.
The noise can be passed in (``noise=``) so that tests are exact.

``context`` hides whole regions, as a context encoder does (Pathak et al. 2016; the ceVAE's branch, Zimmerer et
al. 2018): 1 to ``boxes`` random rectangles per example (spans of features of a table row, spans of time steps
of a window ``[T, C]``, every channel), each side up to ``level`` of the input's side, filled with uniform noise in
[0, 1) (``fill="noise"``) or zeros.
"""

from __future__ import annotations

import torch
from torch import nn

from aekit.errors import ConfigError
from aekit.parts import PartContext, build_part, register_part


class Corruption(nn.Module):
    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        """The random tensor the corruption needs, of x's shape."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.apply(x, self.draw(x) if noise is None else noise)


class GaussianNoise(Corruption):
    """x_tilde = x + level * eps, eps ~ N(0, I)."""

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn_like(x)

    def apply(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.level * noise


class MaskingNoise(Corruption):
    """Each input dimension is set to 0 with probability ``level``; noise holds uniforms in [0, 1)."""

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(x)

    def apply(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x * (noise >= self.level)


class SaltAndPepper(Corruption):
    """A fraction ``level`` of dimensions is set to 0 or 1 with equal odds; noise holds uniforms in [0, 1)."""

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(x)

    def apply(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        hit = noise < self.level
        salt = (noise < self.level / 2).to(x.dtype)
        return torch.where(hit, salt, x)


class ContextMask(Corruption):
    """Random rectangles hidden per example (Pathak et al. 2016); noise holds the fill where hidden, NaN elsewhere."""

    def __init__(self, level: float, boxes: int = 3, fill: str = "noise") -> None:
        super().__init__(level)
        if not 0 < level <= 1 or boxes < 1 or fill not in ("noise", "zero"):
            raise ConfigError(f"context mask: size {level} must lie in (0, 1], boxes {boxes} >= 1 and fill {fill!r} "
                              "noise or zero")
        self.boxes, self.fill = boxes, fill

    @staticmethod
    def spatial_axes(x: torch.Tensor) -> tuple[int, ...]:
        """The axes boxes span: (H, W) of images [B, C, H, W]; the time steps of a window [B, T, C]; the features
        of a table [B, D]."""
        return (2, 3) if x.dim() == 4 else (1,)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """A random boolean mask of x's shape, True inside 1 to ``boxes`` rectangles of each example."""
        b, k = x.shape[0], self.boxes
        inside = torch.arange(k, device=x.device) < torch.randint(1, k + 1, (b, 1), device=x.device)  # [B, K] used
        spans = []
        for axis in self.spatial_axes(x):
            n = x.shape[axis]
            side = torch.randint(1, max(1, int(self.level * n)) + 1, (b, k), device=x.device)  # [B, K]
            start = (torch.rand(b, k, device=x.device) * (n - side + 1)).long()  # [B, K]
            pos = torch.arange(n, device=x.device)  # [n]
            spans.append((pos >= start[..., None]) & (pos < (start + side)[..., None]))  # [B, K, n]
        if len(spans) == 2:
            inside = inside[..., None, None] & spans[0][..., :, None] & spans[1][..., None, :]  # [B, K, H, W]
        else:
            inside = inside[..., None] & spans[0]  # [B, K, n]
        region = inside.any(1)  # [B, *spatial]
        if x.dim() == 4:
            return region.unsqueeze(1).expand_as(x)  # [B, C, H, W]: every channel
        return region.view(b, -1, *([1] * (x.dim() - 2))).expand_as(x)  # [B, T, C] or [B, D]

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        fill = torch.rand_like(x) if self.fill == "noise" else torch.zeros_like(x)
        return torch.where(self.hidden(x), fill, torch.full_like(x, float("nan")))

    def apply(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.where(torch.isnan(noise), x, noise)


CORRUPTIONS = {"gaussian": GaussianNoise, "masking": MaskingNoise, "salt-pepper": SaltAndPepper,
               "context": ContextMask}
for _name, _cls in CORRUPTIONS.items():
    register_part("corruptions", _name, (_cls.__doc__ or "").split(";")[0].strip())(_cls)


def make_corruption(name: str, level: float, context: PartContext | None = None) -> Corruption:
    """The registered corruption ``name`` at ``level``; ``context`` reaches a corruption that declares one."""
    if level < 0 or (name != "gaussian" and level > 1):
        raise ConfigError(f"noise_level={level} is out of range for noise={name!r}")
    return build_part("corruptions", name, level, context=context)
