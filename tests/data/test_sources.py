"""MemmapDataset against the in-memory Dataset of the same file; StreamingSource and batched over lists,
generators and DataLoaders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch_file
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, TensorDataset

from aekit.data import Batch, MapSource, MemmapDataset, StreamingSource, batched, formats, load_data, sources
from aekit.data.base import random_split
from aekit.errors import DataError

# ---------------------------------------------------------------------------------------------------------
# MemmapDataset over a .npy file


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> None:
    assert (a is None) == (b is None)
    if a is not None:
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)


def _assert_same_batches(source, reference, n: int, rng: np.random.Generator) -> None:
    """Every way of indexing gives the same batch from both."""
    shuffled = torch.from_numpy(rng.permutation(n)[: max(1, n // 2)])
    repeated = torch.tensor([n - 1, 0, n - 1, 3 % n, 0])
    for index in (None, slice(1, n - 1, 3), slice(0, 0), slice(-3, None), shuffled, repeated):
        got, want = source.batch(index), reference.batch(index)
        _same(got.inputs, want.inputs)
        _same(got.labels, want.labels)
        _same(source.inputs(index), want.inputs)
        _same(source.labels(index), want.labels)
    _same(source.y, reference.y)
    assert source.shape == reference.shape and len(source) == len(reference) == n


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((40, 7), np.float64),  # a table, cast to float32
        ((40, 6, 5), np.uint8),  # grey images: a channel is added, scaled to [0, 1]
        ((40, 6, 5, 3), np.uint8),  # channels last: transposed
        ((40, 3, 4, 4), np.float32),
        ((40, 12), np.int16),  # token ids: int64
        ((40, 12), ">f4"),  # big-endian
    ],
)
def test_npy_memmap_gives_the_batches_of_the_in_memory_dataset(tmp_path, rng, shape, dtype):
    x = (rng.random(shape) * 200).astype(dtype)
    y = rng.integers(0, 5, shape[0])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    memmap = MemmapDataset(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    reference = formats.load_numpy(tmp_path / "x.npy", labels=tmp_path / "y.npy")["all"]
    _assert_same_batches(memmap, reference, shape[0], rng)
    picked = torch.from_numpy(rng.permutation(shape[0])[:15])
    view, copy = memmap.subset(picked, name="part"), reference.subset(picked)
    assert isinstance(view, MemmapDataset) and view.name == "part" and memmap.name == "x"
    _assert_same_batches(view, copy, 15, rng)
    _assert_same_batches(view.subset(torch.arange(3, 12)), copy.subset(torch.arange(3, 12)), 9, rng)
    assert view.is_8bit == reference.is_8bit == (np.dtype(dtype) == np.uint8)
    _same(memmap.inputs(torch.tensor([-1, -shape[0]])), reference.inputs(torch.tensor([shape[0] - 1, 0])))
    with pytest.raises(IndexError, match=rf"x: index {shape[0]} is out of range for {shape[0]} examples"):
        memmap.inputs(torch.tensor([0, shape[0]]))


def test_rows_far_apart_and_near_each_other_are_read_alike(tmp_path, rng, monkeypatch):
    """Rows a few apart are read in one span and the rest dropped; the span is cut into small chunks."""
    x = rng.random((500, 3)).astype(np.float32)  # 12-byte rows: spans of many rows
    np.save(tmp_path / "x.npy", x)
    memmap = MemmapDataset(tmp_path / "x.npy")
    index = torch.from_numpy(rng.choice(500, 120, replace=False))
    expected = torch.from_numpy(x)[index]
    assert torch.equal(memmap.inputs(index), expected)
    monkeypatch.setattr(sources, "_CHUNK_BYTES", 100)  # a scratch buffer of 8 rows at most
    assert torch.equal(memmap.inputs(index), expected)
    monkeypatch.setattr(sources, "_GAP_BYTES", 0)  # every row read on its own
    assert torch.equal(MemmapDataset(tmp_path / "x.npy").inputs(index), expected)


def test_nan_in_a_row_names_the_example_and_the_row_when_read(tmp_path):
    x = np.zeros((10, 4), np.float32)
    x[7, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    memmap = MemmapDataset(tmp_path / "x.npy")  # opening reads no rows
    assert memmap.inputs(torch.tensor([0, 6, 8, 9])).shape == (4, 4)
    with pytest.raises(DataError, match=r"x: example 7 \(row 7 of .*x\.npy\) holds NaN or Inf"):
        memmap.batch(torch.tensor([9, 7, 1]))
    part = memmap.subset(torch.tensor([1, 3, 7, 8]), name="x/train")
    with pytest.raises(DataError, match=r"x/train: example 2 \(row 7 of .*x\.npy\) holds NaN or Inf"):
        part.inputs(slice(0, 4))


@pytest.mark.parametrize(
    "write, expected",
    [
        (lambda p: np.save(p, np.zeros((0, 3))), r"holds no examples"),
        (lambda p: np.save(p, np.zeros(5)), r"array of shape \(5,\) is neither a table"),
        (lambda p: np.save(p, np.zeros((4, 3), order="F").T.copy(order="F")), r"stored in Fortran order"),
        (lambda p: np.save(p, np.array([["a"]])), r"dtype <U1 is not numeric"),
        (lambda p: p.write_bytes(np.lib.format.magic(1, 0) + b"garbage"), r"not a readable \.npy file"),
    ],
)
def test_npy_that_cannot_be_read_in_place_is_refused(tmp_path, write, expected):
    path = tmp_path / "bad.npy"
    write(path)
    with pytest.raises(DataError, match=expected):
        MemmapDataset(path)


def test_truncated_npy_is_refused_when_opened(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((8, 16), np.float32))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"x\.npy: truncated: its header promises \d+ bytes but the file holds"):
        MemmapDataset(tmp_path / "x.npy")


def test_memmap_survives_pickling_for_worker_processes(tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.random((20, 3)).astype(np.float32))
    memmap = MemmapDataset(tmp_path / "x.npy").subset(torch.arange(5, 15))
    memmap.inputs(slice(0, 2))  # opens the file
    again = pickle.loads(pickle.dumps(memmap))
    assert torch.equal(again.inputs(), memmap.inputs()) and len(again) == 10


def test_both_sources_follow_the_map_source_protocol(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((4, 2), np.float32))
    assert isinstance(MemmapDataset(tmp_path / "x.npy"), MapSource)
    assert isinstance(formats.load_numpy(tmp_path / "x.npy")["all"], MapSource)
    assert not isinstance(StreamingSource([torch.ones(2, 2)]), MapSource)


# ---------------------------------------------------------------------------------------------------------
# MemmapDataset over safetensors shards


def test_safetensors_shards_give_the_batches_of_the_whole_array(tmp_path, rng):
    x = rng.integers(0, 256, (30, 5, 4), dtype=np.uint8)
    y = rng.integers(0, 3, 30)
    folder = tmp_path / "shards"
    folder.mkdir()
    # shard-10 sorts after shard-2 by number, before it by text
    for name, rows in (("shard-2", slice(0, 11)), ("shard-10", slice(11, 30))):
        save_file({"inputs": x[rows], "labels": y[rows]}, folder / f"{name}.safetensors")
    memmap = MemmapDataset(folder, classes=("a", "b", "c"))
    reference = formats.as_dataset(x, y, "all", "x", classes=("a", "b", "c"))
    _assert_same_batches(memmap, reference, 30, rng)
    spanning = torch.tensor([12, 3, 10, 11, 29, 0])  # rows of both shards in one batch
    _same(memmap.batch(spanning).inputs, reference.inputs(spanning))
    assert memmap.classes == ("a", "b", "c") and memmap.shape == (1, 5, 4)
    files = [folder / "shard-2.safetensors", folder / "shard-10.safetensors"]
    _same(MemmapDataset(files).inputs(spanning), reference.inputs(spanning))


def test_safetensors_bf16_and_named_tensors(tmp_path):
    x = torch.randn(6, 4).to(torch.bfloat16)
    save_torch_file({"tokens": torch.arange(24).reshape(6, 4).int(), "images": x, "target": torch.arange(6)},
                    tmp_path / "a.safetensors")
    images = MemmapDataset(tmp_path / "a.safetensors", inputs_key="images", labels_key="target")
    assert torch.equal(images.inputs(), x.float()) and images.labels().tolist() == list(range(6))
    tokens = MemmapDataset(tmp_path / "a.safetensors", inputs_key="tokens")
    assert tokens.inputs().dtype == torch.int64 and tokens.inputs()[1].tolist() == [4, 5, 6, 7]
    assert tokens.y is None  # no tensor called "labels"
    with pytest.raises(DataError, match=r"a\.safetensors: holds no tensor named 'inputs'; its tensors are"):
        MemmapDataset(tmp_path / "a.safetensors")


def test_safetensors_shards_that_disagree_are_refused(tmp_path):
    save_file({"inputs": np.zeros((3, 4), np.float32)}, tmp_path / "a.safetensors")
    save_file({"inputs": np.zeros((3, 5), np.float32)}, tmp_path / "b.safetensors")
    with pytest.raises(DataError, match=r"b\.safetensors: 'inputs' holds rows of shape \(5,\) .* a\.safetensors"):
        MemmapDataset(tmp_path)
    save_file({"inputs": np.zeros((3, 4), np.float32), "labels": np.arange(3)}, tmp_path / "b.safetensors")
    with pytest.raises(DataError, match=r"a\.safetensors: holds no tensor named 'labels'"):
        MemmapDataset(tmp_path)  # labels in one shard only
    assert len(MemmapDataset(tmp_path, labels=np.zeros(6, int))) == 6  # labels given: the shards' not read
    save_file({"inputs": np.zeros((3, 4), np.float32), "labels": np.arange(2)}, tmp_path / "a.safetensors")
    with pytest.raises(DataError, match=r"a\.safetensors: 3 examples but labels of shape \(2,\)"):
        MemmapDataset(tmp_path)
    (tmp_path / "b.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{nope")
    with pytest.raises(DataError, match=r"b\.safetensors: not a safetensors file"):
        MemmapDataset(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# load_data(memmap=True)


def test_load_data_memmap_splits_like_the_in_memory_load(tmp_path, rng):
    np.save(tmp_path / "big.npy", rng.random((50, 2, 3)).astype(np.float32))
    np.save(tmp_path / "labels.npy", rng.integers(0, 4, 50))
    kwargs = {"seed": 3, "val_fraction": 0.2, "test_fraction": 0.1, "labels": str(tmp_path / "labels.npy")}
    mapped, loaded = load_data(str(tmp_path / "big.npy"), memmap=True, **kwargs), load_data(str(tmp_path / "big.npy"),
                                                                                           **kwargs)
    for part in ("train", "val", "test"):
        view, copy = getattr(mapped, part), getattr(loaded, part)
        assert isinstance(view, MemmapDataset) and view.name == copy.name == f"big/{part}"
        _same(view.inputs(), copy.inputs())
        _same(view.y, copy.y)
    merged = mapped.with_val_in_train()
    _same(merged.train.inputs(), torch.cat([loaded.train.inputs(), loaded.val.inputs()]))
    assert len(merged.val) == 0 and merged.test is mapped.test


def test_a_file_read_into_memory_is_split_into_views_of_its_one_array(tmp_path, rng):
    x = rng.random((101, 3)).astype(np.float32)
    x[:, 0] = np.arange(101)  # each row names itself
    np.save(tmp_path / "t.npy", x)
    splits = load_data(str(tmp_path / "t.npy"), seed=2, val_fraction=0.2, test_fraction=0.1)
    buffer, start = splits.train.x.untyped_storage().data_ptr(), splits.train.x.data_ptr()
    for part in (splits.train, splits.val, splits.test):
        assert part.x.untyped_storage().data_ptr() == buffer and part.x.data_ptr() == start  # one after the other
        start += part.x.numel() * 4
        ids = part.x[:, 0].long()
        assert torch.equal(part.x, torch.from_numpy(x)[ids]) and bool((ids.diff() > 0).all())  # file order
    assert sorted(torch.cat([p.x[:, 0] for p in (splits.train, splits.val, splits.test)]).tolist()) == list(range(101))
    # the same split as copies of a caller's array, which is left as it was
    given = x.copy()
    copies = random_split(formats.as_dataset(given, None, "t", "given", owned=False), 0.2, 0.1, 2)
    assert np.array_equal(given, x)
    for part in ("train", "val", "test"):
        _same(getattr(splits, part).x, getattr(copies, part).x)


def test_partition_moves_rows_chunk_by_chunk_and_only_an_owned_array(rng):
    x = torch.arange(40, dtype=torch.float32).reshape(20, 2)
    parts = [torch.tensor([1, 2, 5, 6, 7, 11, 12, 13, 19]), torch.tensor([0, 3, 4, 8, 9]),
             torch.tensor([10, 14, 15, 16, 17, 18])]
    owned = sources.Dataset(x.clone(), torch.arange(20), "d", owned=True)
    views = owned.partition(parts, ["a", "b", "c"], chunk_bytes=8 * 2)  # two rows a chunk
    for view, index in zip(views, parts, strict=True):
        assert torch.equal(view.x, x[index]) and torch.equal(view.y, index)
    assert not owned.owned  # used up
    with pytest.raises(DataError, match="only a dataset read from a file owns"):
        sources.Dataset(x, None, "d").partition(parts, ["a", "b", "c"])


def test_a_npy_too_large_for_memory_is_read_from_disk_saying_so(tmp_path, rng, monkeypatch):
    from aekit.data import registry

    np.save(tmp_path / "big.npy", rng.random((40, 3)).astype(np.float32))
    assert not isinstance(load_data(str(tmp_path / "big.npy")).train, MemmapDataset)
    monkeypatch.setattr(registry, "available_memory", lambda: 4 * 400)  # the file (600 bytes) is over a quarter
    splits = load_data(str(tmp_path / "big.npy"))
    assert isinstance(splits.train, MemmapDataset)
    assert splits.notes == ["big.npy: 0.0 GiB, over a quarter of the 0.0 GiB of memory available: its rows are read "
                            "from disk as batches ask for them (memmap=false reads it into memory)"]
    kept = load_data(str(tmp_path / "big.npy"), memmap=False)
    assert not isinstance(kept.train, MemmapDataset) and kept.notes == []
    np.savez(tmp_path / "big.npz", x=np.ones((40, 3)))  # a .npz cannot be read in place: into memory, no note
    assert not isinstance(load_data(str(tmp_path / "big.npz")).train, MemmapDataset)


def test_load_data_reads_safetensors_in_place_or_into_memory(tmp_path, rng):
    x = rng.random((20, 3)).astype(np.float32)
    save_file({"x": x, "y": np.arange(20) % 2}, tmp_path / "d.safetensors")
    mapped = load_data(str(tmp_path / "d.safetensors"), memmap=True, inputs="x", labels="y", seed=1)
    loaded = load_data(str(tmp_path / "d.safetensors"), inputs="x", labels="y", seed=1)
    assert isinstance(mapped.train, MemmapDataset) and not isinstance(loaded.train, MemmapDataset)
    _same(mapped.train.batch(None).inputs, loaded.train.inputs())
    _same(mapped.test.y, loaded.test.y)


@pytest.mark.parametrize(
    "make, kwargs, expected",
    [
        (lambda p: np.savez(p / "d.npz", x=np.ones((9, 2))), {}, r"d\.npz: memmap=True .* this is a \.npz"),
        (lambda p: (p / "d.csv").write_text("1,2\n3,4\n"), {}, r"d\.csv: memmap=True .* but this is csv"),
        (lambda p: np.save(p / "d.npy", np.ones((9, 2))), {"inputs": "x"}, r"d\.npy: inputs='x' names an array of a"),
    ],
)
def test_load_data_memmap_refuses_what_it_cannot_read_in_place(tmp_path, make, kwargs, expected):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(DataError, match=expected):
        load_data(str(path), memmap=True, **kwargs)


def test_registered_dataset_takes_no_file_options():
    with pytest.raises(DataError, match=r"digits: inputs=, labels=, memmap=True and image_size= are for your own"):
        load_data("digits", memmap=True)


# ---------------------------------------------------------------------------------------------------------
# StreamingSource and batched


def _stream_inputs(source) -> torch.Tensor:
    return torch.cat([batch.inputs for batch in source])


def test_stream_over_a_list_of_tensors_yields_batches_and_knows_its_shape():
    items = [torch.full((3, 2), float(i)) for i in range(4)]
    source = StreamingSource(items)
    assert source.shape == (2,) and source.length == 4
    batches = list(source)
    assert all(isinstance(b, Batch) for b in batches) and [b.inputs[0, 0].item() for b in batches] == [0, 1, 2, 3]
    assert len(list(source)) == 4  # a list restarts on each pass
    with pytest.raises(TypeError, match=r"stream: a StreamingSource has no len\(\); \.length is .* \(4\)"):
        len(source)


def test_reading_the_shape_of_a_generator_loses_no_item():
    source = StreamingSource((torch.full((2, 3), float(i)), torch.tensor([i, i])) for i in range(3))
    assert source.length is None
    assert source.shape == (3,)  # read from the first item, which the next pass still yields
    batches = list(source)
    assert [b.labels.tolist() for b in batches] == [[0, 0], [1, 1], [2, 2]]
    assert list(source) == []  # a generator is spent after one pass


def test_stream_items_of_every_kind_become_batches():
    items = [np.ones((2, 3)), {"x": torch.zeros(2, 3), "y": torch.tensor([1, 0])}, Batch(torch.ones(2, 3)),
             (torch.ones(2, 3), torch.tensor([0, 1]))]
    batches = list(StreamingSource(items))
    assert [b.labels is None for b in batches] == [True, False, True, False]
    assert batches[0].inputs.dtype == torch.float64  # the dtype is the stream's own
    with pytest.raises(DataError, match=r"stream: item 1 holds examples of shape \(4,\), not \(3,\)"):
        list(StreamingSource([torch.ones(2, 3), torch.ones(2, 4)]))
    with pytest.raises(DataError, match=r"items of shape \(5,\) read as batches of scalars; pass examples=True"):
        _ = StreamingSource([torch.ones(5)]).shape


def test_stream_over_a_dataloader_with_two_workers_sees_every_example_once():
    x = torch.arange(40, dtype=torch.float32).reshape(20, 2)
    loader = DataLoader(TensorDataset(x, torch.arange(20)), batch_size=4, num_workers=2)
    source = StreamingSource(loader)
    assert source.shape == (2,) and source.length == 5
    batches = list(source)
    assert torch.equal(torch.cat([b.inputs for b in batches]), x)
    assert torch.equal(torch.cat([b.labels for b in batches]), torch.arange(20))


def test_shards_partition_the_stream():
    items = [torch.full((2, 1), float(i)) for i in range(7)]
    source = StreamingSource(items)
    first, second = source.shard(0, 2), source.shard(1, 2)
    assert (first.length, second.length) == (4, 3)
    seen = _stream_inputs(first)[::2, 0].tolist() + _stream_inputs(second)[::2, 0].tolist()
    assert sorted(seen) == list(range(7)) and _stream_inputs(second)[::2, 0].tolist() == [1, 3, 5]
    assert source.shard(0, 1) is source
    with pytest.raises(DataError, match=r"rank 2 of world size 2"):
        source.shard(2, 2)


def test_a_loader_with_a_distributed_sampler_is_already_sharded():
    data = TensorDataset(torch.ones(8, 2))
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, num_replicas=2, rank=1, shuffle=False))
    source = StreamingSource(loader)
    assert source.shard(1, 2) is source and len(list(source)) == 2


class _Examples(IterableDataset):
    def __iter__(self):
        for i in range(10):
            yield torch.full((3,), float(i)), torch.tensor(i % 2)


def test_batched_groups_single_examples_and_small_batches():
    regrouped = batched(StreamingSource(_Examples(), examples=True), 4)
    batches = list(regrouped)
    assert [len(b) for b in batches] == [4, 4, 2] and regrouped.shape == (3,)
    assert torch.equal(torch.cat([b.inputs[:, 0] for b in batches]), torch.arange(10.0))
    assert torch.equal(torch.cat([b.labels for b in batches]), torch.arange(10) % 2)
    small = [torch.full((3, 2), float(i)) for i in range(5)]  # 15 examples in batches of 3
    sizes = [len(b) for b in batched(small, 4, drop_last=True)]
    assert sizes == [4, 4, 4]
    assert torch.equal(_stream_inputs(batched(small, 4))[:, 0], torch.arange(5.0).repeat_interleave(3))
    assert batched([torch.ones(2)] * 9, 4, examples=True).length == 3


def test_batched_refuses_items_that_do_not_join():
    with pytest.raises(DataError, match=r"some items have labels and some do not"):
        list(batched([(torch.ones(2, 3), torch.ones(2)), torch.ones(2, 3)], 3))
