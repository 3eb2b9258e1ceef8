"""Ground-truth factor datasets: images that agree with their factors, drawn lazily, and the factor sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit.data import load_data
from aekit.data.factors import FactorSampler, dsprites, factors_of, shapes3d, xy_blocks
from aekit.errors import DataError


def centre_and_area(mask: torch.Tensor) -> tuple[float, float, int]:
    """Row and column of the centre of mass of a binary image ``[H, W]``, and its area in pixels."""
    rows, cols = mask.nonzero(as_tuple=True)
    return rows.float().mean().item(), cols.float().mean().item(), len(rows)


def extent(mask: torch.Tensor) -> tuple[int, int]:
    """Height and width of the bounding box of a binary image."""
    rows, cols = mask.nonzero(as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_dsprites_is_the_full_grid_of_binary_images_with_their_factors():
    data = dsprites()
    assert len(data) == 737_280 and data.shape == (1, 64, 64)
    assert data.grid.names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert data.grid.sizes == (3, 6, 40, 32, 32)
    index = torch.tensor([0, 1234, 737_279])
    x = data.inputs(index)
    assert x.shape == (3, 1, 64, 64) and set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(data.factors(index)[2], torch.tensor([2, 5, 39, 31, 31]))
    assert torch.equal(data.render(data.factors(index)), x)  # the same pixels from the factors
    assert torch.equal(data.inputs(index), x)  # and every time


def test_dsprites_extremes_of_each_factor_show_in_the_images():
    data = dsprites()
    base = np.array([0, 5, 0, 15, 15])  # a square at full scale, upright, near the middle

    def image(**change: int) -> torch.Tensor:
        f = base.copy()
        for name, value in change.items():
            f[data.grid.factor(name)] = value
        return data.render(f[None])[0, 0]

    for factor, axis in (("pos_x", 1), ("pos_y", 0)):  # one pixel per step, from pixel 16 to 47
        low, high = centre_and_area(image(**{factor: 0})), centre_and_area(image(**{factor: 31}))
        assert high[axis] - low[axis] == pytest.approx(31, abs=0.5)
        assert low[axis] == pytest.approx(16, abs=0.6)
    small, large = centre_and_area(image(scale=0))[2], centre_and_area(image(scale=5))[2]
    assert small / large == pytest.approx(0.25, rel=0.15)  # area goes with the square of the scale 0.5 .. 1
    height, width = extent(image(shape=1, orientation=0))  # the ellipse lies flat, then stands at a quarter turn
    assert width > 1.6 * height
    height, width = extent(image(shape=1, orientation=10))
    assert height > 1.6 * width
    areas = [centre_and_area(image(shape=s))[2] for s in range(3)]
    assert len(set(areas)) == 3  # three different shapes
    square_turned = extent(image(orientation=5))  # a square at 45 degrees is about sqrt 2 wider
    assert square_turned[1] / extent(image())[1] == pytest.approx(2**0.5, rel=0.1)
    assert not torch.equal(image(orientation=39), image(orientation=0))  # the full turn is left out


def test_colour_dsprites_paints_the_sprite_in_its_hue():
    data = dsprites(colour=True)
    assert data.grid.sizes[-1] == 6 and data.shape == (3, 64, 64)
    red, magenta = data.render(np.array([[0, 5, 0, 15, 15, 0], [0, 5, 0, 15, 15, 5]]))
    mask = red.sum(0) > 0
    assert torch.allclose(red[:, mask].mean(1), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(magenta[:, mask].mean(1), torch.tensor([1.0, 0.0, 1.0]))
    grey = dsprites().render(np.array([[0, 5, 0, 15, 15]]))[0, 0] > 0
    assert torch.equal(mask, grey)  # the same sprite


def test_shapes3d_extremes_show_in_floor_wall_object_and_geometry():
    data = shapes3d()
    assert len(data) == 480_000 and data.shape == (3, 64, 64)
    base = np.array([0, 3, 6, 7, 0, 7])  # red floor, large upright cube

    def image(**change: int) -> torch.Tensor:
        f = base.copy()
        for name, value in change.items():
            f[data.grid.factor(name)] = value
        return data.render(f[None])[0]

    def hue_of(pixel: torch.Tensor) -> torch.Tensor:
        return pixel / pixel.max()  # shading scales the colour, the hue stays

    floor, wall, obj = (62, 5), (2, 60), (45, 32)  # a floor, a wall and an object pixel
    assert torch.allclose(hue_of(image()[:, floor[0], floor[1]]), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(hue_of(image(floor_hue=9)[:, floor[0], floor[1]]), torch.tensor([1.0, 0.0, 0.6]),
                          atol=0.05)
    for factor, pixel in (("wall_hue", wall), ("object_hue", obj)):
        low, high = image(**{factor: 0}), image(**{factor: 9})
        assert torch.allclose(hue_of(low[:, pixel[0], pixel[1]]), torch.tensor([1.0, 0.0, 0.0]))
        changed = (low != high).any(0)
        assert changed[pixel] and not changed[floor if factor == "wall_hue" else wall]
    object_pixels = [(image(scale=s) != image(scale=s, object_hue=0)).any(0).sum() for s in (0, 7)]
    assert object_pixels[1] / object_pixels[0] == pytest.approx((1.25 / 0.75) ** 2, rel=0.15)
    # the horizon tilts one way at -30 degrees and the other at +30 (the wall's hue differs from the floor's)
    red = torch.tensor([1.0, 0.0, 0.0])
    is_floor = [torch.allclose(hue_of(image(orientation=o)[:, 40, 2]), red) for o in (0, 14)]
    assert is_floor[0] != is_floor[1]
    assert len({image(shape=s).sum().item() for s in range(4)}) == 4


def test_xy_blocks_put_the_block_where_its_factors_say():
    data = xy_blocks()
    assert len(data) == 256 and data.shape == (1, 16, 16)
    x = data.render(np.array([[0, 0, 0], [7, 7, 3], [3, 5, 1]]))[:, 0]
    assert x[0, 0:2, 0:2].eq(0.25).all() and x[0].sum() == 1.0
    assert x[1, 14:16, 14:16].eq(1.0).all() and x[1].sum() == 4.0
    assert x[2, 10:12, 6:8].eq(0.5).all() and x[2].sum() == 2.0


def test_registered_names_split_the_grid_and_keep_the_factors():
    splits = load_data("xy-blocks")
    parts = [splits.train, splits.val, splits.test]
    assert sum(map(len, parts)) == 256
    rows = torch.cat([p.rows for p in parts])
    assert torch.equal(rows.sort().values, torch.arange(256))  # a partition of the grid
    index = torch.tensor([3, 0])
    assert torch.equal(splits.test.inputs(index), splits.test.render(splits.test.factors(index)))
    joined = splits.train.concat(splits.val)
    assert len(joined) == len(splits.train) + len(splits.val) and joined.factors().shape == (len(joined), 3)
    assert load_data("dsprites").train.shape == (1, 64, 64)


def test_sampler_fixes_one_factor_and_draws_the_others_uniformly():
    grid = dsprites().grid
    sampler = FactorSampler(grid, seed=3)
    f = sampler.fixed("scale", 6000, value=2)
    assert (f[:, 1] == 2).all()
    for k in (0, 3):  # the others run over their whole range, about uniformly
        counts = np.bincount(f[:, k], minlength=grid.sizes[k])
        assert counts.min() > 0.7 * counts.mean()
    g = sampler.fixed(4, 10)
    assert len(set(g[:, 4])) == 1
    assert np.array_equal(FactorSampler(grid, 3).fixed("scale", 6000, 2), f)  # seeded


def test_bad_factors_are_one_line_errors_before_work():
    sampler = FactorSampler(dsprites().grid)
    with pytest.raises(DataError, match=r"factor 'colour' does not exist.*shape, scale"):
        sampler.fixed("colour", 10)
    with pytest.raises(DataError, match="does not exist; there are 5"):
        sampler.fixed(7, 10)
    with pytest.raises(DataError, match="scale index 6 is off the grid"):
        sampler.fixed("scale", 10, value=6)
    with pytest.raises(DataError, match="pos_x index 32 is off the grid"):
        dsprites().render(np.array([[0, 0, 0, 32, 0]]))
    with pytest.raises(DataError, match="no ground-truth factors"):
        factors_of(load_data("digits").test)
