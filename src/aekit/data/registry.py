"""Named datasets and the one entry point, :func:`load_data`.

``load_data("mnist")`` reads a registered dataset from the data root (``root=`` or ``$AEKIT_DATA``);
``load_data("path/to/files")`` reads the user's own files, whose format is recognised from their contents;
``load_data("big.npy", memmap=True)`` reads rows from the file as batches ask for them
(:class:`~aekit.data.sources.MemmapDataset`). Data that ships its own split keeps it (a validation part is held
out of train where there is none); data that does not gets a seeded random split.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.data import formats
from aekit.data.base import Splits, holdout_split, random_split
from aekit.data.binarized import load_dynamic_binarized_mnist
from aekit.data.factors import FACTOR_DATASETS
from aekit.data.formats import Parts, PathLike
from aekit.data.images import ImageFolderSource
from aekit.data.sources import MemmapDataset
from aekit.data.store import ActivationStore, is_store
from aekit.errors import DataError, did_you_mean

DATA_ROOT_ENV = "AEKIT_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: ``load`` reads ``root/folder`` (or takes no argument when ``folder`` is None)."""

    name: str
    description: str
    folder: str | None
    files: str
    load: Callable[..., Parts]


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add a named dataset; a name can be registered once."""
    if info.name in _REGISTRY:
        raise ValueError(f"dataset {info.name!r} is already registered; pick another name")
    _REGISTRY[info.name] = info
    return info


def list_datasets() -> list[tuple[str, str]]:
    """``(name, description)`` of every registered dataset, in registration order."""
    return [(info.name, info.description) for info in _REGISTRY.values()]


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``: description, folder under the data root, expected files."""
    if name not in _REGISTRY:
        raise DataError(f"{name}: not a registered dataset; pick one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def load_data(
    spec: str,
    *,
    root: PathLike | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    inputs: str | None = None,
    labels: str | PathLike | None = None,
    memmap: bool | None = None,
    image_size: int = 0,
    graph: dict | None = None,
) -> Splits:
    """Train/val/test splits of a registered dataset (``spec`` a name) or of the files at path ``spec``.

    An official test set is kept (``test_fraction`` is then unused) and an official validation set too;
    what is missing is drawn from train with ``seed``. Registered names win over same-named paths.

    inputs, labels: which arrays of a ``.npz`` (or tensors of safetensors shards) are the inputs and the
    labels; beside a ``.npy`` file, ``labels`` is the path of a ``.npy`` of labels. Where a ``.npz``'s arrays
    are chosen by their names instead, ``Splits.notes`` says which were taken.
    memmap: read a ``.npy`` file or safetensors shards row by row as batches ask for them instead of into
    memory (:class:`~aekit.data.sources.MemmapDataset`); the split is then a set of views, nothing is copied.
    None (the default): so where the file is larger than a quarter of the memory available (``Splits.notes``
    says so), else into memory, where the split rearranges the one array read rather than copying it.
    image_size: read a folder of images as batches ask for them, each resized and centre-cropped to
    ``image_size`` square (:class:`~aekit.data.images.ImageFolderSource`; any sizes in the folder).

    An activation store (a folder with ``store.json``, :mod:`aekit.data.activations`) is read from its shards as
    batches ask for them unless ``memmap=False``; its batches carry ``target`` and ``gradient`` where it holds them.
    """
    graph_data = _read_graph(spec, root)
    if graph_data is not None:
        from aekit.data.graphs import graph_splits

        settings = {"graph_task": "link", "edge_split": (0.05, 0.10), "row_normalize": False, **(graph or {})}
        if settings["row_normalize"]:
            graph_data = graph_data.row_normalized()
        return graph_splits(graph_data, settings["graph_task"], tuple(settings["edge_split"]), seed)
    notes: list[str] = []
    if spec in _REGISTRY:
        if memmap or image_size or inputs is not None or labels is not None:
            raise DataError(f"{spec}: inputs=, labels=, memmap=True and image_size= are for your own files; a "
                            "registered dataset is read as it is, drop them")
        info = _REGISTRY[spec]
        parts = info.load(_dataset_folder(info, root)) if info.folder else info.load()
        name = spec
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise DataError(f"{spec}: no such file or folder{did_you_mean(spec, [*_REGISTRY, *GRAPH_DATASETS])}; "
                            f"pass a registered name ({', '.join(_REGISTRY)}) or a path")
        if path.is_dir() and is_store(path):  # rows read from its shards as batches ask (memmap=false: into memory)
            if inputs is not None or labels is not None or image_size:
                raise DataError(f"{path}: an activation store names its own tensors; drop inputs=, labels= and "
                                "image_size=")
            store = ActivationStore(path).dataset(name="all")
            parts = {"all": store.in_memory() if memmap is False else store}
        elif image_size:
            if detect_format(path) != "image-folder":
                raise DataError(f"{path}: image_size={image_size} reads a folder of images, but this is "
                                f"{detect_format(path)}; drop image_size")
            parts = {"all": ImageFolderSource(path, image_size)}
        elif memmap or (memmap is None and _too_large_for_memory(path)):
            parts = {"all": _memmap_source(path, inputs, labels)}
            if not memmap:
                notes.append(f"{path.name}: {path.stat().st_size / 2**30:.1f} GiB, over a quarter of the "
                             f"{available_memory() / 2**30:.1f} GiB of memory available: its rows are read from "
                             "disk as batches ask for them (memmap=false reads it into memory)")
        else:
            parts, notes = _read_path(path, inputs, labels)
        name = Path(path.name.removesuffix(".gz")).stem
    splits = _split(parts, name, val_fraction, test_fraction, seed)
    splits.notes = notes
    return splits


