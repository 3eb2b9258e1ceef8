"""Sources that do not hold their data in memory: files read row by row, and streams.

:class:`MemmapDataset` is a map-style source (see :class:`aekit.data.base.MapSource`) over the rows of a
``.npy`` file or of safetensors shards: a batch reads its rows from the file when it is asked for, so data
larger than memory can be trained on and split without a copy. :class:`StreamingSource` wraps any iterable (a
generator, an ``IterableDataset``, a ``DataLoader`` with workers) and yields :class:`Batch` es; it has no
length to index by, only passes. :func:`batched` regroups a stream into batches of one size.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.data import formats
from aekit.data.base import Dataset, Index, as_inputs, check_classes, first_nonfinite
from aekit.data.batch import Batch
from aekit.errors import DataError

PathLike = formats.PathLike

# Rows closer than this are read in one call with the rows between them (dropped after): a syscall costs more
# than copying a few pages from the page cache.
_GAP_BYTES = 16 * 1024
# The most bytes one read of rows with gaps takes into a scratch buffer, whatever is asked for at once.
_CHUNK_BYTES = 64 * 1024 * 1024
# Runs of rows up to this size are announced to the kernel (POSIX_FADV_WILLNEED) before a batch is read, so
# that the disk reads of a shuffled batch's rows are queued together rather than waited for one by one.
_HINT_BYTES = 1024 * 1024

# safetensors dtypes as little-endian numpy dtypes; BF16, which numpy lacks, is read as its 16 bits.
_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "BOOL": "?",
}  # fmt: skip
_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024  # the format's own cap on the JSON header


@dataclass(frozen=True)
class _Shard:
    """One file's block of rows: row ``start + i`` of the source is at byte ``offset + i * row_bytes``."""

    path: Path
    offset: int
    start: int
    rows: int


