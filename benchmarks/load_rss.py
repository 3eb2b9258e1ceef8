"""Peak resident memory of reading a large float32 ``.npy`` table for training, against the file's own size.

Writes ``--mb`` MiB of float32 rows (``--dim`` columns) to a temporary folder, then runs each reader in a fresh
process (so that no peak carries over) and reads that process's peak resident memory (``VmHWM``):

- ``import``: importing torch and aekit alone, what every aekit reader pays before any data;
- ``np.load``: numpy reading the file into memory, the floor any in-memory reader pays (one copy);
- ``load_data``: ``aekit.data.load_data(FILE)`` with the default ``memmap`` (read, checked and split 80/10/10);
- ``train``: ``aekit train ae --data FILE --steps S`` (the whole command: load, split, train, evaluate);
- ``train-memmap``: the same with ``memmap=true`` (rows read from disk as batches ask for them).

``--python`` runs the aekit readers with another interpreter or ``--pythonpath`` another aekit source tree (the
code before a change, for a side-by-side).

    .venv/bin/python benchmarks/load_rss.py --mb 1600 --out benchmarks/results/load_rss.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import aekit_source, machine

# VmHWM, the peak resident memory of this process's own address space (ru_maxrss would carry the parent's over exec)
PEAK = ("import sys; print('PEAK_KB', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')), "
        "file=sys.stderr)")
READERS = {
    "import": "import torch, aekit.data, aekit.cli; " + PEAK,
    "np.load": "import numpy as np, sys; x = np.load(sys.argv[1]); " + PEAK,
    "load_data": "import sys; from aekit.data import load_data; s = load_data(sys.argv[1]); " + PEAK,
    "train": "import sys; from aekit.cli import main; code = main(['train', 'ae', '--data', sys.argv[1], '--out', "
             "sys.argv[2], '--steps', sys.argv[3], 'figures=false']); " + PEAK,
    "train-memmap": "import sys; from aekit.cli import main; code = main(['train', 'ae', '--data', sys.argv[1], "
                    "'--out', sys.argv[2], '--steps', sys.argv[3], 'figures=false', 'memmap=true']); " + PEAK,
}


def write_table(path: Path, mb: int, dim: int) -> int:
    rows = mb * 2**20 // (4 * dim)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        for first in range(0, rows, 65536):
            f.write(rng.standard_normal((min(65536, rows - first), dim), dtype=np.float32).tobytes())
    return rows


def run_reader(name: str, file: Path, out: Path, steps: int, python: str, pythonpath: str | None) -> dict:
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    start = time.perf_counter()
    done = subprocess.run([python, "-c", READERS[name], str(file), str(out), str(steps)], capture_output=True,
                          text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB")]
    if done.returncode or not peak:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    notes = [line for line in done.stderr.splitlines() if "memory available" in line]
    return {"peak_mib": round(int(peak[0].split()[1]) / 1024, 1), "seconds": round(seconds, 1), "notes": notes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1600)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--readers", default=",".join(READERS))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pythonpath", default=None, help="an aekit src folder to run instead of the installed one")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "big.npy"
        rows = write_table(file, args.mb, args.dim)
        size = file.stat().st_size / 2**20
        results = {}
        for i, name in enumerate(args.readers.split(",")):
            results[name] = run_reader(name, file, Path(tmp) / f"run{i}", args.steps, args.python, args.pythonpath)
            results[name]["x_file"] = round(results[name]["peak_mib"] / size, 2)
            print(f"{name:14s} peak {results[name]['peak_mib']:8.1f} MiB = {results[name]['x_file']:.2f} x the "
                  f"file ({size:.0f} MiB), {results[name]['seconds']:.1f} s", flush=True)
    record = {"file_mib": round(size, 1), "rows": rows, "dim": args.dim, "steps": args.steps,
              "pythonpath": args.pythonpath, "results": results, "machine": machine(), "aekit": aekit_source(),
              "date": time.strftime("%Y-%m-%d")}
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
