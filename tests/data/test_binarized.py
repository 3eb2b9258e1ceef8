"""Dynamically binarized images: Bernoulli draws with the grey levels as probabilities, fresh or kept."""

from __future__ import annotations

import pytest
import torch

from aekit.data import Dataset, load_data
from aekit.data.binarized import BinarizedImages
from aekit.errors import DataError


def grey(n: int = 2000, p: float = 0.3) -> Dataset:
    x = torch.full((n, 1, 2, 2), p)
    x[:, 0, 0, 0] = 0.0  # a pixel that is never on
    x[:, 0, 1, 1] = 1.0  # and one that always is
    return Dataset(x, torch.arange(n) % 3, "grey")


def test_dynamic_draws_are_bernoulli_of_the_grey_level_and_new_at_every_read():
    source = BinarizedImages(grey())
    torch.manual_seed(0)
    a, b = source.inputs(), source.inputs()
    assert a.dtype == torch.float32 and set(a.unique().tolist()) == {0.0, 1.0}
    assert (a[:, 0, 0, 0] == 0).all() and (a[:, 0, 1, 1] == 1).all()
    # p = 0.3 over 4000 draws of two pixels: the mean lies within 4 standard errors (0.0072) of 0.3
    assert a[:, 0, 0, 1].mean().item() == pytest.approx(0.3, abs=0.03)
    assert a[:, 0, 1, 0].mean().item() == pytest.approx(0.3, abs=0.03)
    # two reads of the same images disagree where p(1 - p) > 0: on a share 2 p (1 - p) = 0.42 of those pixels
    assert (a != b)[:, 0, 0, 1].float().mean().item() == pytest.approx(0.42, abs=0.05)
    torch.manual_seed(0)
    assert torch.equal(source.inputs(), a)  # the global generator, seeded by the loop at every step, decides


def test_a_seeded_part_is_drawn_once_and_its_subsets_keep_the_draws():
    source = BinarizedImages(grey(), seed=7)
    assert torch.equal(source.inputs(), source.inputs())
    assert torch.equal(source.inputs(), BinarizedImages(grey(), seed=7).inputs())
    assert not torch.equal(source.inputs(), BinarizedImages(grey(), seed=8).inputs())
    index = torch.tensor([5, 2, 9])
    part = source.subset(index)
    assert torch.equal(part.inputs(), source.inputs()[index]) and torch.equal(part.labels(), index % 3)
    assert torch.equal(source.batch(index).inputs, source.inputs(index))


def test_concat_binarizes_the_joined_images_as_the_first_part():
    train, val = BinarizedImages(grey(10)), BinarizedImages(grey(4, 0.5), seed=1)
    joined = train.concat(val)
    assert len(joined) == 14 and joined.dynamic and torch.equal(joined.grey.x[10:], val.grey.x)
    kept = val.concat(train)
    assert not kept.dynamic and torch.equal(kept.inputs()[:4], val.inputs())
    with pytest.raises(DataError, match="binarized images join other binarized images, not a Dataset"):
        train.concat(grey(3))


def test_levels_outside_zero_one_are_refused():
    with pytest.raises(DataError, match=r"grey levels run from 0 to 2; binarization takes probabilities"):
        BinarizedImages(Dataset(torch.tensor([[0.0, 2.0]]), None, "bad"))


def test_dynamic_binarized_mnist_splits(real_root):
    if not (real_root / "mnist").is_dir():
        pytest.skip("mnist not found")
    splits = load_data("dynamic-binarized-mnist", root=real_root)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50000, 10000, 10000)
    assert splits.train.dynamic and not splits.val.dynamic and not splits.test.dynamic
    test = splits.test.inputs()
    assert test.unique().tolist() == [0.0, 1.0] and torch.equal(test, load_data(
        "dynamic-binarized-mnist", root=real_root).test.inputs())
    # E[x] = the grey mean, 0.1325 on the MNIST test images; 7.84M draws put it within 0.0005 (4 standard errors)
    assert test.mean().item() == pytest.approx(0.1325, abs=0.0005)
    assert torch.equal(splits.test.labels(), load_data("mnist", root=real_root).test.y)