GRAPH_DATASETS = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}  # Planetoid names, in planetoid/


def known_dataset(spec: str) -> str | None:
    """The published data set ``spec`` is, where it is one a recipe may be known for: a registered name, or a
    Planetoid folder (``ind.<name>.*`` files: its name); None for anything else."""
    if spec in _REGISTRY:
        return spec
    path = Path(str(spec)).expanduser()
    if path.is_dir():
        found = sorted(path.glob("ind.*.graph"))
        if found:
            return found[0].name.split(".")[1].lower()
    return None


def _read_graph(spec: str, root: PathLike | None):
    """The graph ``spec`` names (a Planetoid name, ``sbm``, a folder of Planetoid files, a folder holding
    ``edges.{csv,npy}`` and ``features.{csv,npy}`` (and ``labels.*``), a graph ``.npz`` holding ``edge_index`` and
    ``x``), or None when it is no graph."""
    from aekit.data.graphs import read_graph_files, read_planetoid, stochastic_block_graph

    if spec in GRAPH_DATASETS:
        return read_planetoid(_dataset_folder(_REGISTRY[spec], root), spec)
    if spec == "sbm":
        return stochastic_block_graph()
    path = Path(spec).expanduser()
    if path.is_dir():
        found = sorted(path.glob("ind.*.graph"))
        if found:
            return read_planetoid(path, found[0].name.split(".")[1])
        edges, features = (sorted(path.glob(f"{stem}.*")) for stem in ("edges", "features"))
        if edges and features:  # an edge list and a feature matrix (CSV or .npy), labels optional
            labels = sorted(path.glob("labels.*"))
            return read_graph_files(edges[0], features[0], labels[0] if labels else None, name=path.name)
    elif path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                is_graph = ("edge_index" in data.files or "edges" in data.files) and "x" in data.files
        except (EOFError, ValueError, OSError, zipfile.BadZipFile):  # empty or damaged: the reader says so
            return None
        if is_graph:
            return read_graph_files(path)
    return None


def _read_path(path: Path, inputs: str | None, labels: str | PathLike | None) -> tuple[Parts, list[str]]:
    """The parts in a user's file or folder, and notes on the arrays chosen by their names."""
    formats.check_not_empty(path)
    kind = detect_format(path)
    if kind == "numpy":
        arrays, classes, note = formats.read_numpy(path, inputs=inputs, labels=labels)
        return formats.numpy_datasets(path, arrays, classes), [note] if note else []
    if kind == "safetensors":
        return {"all": _memmap_source(path, inputs, labels).in_memory()}, []
    if inputs is not None or labels is not None:
        raise DataError(f"{path}: inputs= and labels= choose arrays of a .npy/.npz or safetensors file, but this "
                        f"is {kind}, which names its own; drop them")
    column = formats.csv_label_column(path) if kind == "csv" else None
    notes = [f"{path.name}: labels from its column {column!r}, the other columns are the inputs (rename the column "
             "to train on it as an input)"] if column else []
    return LOADERS[kind](path), notes


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux; free pages elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _too_large_for_memory(path: Path) -> bool:
    """A ``.npy`` file or safetensors shards that would fill more than a quarter of the memory available."""
    if path.is_dir() or formats._is_gzip(path):
        return False
    kind = detect_format(path)
    is_npy = kind == "numpy" and not formats.read_head(path, 4).startswith(b"PK")
    return (is_npy or kind == "safetensors") and path.stat().st_size > available_memory() / 4