class _RowReader:
    """Reads rows of fixed size from one or more files with positioned reads (``os.preadv``).

    Nothing is mapped: pages of a mapped file count in the process's resident memory until they are unmapped,
    so a pass over a mapped file larger than memory would fill it; a positioned read leaves them in the page
    cache, which the kernel frees as it needs. Positioned reads also share no file position, so the threads
    and forked ``DataLoader`` workers that read one source do not disturb each other.

    A read of rows spread over the file takes one system call per run of nearby rows; before them, the runs of
    a batch are announced with ``posix_fadvise(WILLNEED)`` so that rows not yet in the page cache are fetched
    from the disk in parallel.
    """

    def __init__(self, shards: list[_Shard], row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shards, self.row_shape, self.dtype = shards, row_shape, dtype
        self.row_bytes = dtype.itemsize * math.prod(row_shape)
        self.starts = np.array([s.start for s in shards], dtype=np.int64)
        self.rows = shards[-1].start + shards[-1].rows
        self.max_gap = 1 + _GAP_BYTES // self.row_bytes
        self._files: dict[int, Any] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # a worker process opens the files anew
        return {k: v for k, v in self.__dict__.items() if k not in ("_files", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _files={}, _lock=threading.Lock())

    def __del__(self) -> None:
        for f in getattr(self, "_files", {}).values():
            f.close()

    def where(self, row: int) -> tuple[Path, int]:
        """The file holding ``row`` and the row's number within it."""
        shard = self.shards[int(np.searchsorted(self.starts, row, side="right")) - 1]
        return shard.path, row - shard.start

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows at ``rows`` (sorted, no repeats) as ``[len(rows), *row_shape]``."""
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        if not len(rows):
            return out
        out_bytes = out.reshape(len(rows), -1).view(np.uint8)  # [U, row_bytes]
        if os.getpid() != self._pid:  # a forked worker: the parent's descriptors share its file positions
            self._files, self._pid = {}, os.getpid()
        shard_ids = np.searchsorted(self.starts, rows, side="right") - 1
        cuts = np.flatnonzero((np.diff(rows) > self.max_gap) | (np.diff(shard_ids) != 0)) + 1
        bounds = [0, *cuts.tolist(), len(rows)]
        runs = [(int(shard_ids[a]), a, b, int(rows[a]), int(rows[b - 1])) for a, b in itertools.pairwise(bounds)]
        if len(runs) > 1 and hasattr(os, "posix_fadvise"):
            for shard_id, _, _, first, last in runs:
                shard, size = self.shards[shard_id], (last - first + 1) * self.row_bytes
                if size <= _HINT_BYTES:
                    offset = shard.offset + (first - shard.start) * self.row_bytes
                    os.posix_fadvise(self._file(shard_id).fileno(), offset, size, os.POSIX_FADV_WILLNEED)
        for shard_id, a, b, first, last in runs:
            if last - first + 1 == b - a:  # a run of consecutive rows: straight into the output
                self._read_into(shard_id, first, out_bytes[a:b])
            else:
                self._read_spaced(shard_id, rows[a:b], out_bytes[a:b])
        return out

    def _read_spaced(self, shard_id: int, rows: np.ndarray, out: np.ndarray) -> None:
        """Rows a few apart: each span read whole into a scratch buffer of at most ``_CHUNK_BYTES``."""
        chunk_rows = max(1, _CHUNK_BYTES // self.row_bytes)
        i = 0
        while i < len(rows):
            first = int(rows[i])
            j = int(np.searchsorted(rows, first + chunk_rows))
            span = np.empty((int(rows[j - 1]) - first + 1, self.row_bytes), np.uint8)
            self._read_into(shard_id, first, span)
            out[i:j] = span[rows[i:j] - first]
            i = j

    def _file(self, shard_id: int) -> Any:
        if shard_id not in self._files:
            with self._lock:
                if shard_id not in self._files:
                    self._files[shard_id] = open(self.shards[shard_id].path, "rb", buffering=0)  # noqa: SIM115
        return self._files[shard_id]

    def _read_into(self, shard_id: int, row: int, buf: np.ndarray) -> None:
        shard, f, view = self.shards[shard_id], self._file(shard_id), memoryview(buf).cast("B")
        offset, done = shard.offset + (row - shard.start) * self.row_bytes, 0
        while done < len(view):
            if hasattr(os, "preadv"):
                n = os.preadv(f.fileno(), [view[done:]], offset + done)
            else:  # no positioned reads here (Windows): one reader at a time moves the file position
                with self._lock:
                    f.seek(offset + done)
                    n = f.readinto(view[done:])
            if not n:
                raise DataError(f"{shard.path}: ends at byte {offset + done}, inside row {row - shard.start}; the "
                                "file was truncated after it was opened")
            done += n


def _natural_key(path: Path) -> list[Any]:
    """Sorts ``shard-2`` before ``shard-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _check_size(path: Path, end: int) -> None:
    size = path.stat().st_size
    if size < end:
        raise DataError(f"{path}: truncated: its header promises {end} bytes but the file holds {size}; copy it again")


def _open_npy(path: Path) -> tuple[_Shard, tuple[int, ...], np.dtype]:
    """The block of rows of a ``.npy`` file, the array's shape and its dtype, from its header."""
    try:
        with open(path, "rb") as f:
            if f.read(2) == formats.GZIP_MAGIC:
                raise DataError(f"{path}: gzipped; a gzipped file cannot be read in place, gunzip it first")
            f.seek(0)
            version = np.lib.format.read_magic(f)
            npy = np.lib.format
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran_order, dtype = read_header(f)
            offset = f.tell()
    except (ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err}); save the array with np.save") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err}); check the path") from None
    if dtype.hasobject:
        raise DataError(f"{path}: holds a pickled object array, which is refused; save plain numeric arrays instead")
    if fortran_order and len(shape) > 1:
        raise DataError(f"{path}: stored in Fortran order, so a row is not contiguous; save np.ascontiguousarray(x)")
    _check_size(path, offset + math.prod(shape) * dtype.itemsize)
    return _Shard(path, offset, 0, int(shape[0]) if shape else 0), tuple(int(d) for d in shape), dtype


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The tensors of a ``.safetensors`` file (name -> dtype, shape, data_offsets) and where their bytes begin."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= min(_SAFETENSORS_HEADER_LIMIT, path.stat().st_size - 8):
                raise ValueError(f"a header of {size} bytes")
            header = json.loads(f.read(size))
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a safetensors file ({err}); save the tensors with safetensors") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err}); check the path") from None
    header.pop("__metadata__", None)
    return header, 8 + size


