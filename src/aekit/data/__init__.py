"""Data sources: in-memory arrays, files read row by row, windows of a series, streams, their splits, readers for
the standard formats and a registry of names."""

from aekit.data.activations import capture, collect_activations
from aekit.data.base import Dataset, MapSource, Splits, holdout_split, random_split
from aekit.data.batch import Batch
from aekit.data.one_class import OneClassData, one_class_split
from aekit.data.registry import (
    DatasetInfo,
    dataset_info,
    detect_format,
    known_dataset,
    list_datasets,
    load_data,
    load_path,
    register_dataset,
)
from aekit.data.sources import MemmapDataset, StreamingSource, batched
from aekit.data.store import ActivationStore
from aekit.data.synthetic import SparseFeatureData, sparse_feature_data
from aekit.data.windows import WindowDataset
from aekit.errors import DataError

__all__ = [
    "ActivationStore",
    "Batch",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "MapSource",
    "MemmapDataset",
    "OneClassData",
    "SparseFeatureData",
    "Splits",
    "StreamingSource",
    "WindowDataset",
    "batched",
    "capture",
    "collect_activations",
    "dataset_info",
    "detect_format",
    "known_dataset",
    "holdout_split",
    "list_datasets",
    "load_data",
    "load_path",
    "one_class_split",
    "random_split",
    "register_dataset",
    "sparse_feature_data",
]
