"""Datasets: in-memory arrays, their splits, readers for the standard formats and a registry of names."""

from aekit.data.base import Dataset, Splits, holdout_split, random_split
from aekit.data.registry import (
    DatasetInfo,
    dataset_info,
    detect_format,
    list_datasets,
    load_data,
    load_path,
    register_dataset,
)
from aekit.errors import DataError

__all__ = [
    "DataError",
    "Dataset",
    "DatasetInfo",
    "Splits",
    "dataset_info",
    "detect_format",
    "holdout_split",
    "list_datasets",
    "load_data",
    "load_path",
    "random_split",
    "register_dataset",
]
