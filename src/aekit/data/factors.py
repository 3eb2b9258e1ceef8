"""Ground-truth factor datasets: images rendered from a grid of factors of variation, for disentanglement metrics.

Every image is a point of a product grid of discrete factors (shape x scale x orientation x position, ...): the
dataset holds only the flat grid indices of its examples, and an image is drawn from its factor indices when a
batch asks for it, the same pixels every time (nothing is random, nothing but small tables is kept in memory).
:meth:`FactorImages.factors` gives the factor indices of the same examples a batch holds, and
:attr:`FactorGrid.values` their values (a scale of 0.5, an angle in radians).

- ``dsprites``: the dSprites grid of Matthey et al. (2017): 3 shapes (square, ellipse, heart) x 6 scales
  (0.5 .. 1) x 40 orientations (0 .. 2 pi, the full turn left out) x 32 x 32 positions, 737,280 binary
  ``1 x 64 x 64`` images. The sprite's centre sits on pixel 16 + i for position index i (0 .. 31), so a sprite
  moves by one pixel per step and never leaves the image;
- ``color-dsprites``: the same sprites painted in one of 6 hues (a seventh factor, ``colour``), ``3 x 64 x 64``;
- ``shapes3d``: a 2-D rendering of the factors of 3D Shapes (Burgess & Kim 2018): floor, wall and object hue
  (10 each, 0 .. 0.9), object scale (8, 0.75 .. 1.25), shape (cube, cylinder, sphere, capsule) and orientation
  (15, -30 .. 30 degrees, which tilts the horizon and turns the object), with shading that darkens the floor
  towards the horizon, the wall away from the light and the object across (radially for the sphere):
  480,000 ``3 x 64 x 64`` images;
- ``xy-blocks``: a 2 x 2 block at 8 x 8 positions in 4 intensities, 256 ``1 x 16 x 16`` images, for quick tests.

:class:`FactorSampler` draws factor indices with one factor fixed and the others free, what the BetaVAE and
FactorVAE scores need; :meth:`FactorImages.render` draws the images of any factor indices.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aekit.data.base import Index
from aekit.data.batch import Batch
from aekit.errors import DataError, did_you_mean

Renderer = Callable[[np.ndarray], torch.Tensor]  # factor indices [B, K] -> float32 images [B, C, H, W]


@dataclass(frozen=True)
class FactorGrid:
    """The factors of a dataset: their names and the value of each index, ``values[k][i]``."""

    names: tuple[str, ...]
    values: tuple[np.ndarray, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.values)

    def __len__(self) -> int:
        return math.prod(self.sizes)

    def factor(self, factor: str | int) -> int:
        """The position of ``factor`` (a name or a position), with a one-line error where there is none."""
        if isinstance(factor, str):
            if factor not in self.names:
                raise DataError(f"factor {factor!r} does not exist{did_you_mean(factor, self.names)}; the factors "
                                f"are {', '.join(self.names)}")
            return self.names.index(factor)
        if not 0 <= factor < len(self.names):
            raise DataError(f"factor {factor} does not exist; there are {len(self.names)} ({', '.join(self.names)})")
        return int(factor)

    def unravel(self, flat: np.ndarray) -> np.ndarray:
        """Flat grid indices ``[B]`` -> factor indices ``[B, K]`` (the last factor varies fastest)."""
        return np.stack(np.unravel_index(flat, self.sizes), axis=1).astype(np.int64)

    def ravel(self, factors: np.ndarray) -> np.ndarray:
        """Factor indices ``[B, K]`` -> flat grid indices ``[B]``; an index off the grid is an error."""
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != len(self.sizes):
            raise DataError(f"factor indices of shape {factors.shape}; give [B, {len(self.sizes)}] "
                            f"({', '.join(self.names)})")
        bad = (factors < 0) | (factors >= np.array(self.sizes))
        if bad.any():
            row, k = np.argwhere(bad)[0]
            self.off_grid(k, factors[row, k])
        return np.ravel_multi_index(tuple(factors.T), self.sizes)

    def off_grid(self, k: int, value: int) -> None:
        raise DataError(f"factor {self.names[k]} index {value} is off the grid; it runs 0 .. {self.sizes[k] - 1}")

    def value_of(self, factors: np.ndarray) -> np.ndarray:
        """Factor indices ``[B, K]`` -> factor values ``[B, K]`` float64."""
        return np.stack([self.values[k][factors[:, k]] for k in range(len(self.names))], axis=1)


class FactorSampler:
    """Factor indices drawn uniformly from a grid, all free (:meth:`sample`) or with one fixed (:meth:`fixed`), from
    a generator of its own seeded with ``seed``."""

    def __init__(self, grid: FactorGrid, seed: int = 0) -> None:
        self.grid, self.rng = grid, np.random.default_rng(seed)

    def sample(self, n: int) -> np.ndarray:
        """``[n, K]`` factor indices, each factor uniform over its values, independently."""
        return np.stack([self.rng.integers(0, size, n) for size in self.grid.sizes], axis=1)

    def fixed(self, factor: str | int, n: int, value: int | None = None) -> np.ndarray:
        """``[n, K]`` factor indices whose ``factor`` is ``value`` in every row (one drawn at random when None),
        the other factors free: the batches of Higgins et al. (2017) and Kim & Mnih (2018)."""
        k = self.grid.factor(factor)
        if value is None:
            value = int(self.rng.integers(0, self.grid.sizes[k]))
        elif not 0 <= value < self.grid.sizes[k]:
            self.grid.off_grid(k, value)
        factors = self.sample(n)
        factors[:, k] = value
        return factors


class FactorImages:
    """The images of a factor grid at the flat indices ``rows`` (every point when None), drawn by ``render`` as a
    batch asks for them: a map-style source (:class:`aekit.data.base.MapSource`) without labels, whose
    :meth:`factors` are the ground truth of the disentanglement metrics."""

    def __init__(self, grid: FactorGrid, render: Renderer, shape: tuple[int, ...], name: str,
                 rows: torch.Tensor | None = None) -> None:
        self.grid, self.render_indices, self.name, self._shape = grid, render, name, shape
        self.rows = torch.arange(len(grid)) if rows is None else torch.as_tensor(rows, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        factors = ", ".join(f"{n} {s}" for n, s in zip(self.grid.names, self.grid.sizes, strict=True))
        return f"FactorImages({self.name!r}: {len(self)} images {self.shape}; factors {factors})"

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def classes(self) -> None:
        return None

    @property
    def y(self) -> None:
        return None

    def factors(self, index: Index = None) -> torch.Tensor:
        """``[B, K]`` int64: the factor indices of the examples at ``index`` (all when None)."""
        rows = self.rows if index is None else self.rows[index]
        return torch.from_numpy(self.grid.unravel(rows.numpy()))

    def render(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 images ``[B, *shape]`` of the factor indices ``[B, K]``."""
        factors = np.asarray(factors, dtype=np.int64)
        self.grid.ravel(factors)  # checks that each index is on the grid
        return self.render_indices(factors)

    def inputs(self, index: Index = None) -> torch.Tensor:
        return self.render_indices(self.factors(index).numpy())

    def labels(self, index: Index = None) -> None:
        return None

    def batch(self, index: Index = None) -> Batch:
        """The images at ``index`` with their factor indices (``Batch.factors``), rendered from them."""
        factors = self.factors(index)
        return Batch(self.render_indices(factors.numpy()), factors=factors)

    def subset(self, index: torch.Tensor | np.ndarray, name: str | None = None) -> FactorImages:
        return FactorImages(self.grid, self.render_indices, self._shape, name or self.name,
                            self.rows[torch.as_tensor(index, dtype=torch.long)])

    def concat(self, other: FactorImages, name: str | None = None) -> FactorImages:
        """These examples followed by ``other``'s, of the same grid."""
        if not isinstance(other, FactorImages) or other.grid != self.grid:
            raise DataError(f"{self.name}: joins only examples of the same factor grid, not {other.name}")
        return FactorImages(self.grid, self.render_indices, self._shape, name or self.name,
                            torch.cat([self.rows, other.rows]))