def _memmap_source(path: Path, inputs: str | None, labels: str | PathLike | None) -> MemmapDataset:
    kind = detect_format(path)
    if kind == "safetensors":
        return MemmapDataset(path, inputs_key=inputs or "inputs", labels_key=None if labels is None else str(labels))
    if kind == "numpy" and not formats.read_head(path, 4).startswith(b"PK"):  # a .npy; a .npz is a zip
        if inputs is not None:
            raise DataError(f"{path}: inputs={inputs!r} names an array of a .npz, but this is a .npy of one array; "
                            "drop inputs=")
        return MemmapDataset(path, labels)
    raise DataError(f"{path}: memmap=True reads a .npy file or safetensors shards, but this is "
                    f"{'a .npz' if kind == 'numpy' else kind}; save the inputs alone with np.save (labels=labels.npy), "
                    "or drop memmap=True")


def _dataset_folder(info: DatasetInfo, root: PathLike | None) -> Path:
    root = root or os.environ.get(DATA_ROOT_ENV)
    if not root:
        raise DataError(
            f"{info.name}: no data folder given; set {DATA_ROOT_ENV} to the folder that holds {info.folder}/ "
            "or pass a path (root=...)"
        )
    folder = Path(root).expanduser() / info.folder
    if not folder.is_dir():
        raise DataError(f"{info.name}: {folder} does not exist; put {info.files} there, or change root")
    return folder


def _split(parts: Parts, name: str, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    for part, data in parts.items():  # errors of the split name the dataset
        data.name = name if part == "all" else f"{name}/{part}"
    train = parts.get("train", parts.get("all"))
    if "val" in parts and "test" in parts:
        splits = Splits(train, parts["val"], parts["test"])
    elif "test" in parts:
        splits = holdout_split(train, parts["test"], val_fraction, seed)
    elif "val" in parts:
        rest = random_split(train, 0.0, test_fraction, seed)
        splits = Splits(rest.train, parts["val"], rest.test)
    else:
        splits = random_split(train, val_fraction, test_fraction, seed)
    for part in ("train", "val", "test"):
        getattr(splits, part).name = f"{name}/{part}"
    return splits


# ---------------------------------------------------------------------------------------------------------
# Recognising the format of a user's path


def _whole(path: Path, x: np.ndarray, y: np.ndarray | None = None, classes: formats.Classes = None) -> Parts:
    return {"all": formats.as_dataset(x, y, "all", path, classes)}


LOADERS: dict[str, Callable[[Path], Parts]] = {
    "idx-folder": formats.load_idx_folder,
    "amat-folder": formats.load_amat_folder,
    "cifar-batches": formats.load_cifar_batches,
    "image-folder": lambda path: _whole(path, *formats.read_image_folder(path)),
    "idx": lambda path: _whole(path, formats.read_idx_images(path)),
    "amat": lambda path: _whole(path, formats.read_amat(path)),
    "cifar-batch": lambda path: _whole(path, *formats.read_cifar_batch(path)),
    "numpy": formats.load_numpy,
    "safetensors": lambda path: {"all": MemmapDataset(path, name="all").in_memory()},
    "activation-store": lambda path: {"all": ActivationStore(path).dataset(name="all")},
    "csv": lambda path: _whole(path, *formats.read_csv(path)),
}


def detect_format(path: PathLike) -> str:
    """The format of a file or folder (a key of ``LOADERS``), from its contents rather than its name."""
    path = Path(path)
    if path.is_dir():
        return _detect_folder(path)
    head = formats.read_head(path)
    magic = int.from_bytes(head[:4], "big")
    if head.startswith((b"\x93NUMPY", b"PK\x03\x04")):
        return "numpy"
    if head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"  # an 8-byte header size, then the header's JSON
    if magic == formats.IDX_IMAGES_MAGIC:
        return "idx"
    if magic == formats.IDX_LABELS_MAGIC:
        raise DataError(f"{path}: an IDX labels file alone; pass the folder that holds the images too")
    if head[:1] == b"\x80":  # pickle protocol 2 or later
        return "cifar-batch"
    first_line = head.split(b"\n", 1)[0]
    if first_line and b" " in first_line and set(first_line) <= set(b"01 \t\r"):
        return "amat"
    if b"\x00" not in head:
        return "csv"
    raise DataError(
        f"{path}: unrecognised format; pass an IDX, .amat, CIFAR batch, .npy/.npz, .safetensors or CSV file, or a "
        "folder"
    )


def _detect_folder(folder: Path) -> str:
    if is_store(folder):
        return "activation-store"
    if formats.find_idx_pair(folder, "train"):
        return "idx-folder"
    if any(folder.glob("*.safetensors")):
        return "safetensors"
    if (folder / "cifar-10-batches-py").is_dir() or any(folder.glob("data_batch_*")):
        return "cifar-batches"
    if any(folder.glob("*.amat")) or any(folder.glob("*.amat.gz")):
        return "amat-folder"
    if formats.find_images(folder)[0]:
        return "image-folder"
    raise DataError(
        f"{folder}: no dataset recognised; expected the MNIST IDX files, .amat files, CIFAR python batches, "
        ".safetensors shards, an activation store (store.json), or images (in class subfolders or flat)"
    )


def load_path(path: PathLike) -> Parts:
    """The dataset parts in a user's file or folder, whichever supported format it holds."""
    path = Path(path)
    return LOADERS[detect_format(path)](path)


# ---------------------------------------------------------------------------------------------------------
# Registered datasets


def _load_digits() -> Parts:
    from sklearn.datasets import load_digits  # heavy import, paid only when the data is asked for

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)  # [N, 8, 8] in 0..16 -> [0, 1]
    return {"all": formats.as_dataset(x, digits.target, "digits", "sklearn.datasets.load_digits")}


