"""An activation store on disk: safetensors shards of rows, and a ``store.json`` that says what they are.

A store is a folder of ``shard-00000.safetensors``, ``shard-00001.safetensors``, ... each holding the tensor
``inputs`` ``[S, d]`` (one row per token) and, where collected, ``target`` ``[S, d_out]`` (a transcoder's
target: the layer's output beside its input) and ``gradient`` ``[S, d]`` (a downstream loss's gradient with
respect to ``inputs``), and ``store.json``: the base model, layer, hook point, dtype, width, tokens and shards
(:func:`aekit.data.activations.collect_activations` writes it). Every file is written to a temporary name and
renamed; ``store.json`` is rewritten after each shard, so the shards it lists are always whole.

:class:`ShuffleBuffer` mixes rows with bounded memory, on writing and on streaming; :class:`ActivationStore`
reads a store back as a map-style source (:class:`~aekit.data.sources.MemmapDataset`) or as a stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from aekit.data.batch import Batch
from aekit.data.formats import PathLike
from aekit.data.sources import MemmapDataset, StreamingSource
from aekit.errors import DataError

FORMAT = "aekit-activations/1"
STORE_FILE = "store.json"
TENSORS = ("inputs", "target", "gradient")  # in a shard; Batch fields of the same names
COMPATIBLE = ("model", "layer", "hook", "dtype", "width", "tensors")  # what an append must share with the store
PROVENANCE = ("model", "layer", "hook", "dtype", "width", "tokens", "drop_first", "sources", "format")
_SHARD = re.compile(r"shard-(\d+)\.safetensors")

Rows = dict[str, torch.Tensor]  # tensor name -> [N, width]


def is_store(path: PathLike) -> bool:
    """Whether ``path`` is a folder holding an activation store (a ``store.json``)."""
    return (Path(path) / STORE_FILE).is_file()


def read_meta(path: PathLike) -> dict[str, Any]:
    """The parsed ``store.json`` of the store at ``path``, checked to be one."""
    from aekit.io import read_json

    path = Path(path)
    if not is_store(path):
        hint = " (shards without it: the run that wrote them was interrupted)" if shard_paths(path) else ""
        raise DataError(f"{path}: no {STORE_FILE}{hint}; pass a folder written by `aekit activations`")
    meta = read_json(path / STORE_FILE)
    if meta.get("format") != FORMAT or not isinstance(meta.get("shards"), list):
        raise DataError(f"{path / STORE_FILE}: not an aekit activation store (format {meta.get('format')!r}); pass a "
                        "folder written by `aekit activations`")
    return meta


def describe(meta: dict[str, Any]) -> str:
    """One line naming what a store holds: model, layer, hook point, width, dtype and tensors."""
    extra = [t for t in meta.get("tensors", ()) if t != "inputs"]
    return (f"model {meta.get('model')!r} layer {meta.get('layer')!r} ({meta.get('hook')}, width {meta.get('width')}, "
            f"{meta.get('dtype')}{', with ' + ' and '.join(extra) if extra else ''})")


class ShuffleBuffer:
    """Rows held in ``capacity`` slots, given out in chunks of ``chunk`` rows drawn uniformly at random from the
    rows held (``generator`` None: in the order they came, ``capacity`` = ``chunk``).

    Each chunk is a uniform draw without replacement from the last ``capacity`` rows added, so a row stays in
    the buffer for a geometric number of chunks, ``capacity / chunk`` on average, and the rows of one added
    batch spread over about that many chunks. Memory: the ``capacity`` slots, nothing else.
    """

    def __init__(self, chunk: int, capacity: int, generator: torch.Generator | None) -> None:
        if chunk < 1 or capacity < chunk:
            raise DataError(f"a shuffle buffer of {capacity} rows cannot give chunks of {chunk}; give capacity >= "
                            "chunk >= 1")
        self.chunk, self.generator = chunk, generator
        self.capacity = capacity if generator is not None else chunk
        self.slots: Rows = {}
        self.free = torch.arange(self.capacity)  # the slots holding no row, filled in this order

    def add(self, rows: Rows) -> Iterator[Rows]:
        """Take ``rows`` in; yield a chunk each time the buffer is full."""
        if not self.slots:
            self.slots = {k: torch.empty(self.capacity, *v.shape[1:], dtype=v.dtype) for k, v in rows.items()}
        n, done = len(rows["inputs"]), 0
        while done < n:
            k = min(n - done, len(self.free))
            for key, value in rows.items():
                self.slots[key][self.free[:k]] = value[done:done + k]
            self.free, done = self.free[k:], done + k
            if not len(self.free):
                if self.generator is None:
                    picked = torch.arange(self.capacity)
                else:
                    picked = torch.randperm(self.capacity, generator=self.generator)[:self.chunk]
                yield self._take(picked)
                self.free = picked

    def drain(self) -> Iterator[Rows]:
        """The rows still held, in chunks (the last one smaller), shuffled unless the buffer keeps order."""
        held = torch.ones(self.capacity, dtype=torch.bool)
        held[self.free] = False
        slots = held.nonzero().flatten()  # [H]
        if self.generator is not None:
            slots = slots[torch.randperm(len(slots), generator=self.generator)]
        for start in range(0, len(slots), self.chunk):
            yield self._take(slots[start:start + self.chunk])
        self.free = torch.arange(self.capacity)

    def _take(self, slots: torch.Tensor) -> Rows:
        return {key: value[slots] for key, value in self.slots.items()}  # a copy: the slots are filled again


def shard_paths(folder: Path) -> list[Path]:
    """Every shard file in ``folder``, listed in ``store.json`` or not (the remains of an interrupted run)."""
    return sorted(p for p in folder.glob("shard-*.safetensors") if _SHARD.fullmatch(p.name))


class StoreWriter:
    """Writes rows into the shards of ``folder``, ``shard_tokens`` rows each, mixed by a :class:`ShuffleBuffer` of
    ``buffer_shards`` shards' worth (``shuffle``), and keeps ``store.json`` up to date after each shard.

    meta: what the rows are (``model``, ``layer``, ``hook``, ``dtype``, ``width``, ``tensors``, ...). A folder
    that holds a store of the same kind is appended to; one of another kind, or shards without ``store.json``,
    is refused, and nothing in it is changed. New shards take numbers after every shard file there.
    """

    def __init__(self, folder: PathLike, meta: dict[str, Any], shard_tokens: int, *, shuffle: bool = True,
                 buffer_shards: int = 4, seed: int = 0) -> None:
        from aekit import __version__

        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise DataError(f"{self.folder}: is a file; give a folder for the activation store")
        existing = shard_paths(self.folder) if self.folder.is_dir() else []
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if is_store(self.folder):
            old = read_meta(self.folder)
            if any(old.get(key) != meta.get(key) for key in COMPATIBLE):
                raise DataError(f"{self.folder}: holds activations of {describe(old)}, but {describe(meta)} were asked "
                                "for; write them to a new directory (nothing was changed)")
            sources = list(dict.fromkeys([*old.get("sources", []), *meta.get("sources", [])]))
            self.meta = {**old, "sources": sources, "updated": now, "complete": False}
        elif existing:
            raise DataError(f"{self.folder}: holds {len(existing)} shard files but no {STORE_FILE} (an interrupted "
                            "run, or another tool's); write the store to a new directory (nothing was changed)")
        else:
            self.meta = {"format": FORMAT, **meta, "tokens": 0, "num_shards": 0, "shards": [], "shard_tokens":
                         shard_tokens, "shuffle": {"buffer_shards": buffer_shards, "seed": seed} if shuffle else None,
                         "aekit_version": __version__, "created": now, "updated": now, "complete": False}
        self.next_index = 1 + max((int(_SHARD.fullmatch(p.name).group(1)) for p in existing), default=-1)
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        self.buffer = ShuffleBuffer(shard_tokens, shard_tokens * buffer_shards, generator)

    def add(self, rows: Rows) -> None:
        """Rows ``[N, width]`` by tensor name (those of ``meta["tensors"]``, in the store's dtype)."""
        if sorted(rows) != sorted(self.meta["tensors"]) or rows["inputs"].shape[1:] != (self.meta["width"],):
            raise DataError(f"{self.folder}: rows of {sorted(rows)} of width {rows['inputs'].shape[1:]} do not fit "
                            f"the store's {describe(self.meta)}")
        for chunk in self.buffer.add(rows):
            self._write_shard(chunk)

    def close(self) -> None:
        """Write out the rows still held and mark the store complete."""
        for chunk in self.buffer.drain():
            self._write_shard(chunk)
        self.meta["complete"] = True
        self._write_meta()

    def _write_shard(self, rows: Rows) -> None:
        from aekit.io import save_tensors

        path = self.folder / f"shard-{self.next_index:05d}.safetensors"
        if path.exists():  # numbered after every shard file present; only another writer could have made it
            raise DataError(f"{path}: already exists; is another process writing to {self.folder}?")
        save_tensors(rows, path, metadata={"format": FORMAT})
        self.next_index += 1
        self.meta["shards"].append({"file": path.name, "rows": len(rows["inputs"])})
        self.meta["num_shards"] = len(self.meta["shards"])
        self.meta["tokens"] += len(rows["inputs"])
        self._write_meta()

    def _write_meta(self) -> None:
        import json

        from aekit.io import atomic_write_text

        self.meta["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(self.folder / STORE_FILE, json.dumps(self.meta, indent=2) + "\n")


class ActivationStore:
    """A store written by :func:`~aekit.data.activations.collect_activations`, read back.

    ``meta``: the parsed ``store.json``; :meth:`dataset` reads it as a map-style source, row by row;
    :meth:`stream` as a stream of shuffled batches; :meth:`provenance` is what a model trained on it records.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        if not self.meta["shards"]:
            raise DataError(f"{self.path}: the store holds no shards yet; collect some tokens first")
        self.files = [self.path / shard["file"] for shard in self.meta["shards"]]
        missing = [f.name for f in self.files if not f.is_file()]
        if missing:
            raise DataError(f"{self.path}: {STORE_FILE} lists {missing[0]}, which is missing ({len(missing)} of "
                            f"{len(self.files)} shards); copy the whole store folder again")

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.path)!r}: {self.tokens} tokens of {describe(self.meta)})"

    @property
    def tokens(self) -> int:
        return int(self.meta["tokens"])

    @property
    def width(self) -> int:
        return int(self.meta["width"])

    def provenance(self) -> dict[str, Any]:
        """What a model trained on this store records of it (``activations`` in its ``config.json``)."""
        return {**{key: self.meta.get(key) for key in PROVENANCE}, "store": str(self.path.resolve())}

    def _keys(self) -> dict[str, str | None]:
        return {f"{t}_key": t if t in self.meta["tensors"] else None for t in ("target", "gradient")}

    def dataset(self, name: str | None = None) -> MemmapDataset:
        """Every token as a map-style source read from the shards as batches ask for them; a batch carries its
        ``target`` and ``gradient`` where the store holds them."""
        data = MemmapDataset(self.files, name=name or self.path.name, **self._keys())
        data.activation_source = self.provenance()
        return data

    def stream(self, batch_size: int = 4096, *, buffer_tokens: int | None = None, shuffle: bool = True,
               seed: int = 0) -> StreamingSource:
        """The tokens as a stream of batches of ``batch_size``: each pass reads the shards one after another in an
        order shuffled anew (seed ``seed + pass``) through a :class:`ShuffleBuffer` of ``buffer_tokens`` rows
        (default: one shard's worth). Memory: one shard and the buffer."""
        capacity = max(batch_size, buffer_tokens or max(s["rows"] for s in self.meta["shards"]))
        passes = _ShardPasses(self, batch_size, capacity, shuffle, seed)
        stream = StreamingSource(passes, shape=(self.width,), length=-(-self.tokens // batch_size),
                                 name=self.path.name)
        stream.activation_source = self.provenance()
        return stream


class _ShardPasses:
    """Each iteration is one pass over a store's shards, in a shuffled order, mixed by a shuffle buffer."""

    def __init__(self, store: ActivationStore, batch_size: int, capacity: int, shuffle: bool, seed: int) -> None:
        self.store, self.batch_size, self.capacity, self.shuffle, self.seed = store, batch_size, capacity, shuffle, seed
        self.passes = 0

    def __iter__(self) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(self.seed + self.passes) if self.shuffle else None
        self.passes += 1
        files = self.store.files
        order = torch.randperm(len(files), generator=generator).tolist() if generator else range(len(files))
        buffer = ShuffleBuffer(self.batch_size, self.capacity, generator)
        for i in order:
            shard = MemmapDataset([files[i]], name=files[i].name, **self.store._keys()).batch(None)
            rows = {k: v for k, v in shard.fields().items() if k in TENSORS and v is not None}
            for chunk in buffer.add(rows):
                yield Batch(**chunk)
        for chunk in buffer.drain():
            yield Batch(**chunk)