def has_factors(data) -> bool:
    """Whether ``data`` carries ground-truth factors (a factor dataset or a subset of one)."""
    return callable(getattr(data, "factors", None))


def factors_of(data) -> torch.Tensor:
    """The factor indices ``[N, K]`` of every example of ``data``; a one-line error for data without factors."""
    if not has_factors(data):
        raise DataError(f"{getattr(data, 'name', type(data).__name__)}: has no ground-truth factors; disentanglement "
                        f"metrics need a factor dataset ({', '.join(FACTOR_DATASETS)})")
    return data.factors()


# ---------------------------------------------------------------------------------------------------------
# Renderers: small tables built once, then each batch is a gather from them


def _shape_masks(u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """The dSprites shapes at coordinates ``u`` (right), ``v`` (down) in units of the sprite's size: square,
    ellipse (twice as wide as tall, so that its orientation shows), heart (point down)."""
    square = np.maximum(np.abs(u), np.abs(v)) <= 0.8
    ellipse = u**2 + (v / 0.5) ** 2 <= 1.0
    x, y = u / 1.1, -v / 1.1 + 0.1  # the heart's curve, (x^2 + y^2 - 1)^3 <= x^2 y^3, about centred
    heart = (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    return [square, ellipse, heart]


class DSpritesRenderer:
    """dSprites images from factor indices (shape, scale, orientation, pos_x, pos_y[, colour]): each of the
    3 x 6 x 40 sprites is drawn once, centred on a 96 x 96 canvas, and an image is the 64 x 64 window of it that
    puts the centre on pixel (16 + pos_y, 16 + pos_x)."""

    SIZE, CANVAS, MARGIN, RADIUS = 64, 96, 16, 10.0  # RADIUS: pixels per unit of the shapes at scale 1

    def __init__(self, scales: np.ndarray, angles: np.ndarray, colours: np.ndarray | None = None) -> None:
        self.scales, self.angles, self.colours = scales, angles, colours
        self._windows: np.ndarray | None = None

    def windows(self) -> np.ndarray:
        """``[3, S, R, 33, 33, 64, 64]`` uint8 view: the image of every sprite at every position."""
        if self._windows is None:
            c = np.arange(self.CANVAS) + 0.5 - self.CANVAS / 2  # pixel centres about the canvas centre
            row, col = np.meshgrid(c, c, indexing="ij")
            sprites = np.zeros((3, len(self.scales), len(self.angles), self.CANVAS, self.CANVAS), np.uint8)
            for j, scale in enumerate(self.scales):
                for r, angle in enumerate(self.angles):  # counter-clockwise on the screen (v points down)
                    u = (col * math.cos(angle) - row * math.sin(angle)) / (self.RADIUS * scale)
                    v = (col * math.sin(angle) + row * math.cos(angle)) / (self.RADIUS * scale)
                    for s, mask in enumerate(_shape_masks(u, v)):
                        sprites[s, j, r] = mask
            self._windows = np.lib.stride_tricks.sliding_window_view(sprites, (self.SIZE, self.SIZE), axis=(3, 4))
        return self._windows

    def __call__(self, factors: np.ndarray) -> torch.Tensor:
        shape, scale, angle, x, y = factors[:, :5].T
        offset = self.CANVAS // 2 - self.MARGIN  # window start that puts the centre on pixel 16 + i
        masks = torch.from_numpy(self.windows()[shape, scale, angle, offset - y, offset - x])  # [B, 64, 64]
        if self.colours is None:
            return masks.unsqueeze(1).float()  # [B, 1, 64, 64]
        rgb = torch.from_numpy(self.colours[factors[:, 5]])  # [B, 3]
        return masks.unsqueeze(1).float() * rgb[:, :, None, None]  # [B, 3, 64, 64]


def _hue_rgb(hues: Sequence[float]) -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hues], np.float32)  # [H, 3]