def _safetensors_tensor(path: Path, header: dict[str, Any], data_start: int, key: str) -> tuple[int, tuple, np.dtype]:
    """Byte offset, shape and dtype of tensor ``key`` of one shard."""
    if key not in header:
        raise DataError(f"{path}: holds no tensor named {key!r}; its tensors are {', '.join(map(repr, header))}")
    info = header[key]
    if info.get("dtype") not in _SAFETENSORS_DTYPES:
        raise DataError(f"{path}: tensor {key!r} of dtype {info.get('dtype')} is not supported; store numbers")
    dtype, shape = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]), tuple(int(d) for d in info["shape"])
    begin, end = (int(v) for v in info["data_offsets"])
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise DataError(f"{path}: tensor {key!r} of shape {shape} spans {end - begin} bytes; the file is corrupt")
    _check_size(path, data_start + end)
    return data_start + begin, shape, dtype


def _read_block(shard: _Shard, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A small tensor (labels) read whole."""
    return _RowReader([shard], shape[1:], dtype).read(np.arange(shard.rows)) if shard.rows else np.empty(shape, dtype)


def _open_safetensors(
    files: list[Path], inputs_key: str, labels_key: str | None, want_labels: bool
) -> tuple[list[_Shard], tuple[int, ...], np.dtype, np.ndarray | None, bool]:
    """The blocks of rows of safetensors shards, the shape of all of them together, their dtype, their labels
    (where asked for and present), and whether the rows are bfloat16 (read as their 16 bits)."""
    shards, label_parts, start, first = [], [], 0, None
    headers = [(path, *_safetensors_header(path)) for path in files]
    has_labels = want_labels and (labels_key is not None or any("labels" in header for _, header, _ in headers))
    for path, header, data_start in headers:
        offset, shape, dtype = _safetensors_tensor(path, header, data_start, inputs_key)
        kind = header[inputs_key]["dtype"]
        if first is None:
            first = (path, shape[1:], dtype, kind)
        elif (shape[1:], kind) != (first[1], first[3]):
            raise DataError(f"{path}: {inputs_key!r} holds rows of shape {shape[1:]} and dtype {kind}, but "
                            f"{first[0].name} holds {first[1]} of {first[3]}; give every shard one kind")
        shards.append(_Shard(path, offset, start, shape[0] if shape else 0))
        if has_labels:
            key = labels_key or "labels"
            label_offset, label_shape, label_dtype = _safetensors_tensor(path, header, data_start, key)
            block = _Shard(path, label_offset, 0, label_shape[0] if label_shape else 0)
            label_parts.append(formats.as_labels(_read_block(block, label_shape, label_dtype), shards[-1].rows, path))
        start += shards[-1].rows
    labels = np.concatenate(label_parts) if has_labels else None
    return shards, (start, *first[1]), first[2], labels, first[3] == "BF16"


def _shard_files(path: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
        files = sorted(path.glob("*.safetensors"), key=_natural_key) if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path}: holds no .safetensors files; pass a .npy file or a folder of safetensors shards")
        return files
    return [Path(p) for p in path]


class MemmapDataset:
    """A map-style source over the rows of a ``.npy`` file or of safetensors shards, read as they are asked for.

    path: a ``.npy`` file; a ``.safetensors`` file, a folder of them (in name order, ``shard-2`` before
    ``shard-10``) or a list of them, each holding the tensor ``inputs_key`` (rows of one shape and dtype in
    every shard) and its labels, the tensor ``labels_key`` (by default ``"labels"``, where the shards hold it).
    labels: the labels as a path to a ``.npy`` file or an array (one per row), instead of the shards' own.
    target_key, gradient_key: tensors of the shards (one vector per row of the inputs) that a batch carries as its
    ``target`` and ``gradient`` (:mod:`aekit.data.activations` writes them), read row by row as the inputs are.

    Only the rows of a batch are read, never the whole array: a pass over a 4 GB file keeps the resident memory
    near a batch's size (``benchmarks/memmap_rss.py``). The rows of a batch are read in file order (nearby rows
    in one read) and put back in the order asked for. Each batch is checked for NaN and Inf as it is read; the
    labels (small) are held in memory. :meth:`subset` is a view of the same file, so a split copies nothing.
    Layout and dtypes follow the in-memory loaders: ``[N, H, W]`` gains a channel, ``[N, H, W, C]`` is
    transposed, uint8 is scaled to ``[0, 1]`` float32, other integers come as int64, floats as float32.
    """

    def __init__(
        self,
        path: PathLike | Sequence[PathLike],
        labels: PathLike | np.ndarray | torch.Tensor | None = None,
        *,
        name: str | None = None,
        classes: Sequence[str] | None = None,
        inputs_key: str = "inputs",
        labels_key: str | None = None,
        target_key: str | None = None,
        gradient_key: str | None = None,
    ) -> None:
        files = _shard_files(path)
        source = str(path if isinstance(path, (str, os.PathLike)) else files[0].parent)
        if files[0].suffix.lower() == ".npy" or _is_npy(files[0]):
            if len(files) > 1:
                raise DataError(f"{files[0]}: one .npy file is read at a time; concatenate them or save shards")
            if target_key or gradient_key:
                raise DataError(f"{files[0]}: a .npy holds one array; target and gradient are tensors of "
                                "safetensors shards")
            shard, shape, dtype = _open_npy(files[0])
            shards, own_labels, bf16 = [shard], None, False
        else:
            shards, shape, dtype, own_labels, bf16 = _open_safetensors(files, inputs_key, labels_key, labels is None)
        self._open(shards, shape, dtype, bf16, source, name or Path(source).stem)
        if labels is not None:
            source = labels if isinstance(labels, (str, os.PathLike)) else self.source
            y = formats.read_label_file(labels) if isinstance(labels, (str, os.PathLike)) else np.asarray(labels)
            own_labels = formats.as_labels(y, shape[0], source)
        self._all_labels = None if own_labels is None else torch.from_numpy(own_labels)
        self.classes = check_classes(self.name, classes, self._all_labels)
        self._extras: dict[str, MemmapDataset] = {}  # target and gradient, each read as a source of its own
        for field, key in (("target", target_key), ("gradient", gradient_key)):
            if key is not None:
                column_shards, column_shape, column_dtype, _, column_bf16 = _open_safetensors(files, key, None, False)
                column = object.__new__(MemmapDataset)
                column._open(column_shards, column_shape, column_dtype, column_bf16, source, f"{self.name} ({field})")
                if len(column) != len(self) or len(column.shape) != 1 or len(self.shape) != 1:
                    raise DataError(f"{source}: {key!r} holds {len(column)} rows of shape {column.shape} beside "
                                    f"{len(self)} inputs of shape {self.shape}; a {field} is one vector per input")
                self._extras[field] = column

    def _open(self, shards: list[_Shard], shape: tuple[int, ...], dtype: np.dtype, bf16: bool, source: str,
              name: str) -> None:
        """Read the rows of ``shards`` (``shape`` all together, stored as ``dtype``, or as bfloat16's 16 bits)."""
        self.source, self.name, self._bf16 = source, name, bf16
        if not shape or shape[0] == 0:
            raise DataError(f"{self.source}: holds no examples; pass a non-empty dataset")
        if not self._bf16:
            formats.stored_dtype(dtype, self.source)  # refuses what is not numeric
        example_shape, self._channels_last = formats.layout(shape, self.source)
        self._shape = example_shape[1:]
        if math.prod(shape[1:]) == 0:
            raise DataError(f"{self.source}: examples of shape {shape[1:]} hold no values; pass a non-empty array")
        self._reader = _RowReader(shards, shape[1:], dtype)
        self._file_shape = (self._shape[1], self._shape[2], self._shape[0]) if self._channels_last else self._shape
        self._rows: np.ndarray | None = None  # the file row of each example; None: every row, in order
        self._all_labels, self.classes, self._y, self._extras = None, None, None, {}

    # -- the MapSource protocol --------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._reader.rows if self._rows is None else len(self._rows)

    def __repr__(self) -> str:
        return f"MemmapDataset({self.name!r}: {len(self)} examples of shape {self.shape} from {self.source})"

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)`` or ``(1024,)``."""
        return self._shape

    @property
    def is_8bit(self) -> bool:
        return self._reader.dtype == np.uint8

    @property
    def rows(self) -> np.ndarray:
        """The file row of each example (rows count on through the shards)."""
        return np.arange(len(self)) if self._rows is None else self._rows

    @property
    def y(self) -> torch.Tensor | None:
        """Every label (``[N]`` int64), or None."""
        if self._y is None and self._all_labels is not None:
            self._y = self._all_labels if self._rows is None else self._all_labels[torch.from_numpy(self._rows)]
        return self._y

    def inputs(self, index: Index = None) -> torch.Tensor:
        """The examples at ``index`` (all when None) read from the file: float32 (uint8 scaled to ``[0, 1]``),
        or int64 for integer data."""
        positions, rows = self._positions_and_rows(index)
        return self._read(positions, rows)

    def labels(self, index: Index = None) -> torch.Tensor | None:
        if self._all_labels is None:
            return None
        if index is None:
            return self.y
        return self._all_labels[torch.from_numpy(self._positions_and_rows(index)[1])]

    def batch(self, index: Index = None) -> Batch:
        """The inputs and labels, and target and gradient where the shards hold them, at ``index`` as one
        :class:`Batch`."""
        positions, rows = self._positions_and_rows(index)
        labels = None if self._all_labels is None else self._all_labels[torch.from_numpy(rows)]
        extras = {field: column._read(positions, rows) for field, column in self._extras.items()}
        return Batch(self._read(positions, rows), labels, **extras)

    def subset(self, index: Index, name: str | None = None) -> MemmapDataset:
        """The examples at ``index``: a view of the same file, nothing read or copied."""
        return self._view(self._positions_and_rows(index)[1], name)

    def concat(self, other: MemmapDataset, name: str | None = None) -> MemmapDataset:
        """This source's examples followed by ``other``'s (a view of the same file)."""
        if not isinstance(other, MemmapDataset) or other._reader is not self._reader:
            raise DataError(f"{self.name}: only views of the same file join; {getattr(other, 'name', other)} is not")
        return self._view(np.concatenate([self.rows, other.rows]), name)

    def in_memory(self) -> Dataset:
        """Every example (with its target and gradient, where held) read into an in-memory :class:`Dataset` (for
        data that fits in memory)."""
        positions, rows = self._positions_and_rows(None)
        extras = {field: column._read(positions, rows) for field, column in self._extras.items()}
        return Dataset(self._read_stored(positions, rows), self.y, self.name, self.classes, owned=True, **extras)

    # -- reading ---------------------------------------------------------------------------------------------

    def _view(self, rows: np.ndarray, name: str | None) -> MemmapDataset:
        view = object.__new__(MemmapDataset)
        view.__dict__.update(self.__dict__, _rows=rows, _y=None, name=name or self.name)
        return view

    def _positions_and_rows(self, index: Index) -> tuple[np.ndarray, np.ndarray]:
        """The positions in this source that ``index`` asks for, and their rows in the file."""
        n = len(self)
        if index is None:
            positions = np.arange(n)
        elif isinstance(index, slice):
            positions = np.arange(*index.indices(n))
        else:
            positions = np.asarray(index.cpu() if torch.is_tensor(index) else index)
            if positions.dtype == np.bool_ and positions.shape == (n,):
                positions = np.flatnonzero(positions)
            if positions.ndim != 1 or positions.dtype.kind not in "iu":
                raise DataError(f"{self.name}: an index of shape {positions.shape} and dtype {positions.dtype}; "
                                "index with a 1-D tensor of ids, a slice or None")
            positions = np.where(positions < 0, positions + n, positions).astype(np.int64, copy=False)
            if len(positions) and (positions.min() < 0 or positions.max() >= n):
                bad = positions[(positions < 0) | (positions >= n)][0]
                raise IndexError(f"{self.name}: index {int(bad)} is out of range for {n} examples")
        return positions, positions if self._rows is None else self._rows[positions]

    def _to_tensor(self, raw: np.ndarray) -> torch.Tensor:
        """Rows as read (``[B, *file_shape]``) as a tensor ``[B, *shape]`` of the dtype they are stored in."""
        if self._bf16:
            x = torch.from_numpy(raw.astype(np.uint16, copy=False)).view(torch.bfloat16).float()
        else:
            x = torch.from_numpy(raw.astype(formats.stored_dtype(raw.dtype, self.source), copy=False))
        x = x.reshape(len(raw), *self._file_shape)
        return x.permute(0, 3, 1, 2) if self._channels_last else x  # [B, H, W, C] -> [B, C, H, W]

    def _read_stored(self, positions: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        """The examples at ``positions`` (file rows ``rows``) in the dtype they are stored in, checked."""
        if len(rows) < 2 or bool((rows[1:] > rows[:-1]).all()):
            unique, order = rows, None
        else:  # read in file order, then put back in the order asked for
            unique, order = np.unique(rows, return_inverse=True)
        x = self._to_tensor(self._reader.read(unique))
        bad = first_nonfinite(x.numpy()) if x.dtype.is_floating_point else None
        if bad is not None:
            row = int(unique[bad[0]])
            file, file_row = self._reader.where(row)
            example = int(positions[np.flatnonzero(rows == row)[0]])
            raise DataError(f"{self.name}: example {example} (row {file_row} of {file}) holds NaN or Inf values; "
                            "clean or drop it first")
        return x.contiguous() if order is None else x[torch.from_numpy(order.reshape(-1))]

    def _read(self, positions: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        return as_inputs(self._read_stored(positions, rows)).contiguous()


def _is_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


class StreamingSource:
    """A source that is iterated, not indexed: each pass iterates ``data`` and yields :class:`Batch` es.

    data: anything iterable: a list, a generator, a ``torch.utils.data.IterableDataset``, a ``DataLoader``
    (with workers); its items are what :meth:`Batch.of` takes (tensors or arrays of inputs, ``(inputs,
    labels)`` pairs, dicts, Batches). A pass restarts ``data`` (a list or a ``DataLoader`` can be passed over
    again; a generator is spent after one pass).
    examples: each item is one example (inputs ``[*S]``, a label ``[]``); each is yielded as a batch of one,
    which :func:`batched` groups. Otherwise each item is a batch ``[B, *S]``.
    shape: one example's shape; read from the first item when not given (the item is kept for the pass).
    length: how many items a pass yields, where known (``len(data)`` when ``data`` has one), else None.

    A stream has no exact resume: a run restarted from a checkpoint starts a new pass over ``data``, so it sees
    examples again (or, for a generator that does not restart, different ones) rather than continuing where it
    stopped. ``len()`` is not defined; :attr:`length` says what is known.
    """

    def __init__(
        self,
        data: Iterable[Any],
        *,
        examples: bool = False,
        shape: Sequence[int] | None = None,
        length: int | None = None,
        name: str = "stream",
        classes: Sequence[str] | None = None,
    ) -> None:
        if isinstance(data, (Batch, torch.Tensor, np.ndarray)):
            raise DataError(f"{name}: a StreamingSource wraps an iterable of batches, not a {type(data).__name__}; "
                            "hold an array in memory as a Dataset")
        self.data, self.examples, self.name = data, examples, name
        self.classes = None if classes is None else tuple(str(c) for c in classes)
        self._shape = None if shape is None else tuple(int(d) for d in shape)
        self.length = length if length is not None else _known_length(data)
        self._peeked: tuple[Any, Iterator[Any]] | None = None

    def __len__(self) -> int:
        raise TypeError(f"{self.name}: a StreamingSource has no len(); .length is the number of items a pass "
                        f"yields where known ({self.length}); train for a number of steps")

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"StreamingSource({self.name!r}: {type(self.data).__name__}, length {self.length})"

    @property
    def shape(self) -> tuple[int, ...]:
        """One example's shape (given, or read from the first item)."""
        if self._shape is None:
            if self._peeked is None:
                items = iter(self.data)
                first = next(items, _END)
                if first is _END:
                    raise DataError(f"{self.name}: the stream yields nothing; pass data that yields batches")
                self._peeked = (first, items)
            self._shape_of(self._as_batch(self._peeked[0], 0))
        return self._shape

    def __iter__(self) -> Iterator[Batch]:
        if self._peeked is not None:  # the pass that read the shape goes on from the item it read
            first, rest = self._peeked
            self._peeked = None
            items = itertools.chain([first], rest)
        else:
            items = iter(self.data)
        for i, item in enumerate(items):
            batch = self._as_batch(item, i)
            if self._shape is None:
                self._shape_of(batch)
            elif tuple(batch.inputs.shape[1:]) != self._shape:
                raise DataError(f"{self.name}: item {i} holds examples of shape {tuple(batch.inputs.shape[1:])}, "
                                f"not {self._shape}; yield examples of one shape")
            yield batch

    def _as_batch(self, item: Any, i: int) -> Batch:
        try:
            return Batch.of(item, example=self.examples)
        except DataError as err:
            raise DataError(f"{self.name}: item {i}: {err}") from None

    def _shape_of(self, batch: Batch) -> None:
        if batch.inputs.dim() < 2:
            raise DataError(f"{self.name}: items of shape {tuple(batch.inputs.shape)} read as batches of scalars; "
                            "pass examples=True if each item is one example")
        self._shape = tuple(batch.inputs.shape[1:])

    def shard(self, rank: int, world: int) -> StreamingSource:
        """Rank ``rank``'s share of the stream out of ``world`` (distributed training): every ``world``-th item
        from item ``rank``. A ``DataLoader`` with a ``DistributedSampler`` is already sharded and is kept whole.
        ``data`` must restart on each pass (each rank iterates its own copy)."""
        if world < 1 or not 0 <= rank < world:
            raise DataError(f"{self.name}: rank {rank} of world size {world}; need 0 <= rank < world")
        if world == 1 or _distributed_loader(self.data):
            return self
        length = None if self.length is None else len(range(rank, self.length, world))
        return StreamingSource(_EveryNth(self.data, rank, world), examples=self.examples, shape=self._shape,
                               length=length, name=self.name, classes=self.classes)


