"""Each reader against small files written in the real format, and every bad input it must refuse."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.data import formats
from aekit.errors import DataError

# ---------------------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_reads_what_was_written(mnist_like, gz):
    folder, arrays = mnist_like(gz=gz)
    parts = formats.load_idx_folder(folder)
    for part, prefix in (("train", "train"), ("test", "t10k")):
        x, y = arrays[prefix]
        assert parts[part].x.dtype == torch.uint8
        np.testing.assert_array_equal(parts[part].x.numpy(), x[:, None])
        np.testing.assert_array_equal(parts[part].y.numpy(), y)
        assert parts[part].y.dtype == torch.int64


def test_idx_wrong_magic_names_the_file(tmp_path, write_idx):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 3, 3)), magic=2049)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: IDX magic number is 2049, expected 2051"):
        formats.read_idx_images(path)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_file_names_the_file(tmp_path, write_idx, gz):
    path = write_idx(tmp_path / "images.idx", np.ones((4, 5, 5)))
    data = path.read_bytes()[:-7]
    path.write_bytes(gzip.compress(data)[:-9] if gz else data)
    with pytest.raises(DataError, match=rf"{path}: (truncated|corrupt or truncated gzip)"):
        formats.read_idx_images(path)


def test_idx_count_mismatch_names_both_files(mnist_like, tmp_path, write_idx):
    folder, _ = mnist_like(gz=False)
    labels = write_idx(folder / "train-labels-idx1-ubyte", np.zeros(11))
    with pytest.raises(DataError, match=r"holds 12 images but .*train-labels-idx1-ubyte holds 11 labels"):
        formats.load_idx_folder(folder)
    assert labels.exists()


def test_idx_folder_without_test_files_says_which(mnist_like):
    folder, _ = mnist_like(gz=True)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no t10k-images-idx3-ubyte\[\.gz\]"):
        formats.load_idx_folder(folder)


# ---------------------------------------------------------------------------------------------------------
# Binarized MNIST .amat


@pytest.mark.parametrize("gz", [True, False])
def test_amat_reads_bits_as_float(tmp_path, write_amat, rng, gz):
    bits = rng.integers(0, 2, (6, 784))
    path = write_amat(tmp_path / "binarized_mnist_train.amat", bits, gz=gz)
    x = formats.read_amat(path)
    assert x.dtype == np.float32 and x.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(x.reshape(6, -1), bits)


def test_amat_other_whitespace_takes_the_general_path(tmp_path, write_amat, rng):
    bits = rng.integers(0, 2, (3, 784))
    path = write_amat(tmp_path / "a.amat", bits)
    path.write_bytes(path.read_bytes().replace(b"\n", b" \r\n") + b"\n\n")  # CRLF, trailing blanks
    np.testing.assert_array_equal(formats.read_amat(path).reshape(3, -1), bits)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("0 1 2" + " 0" * 781, r"line 3 holds '2'"),
        ("0 10" + " 0" * 782, r"line 3 holds '10'"),
        ("0 0.5" + " 0" * 782, r"line 3 holds '0.5'"),
        ("0" + " 1" * 782, r"line 3 holds 783 values, expected 784"),
    ],
)
def test_amat_corrupt_line_names_file_and_line(tmp_path, write_amat, line, expected):
    path = write_amat(tmp_path / "bad.amat", np.zeros((4, 784), dtype=int))
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"bad\.amat: {expected}"):
        formats.read_amat(path)


def test_amat_folder_keeps_the_official_split(tmp_path, write_amat, rng):
    for part, n in (("train", 5), ("valid", 3), ("test", 2)):
        write_amat(tmp_path / f"binarized_mnist_{part}.amat", rng.integers(0, 2, (n, 784)), gz=True)
    parts = formats.load_amat_folder(tmp_path)
    assert {part: len(data) for part, data in parts.items()} == {"train": 5, "val": 3, "test": 2}
    assert parts["train"].x.dtype == torch.float32 and parts["train"].y is None


# ---------------------------------------------------------------------------------------------------------
# CIFAR python batches


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_batches_are_read_in_order(tmp_path, write_cifar_batch, rng, protocol):
    x = rng.integers(0, 256, (30, 3, 4, 4), dtype=np.uint8)
    y = rng.integers(0, 10, 30)
    for i, rows in enumerate((slice(0, 10), slice(10, 20)), start=1):
        write_cifar_batch(tmp_path / f"data_batch_{i}", x[rows], y[rows])
    write_cifar_batch(tmp_path / "test_batch", x[20:], y[20:])
    parts = formats.load_cifar_batches(tmp_path)
    np.testing.assert_array_equal(parts["train"].x.numpy(), x[:20])
    np.testing.assert_array_equal(parts["train"].y.numpy(), y[:20])
    np.testing.assert_array_equal(parts["test"].x.numpy(), x[20:])
    assert parts["train"].classes is None  # no batches.meta


def test_cifar_batches_meta_names_the_classes(tmp_path, write_cifar_batch, rng):
    write_cifar_batch(tmp_path / "data_batch_1", rng.integers(0, 256, (4, 3, 2, 2), dtype=np.uint8), [0, 2, 1, 2])
    write_cifar_batch(tmp_path / "test_batch", rng.integers(0, 256, (2, 3, 2, 2), dtype=np.uint8), [1, 0])
    names = [b"plane", b"car", b"bird"]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 12}, protocol=2))
    parts = formats.load_cifar_batches(tmp_path)
    assert parts["train"].classes == parts["test"].classes == ("plane", "car", "bird")
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names[:2]}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_1|labels run from 0 to 2 but 2 class names"):
        formats.load_cifar_batches(tmp_path)
    (tmp_path / "batches.meta").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(DataError, match=r"batches\.meta: not a CIFAR batches\.meta"):
        formats.load_cifar_batches(tmp_path)


class _RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_calling_os_system_is_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _RunsAShellCommand(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(
        DataError, match=rf"{path}: the pickle asks for (posix|nt|os)\.system, which is refused"
    ):
        formats.load_cifar_batches(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"not a pickle at all", pickle.dumps([1, 2, 3])])
def test_corrupt_or_foreign_cifar_batch_names_the_file(tmp_path, content):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"{path}: not a (readable pickle|CIFAR python batch)"):
        formats.read_cifar_batch(path)


# ---------------------------------------------------------------------------------------------------------
# .npy / .npz and the layout rules


@pytest.mark.parametrize(
    "shape, dtype, expected_shape, expected_dtype",
    [
        ((5, 7), np.float64, (5, 7), torch.float32),
        ((5, 6, 7), np.uint8, (5, 1, 6, 7), torch.uint8),
        ((5, 8, 9, 3), np.uint8, (5, 3, 8, 9), torch.uint8),  # NHWC
        ((5, 3, 8, 9), np.float32, (5, 3, 8, 9), torch.float32),  # NCHW
        ((5, 1, 8, 8), np.float16, (5, 1, 8, 8), torch.float32),
        ((5, 8, 8, 1), np.uint8, (5, 1, 8, 8), torch.uint8),
    ],
)
def test_npy_layout(tmp_path, rng, shape, dtype, expected_shape, expected_dtype):
    x = (rng.random(shape) * 255).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    data = formats.load_numpy(tmp_path / "x.npy")["all"]
    assert tuple(data.x.shape) == expected_shape and data.x.dtype == expected_dtype
    channels_last = len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)
    expected = x.transpose(0, 3, 1, 2) if channels_last else x.reshape(expected_shape)
    np.testing.assert_array_equal(data.x.numpy(), expected.astype(data.x.numpy().dtype))


@pytest.mark.parametrize(
    "arrays, parts",
    [
        ({"x": np.ones((4, 3)), "y": np.arange(4)}, {"all": 4}),
        ({"X": np.ones((4, 3)), "y": np.arange(4.0)}, {"all": 4}),  # ADBench
        ({"images": np.ones((4, 5, 5), np.uint8), "labels": np.arange(4)}, {"all": 4}),
        (
            {"x_train": np.ones((6, 2)), "y_train": np.arange(6), "x_test": np.ones((2, 2))},
            {"train": 6, "test": 2},
        ),
        ({"features": np.ones((3, 2))}, {"all": 3}),
        ({"whatever": np.ones((3, 2)), "other": np.ones(1)}, {"all": 3}),
    ],
)
def test_npz_keys(tmp_path, arrays, parts):
    np.savez(tmp_path / "d.npz", **arrays)
    loaded = formats.load_numpy(tmp_path / "d.npz")
    assert {part: len(data) for part, data in loaded.items()} == parts
    has_labels = any(k.lower() in ("y", "labels", "y_train") for k in arrays)
    assert (next(iter(loaded.values())).y is not None) == has_labels


def test_npz_arrays_named_by_the_caller(tmp_path, rng):
    x, codes, y = rng.random((6, 3)), rng.integers(0, 9, (6, 2)), np.arange(6) % 2
    np.savez(tmp_path / "d.npz", x=x, codes=codes, kind=y, y=np.zeros(6))
    parts, _, note = formats.read_numpy(tmp_path / "d.npz", inputs="codes", labels="kind")
    np.testing.assert_array_equal(parts["all"][0], codes)
    np.testing.assert_array_equal(parts["all"][1], y)
    assert note is None  # nothing guessed
    data = formats.load_numpy(tmp_path / "d.npz", inputs="codes", labels="kind")["all"]
    assert data.x.dtype == torch.int64 and data.y.tolist() == y.tolist()


@pytest.mark.parametrize(
    "arrays, keys, expected",
    [
        ({"X": np.ones((4, 3)), "y": np.arange(4)}, {}, "d.npz: inputs 'X', labels 'y' (chosen by their names; "),
        ({"a": np.ones((4, 3)), "b": np.ones(4)}, {}, "d.npz: inputs 'a', no labels (chosen"),
        ({"x_train": np.ones((4, 3)), "y_train": np.arange(4), "x_test": np.ones((2, 3))}, {},
         "d.npz: train inputs 'x_train', labels 'y_train'; test inputs 'x_test', no labels (chosen"),
        ({"feats": np.ones((4, 3)), "target": np.arange(4)}, {"inputs": "feats"}, "d.npz: inputs 'feats', labels "
         "'target' (chosen"),
        ({"data": np.ones((4, 3)), "t": np.arange(4)}, {"labels": "t"}, "d.npz: inputs 'data', labels 't' (chosen"),
    ],
)
def test_npz_arrays_chosen_by_their_names_are_told_in_one_line(tmp_path, arrays, keys, expected):
    np.savez(tmp_path / "d.npz", **arrays)
    note = formats.read_numpy(tmp_path / "d.npz", **keys)[2]
    assert note.startswith(str(tmp_path / expected)) and "\n" not in note
    assert note.endswith("pass inputs=... labels=... to choose others)")


def test_npz_key_that_is_not_there_lists_the_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 3)), y=np.arange(4), classes=np.array(["a", "b", "c", "d"]))
    for keys in ({"inputs": "images"}, {"inputs": "x", "labels": "labels"}):
        with pytest.raises(DataError, match=r"d\.npz: holds no array named '(images|labels)'; its arrays are 'x', "
                           r"'y', 'classes'; pass one of them as inputs=/labels="):
            formats.read_numpy(tmp_path / "d.npz", **keys)


def test_npy_labels_from_a_second_file(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((5, 2)))
    np.save(tmp_path / "y.npy", np.array([[1], [0], [2], [2], [1]]))
    assert formats.load_numpy(tmp_path / "x.npy", labels=tmp_path / "y.npy")["all"].y.tolist() == [1, 0, 2, 2, 1]
    np.save(tmp_path / "y.npy", np.arange(4))
    with pytest.raises(DataError, match=r"5 examples but labels of shape \(4,\)"):
        formats.load_numpy(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    with pytest.raises(DataError, match=r"x\.npy: inputs='a' names an array of a \.npz"):
        formats.read_numpy(tmp_path / "x.npy", inputs="a")


def test_npz_labels_round_trip(tmp_path, rng):
    x, y = rng.integers(0, 256, (9, 6, 5, 3), dtype=np.uint8), rng.integers(0, 10, 9)
    names = [f"class {k}" for k in range(10)]
    np.savez_compressed(tmp_path / "c.npz", x_train=x, y_train=y, label_names=np.array(names))
    train = formats.load_numpy(tmp_path / "c.npz")["train"]
    np.testing.assert_array_equal(train.x.numpy(), x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(train.y.numpy(), y)
    assert train.classes == tuple(names)


@pytest.mark.parametrize(
    "names, expected",
    [
        (np.array(["a", "b"]), r"c\.npz: labels run from 0 to 2 but 2 class names"),
        (np.arange(3), r"c\.npz: 'classes' of dtype int64, shape \(3,\) is not a list of class names"),
    ],
)
def test_npz_class_names_that_do_not_fit_are_refused(tmp_path, names, expected):
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 4), np.float32), y=np.array([0, 2, 1]), classes=names)
    with pytest.raises(DataError, match=expected):
        formats.load_numpy(tmp_path / "c.npz")


def test_npz_with_only_class_names_holds_no_arrays(tmp_path):
    np.savez(tmp_path / "c.npz", classes=np.array(["a"]))
    with pytest.raises(DataError, match="holds no arrays"):
        formats.load_numpy(tmp_path / "c.npz")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_pickled_object_array_is_refused(tmp_path, suffix):
    path = tmp_path / f"objects{suffix}"
    objects = np.array([{"a": 1}, None], dtype=object)
    np.save(path, objects, allow_pickle=True) if suffix == ".npy" else np.savez(path, x=objects)
    with pytest.raises(DataError, match=rf"{path}: holds a pickled object array, which is refused"):
        formats.load_numpy(path)


def test_nan_in_npy_names_the_file_and_example(tmp_path):
    x = np.zeros((4, 3))
    x[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match=r"nan\.npy: example 2 holds NaN or Inf"):
        formats.load_numpy(tmp_path / "nan.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
def test_finiteness_checks_are_exact_when_the_sum_overflows(bad):
    """The check first sums the values; finite values whose sum overflows must not be taken for bad ones, and a
    bad value must be found wherever it sits."""
    from aekit.data.base import Dataset

    x = np.full((5, 4), 3e38, dtype=np.float32)  # finite, but the float32 sum is inf
    if bad is not None:
        x[3, 2] = bad
    expected = None if bad is None else (3, 2)
    assert formats.first_nonfinite(x) == expected
    if bad is not None:
        with pytest.raises(DataError, match="example 3 holds NaN or Inf"):
            Dataset(torch.from_numpy(x), None, "big")
        with pytest.raises(DataError, match="example 3 holds NaN or Inf"):
            formats.as_dataset(x, None, "big", "big.npy")
    else:
        assert len(formats.as_dataset(x, None, "big", "big.npy")) == 5


@pytest.mark.parametrize(
    "x, y, expected",
    [
        (np.ones((3, 2)), np.array([0.5, 1, 2]), "not whole-number class ids"),
        (np.ones((3, 2)), np.arange(4), "3 examples but labels of shape"),
        (np.ones(3), None, "neither a table"),
        (np.ones((0, 2)), None, "holds no examples"),
        (np.array([["a"], ["b"]]), None, "not numeric"),
    ],
)
def test_as_dataset_refuses_bad_arrays(x, y, expected):
    with pytest.raises(DataError, match=rf"src\.npz: .*{expected}"):
        formats.as_dataset(x, y, "d", "src.npz")


# ---------------------------------------------------------------------------------------------------------
# CSV


def test_csv_with_header_and_label_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2.5,0\n-3, 4e2 ,1\n\n5,6,1\n")
    x, y, classes = formats.read_csv(path)
    np.testing.assert_array_equal(x, np.array([[1, 2.5], [-3, 400], [5, 6]], np.float32))
    np.testing.assert_array_equal(y, [0, 1, 1])
    assert classes is None  # numeric labels have no names


def test_csv_without_header_has_no_labels(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,3\n4,5,6\n")
    x, y, classes = formats.read_csv(path)
    assert x.dtype == np.float32 and x.shape == (2, 3) and y is None and classes is None


def test_csv_text_classes_are_numbered_in_sorted_order_and_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Class,f\ncat,1\ndog,2\nant,3\n")
    _, y, classes = formats.read_csv(path)
    np.testing.assert_array_equal(y, [1, 2, 0])
    assert classes == ("ant", "cat", "dog")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a,b\n1,2\n3,x\n", r"line 3, column 'b' holds 'x', not a number"),
        ("1,2\n3,\n", r"line 2, column 2 is empty"),
        ("a,b\n1,nan\n", r"line 2, column 'b' holds 'nan'"),
        ("a,b\n1,2\n3\n", r"line 3 has 1 columns, expected 2"),
        ("a,b,y\n1,2,0\n3,4,\n", r"line 3, column 'y' is empty"),
        ("a,b\n", r"holds a header but no rows"),
    ],
)
def test_bad_csv_names_file_row_and_column(tmp_path, text, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=rf"bad\.csv: {expected}"):
        formats.read_csv(path)


# ---------------------------------------------------------------------------------------------------------
# Image folders


def test_image_folder_with_class_subfolders(tmp_path, write_images, rng):
    images = rng.integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)
    labels = np.array([1, 0, 2, 1, 0, 2])
    write_images(tmp_path, images, labels)
    (tmp_path / "empty").mkdir()  # a subfolder without images is not a class
    x, y, classes = formats.read_image_folder(tmp_path)
    order = np.argsort(labels, kind="stable")  # files are read class by class, then by name
    np.testing.assert_array_equal(x, images[order].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(y, labels[order])
    assert classes == ("c0", "c1", "c2")  # the subfolders' names


def test_flat_grey_image_folder_has_no_labels(tmp_path, write_images, rng):
    images = rng.integers(0, 256, (3, 7, 7, 1), dtype=np.uint8)
    write_images(tmp_path, images)
    x, y, classes = formats.read_image_folder(tmp_path)
    assert y is None and classes is None and x.shape == (3, 1, 7, 7)
    np.testing.assert_array_equal(x, images.transpose(0, 3, 1, 2))


def test_wrong_size_image_names_the_file(tmp_path, write_images, rng):
    write_images(tmp_path, rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8))
    odd = write_images(tmp_path / "odd", rng.integers(0, 256, (1, 8, 9, 3), dtype=np.uint8))[0]
    (tmp_path / "odd" / odd.name).rename(tmp_path / "001b.png")
    with pytest.raises(DataError, match=r"001b\.png: 9x8 pixels with 3 channel\(s\), but 000\.png has 8x8"):
        formats.read_image_folder(tmp_path)


def test_unreadable_image_names_the_file(tmp_path, write_images, rng):
    write_images(tmp_path, rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        formats.read_image_folder(tmp_path)


def test_a_csv_label_column_is_taken_with_a_note(tmp_path):
    from aekit.data import load_data

    path = tmp_path / "t.csv"
    path.write_text("a,b,Target\n" + "\n".join(f"{i},{i * 2},{i % 2}" for i in range(20)) + "\n")
    splits = load_data(str(path))
    assert splits.train.inputs().shape[1:] == (2,)
    assert splits.notes == ["t.csv: labels from its column 'Target', the other columns are the inputs (rename the "
                            "column to train on it as an input)"]
    (tmp_path / "u.csv").write_text("a,b\n" + "\n".join(f"{i},{i * 2}" for i in range(20)) + "\n")
    assert load_data(str(tmp_path / "u.csv")).notes == []