class Shapes3DRenderer:
    """3D-Shapes-like images (floor, wall, object hue, scale, shape, orientation) drawn in 2-D: every scene's
    geometry (which pixels are wall, floor and object, and how bright) is kept as a code per pixel, region x
    ``LEVELS`` + shade, for each (shape, scale, orientation); every hue triple's palette maps the codes to colours."""

    SIZE, LEVELS, FLOOR_Y, GROUND = 64, 32, 36.0, 54.0

    def __init__(self, hues: np.ndarray, scales: np.ndarray, angles: np.ndarray) -> None:
        self.hues, self.scales, self.angles = hues, scales, angles
        self._codes: torch.Tensor | None = None
        self._palettes: torch.Tensor | None = None

    def scene_codes(self, scale: float, shape: int, angle: float) -> np.ndarray:
        """``[64, 64]`` codes of one scene's geometry: region (0 wall, 1 floor, 2 object) x LEVELS + shade."""
        c = np.arange(self.SIZE) + 0.5
        y, x = np.meshgrid(c, c, indexing="ij")
        horizon = self.FLOOR_Y + math.tan(angle) * 0.5 * (x - self.SIZE / 2)  # tilted by the orientation
        floor = y >= horizon
        shade = np.where(floor, 0.45 + 0.55 * np.clip((y - horizon) / (self.SIZE - horizon), 0, 1),
                         0.95 - 0.45 * x / self.SIZE)  # the floor darkens towards the horizon, the wall to the right
        h = 9.0 * scale  # the object's half height, standing on the ground line
        dx, dy = x - self.SIZE / 2, y - (self.GROUND - h)
        u = (dx * math.cos(angle) + dy * math.sin(angle)) / h  # turned by the orientation
        v = (-dx * math.sin(angle) + dy * math.cos(angle)) / h
        inside = [np.maximum(np.abs(u), np.abs(v)) <= 1,  # cube
                  (np.abs(u) <= 0.7) & (np.abs(v) <= 1),  # cylinder
                  u**2 + v**2 <= 1,  # sphere
                  (np.maximum(np.abs(u) - 0.5, 0) ** 2 + v**2 <= 0.5**2)][shape]  # capsule, lying
        lit = 1 - np.sqrt(u**2 + v**2) * 0.6 if shape == 2 else 0.95 - 0.35 * (u + 1) / 2  # lit from the left
        shade = np.where(inside, np.clip(lit, 0.3, 1), shade)
        region = np.where(inside, 2, floor.astype(np.int64))
        level = np.clip(np.round(shade * (self.LEVELS - 1)), 0, self.LEVELS - 1).astype(np.int64)
        return (region * self.LEVELS + level).astype(np.uint8)

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[4 S R, 4096]`` int64 of every (shape, scale, orientation) and palettes ``[H^3, 3, 3 LEVELS]``
        float32 of every (floor, wall, object) hue."""
        if self._codes is None:
            codes = [self.scene_codes(s, k, a) for k in range(4) for s in self.scales for a in self.angles]
            self._codes = torch.from_numpy(np.stack(codes).reshape(len(codes), -1).astype(np.int64))
            rgb = _hue_rgb(self.hues)  # [H, 3]
            shade = (np.arange(self.LEVELS) / (self.LEVELS - 1)).astype(np.float32)
            f, w, o = np.meshgrid(*[np.arange(len(self.hues))] * 3, indexing="ij")
            regions = [rgb[w.ravel()], rgb[f.ravel()], rgb[o.ravel()]]  # wall, floor, object: [H^3, 3] each
            palettes = np.concatenate([c[:, :, None] * shade for c in regions], axis=2)  # [H^3, 3, 3 L]
            self._palettes = torch.from_numpy(palettes)
        return self._codes, self._palettes

    def __call__(self, factors: np.ndarray) -> torch.Tensor:
        codes, palettes = self.tables()
        floor, wall, obj, scale, shape, angle = (torch.from_numpy(f) for f in factors.T)
        n_h, n_s, n_r = len(self.hues), len(self.scales), len(self.angles)
        scene = codes[(shape * n_s + scale) * n_r + angle]  # [B, 4096]
        palette = palettes[(floor * n_h + wall) * n_h + obj]  # [B, 3, 3 L]
        image = palette.gather(2, scene[:, None, :].expand(-1, 3, -1))  # [B, 3, 4096]
        return image.view(-1, 3, self.SIZE, self.SIZE)


def render_xy_blocks(factors: np.ndarray) -> torch.Tensor:
    """``1 x 16 x 16`` images of a 2 x 2 block at column 2 x, row 2 y, of intensity (i + 1) / 4."""
    x, y, level = (torch.from_numpy(f) for f in factors.T)
    cells = torch.arange(16) // 2  # [16]: the block index each pixel row or column belongs to
    on = (cells[None, :, None] == y[:, None, None]) & (cells[None, None, :] == x[:, None, None])  # [B, 16, 16]
    return (on.float() * ((level + 1) / 4).float()[:, None, None]).unsqueeze(1)


# ---------------------------------------------------------------------------------------------------------
# The datasets


def _grid(**values: Sequence[float]) -> FactorGrid:
    return FactorGrid(tuple(values), tuple(np.asarray(v, np.float64) for v in values.values()))


DSPRITES_SCALES = np.linspace(0.5, 1.0, 6)
DSPRITES_ANGLES = np.arange(40) * 2 * math.pi / 40
DSPRITES_POSITIONS = np.linspace(0.0, 1.0, 32)
DSPRITES_COLOURS = _hue_rgb(np.arange(6) / 6)  # red, yellow, green, cyan, blue, magenta
SHAPES3D_HUES = np.linspace(0.0, 0.9, 10)


def dsprites(colour: bool = False) -> FactorImages:
    """The dSprites grid (module docstring); ``colour``: with a seventh factor, the sprite's hue."""
    grid = _grid(shape=range(3), scale=DSPRITES_SCALES, orientation=DSPRITES_ANGLES, pos_x=DSPRITES_POSITIONS,
                 pos_y=DSPRITES_POSITIONS, **({"colour": np.arange(6) / 6} if colour else {}))
    render = DSpritesRenderer(DSPRITES_SCALES, DSPRITES_ANGLES, DSPRITES_COLOURS if colour else None)
    return FactorImages(grid, render, (3 if colour else 1, 64, 64), "color-dsprites" if colour else "dsprites")


