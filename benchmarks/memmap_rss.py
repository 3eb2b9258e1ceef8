"""Resident memory of a full pass over a 4 GB float32 ``.npy`` file read through ``MemmapDataset``.

Writes ``--rows`` x ``--dim`` float32 rows (row ``i`` starts with the value ``i``, so every batch can be checked
against the ids asked for) to a temporary folder, evicts the file from the page cache, then makes one pass of
shuffled batches through a tiny training step (a linear layer, forward, backward, SGD) while it samples the
process's resident memory (VmRSS from ``/proc/self/status`` every ``--sample-every`` batches, and the peak
``ru_maxrss``). Each reader runs in a fresh process of its own, so that no peak carries over:

- ``memmap-dataset``: ``aekit.data.MemmapDataset.batch`` (positioned reads, nothing mapped);
- ``numpy-mmap``: ``np.load(mmap_mode="r")`` and fancy indexing, for comparison: every page read stays mapped;
- ``mmap-dontneed``: an ``mmap.mmap`` of the file whose pages are dropped with ``madvise(MADV_DONTNEED)`` after
  every ``--dontneed-mb`` read;
- ``aekit-train``: a whole ``aekit.train("ae", data=FILE, memmap=True)`` run of one epoch (an MLP autoencoder,
  validation included), resident memory sampled by a thread every 0.2 s.

    .venv/bin/python benchmarks/memmap_rss.py --readers memmap-dataset,numpy-mmap,mmap-dontneed
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import aekit_source, machine

from aekit.data import MemmapDataset

READERS = ("memmap-dataset", "numpy-mmap", "mmap-dontneed", "aekit-train")


def vm_rss_mb() -> dict[str, float]:
    """VmRSS and its file-backed and anonymous parts, in MiB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def write_npy(path: Path, rows: int, dim: int, chunk_rows: int = 16384) -> float:
    """Rows of standard normal float32, row ``i`` starting with ``i``; written in chunks, never whole."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        for first in range(0, rows, chunk_rows):
            chunk = rng.standard_normal((min(chunk_rows, rows - first), dim), dtype=np.float32)
            chunk[:, 0] = np.arange(first, first + len(chunk))
            f.write(chunk.tobytes())
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - start


def evict(path: Path) -> None:
    """Drops the file's pages from the page cache, so that the pass reads from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class _NumpyMmap:
    def __init__(self, path: Path) -> None:
        self.array = np.load(path, mmap_mode="r")

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        rows, order = np.unique(index.numpy(), return_inverse=True)
        return torch.from_numpy(np.ascontiguousarray(self.array[rows]))[torch.from_numpy(order)]


class _DontNeedMmap:
    def __init__(self, path: Path, dontneed_mb: int) -> None:
        header = MemmapDataset(path)._reader.shards[0]
        self.f = open(path, "rb")  # noqa: SIM115 (held for the pass)
        self.map = mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ)
        rows = header.rows
        self.array = np.frombuffer(self.map, np.float32, offset=header.offset).reshape(rows, -1)
        self.limit, self.read = dontneed_mb * 2**20, 0

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        rows, order = np.unique(index.numpy(), return_inverse=True)
        x = torch.from_numpy(np.ascontiguousarray(self.array[rows]))[torch.from_numpy(order)]
        self.read += x.numel() * 4
        if self.read >= self.limit:
            self.map.madvise(mmap.MADV_DONTNEED)
            self.read = 0
        return x


