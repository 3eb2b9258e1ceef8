"""Dataset (the in-memory source), Batch.of and the seeded splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit.data import Batch, Dataset, load_data, random_split
from aekit.errors import DataError


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint16, torch.int8])
def test_integer_data_is_taken_as_ids_and_given_as_int64(dtype):
    tokens = Dataset(torch.arange(24).reshape(6, 4).to(dtype), torch.arange(6) % 2, "tokens")
    batch = tokens.batch(torch.tensor([4, 1]))
    assert batch.inputs.dtype == torch.int64 and batch.inputs.tolist() == [[16, 17, 18, 19], [4, 5, 6, 7]]
    assert batch.labels.tolist() == [0, 1] and not tokens.is_8bit


def test_8bit_and_float_data_are_given_as_float32():
    images = Dataset(torch.tensor([[0, 255], [51, 102]], dtype=torch.uint8), None, "images")
    batch = images.batch(slice(0, 2))
    assert batch.inputs.dtype == torch.float32 and batch.labels is None
    assert torch.equal(batch.inputs, torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    with pytest.raises(DataError, match=r"dtype torch.float64 is not supported; use uint8 .* int64 or uint16"):
        Dataset(torch.zeros(2, 2, dtype=torch.float64), None, "d")
    with pytest.raises(DataError, match=r"example 1 holds NaN"):
        Dataset(torch.tensor([[0.0], [float("nan")]]), None, "d")


def test_integer_npy_stays_integer_through_load_data(tmp_path):
    np.save(tmp_path / "codes.npy", np.arange(40, dtype=np.int16).reshape(10, 4))
    splits = load_data(str(tmp_path / "codes.npy"), val_fraction=0.0, test_fraction=0.0)
    assert splits.train.x.dtype == torch.int16 and splits.train.inputs().dtype == torch.int64
    assert splits.train.inputs()[9].tolist() == [36, 37, 38, 39]


@pytest.mark.parametrize("n, val_fraction, test_fraction", [(5, 0.1, 0.1), (5, 0.0, 0.1), (4, 0.1, 0.0), (2, 0.5, 0.4)])
def test_data_too_small_for_the_parts_asked_for_is_refused(n, val_fraction, test_fraction):
    data = Dataset(torch.zeros(n, 2), None, "tiny")
    with pytest.raises(
        DataError,
        match=rf"tiny: {n} examples are too few to split into train/val/test \(val_fraction={val_fraction}, "
        rf"test_fraction={test_fraction}\); give more examples or set the fractions to 0",
    ):
        random_split(data, val_fraction, test_fraction, seed=0)


def test_each_part_asked_for_gets_an_example():
    data = Dataset(torch.arange(10.0)[:, None], None, "d")
    splits = random_split(data, 0.1, 0.1, seed=0)  # 1 + 1 + 8
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 1, 1)
    assert (len(random_split(Dataset(torch.zeros(3, 1), None, "d"), 0.0, 0.0, 0).train)) == 3


def test_a_five_row_file_with_the_default_fractions_is_refused(tmp_path):
    (tmp_path / "five.csv").write_text("1,2\n3,4\n5,6\n7,8\n9,10\n")
    with pytest.raises(DataError, match=r"five: 5 examples are too few to split"):
        load_data(str(tmp_path / "five.csv"))


def test_batch_of_one_example_gains_a_batch_axis():
    batch = Batch.of((torch.ones(3), torch.tensor(2)), example=True)
    assert batch.inputs.shape == (1, 3) and batch.labels.tolist() == [2]
    assert Batch.of({"x": np.zeros((2, 2)), "weights": [1.0, 2.0]}).weights.tolist() == [1.0, 2.0]
    whole = Batch(torch.ones(2, 3))
    assert Batch.of(whole) is whole and Batch.of(whole, example=True).inputs.shape == (1, 2, 3)
    with pytest.raises(DataError, match=r"batch labels of shape \(\) does not match 3 inputs"):
        Batch.of((torch.ones(3), torch.tensor(2)))