def shapes3d() -> FactorImages:
    """The 3D-Shapes-like grid (module docstring)."""
    angles = np.deg2rad(np.linspace(-30, 30, 15))
    scales = np.linspace(0.75, 1.25, 8)
    grid = _grid(floor_hue=SHAPES3D_HUES, wall_hue=SHAPES3D_HUES, object_hue=SHAPES3D_HUES, scale=scales,
                 shape=range(4), orientation=angles)
    return FactorImages(grid, Shapes3DRenderer(SHAPES3D_HUES, scales, angles), (3, 64, 64), "shapes3d")


def xy_blocks() -> FactorImages:
    """The small XY-blocks grid (module docstring)."""
    grid = _grid(x=range(8), y=range(8), intensity=np.arange(1, 5) / 4)
    return FactorImages(grid, render_xy_blocks, (1, 16, 16), "xy-blocks")


FACTOR_DATASETS: dict[str, tuple[str, Callable[[], FactorImages]]] = {
    "dsprites": ("dSprites (Matthey et al. 2017), generated: 737,280 binary 64x64 images of 3 shapes x 6 scales x "
                 "40 orientations x 32 x 32 positions, with their factors", dsprites),
    "color-dsprites": ("dSprites in 6 hues, generated: 4,423,680 64x64 RGB images, colour a seventh factor",
                       lambda: dsprites(colour=True)),
    "shapes3d": ("3D-Shapes-like scenes drawn in 2-D, generated: 480,000 64x64 RGB images of floor, wall and object "
                 "hue, scale, shape and orientation, with their factors", shapes3d),
    "xy-blocks": ("a 2x2 block at 8x8 positions in 4 intensities, generated: 256 16x16 images, with their factors",
                  xy_blocks),
}
