"""load_data: registered names, the user's paths (format from the contents), splits and their errors."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import aekit.data
from aekit.data import (
    DatasetInfo,
    dataset_info,
    detect_format,
    list_datasets,
    load_data,
    register_dataset,
)
from aekit.errors import DataError

REGISTERED = ["digits", "mnist", "fashion-mnist", "binarized-mnist", "dynamic-binarized-mnist", "cifar10", "sbm",
              "cora", "citeseer", "pubmed", "dsprites", "color-dsprites", "shapes3d", "xy-blocks"]


def test_registered_names_and_descriptions():
    assert [name for name, _ in list_datasets()] == REGISTERED
    assert all(description for _, description in list_datasets())
    assert dataset_info("fashion-mnist").folder == "fashion_mnist"


def test_unknown_name_and_duplicate_registration_are_refused():
    with pytest.raises(DataError, match="nope: not a registered dataset; pick one of digits, mnist"):
        dataset_info("nope")
    with pytest.raises(ValueError, match="'mnist' is already registered"):
        register_dataset(DatasetInfo("mnist", "again", "mnist", "files", lambda folder: {}))


def test_missing_path_says_what_to_pass(tmp_path):
    with pytest.raises(
        DataError, match=r"nothing\.csv: no such file or folder; pass a registered name \(digits, mn"
    ):
        load_data(str(tmp_path / "nothing.csv"))


def test_on_disk_dataset_needs_a_root(monkeypatch):
    monkeypatch.delenv("AEKIT_DATA", raising=False)
    with pytest.raises(DataError, match="mnist: no data folder given; set AEKIT_DATA .* or pass a path"):
        load_data("mnist")


def test_registered_folder_missing_under_root_is_named(tmp_path):
    with pytest.raises(
        DataError, match=rf"cifar10: {tmp_path / 'cifar10'} does not exist; put cifar10_train"
    ):
        load_data("cifar10", root=tmp_path)


@pytest.mark.parametrize("name, folder", [("mnist", "mnist"), ("fashion-mnist", "fashion_mnist")])
def test_idx_datasets_hold_validation_out_of_train(tmp_path, mnist_like, monkeypatch, name, folder):
    written, arrays = mnist_like(gz=True, n_train=20, n_test=5)
    written.rename(tmp_path / folder)
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path))
    splits = load_data(name, val_fraction=0.25, test_fraction=0.4)  # test_fraction unused: official test
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 5)
    assert splits.train.name == f"{name}/train" and splits.test.name == f"{name}/test"
    np.testing.assert_array_equal(splits.test.x.numpy()[:, 0], arrays["t10k"][0])
    seen = torch.cat([splits.train.x, splits.val.x]).flatten(1).tolist()
    assert sorted(seen) == sorted(arrays["train"][0].reshape(20, -1).tolist())
    names = {"mnist": None, "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover")}[name]
    assert all((part.classes or ())[:3] == (names or ()) for part in (splits.train, splits.val, splits.test))


def test_binarized_mnist_keeps_the_official_three_parts(tmp_path, write_amat, rng):
    for part, n in (("train", 6), ("valid", 3), ("test", 2)):
        bits = rng.integers(0, 2, (n, 784))
        write_amat(tmp_path / "binarized_mnist" / f"binarized_mnist_{part}.amat", bits)
    splits = load_data("binarized-mnist", root=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 3, 2)
    assert splits.train.x.dtype == torch.float32 and splits.val.name == "binarized-mnist/val"


def test_cifar10_from_npz_with_train_only_gets_a_seeded_split(tmp_path, rng):
    (tmp_path / "cifar10").mkdir()
    x, y = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 20)
    np.savez(tmp_path / "cifar10" / "cifar10_train.npz", x_train=x, y_train=y)
    splits = load_data("cifar10", root=tmp_path, val_fraction=0.2, test_fraction=0.1)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (14, 4, 2)
    assert splits.shape == (3, 32, 32) and splits.train.is_8bit
    assert splits.test.classes[0] == "airplane" and splits.test.classes[9] == "truck"  # the file names none


def test_cifar10_from_python_batches_keeps_the_test_batch(tmp_path, write_cifar_batch, rng):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    for name, n in (("data_batch_1", 10), ("data_batch_2", 10), ("test_batch", 4)):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        write_cifar_batch(folder / name, x, np.arange(n) % 10)
    splits = load_data("cifar10", root=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 2, 4)


def test_digits_split_sizes_scale_and_determinism():
    splits = load_data("digits", seed=3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1437, 180, 180)
    assert splits.shape == (1, 8, 8) and splits.train.x.dtype == torch.float32
    assert float(splits.train.x.min()) == 0.0 and float(splits.train.x.max()) == 1.0
    again, other = load_data("digits", seed=3), load_data("digits", seed=4)
    assert torch.equal(splits.val.x, again.val.x) and torch.equal(splits.test.y, again.test.y)
    assert not torch.equal(splits.val.x, other.val.x)


# ---------------------------------------------------------------------------------------------------------
# The user's own files: format from the contents


@pytest.fixture
def user_files(tmp_path, mnist_like, write_amat, write_cifar_batch, write_images, rng):
    """One example of every supported format, several under misleading names."""
    idx_folder, _ = mnist_like(gz=True)
    amat_folder = tmp_path / "amat"
    for part in ("train", "valid", "test"):
        write_amat(amat_folder / f"binarized_mnist_{part}.amat.gz", rng.integers(0, 2, (4, 784)), gz=True)
    cifar_batch = tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_1"
    write_cifar_batch(cifar_batch, np.zeros((10, 3, 8, 8), np.uint8), np.zeros(10))
    images = tmp_path / "pictures"
    write_images(images, rng.integers(0, 256, (10, 6, 6, 3), dtype=np.uint8), np.arange(10) % 2)
    npy = tmp_path / "array.dat"
    with open(npy, "wb") as f:
        np.save(f, rng.random((10, 4)))
    np.savez(tmp_path / "arrays.bin", x=rng.random((10, 4)), y=np.arange(10))
    (tmp_path / "table.txt").write_text("a,b,target\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(10)))
    (tmp_path / "table.csv.gz").write_bytes(gzip.compress("".join(f"{i},{i + 1}\n" for i in range(10)).encode()))
    single_idx = mnist_like(gz=False, name="single")[0] / "train-images-idx3-ubyte"
    images_file = single_idx.rename(tmp_path / "images")
    amat_file = write_amat(tmp_path / "bits.txt", rng.integers(0, 2, (10, 784)))
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, rows in enumerate((slice(0, 4), slice(4, 10))):
        save_file({"inputs": rng.random((10, 3)).astype(np.float32)[rows]}, shards / f"{i}.safetensors")
    save_file({"inputs": np.ones((10, 2), np.uint8), "labels": np.arange(10)}, tmp_path / "tensors.bin")
    return {
        "idx-folder": (idx_folder, 12 + 5),
        "amat-folder": (amat_folder, 12),
        "cifar-batches": (cifar_batch.parents[1], 10),
        "image-folder": (images, 10),
        "idx": (images_file, 12),
        "amat": (amat_file, 10),
        "cifar-batch": (cifar_batch, 10),
        "numpy": (npy, 10),
        "numpy-npz": (tmp_path / "arrays.bin.npz", 10),
        "csv": (tmp_path / "table.txt", 10),
        "csv-gz": (tmp_path / "table.csv.gz", 10),
        "safetensors": (tmp_path / "tensors.bin", 10),
        "safetensors-shards": (shards, 10),
    }


def test_formats_are_recognised_from_the_contents(user_files):
    for kind, (path, n) in user_files.items():
        assert detect_format(path) == kind.split("-npz")[0].split("-gz")[0].split("-shards")[0], path
        splits = load_data(str(path), seed=1)
        assert len(splits.train) + len(splits.val) + len(splits.test) == n, kind


def test_class_names_of_an_image_folder_survive_the_split(tmp_path, write_images, rng):
    write_images(tmp_path / "pets", rng.integers(0, 256, (9, 4, 4, 3), dtype=np.uint8), np.arange(9) % 3)
    for k, name in enumerate(("cat", "dog", "eel")):
        (tmp_path / "pets" / f"c{k}").rename(tmp_path / "pets" / name)
    splits = load_data(str(tmp_path / "pets"), seed=0, val_fraction=0.25, test_fraction=0.25)
    for part in (splits.train, splits.val, splits.test):
        assert part.classes == ("cat", "dog", "eel")
        assert part.y.max() < 3


def test_single_file_gets_a_seeded_disjoint_split(tmp_path, rng):
    x = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    np.save(tmp_path / "t.npy", x)
    splits = load_data(str(tmp_path / "t.npy"), seed=7, val_fraction=0.2, test_fraction=0.1)
    ids = [set(part.x[:, 0].int().tolist()) for part in (splits.train, splits.val, splits.test)]
    assert [len(s) for s in ids] == [70, 20, 10] and set.union(*ids) == set(range(100))
    assert splits.train.name == "t/train"
    again = load_data(str(tmp_path / "t.npy"), seed=7, val_fraction=0.2, test_fraction=0.1)
    assert torch.equal(splits.test.x, again.test.x)


def test_load_data_notes_which_npz_arrays_it_took(tmp_path, rng):
    np.savez(tmp_path / "d.npz", X=rng.random((20, 3)), Y=np.arange(20) % 4, y=np.zeros(20))
    guessed = load_data(str(tmp_path / "d.npz"))
    assert guessed.notes == [f"{tmp_path / 'd.npz'}: inputs 'X', labels 'y' (chosen by their names; pass inputs=... "
                             "labels=... to choose others)"]
    chosen = load_data(str(tmp_path / "d.npz"), inputs="X", labels="Y", seed=2)
    assert chosen.notes == [] and sorted(chosen.train.y.unique().tolist()) == [0, 1, 2, 3]
    assert chosen.with_val_in_train().notes == [] and guessed.with_val_in_train().notes == guessed.notes
    with pytest.raises(DataError, match=r"d\.npz: holds no array named 'x'; its arrays are 'X', 'Y', 'y'"):
        load_data(str(tmp_path / "d.npz"), inputs="x")
    (tmp_path / "t.csv").write_text("".join(f"{i},{i}\n" for i in range(10)))
    with pytest.raises(DataError, match=r"t\.csv: inputs= and labels= choose arrays of a \.npy/\.npz or safetensors"):
        load_data(str(tmp_path / "t.csv"), labels="y")


def test_unrecognised_folder_and_labels_file_alone_are_refused(tmp_path, mnist_like):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no dataset recognised"):
        load_data(str(tmp_path / "empty"))
    folder, _ = mnist_like(gz=True)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: an IDX labels file alone"):
        load_data(str(folder / "train-labels-idx1-ubyte.gz"))


def test_importing_aekit_data_stays_light():
    code = "import sys, aekit.data; print(sorted({'sklearn', 'PIL', 'matplotlib'} & set(sys.modules)))"
    src = str(Path(aekit.data.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"
