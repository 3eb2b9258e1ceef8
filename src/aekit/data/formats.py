"""Readers for the standard on-disk dataset formats.

``read_*`` functions read one file (or folder) into numpy arrays; ``load_*`` functions read a dataset's files
into named parts of :class:`Dataset`: ``train``/``val``/``test`` where the data ships its own split, ``all``
where it does not. Gzip is recognised by a file's first bytes, whatever its name. Nothing here downloads.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import math
import os
import pickle
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from aekit.data.base import Dataset, first_nonfinite
from aekit.errors import DataError

PathLike = str | os.PathLike[str]
Parts = dict[str, Dataset]
Classes = tuple[str, ...] | None  # the name of each class id, where the data names them

GZIP_MAGIC = b"\x1f\x8b"
IDX_IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions [N, H, W]
IDX_LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension [N]
AMAT_SIDE = 28
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
LABEL_COLUMNS = ("label", "labels", "y", "target", "class")
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


# ---------------------------------------------------------------------------------------------------------
# Shared helpers


def _gzip_error(path: PathLike, err: Exception) -> DataError:
    return DataError(f"{path}: corrupt or truncated gzip file ({err}); copy or download the file again")


def _unreadable(path: PathLike, err: OSError) -> DataError:
    return DataError(f"{path}: cannot be read ({err.strerror or err}); check the path")


def _is_gzip(path: PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def read_bytes(path: PathLike) -> bytes:
    """All bytes of a file, decompressed when it is gzipped."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise _unreadable(path, err) from None
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise _gzip_error(path, err) from None


def read_head(path: PathLike, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a file (after decompression when gzipped), to recognise its format."""
    try:
        gzipped = _is_gzip(path)
        with gzip.open(path) if gzipped else open(path, "rb") as f:
            return f.read(size)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise _gzip_error(path, err) from None
    except OSError as err:
        raise _unreadable(path, err) from None


def layout(shape: tuple[int, ...], source: PathLike) -> tuple[tuple[int, ...], bool]:
    """The shape that arrays of ``shape`` take in a dataset (tables ``[N, D]``, images ``[N, C, H, W]``), and
    whether their channels move from the last axis to the second."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 2:
        return shape, False
    if len(shape) == 3:  # [N, H, W] -> [N, 1, H, W]
        return (shape[0], 1, *shape[1:]), False
    if len(shape) == 4:
        channels_last = shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4)
        return ((shape[0], shape[3], shape[1], shape[2]) if channels_last else shape), channels_last
    raise DataError(
        f"{source}: array of shape {shape} is neither a table [N, D] nor images [N, H, W], "
        "[N, C, H, W] or [N, H, W, C]; reshape it to one of these"
    )


def _to_layout(x: np.ndarray, source: PathLike) -> np.ndarray:
    """Tables stay ``[N, D]``; images become ``[N, C, H, W]``."""
    shape, channels_last = layout(x.shape, source)
    return x.transpose(0, 3, 1, 2) if channels_last else x.reshape(shape)  # [N, H, W, C] -> [N, C, H, W]


def stored_dtype(dtype: np.dtype, source: PathLike) -> np.dtype:
    """The dtype a dataset keeps numbers of ``dtype`` in: ``uint8`` stays 8-bit levels, the integer types torch
    holds (int8..int64, uint16) stay token ids or codes, uint32 ids become int64, anything else float32."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise DataError(f"{source}: array of dtype {dtype} is not numeric; store numbers (uint8, integers or floats)")
    if dtype.kind in "bf":
        return np.dtype(np.float32)
    if dtype.itemsize == 8 and dtype.kind == "u":
        raise DataError(f"{source}: uint64 ids are not supported; store them as int64")
    return np.dtype(np.int64) if dtype.kind == "u" and dtype.itemsize == 4 else np.dtype(dtype.name)  # native order


def as_labels(y: np.ndarray, n: int, source: PathLike) -> np.ndarray:
    """``y`` as int64 class ids ``[n]``, or an error naming ``source`` where they are not one whole number each."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{source}: {n} examples but labels of shape {y.shape}; give one label per example")
    whole = y.dtype.kind in "biu" or (
        y.dtype.kind == "f" and first_nonfinite(y) is None and bool((y == np.round(y)).all())
    )
    if not whole:
        raise DataError(f"{source}: labels of dtype {y.dtype} are not whole-number class ids; pass integers")
    return y.astype(np.int64)


