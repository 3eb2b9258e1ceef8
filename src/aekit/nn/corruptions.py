"""Input corruptions for denoising autoencoders (Vincent et al. 2008, 2010).

A corruption maps clean inputs ``x`` to ``x_tilde ~ C(x_tilde | x)``; the model reconstructs the clean x.
The noise can be passed in (``noise=``) so that tests are exact.
"""

from __future__ import annotations

import torch
from torch import nn

from aekit.errors import ConfigError
from aekit.parts import build_part, register_part


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


CORRUPTIONS = {"gaussian": GaussianNoise, "masking": MaskingNoise, "salt-pepper": SaltAndPepper}
for _name, _cls in CORRUPTIONS.items():
    register_part("corruptions", _name, (_cls.__doc__ or "").split(";")[0].strip())(_cls)


def make_corruption(name: str, level: float) -> Corruption:
    if level < 0 or (name != "gaussian" and level > 1):
        raise ConfigError(f"noise_level={level} is out of range for noise={name!r}")
    return build_part("corruptions", name, level)
