"""The one-class split: the normal class's training images, every test image, labels 1 for the other classes."""

import numpy as np
import pytest

from aekit.data import load_data, one_class_split
from aekit.errors import DataError


def test_digits_one_class_split_by_number_and_name():
    data = one_class_split("digits", 3)
    splits = load_data("digits", val_fraction=0.0, test_fraction=0.2)
    train_y, test_y = splits.train.y.numpy(), splits.test.y.numpy()
    assert len(data.train) == (train_y == 3).sum() and len(data.test) == len(test_y)
    assert np.array_equal(data.labels, (test_y != 3).astype(int)) and np.array_equal(data.test_classes, test_y)
    assert data.train.shape[1:] == (1, 8, 8) and 0 <= data.train.min() and data.train.max() <= 1
    assert data.name == "digits-3" and data.normal_name == "3"
    assert np.array_equal(one_class_split("digits", "3").train, data.train)


def test_mnist_uses_its_official_test_set(tmp_path):
    data = one_class_split("mnist", 3)
    assert data.train.shape == (6131, 1, 28, 28)  # MNIST's training count of the digit 3
    assert len(data.test) == 10_000 and data.labels.sum() == 10_000 - 1010  # 1,010 test images of 3
    assert data.train.dtype == np.float32 and data.train.max() == 1.0


def test_classes_out_of_range_or_unknown_are_clear_errors():
    with pytest.raises(DataError, match="normal class 10 is out of range"):
        one_class_split("digits", 10)
    with pytest.raises(DataError, match="no class named 'cat'"):
        one_class_split("digits", "cat")


def test_a_labelled_table_is_split_into_rows_and_a_graph_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", X=rng.normal(size=(300, 6)).astype(np.float32), y=rng.integers(0, 3, 300))
    data = one_class_split(tmp_path / "t.npz", 1)
    assert data.train.ndim == 2 and data.train.shape[1] == 6 and data.test.shape == (60, 6)
    assert np.array_equal(data.labels, (data.test_classes != 1).astype(int))
    with pytest.raises(DataError, match="reads labelled images or table rows held in memory"):
        one_class_split("cora", 1)