def _tensor(a: np.ndarray) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def as_dataset(x: np.ndarray, y: np.ndarray | None, name: str, source: PathLike, classes: Classes = None, *,
               owned: bool = True) -> Dataset:
    """A :class:`Dataset` from numpy arrays read from ``source`` (named in errors), ``classes`` naming the labels;
    ``owned``: x was read for it alone (False for a caller's array, which a split then copies rather than
    rearranges).

    Images become ``[N, C, H, W]`` (``[N, H, W]`` gains a channel, ``[N, H, W, C]`` is transposed when its
    last axis holds 1, 3 or 4 channels and its second does not); tables stay ``[N, D]``. ``uint8`` stays
    8-bit (scaled to ``[0, 1]`` when a batch is taken), other integers stay integers (token ids, codes; see
    :func:`stored_dtype`); any other number becomes float32.
    """
    dtype = stored_dtype(x.dtype, source)
    if len(x) == 0:
        raise DataError(f"{source}: holds no examples; pass a non-empty dataset")
    x = _to_layout(x, source).astype(dtype, copy=False)
    bad = first_nonfinite(x)
    if bad is not None:
        raise DataError(f"{source}: example {bad[0]} holds NaN or Inf (at {bad}); clean or drop it first")
    labels = None if y is None else _tensor(as_labels(y, len(x), source))
    try:
        return Dataset(_tensor(x), labels, name, classes, owned=owned)
    except DataError as err:  # name the file rather than the part
        raise DataError(f"{source}: {str(err).split(': ', 1)[1]}") from None


def _find(folder: Path, pattern: str) -> Path | None:
    """The first file of ``folder`` whose name matches ``pattern`` (raw sorts before ``.gz``), or None."""
    hits = sorted(p for p in folder.glob(pattern) if p.is_file())
    return hits[0] if hits else None


# ---------------------------------------------------------------------------------------------------------
# MNIST-style IDX files


