"""The loaders against the real datasets and their published reference figures (see the datasets README)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aekit.data import formats, load_data

MNIST_TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _folder(root: Path, name: str) -> Path:
    if not (root / name).is_dir():
        pytest.skip(f"{root / name} not found")
    return root / name


def test_mnist_counts_mean_and_labels(real_root):
    parts = formats.load_idx_folder(_folder(real_root, "mnist"))
    train, test = parts["train"], parts["test"]
    assert (len(train), len(test)) == (60000, 10000) and train.shape == (1, 28, 28) and train.is_8bit
    assert train.x.double().mean().item() / 255 == pytest.approx(0.1307, abs=1e-3)
    assert torch.bincount(train.y).tolist() == MNIST_TRAIN_LABEL_COUNTS
    splits = load_data("mnist", root=real_root)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    assert torch.equal(splits.test.x, test.x)


def test_binarized_mnist_official_split_and_mean(real_root):
    _folder(real_root, "binarized_mnist")
    splits = load_data("binarized-mnist", root=real_root)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50000, 10000, 10000)
    assert splits.train.x.unique().tolist() == [0.0, 1.0]
    assert splits.train.x.mean().item() == pytest.approx(0.1306, abs=1e-4)


def test_cifar10_shape_and_channel_means(real_root):
    _folder(real_root, "cifar10")
    splits = load_data("cifar10", root=real_root)
    x = torch.cat([splits.train.x, splits.val.x, splits.test.x])  # [50000, 3, 32, 32] uint8
    assert x.shape == (50000, 3, 32, 32) and x.dtype == torch.uint8
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40000, 5000, 5000)
    means = x.sum(dim=(0, 2, 3), dtype=torch.int64).double() / (x.numel() / 3) / 255
    assert means.tolist() == pytest.approx([0.4914, 0.4822, 0.4465], abs=1e-3)
    assert torch.bincount(torch.cat([splits.train.y, splits.val.y, splits.test.y])).tolist() == [5000] * 10
    assert splits.train.classes == splits.test.classes
    assert splits.train.classes[:3] == ("airplane", "automobile", "bird") and len(splits.train.classes) == 10