_END = object()


def _known_length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:  # no __len__, or a DataLoader over an IterableDataset without one
        return None


def _distributed_loader(data: Any) -> bool:
    from torch.utils.data import DataLoader, DistributedSampler

    if not isinstance(data, DataLoader):
        return False
    samplers = (data.sampler, getattr(data.batch_sampler, "sampler", None))
    return any(isinstance(s, DistributedSampler) for s in samplers)


class _EveryNth:
    """Items ``start``, ``start + step``, ... of each pass over ``data``."""

    def __init__(self, data: Iterable[Any], start: int, step: int) -> None:
        self.data, self.start, self.step = data, start, step

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.data), self.start, None, self.step)


class _Rebatched:
    """The batches of ``source`` regrouped into batches of ``size`` examples."""

    def __init__(self, source: StreamingSource, size: int, drop_last: bool) -> None:
        self.source, self.size, self.drop_last = source, size, drop_last

    def __iter__(self) -> Iterator[Batch]:
        pending: list[Batch] = []
        count = 0
        for batch in self.source:
            pending.append(batch)
            count += len(batch)
            while count >= self.size:
                merged = _concat(pending, self.source.name)
                yield merged.select(slice(0, self.size))
                rest = merged.select(slice(self.size, None))
                pending, count = ([rest] if len(rest) else []), count - self.size
        if count and not self.drop_last:
            yield _concat(pending, self.source.name)


