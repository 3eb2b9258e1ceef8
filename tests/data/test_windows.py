"""Windows of a series: which rows each window holds for each padding and stride, labels and timestamps of the
window's last row, nothing copied but a batch, training on it, and the bad inputs."""

import numpy as np
import pytest
import torch

import aekit
from aekit.data import WindowDataset
from aekit.errors import DataError

SERIES = np.arange(10.0)[:, None] * np.array([1.0, -1.0])  # row r = (r, -r)


def rows_of(window):  # [T, C] -> the series rows it holds
    return window[:, 0].long().tolist()


def test_start_padding_gives_every_row_a_window_of_its_past():
    w = WindowDataset(SERIES, 4)
    assert len(w) == 10 and w.shape == (4, 2)
    assert rows_of(w.inputs([0])[0]) == [0, 0, 0, 0]  # the first row repeated in front
    assert rows_of(w.inputs([2])[0]) == [0, 0, 1, 2]
    assert rows_of(w.inputs([9])[0]) == [6, 7, 8, 9]
    assert w.end_rows.tolist() == list(range(10))
    assert torch.equal(w.inputs([5])[0, :, 1], -w.inputs([5])[0, :, 0])


def test_no_padding_and_both_and_stride():
    w = WindowDataset(SERIES, 4, pad="none")
    assert len(w) == 7 and rows_of(w.inputs([0])[0]) == [0, 1, 2, 3] and w.end_rows.tolist() == list(range(3, 10))
    s = WindowDataset(SERIES, 4, stride=3, pad="none")
    assert s.end_rows.tolist() == [3, 6, 9] and rows_of(s.inputs([1])[0]) == [3, 4, 5, 6]
    b = WindowDataset(SERIES, 5, pad="both")
    assert len(b) == 10 and rows_of(b.inputs([0])[0]) == [0, 0, 0, 1, 2]
    assert rows_of(b.inputs([9])[0]) == [7, 8, 9, 9, 9]
    assert b.end_rows.tolist() == list(range(10))  # centred on each row


def test_labels_and_timestamps_are_those_of_the_last_row_and_subsets_are_views():
    labels = np.zeros(10, dtype=int)
    labels[6] = 1
    stamps = np.arange("2020-01-01T00", "2020-01-01T10", dtype="datetime64[h]")
    w = WindowDataset(SERIES, 3, timestamps=stamps, labels=labels)
    assert w.y.tolist() == labels.tolist() and w.end_timestamps[6] == stamps[6]
    sub = w.subset(np.array([6, 7]))
    assert len(sub) == 2 and sub.labels().tolist() == [1, 0] and rows_of(sub.inputs([0])[0]) == [4, 5, 6]
    assert sub._windows.untyped_storage().data_ptr() == w._windows.untyped_storage().data_ptr()  # no copy
    assert w.batch(slice(5, 8)).labels.tolist() == [0, 1, 0]


def test_a_long_series_is_held_once_not_as_windows():
    n, t = 200_000, 64
    w = WindowDataset(np.zeros((n, 2), np.float32), t)
    held = w._windows.untyped_storage().nbytes()
    assert held == (n + t - 1) * 2 * 4  # the padded series only, not n * t values
    assert w.inputs(slice(0, 32)).shape == (32, t, 2)


def test_a_vae_with_a_recurrent_backbone_trains_on_windows():
    t = np.arange(600)
    w = WindowDataset(np.stack([np.sin(t / 10), np.cos(t / 7)], 1), 16)
    result = aekit.train("vae", data=w, out=None, steps=30, backbone="gru", hidden=(16,), latent_dim=3,
                         likelihood="gaussian", batch_size=32, progress=False, nll_samples=10)
    assert np.isfinite(result.metrics["test/mse"]) and result.model.config.data_shape == (16, 2)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"series": np.zeros((3, 2)), "window": 4, "pad": "none"}, "3 rows are fewer than the window of 4"),
    ({"series": np.array([[0.0], [np.nan]]), "window": 1}, "row 1, column 0 is NaN"),
    ({"series": np.zeros((5, 1)), "window": 2, "labels": np.zeros(4)}, "labels of shape (4,) do not match"),
    ({"series": np.zeros((5, 1)), "window": 2, "timestamps": np.arange(3)}, "3 timestamps for 5 rows"),
    ({"series": np.zeros((5, 1)), "window": 0}, "window=0 and stride=1 must be >= 1"),
    ({"series": np.zeros((5, 1)), "window": 2, "pad": "end"}, "pad='end' is unknown"),
    ({"series": np.zeros((0, 2)), "window": 2}, "with N > 0"),
])
def test_bad_input_is_a_clear_error(kwargs, fragment):
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        WindowDataset(**kwargs)