def train_pass(path: Path, batch_size: int, threads: int) -> dict:
    """One epoch of ``aekit.train`` on the memory-mapped file, its resident memory sampled in a thread."""
    import threading

    import aekit

    before = vm_rss_mb()
    peak, samples, done = dict(before), [0], threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            samples[0] += 1
            peak = {k: max(peak[k], v) for k, v in vm_rss_mb().items()}

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run = aekit.train("ae", str(path), Path(out) / "run", epochs=1, batch_size=batch_size, memmap=True,
                          hidden=(64,), latent_dim=8, likelihood="gaussian", threads=threads, progress=False,
                          evaluate=False, on_nan="skip", max_skipped=1_000_000)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {
        "reader": "aekit-train", "steps": run.metrics["train/steps"], "seconds": round(seconds, 2),
        "loop_seconds": run.metrics["train/wall_time_s"], "examples_per_s": run.metrics["train/samples_per_s"],
        "rss_before_mb": round(before["VmRSS"], 1), "peak_vmrss_mb": round(peak["VmRSS"], 1),
        "peak_rss_file_mb": round(peak["RssFile"], 1), "peak_rss_anon_mb": round(peak["RssAnon"], 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_samples": samples[0],
    }


def one_pass(path: Path, reader: str, batch_size: int, sample_every: int, dontneed_mb: int, seed: int) -> dict:
    """A shuffled pass of training steps over the file with ``reader``, sampling resident memory."""
    if reader == "aekit-train":
        return train_pass(path, batch_size, torch.get_num_threads())
    before = vm_rss_mb()
    if reader == "memmap-dataset":
        data = MemmapDataset(path)
        n, dim = len(data), data.shape[0]

        def read(index: torch.Tensor) -> torch.Tensor:
            return data.batch(index).inputs
    else:
        data = _NumpyMmap(path) if reader == "numpy-mmap" else _DontNeedMmap(path, dontneed_mb)
        n, dim = data.array.shape
        read = data.batch
    layer = torch.nn.Linear(dim, 16)
    optimiser = torch.optim.SGD(layer.parameters(), lr=1e-4)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    peak, samples, read_s = dict(before), 0, 0.0
    start = time.perf_counter()
    for step, first in enumerate(range(0, n, batch_size)):
        index = order[first : first + batch_size]
        t = time.perf_counter()
        x = read(index)
        read_s += time.perf_counter() - t
        if not torch.equal(x[:, 0], index.float()):
            raise RuntimeError(f"{reader}: batch {step} holds other rows than the ids asked for")
        loss = layer(x).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % sample_every == 0:
            samples += 1
            peak = {k: max(peak[k], v) for k, v in vm_rss_mb().items()}
    seconds = time.perf_counter() - start
    return {
        "reader": reader,
        "examples": n,
        "batches": -(-n // batch_size),
        "seconds": round(seconds, 2),
        "read_seconds": round(read_s, 2),
        "examples_per_s": round(n / seconds),
        "rss_before_mb": round(before["VmRSS"], 1),
        "peak_vmrss_mb": round(peak["VmRSS"], 1),
        "peak_rss_file_mb": round(peak["RssFile"], 1),
        "peak_rss_anon_mb": round(peak["RssAnon"], 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_samples": samples,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--readers", default="memmap-dataset", help=f"comma-separated, of {', '.join(READERS)}")
    p.add_argument("--sample-every", type=int, default=20, help="batches between two VmRSS samples")
    p.add_argument("--dontneed-mb", type=int, default=256)
    p.add_argument("--dir", default="/tmp", help="where the temporary file is written")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--pass-only", help=argparse.SUPPRESS)  # internal: run one reader's pass over this file
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.pass_only:
        reader, path = args.pass_only.split(":", 1)
        print(json.dumps(one_pass(Path(path), reader, args.batch_size, args.sample_every, args.dontneed_mb,
                                  args.seed)))
        return
    readers = args.readers.split(",")
    unknown = sorted(set(readers) - set(READERS))
    if unknown:
        p.error(f"unknown readers {unknown}; pick from {', '.join(READERS)}")
    size = args.rows * args.dim * 4
    free = shutil.disk_usage(args.dir).free
    if free < size * 1.2:
        p.error(f"{args.dir} has {free / 2**30:.1f} GiB free; the file needs {size / 2**30:.1f} GiB")
    folder = Path(tempfile.mkdtemp(prefix="aekit-memmap-", dir=args.dir))
    try:
        path = folder / "x.npy"
        write_s = write_npy(path, args.rows, args.dim)
        passes = []
        for reader in readers:
            evict(path)
            cmd = [sys.executable, __file__, "--pass-only", f"{reader}:{path}", "--batch-size", str(args.batch_size),
                   "--sample-every", str(args.sample_every), "--dontneed-mb", str(args.dontneed_mb),
                   "--threads", str(args.threads), "--seed", str(args.seed)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            passes.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(passes[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(folder)
    result: dict[str, Any] = {
        "file": {"rows": args.rows, "dim": args.dim, "dtype": "float32", "gib": round(size / 2**30, 3),
                 "write_seconds": round(write_s, 1), "page_cache": "evicted before each pass"},
        "batch_size": args.batch_size,
        "step": f"Linear({args.dim}, 16) forward, backward, SGD",
        "passes": passes,
        "machine": machine(),
        "aekit": aekit_source(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