def _read_idx(path: PathLike, magic: int, example: str) -> np.ndarray:
    data = read_bytes(path)
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise DataError(
            f"{path}: IDX magic number is {found}, expected {magic}; "
            f"pass an MNIST-style IDX file such as {example}[.gz]"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated inside the IDX header; copy or download the file again")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    size = math.prod(dims)
    if len(data) - header < size:
        raise DataError(
            f"{path}: truncated: the header promises {dims} ({size} bytes) but only {len(data) - header} "
            "follow; copy or download the file again"
        )
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(dims)


def read_idx_images(path: PathLike) -> np.ndarray:
    """An IDX image file (magic 2051, gzipped or raw) as uint8 ``[N, 1, H, W]``."""
    return _read_idx(path, IDX_IMAGES_MAGIC, "train-images-idx3-ubyte")[:, None]  # [N, H, W] -> [N, 1, H, W]


def read_idx_labels(path: PathLike) -> np.ndarray:
    """An IDX label file (magic 2049, gzipped or raw) as int64 ``[N]``."""
    return _read_idx(path, IDX_LABELS_MAGIC, "train-labels-idx1-ubyte").astype(np.int64)


def load_idx(images: PathLike, labels: PathLike, name: str) -> Dataset:
    """A pair of IDX files (images and their labels) as one dataset."""
    x, y = read_idx_images(images), read_idx_labels(labels)
    if len(x) != len(y):
        raise DataError(
            f"{images} holds {len(x)} images but {labels} holds {len(y)} labels; pass a matching file pair"
        )
    return as_dataset(x, y, name, images)


def find_idx_pair(folder: PathLike, prefix: str) -> tuple[Path, Path] | None:
    """``{prefix}-images-idx3-ubyte`` and ``{prefix}-labels-idx1-ubyte`` (``.gz`` or raw, ``-`` or ``.``)."""
    folder = Path(folder)
    images = _find(folder, f"{prefix}-images[-.]idx3-ubyte*")
    labels = _find(folder, f"{prefix}-labels[-.]idx1-ubyte*")
    return (images, labels) if images and labels else None


def load_idx_folder(folder: PathLike) -> Parts:
    """The four MNIST-style IDX files of ``folder`` (MNIST, Fashion-MNIST, KMNIST...) as train and test."""
    parts = {}
    for part, prefixes in (("train", ("train",)), ("test", ("t10k", "test"))):
        pair = next(filter(None, (find_idx_pair(folder, prefix) for prefix in prefixes)), None)
        if pair is None:
            raise DataError(
                f"{folder}: no {prefixes[0]}-images-idx3-ubyte[.gz] and {prefixes[0]}-labels-idx1-ubyte[.gz] "
                "files; put the four official IDX files there"
            )
        parts[part] = load_idx(*pair, name=part)
    return parts


# ---------------------------------------------------------------------------------------------------------
# Binarized MNIST .amat text


def read_amat(path: PathLike) -> np.ndarray:
    """Binarized MNIST ``.amat`` text (one image a line, 784 values of 0 or 1) as float32 ``[N, 1, 28, 28]``.

    Stored as float32 0/1, not uint8: uint8 means 8-bit levels 0..255 to :class:`Dataset`.
    """
    data = read_bytes(path)
    chars = np.frombuffer(data, np.uint8)
    width = 2 * AMAT_SIDE**2  # the published files: "0 1 ... 0\n", each value followed by one separator
    if len(chars) % width == 0:
        lines = chars.reshape(-1, width)  # [N, 1568]
        bits = lines[:, 0::2] - np.uint8(ord("0"))  # [N, 784]; bytes below "0" wrap round to large values
        if (bits <= 1).all() and (lines[:, 1:-1:2] == ord(" ")).all() and (lines[:, -1] == ord("\n")).all():
            return bits.astype(np.float32).reshape(-1, 1, AMAT_SIDE, AMAT_SIDE)  # [N, 1, 28, 28]
    # Any other layout (other whitespace, blank lines, errors) takes the general path.
    is_bit = (chars == ord("0")) | (chars == ord("1"))
    is_newline = chars == ord("\n")
    bad = ~(is_bit | is_newline | (chars == ord(" ")) | (chars == ord("\t")) | (chars == ord("\r")))
    bad[1:] |= is_bit[1:] & is_bit[:-1]  # two digits in a row: a value such as "10", not 0 or 1
    if bad.any():
        at = int(bad.argmax())
        line = int(np.count_nonzero(is_newline[:at])) + 1
        before, after = data[max(0, at - 64) : at], data[at : at + 64]
        value = re.search(rb"\S*\Z", before).group() + re.match(rb"\S*", after).group()
        raise DataError(
            f"{path}: line {line} holds {value.decode('latin1')!r}; each line must be "
            f"{AMAT_SIDE**2} values of 0 or 1 separated by spaces"
        )
    line_starts = np.concatenate([[0], np.flatnonzero(is_newline) + 1])
    line_starts = line_starts[line_starts < len(chars)]
    counts = np.add.reduceat(is_bit, line_starts, dtype=np.int64) if len(line_starts) else np.zeros(0)
    wrong = np.flatnonzero((counts > 0) & (counts != AMAT_SIDE**2))  # blank lines are skipped
    if len(wrong):
        line = int(wrong[0]) + 1
        raise DataError(
            f"{path}: line {line} holds {int(counts[wrong[0]])} values, expected {AMAT_SIDE**2} (28x28); "
            "the file is corrupt or not binarized MNIST"
        )
    if not counts.any():
        raise DataError(f"{path}: holds no images; pass a binarized MNIST .amat file")
    bits = (chars[is_bit] - ord("0")).astype(np.float32)
    return bits.reshape(-1, 1, AMAT_SIDE, AMAT_SIDE)  # [N * 784] -> [N, 1, 28, 28]


def load_amat_folder(folder: PathLike) -> Parts:
    """The ``*train*``, ``*valid*`` and ``*test*`` ``.amat[.gz]`` files of ``folder`` (train is required)."""
    folder = Path(folder)
    parts = {}
    for part, word in (("train", "train"), ("val", "valid"), ("test", "test")):
        path = _find(folder, f"*{word}*.amat*")
        if path is not None:
            parts[part] = as_dataset(read_amat(path), None, part, path)
    if "train" not in parts:
        raise DataError(f"{folder}: no *train*.amat[.gz] file; put binarized_mnist_train.amat(.gz) there")
    return parts


# ---------------------------------------------------------------------------------------------------------
# CIFAR python batches (pickles, read with a restricted unpickler)

# The functions numpy's pickles call to rebuild arrays and scalars (taken from numpy itself, so whichever
# numpy is installed), allowed under both their numpy 1 (numpy.core) and numpy 2 (numpy._core) names.
_ARRAY_REBUILDERS = (
    ("multiarray", np.empty(0).__reduce__()[0]),  # _reconstruct
    ("multiarray", np.float64(0).__reduce__()[0]),  # scalar
    ("numeric", np.empty(1).__reduce_ex__(5)[0]),  # _frombuffer (pickle protocol 5)
)
_PICKLE_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles written by Python 3 store bytes
    **{
        (f"{core}.{module}", rebuild.__name__): rebuild
        for core in ("numpy.core", "numpy._core")
        for module, rebuild in _ARRAY_REBUILDERS
    },
}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers only: any other class or function is refused unrun."""

    def __init__(self, data: bytes, path: PathLike, extra: dict[tuple[str, str], object] | None = None) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")  # latin1 reads Python-2 numpy pickles
        self.path, self.allowed = path, {**_PICKLE_ALLOWED, **(extra or {})}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.allowed:
            extra = sorted({n for (m, n) in self.allowed if (m, n) not in _PICKLE_ALLOWED} - {"list"})
            raise DataError(
                f"{self.path}: the pickle asks for {module}.{name}, which is refused; only numpy arrays, numbers, "
                f"strings, lists, dicts{''.join(', ' + k for k in extra)} are read from pickles"
            )
        return self.allowed[(module, name)]


def read_pickle(path: PathLike, extra: dict[tuple[str, str], object] | None = None) -> object:
    """A pickle holding only numpy arrays and plain Python containers, plus the classes in ``extra`` (keyed by
    ``(module, name)``), which no code is ever run to find: anything else is refused before it is built."""
    try:
        return _ArrayUnpickler(read_bytes(path), path, extra).load()
    except DataError:
        raise
    except Exception as err:  # a corrupt pickle can fail in many ways
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err}); check it") from None


def _text_keys(d: dict) -> dict:
    """A CIFAR pickle's dict with its keys as text (Python 2 pickles store them as bytes)."""
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_cifar_batch(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch (a dict with ``data`` [N, 3072] and ``labels``) as uint8 ``[N, 3, 32, 32]``."""
    batch = read_pickle(path)
    if isinstance(batch, dict):
        batch = _text_keys(batch)
        data, labels = batch.get("data"), batch.get("labels", batch.get("fine_labels"))
    else:
        data, labels = None, None
    side = math.isqrt(data.shape[1] // 3) if isinstance(data, np.ndarray) and data.ndim == 2 else 0
    if labels is None or side == 0 or data.dtype != np.uint8 or 3 * side * side != data.shape[1]:
        raise DataError(
            f"{path}: not a CIFAR python batch (a dict with uint8 'data' of shape [N, 3*H*W] and 'labels'); "
            "pass the files of cifar-10-batches-py"
        )
    return data.reshape(-1, 3, side, side), np.asarray(labels)  # rows are R, G, B planes: already CHW


def load_cifar_batches(folder: PathLike) -> Parts:
    """The CIFAR python batches of ``folder`` (``data_batch_1`` ... and ``test_batch`` when present)."""
    folder = Path(folder)
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    files = sorted(folder.glob("data_batch_*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    if not files:
        raise DataError(f"{folder}: no data_batch_* files; pass the cifar-10-batches-py folder")
    xs, ys = zip(*(read_cifar_batch(path) for path in files), strict=True)
    classes = read_cifar_meta(folder / "batches.meta") if (folder / "batches.meta").is_file() else None
    parts = {"train": as_dataset(np.concatenate(xs), np.concatenate(ys), "train", folder, classes)}
    test = folder / "test_batch"
    if test.is_file():
        parts["test"] = as_dataset(*read_cifar_batch(test), "test", test, classes)
    return parts


def read_cifar_meta(path: PathLike) -> tuple[str, ...]:
    """The class names of a CIFAR ``batches.meta`` (``label_names``; ``fine_label_names`` for CIFAR-100)."""
    meta = read_pickle(path)
    if isinstance(meta, dict):
        meta = _text_keys(meta)
        names = meta.get("label_names", meta.get("fine_label_names"))
        if isinstance(names, list) and names:
            return _texts(names)
    raise DataError(f"{path}: not a CIFAR batches.meta (a dict with 'label_names'); replace or remove it")


# ---------------------------------------------------------------------------------------------------------
# .npy / .npz arrays

_X_KEYS = ("x", "images", "data", "features", "inputs")
_Y_KEYS = ("y", "labels", "label", "targets", "target")
_CLASS_KEYS = ("label_names", "class_names", "classes")


NumpyParts = dict[str, tuple[np.ndarray, np.ndarray | None]]


def _npz_keys(files: list[str]) -> dict[str, tuple[str, str | None]]:
    """Array names by part: ``x_train``/``y_train`` (and val/valid/test), else x/y, else the first array."""
    by_lower = {name.lower(): name for name in files}
    parts = {}
    for part, suffixes in (("train", ("train",)), ("val", ("val", "valid")), ("test", ("test",))):
        for suffix in suffixes:
            if f"x_{suffix}" in by_lower:
                parts[part] = (by_lower[f"x_{suffix}"], by_lower.get(f"y_{suffix}"))
                break
    if "train" in parts:
        return parts
    x_key = _by_name(files, _X_KEYS) or files[0]
    return {"all": (x_key, _by_name(files, _Y_KEYS))}


def _by_name(files: list[str], names: tuple[str, ...]) -> str | None:
    """The first of ``files`` called one of ``names`` (in their order, any case), or None."""
    by_lower = {name.lower(): name for name in files}
    return next((by_lower[k] for k in names if k in by_lower), None)


def _chosen_keys(
    files: list[str], inputs: str | None, labels: str | None, path: PathLike
) -> tuple[dict[str, tuple[str, str | None]], str | None]:
    """The arrays of each part, and a one-line note of the names that were guessed (None when none was)."""
    if inputs is None and labels is None:
        keys = _npz_keys(files)
    else:
        others = [f for f in files if f != labels]
        if not others:
            raise DataError(f"{path}: holds only the labels {labels!r}; save the inputs beside them")
        x_key = inputs or _by_name(others, _X_KEYS) or others[0]
        keys = {"all": (x_key, labels or _by_name([f for f in files if f != x_key], _Y_KEYS))}
    if inputs is not None and labels is not None:
        return keys, None
    described = "; ".join(
        f"{'' if part == 'all' else part + ' '}inputs {x_key!r}, " + (f"labels {y_key!r}" if y_key else "no labels")
        for part, (x_key, y_key) in keys.items()
    )
    return keys, f"{path}: {described} (chosen by their names; pass inputs=... labels=... to choose others)"


def read_label_file(path: PathLike) -> np.ndarray:
    """The array of a ``.npy`` file of labels (pickles refused)."""
    try:
        y = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file of labels ({err}); save the labels with np.save") from None
    if not isinstance(y, np.ndarray):
        y.close()
        raise DataError(f"{path}: a .npz, not one array of labels; save the labels alone with np.save")
    return y


def read_numpy(
    path: PathLike, *, inputs: str | None = None, labels: str | PathLike | None = None
) -> tuple[NumpyParts, Classes, str | None]:
    """Arrays of an ``.npy``/``.npz`` file (pickles refused) as ``(x, y)`` by part, the class names of an array
    of strings named label_names, class_names or classes, if there is one, and a one-line note naming the
    arrays taken as inputs and labels where they were chosen by their names (see ``_npz_keys``).

    inputs, labels: the names of the ``.npz`` arrays to take; beside a ``.npy``, ``labels`` is the path of a
    ``.npy`` of labels.
    """
    source = io.BytesIO(read_bytes(path)) if _is_gzip(path) else path
    try:
        loaded = np.load(source, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            if inputs is not None:
                raise DataError(f"{path}: inputs={inputs!r} names an array of a .npz, but this is a .npy of "
                                "one array; drop inputs=")
            return {"all": (loaded, None if labels is None else read_label_file(labels))}, None, None
        with loaded:
            by_lower = {name.lower(): name for name in loaded.files}
            class_key = next((by_lower[k] for k in _CLASS_KEYS if k in by_lower), None)
            arrays = [name for name in loaded.files if name != class_key]
            if not arrays:
                raise DataError(f"{path}: the .npz file holds no arrays; save the data with np.savez")
            for key in (inputs, labels):
                if key is not None and key not in loaded.files:
                    raise DataError(
                        f"{path}: holds no array named {key!r}; its arrays are "
                        f"{', '.join(map(repr, loaded.files))}; pass one of them as inputs=/labels="
                    )
            classes = None if class_key is None else _class_names(loaded[class_key], path, class_key)
            keys, note = _chosen_keys(arrays, inputs, None if labels is None else str(labels), path)
            parts = {
                part: (loaded[x_key], None if y_key is None else loaded[y_key]) for part, (x_key, y_key) in keys.items()
            }
            return parts, classes, note
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(
                f"{path}: holds a pickled object array, which is refused; save plain numeric arrays instead"
            ) from None
        raise DataError(f"{path}: not a readable .npy/.npz file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npy/.npz file ({err}); check the file") from None


def _class_names(names: np.ndarray, path: PathLike, key: str) -> tuple[str, ...]:
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{path}: '{key}' of dtype {names.dtype}, shape {names.shape} is not a list of class names")
    return _texts(names.tolist())


def _texts(names: list) -> tuple[str, ...]:
    """Class names as text (CIFAR's pickles and numpy ``S`` arrays hold bytes)."""
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def load_numpy(path: PathLike, *, inputs: str | None = None, labels: str | PathLike | None = None) -> Parts:
    """An ``.npy``/``.npz`` file as dataset parts (``train``/``val``/``test`` or ``all``); see :func:`read_numpy`."""
    return numpy_datasets(path, *read_numpy(path, inputs=inputs, labels=labels)[:2])


def numpy_datasets(path: PathLike, parts: NumpyParts, classes: Classes) -> Parts:
    """The parts read by :func:`read_numpy` as datasets."""
    return {part: as_dataset(x, y, part, path, classes) for part, (x, y) in parts.items()}


# ---------------------------------------------------------------------------------------------------------
# CSV tables


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _parse_column_cells(cells: np.ndarray, rows: list[int], columns: list[str], path: PathLike) -> np.ndarray:
    """``cells`` ``[R, C]`` of text as float64, or an error naming the first bad cell's row and column."""
    try:
        values = cells.astype(np.float64)
    except ValueError:
        i, j = next((i, j) for i, j in np.ndindex(cells.shape) if not _is_number(cells[i, j]))
        what = "is empty" if not cells[i, j].strip() else f"holds {str(cells[i, j])!r}, not a number"
        raise DataError(f"{path}: line {rows[i]}, column {columns[j]} {what}; fill in numbers") from None
    bad = first_nonfinite(values)
    if bad is not None:
        (i, j), cell = bad, str(cells[bad])
        raise DataError(f"{path}: line {rows[i]}, column {columns[j]} holds {cell!r}; fill in a number")
    return values


def check_not_empty(path: PathLike) -> None:
    """A file of 0 bytes is refused in one line, before any reader fails on it with a message of its own."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); pass the file that holds the data")


def csv_label_column(path: PathLike) -> str | None:
    """The name of a CSV's label column (label, y, target or class, in its header), or None."""
    first = read_head(path, 65536).decode("utf-8-sig", errors="replace").splitlines()[:1]
    header = next(csv.reader(first), []) if first else []
    return next((cell.strip() for cell in header if cell.strip().lower() in LABEL_COLUMNS), None)


def read_csv(path: PathLike) -> tuple[np.ndarray, np.ndarray | None, Classes]:
    """A numeric CSV table as float32 ``[N, D]``, with the labels of a column named label/y/target/class.

    The header is optional (a first row that is not all numbers is a header); class labels that are not
    numbers are numbered in sorted order, and those texts are returned as the class names.
    """
    try:
        text = read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text file ({err}); pass a CSV table") from None
    reader = csv.reader(io.StringIO(text))
    numbered = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if not numbered:
        raise DataError(f"{path}: holds no rows; pass a CSV table with one example a row")
    header = None
    if not all(_is_number(cell) for cell in numbered[0][1]):
        header, numbered = [cell.strip() for cell in numbered[0][1]], numbered[1:]
    width = len(header) if header else len(numbered[0][1])
    for line, row in numbered:
        if len(row) != width:
            raise DataError(f"{path}: line {line} has {len(row)} columns, expected {width}; fix that line")
    if not numbered:
        raise DataError(f"{path}: holds a header but no rows; pass a CSV table with one example a row")
    rows = [line for line, _ in numbered]
    columns = [repr(name) for name in header] if header else [str(j + 1) for j in range(width)]
    cells = np.array([row for _, row in numbered], dtype=str)  # [R, C]
    label = next((j for j, name in enumerate(header or []) if name.lower() in LABEL_COLUMNS), None)
    features = [j for j in range(width) if j != label]
    x = _parse_column_cells(cells[:, features], rows, [columns[j] for j in features], path)
    if label is None:
        return x.astype(np.float32), None, None
    label_cells = np.char.strip(cells[:, label])
    if all(_is_number(cell) for cell in label_cells):
        y = _parse_column_cells(label_cells[:, None], rows, [columns[label]], path)[:, 0]
        return x.astype(np.float32), y, None
    empty = np.flatnonzero(label_cells == "")
    if len(empty):
        raise DataError(f"{path}: line {rows[empty[0]]}, column {columns[label]} is empty; give a label")
    names, y = np.unique(label_cells, return_inverse=True)
    return x.astype(np.float32), y, tuple(names.tolist())


# ---------------------------------------------------------------------------------------------------------
# Folders of images


def find_images(folder: PathLike) -> tuple[list[Path], list[int] | None, Classes]:
    """Image files of ``folder``, their labels and the class names: one class per subfolder (sorted, named
    after it), or a flat folder (no labels)."""
    folder = Path(folder)

    def images_in(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    subfolders = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = [(d.name, files) for d, files in zip(subfolders, map(images_in, subfolders), strict=True) if files]
    if not classes:
        return images_in(folder), None, None
    loose = images_in(folder)
    if loose:
        raise DataError(f"{loose[0]}: an image beside class subfolders; move it into its class's subfolder")
    files = [p for _, class_files in classes for p in class_files]
    labels = [k for k, (_, class_files) in enumerate(classes) for _ in class_files]
    return files, labels, tuple(name for name, _ in classes)


def _read_image(path: Path) -> np.ndarray:
    """One image as uint8 ``[H, W, C]``: grey images keep one channel, all others become RGB."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{path}: reading images needs Pillow; pip install pillow") from None
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("L" if img.mode in _GREY_MODES else "RGB"))
    except OSError as err:
        raise DataError(f"{path}: not a readable image ({err}); remove or replace it") from None
    return array.reshape(*array.shape[:2], -1)  # [H, W] -> [H, W, 1]


def read_image_folder(folder: PathLike) -> tuple[np.ndarray, np.ndarray | None, Classes]:
    """A folder of same-sized images as uint8 ``[N, C, H, W]``, labelled by class subfolder if it has any
    (the subfolders' names are the class names)."""
    files, labels, classes = find_images(folder)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or its subfolders")
    images = []
    for path in files:
        image = _read_image(path)
        if images and image.shape != images[0].shape:
            (h, w, c), (h0, w0, c0) = image.shape, images[0].shape
            raise DataError(
                f"{path}: {w}x{h} pixels with {c} channel(s), but {files[0].name} has {w0}x{h0} with {c0}; pass "
                f"image_size={min(h, w, h0, w0)} to read every image resized and centre-cropped to that square, or "
                "convert them to one size and mode"
            )
        images.append(image)
    x = np.stack(images).transpose(0, 3, 1, 2)  # [N, H, W, C] -> [N, C, H, W]
    return x, None if labels is None else np.array(labels, dtype=np.int64), classes