def _concat(batches: list[Batch], name: str) -> Batch:
    if len(batches) == 1:
        return batches[0]
    fields = [b.fields() for b in batches]
    merged = {}
    for key in fields[0]:
        present = [f[key] is not None for f in fields]
        if any(present) and not all(present):
            raise DataError(f"{name}: some items have {key} and some do not; give every item the same fields")
        merged[key] = torch.cat([f[key] for f in fields]) if all(present) else None
    return Batch(**merged)


def batched(
    source: StreamingSource | Iterable[Any], batch_size: int, *, examples: bool = False, drop_last: bool = False
) -> StreamingSource:
    """``source`` regrouped into batches of ``batch_size`` examples (the last one smaller unless ``drop_last``).

    source: a :class:`StreamingSource`, or an iterable that is wrapped in one (``examples=True``: its items are
    single examples); its items may be single examples or batches of any size.
    """
    if batch_size < 1:
        raise DataError(f"batch_size={batch_size} must be at least 1")
    if not isinstance(source, StreamingSource):
        source = StreamingSource(source, examples=examples)
    length = None
    if source.examples and source.length is not None:
        length = source.length // batch_size if drop_last else -(-source.length // batch_size)
    return StreamingSource(_Rebatched(source, batch_size, drop_last), shape=source._shape, length=length,
                           name=source.name, classes=source.classes)
