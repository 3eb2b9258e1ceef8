"""The one-class protocol of image anomaly detection (Ruff et al. 2018, "Deep one-class classification").

One class of a labelled image set is normal: a detector trains on the training images of that class alone and
scores every test image; the test images of every other class are the anomalies (label 1). The figure is the
ROC-AUC of the scores, per normal class, and its mean over the classes.

    data = one_class_split("mnist", normal=3)          # MNIST: the official 10,000 test images
    data = one_class_split("cifar10", normal="cat")    # only the training file here: test held out of it

A data set with an official test part (MNIST, Fashion-MNIST, CIFAR-10 from its batches) is scored on it; one
without (``cifar10_train.npz`` alone, ``digits``, a user's file) holds out ``test_fraction`` of its images with
``seed``, the same draw as ``aekit train`` makes, before the normal class's images are taken from the rest.
Pixels are scaled to [0, 1] (8-bit images by 1/255), the scale the report figures draw. A labelled table (an
npz of ``X [N, D]`` and class ids ``y``) is split the same way, into rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from aekit.errors import DataError


@dataclass
class OneClassData:
    """``train [N, C, H, W]`` images of the normal class; ``test [M, C, H, W]`` images of every class with
    ``labels [M]`` (1 = anomalous, i.e. another class) and ``test_classes [M]`` (the class ids). A labelled table
    gives rows ``[N, D]`` instead of images."""

    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray
    test_classes: np.ndarray
    name: str
    normal: int
    classes: tuple[str, ...]

    @property
    def normal_name(self) -> str:
        return self.classes[self.normal]


def _class_id(normal: int | str, classes: tuple[str, ...], name: str) -> int:
    if isinstance(normal, str) and not normal.lstrip("-").isdigit():
        lowered = [c.lower() for c in classes]
        if normal.lower() not in lowered:
            raise DataError(f"{name}: no class named {normal!r}; choose one of {', '.join(classes)} (or its number)")
        return lowered.index(normal.lower())
    k = int(normal)
    if not 0 <= k < len(classes):
        raise DataError(f"{name}: normal class {k} is out of range; its classes are 0..{len(classes) - 1} "
                        f"({', '.join(classes)})")
    return k


def _pixels(source) -> tuple[np.ndarray, np.ndarray]:
    x, y = source.x, source.y
    if y is None:
        raise DataError(f"{source.name}: has no labels; the one-class protocol needs a class per image")
    images = x.numpy()
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    return images, y.numpy().astype(np.int64)  # images [N, C, H, W], or the rows [N, D] of a labelled table


def one_class_split(dataset: str | os.PathLike, normal: int | str, *, root: str | os.PathLike | None = None,
                    seed: int = 0, test_fraction: float = 0.2) -> OneClassData:
    """The training images of class ``normal`` (a number or a class name) and the labelled test images."""
    from aekit.data.registry import load_data

    splits = load_data(str(dataset), root=root, seed=seed, val_fraction=0.0, test_fraction=test_fraction)
    train, test = splits.train, splits.test
    if not hasattr(train, "x"):
        raise DataError(f"{dataset}: the one-class protocol reads labelled images or table rows held in memory; "
                        f"this data is read as a {type(train).__name__}")
    x_train, y_train = _pixels(train)
    x_test, y_test = _pixels(test)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    classes = tuple(train.classes or [str(k) for k in range(n_classes)])
    k = _class_id(normal, classes, str(dataset))
    mine = y_train == k
    if mine.sum() < 2 or (y_test == k).all() or not (y_test == k).any():
        raise DataError(f"{dataset}: class {classes[k]!r} has {int(mine.sum())} training and "
                        f"{int((y_test == k).sum())} of {len(y_test)} test images; the protocol needs both normal "
                        "and other test images")
    name = f"{os.path.basename(str(dataset))}-{classes[k]}"
    return OneClassData(x_train[mine], x_test, (y_test != k).astype(np.int64), y_test, name, k, classes)