def _with_classes(load: Callable[[Path], Parts], classes: tuple[str, ...]) -> Callable[[Path], Parts]:
    """``load``, with ``classes`` as the class names of the parts whose files do not name them."""

    def load_named(folder: Path) -> Parts:
        parts = load(folder)
        return {
            part: data if data.classes or data.y is None else dataclasses.replace(data, classes=classes)
            for part, data in parts.items()
        }

    return load_named


def _load_cifar10(folder: Path) -> Parts:
    if (folder / "cifar-10-batches-py").is_dir() or any(folder.glob("data_batch_*")):
        return formats.load_cifar_batches(folder)
    if (folder / "cifar10_train.npz").is_file():
        return formats.load_numpy(folder / "cifar10_train.npz")
    raise DataError(f"{folder}: holds neither cifar10_train.npz nor cifar-10-batches-py/; put one there")


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
)  # fmt: skip
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


_IDX_FILES = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, ..."

for _info in (
    DatasetInfo(
        "digits",
        "scikit-learn's bundled 8x8 handwritten digits: 1,797 grey images, 10 classes (random split)",
        None,
        "nothing (bundled with scikit-learn)",
        _load_digits,
    ),
    DatasetInfo(
        "mnist",
        "MNIST handwritten digits: 60,000 train + 10,000 test 28x28 grey images, 10 classes",
        "mnist",
        f"the four official IDX files ({_IDX_FILES})",
        formats.load_idx_folder,
    ),
    DatasetInfo(
        "fashion-mnist",
        "Fashion-MNIST clothing: 60,000 train + 10,000 test 28x28 grey images, 10 classes",
        "fashion_mnist",
        f"the four official IDX files ({_IDX_FILES})",
        _with_classes(formats.load_idx_folder, FASHION_MNIST_CLASSES),
    ),
    DatasetInfo(
        "binarized-mnist",
        "statically binarized MNIST (Larochelle & Murray 2011): 50,000 / 10,000 / 10,000 images of 0/1",
        "binarized_mnist",
        "binarized_mnist_{train,valid,test}.amat[.gz]",
        formats.load_amat_folder,
    ),
    DatasetInfo(
        "dynamic-binarized-mnist",
        "dynamically binarized MNIST (Burda et al. 2016): 50,000 train images drawn afresh as Bernoulli(grey level) "
        "at every read; 10,000 validation and 10,000 test images binarized once with fixed seeds",
        "mnist",
        f"the four official IDX files ({_IDX_FILES})",
        load_dynamic_binarized_mnist,
    ),
    DatasetInfo(
        "cifar10",
        "CIFAR-10: 32x32 RGB images, 10 classes (test held out of train when only train is present)",
        "cifar10",
        "cifar10_train.npz or cifar-10-batches-py/",
        _with_classes(_load_cifar10, CIFAR10_CLASSES),
    ),
    DatasetInfo(
        "sbm",
        "a generated citation-like graph (stochastic block model): 600 nodes in 4 classes, 64 binary features",
        None,
        "nothing (generated)",
        lambda: {},
    ),
    *(DatasetInfo(
        name,
        f"{title} citation graph (Planetoid files; Sen et al. 2008, split of Yang et al. 2016): link prediction or "
        "node classification",
        "planetoid",
        f"ind.{name}.{{x,tx,allx,y,ty,ally,graph,test.index}}",
        lambda folder: {},
    ) for name, title in GRAPH_DATASETS.items()),
):
    register_dataset(_info)

for _name, (_description, _make) in FACTOR_DATASETS.items():  # generated from their factors: no folder, no files
    register_dataset(DatasetInfo(_name, _description, None, "nothing (generated)", lambda make=_make: {"all": make()}))
