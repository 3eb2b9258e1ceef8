"""Reader for the Numenta Anomaly Benchmark corpus (Lavin & Ahmad 2015; github.com/numenta/NAB).

The corpus folder holds ``data/<group>/<name>.csv`` (header ``timestamp,value``, one row per time step, in time
order) and ``labels/combined_windows.json``, which maps each file ``<group>/<name>.csv`` to its anomaly windows
as ``[start, end]`` timestamp strings; each end must be the timestamp of exactly one row of the file (NAB's
``nab/labeler.py`` checks the same). Windows are turned into ``(start, end)`` row indices, both included, which
is what :mod:`aekit.metrics.nab` scores. Read with the standard library's ``csv`` and numpy's ``datetime64``.

NAB scores rows by position, and its published corpus is not strictly increasing in time: 8 files repeat a
timestamp or step back (``realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv`` repeats 2014-03-09 03:00:00, the
daylight-saving change, 11 times; ``realKnownCause/machine_temperature_system_failure.csv`` goes back from
02:55 to 02:00 at line 10151). So rows are kept in file order by default, as NAB reads them; ``strict=True``
refuses such a file instead, naming the file and the line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.errors import DataError

WINDOWS_FILE = "combined_windows.json"


@dataclass(frozen=True, eq=False)
class NABFile:
    """One NAB series: ``name`` as the labels call it (``realKnownCause/nyc_taxi.csv``), ``timestamps [n]``
    (``datetime64[us]``), ``values [n]`` (float64) and ``windows``, ``(start, end)`` row indices, both included."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: tuple[tuple[int, int], ...]


def parse_timestamps(strings: list[str], where: str, numbers: list[int] | None = None) -> np.ndarray:
    """ISO timestamps (``2014-04-01 00:00:00``) as ``datetime64[us]``; one that does not parse is an error naming
    ``where`` and its position (its entry of ``numbers``, such as its line in a file, where given)."""
    try:
        return np.array(strings, dtype="datetime64[us]")
    except ValueError:
        for k, text in enumerate(strings):  # find the one that failed, to name it
            try:
                np.datetime64(text, "us")
            except ValueError:
                raise DataError(f"{where} {k if numbers is None else numbers[k]}: {text!r} is not a timestamp "
                                "(YYYY-MM-DD HH:MM:SS)") from None
        raise


def _read_series(path: Path, name: str, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0][:2]] != ["timestamp", "value"]:
        raise DataError(f"{path}: the header must be 'timestamp,value', got {','.join(rows[0]) if rows else 'nothing'}")
    body = rows[1:]
    if not body:
        raise DataError(f"{path}: no rows after the header")
    bad = next((k for k, r in enumerate(body) if len(r) < 2), None)
    if bad is not None:
        raise DataError(f"{path}, line {bad + 2}: expected 'timestamp,value', got {','.join(body[bad])!r}")
    t = parse_timestamps([r[0] for r in body], f"{path}, row")
    try:
        v = np.array([r[1] for r in body], dtype=np.float64)
    except ValueError:
        bad = next(k for k, r in enumerate(body) if not _is_float(r[1]))
        raise DataError(f"{path}, line {bad + 2}: value {body[bad][1]!r} is not a number") from None
    back = np.flatnonzero(np.diff(t) <= np.timedelta64(0, "us"))
    if strict and len(back):
        k = int(back[0]) + 1
        what = "repeats" if t[k] == t[k - 1] else "comes before"
        raise DataError(f"{name}, line {k + 2}: timestamp {t[k]} {what} the previous row's {t[k - 1]}; rows must "
                        "be in increasing time order without duplicates (or read with strict=False)")
    return t, v


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _window_rows(t: np.ndarray, limits: list, name: str) -> tuple[tuple[int, int], ...]:
    """Timestamp windows -> row index windows, each end the timestamp of one row, sorted and disjoint."""
    out: list[tuple[int, int]] = []
    for k, pair in enumerate(limits):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise DataError(f"{name}: window {k} is {pair!r}; a window is [start, end] timestamps")
        ends = parse_timestamps([str(p) for p in pair], f"{name}: window {k}, end")
        rows = []
        for end in ends:
            match = np.flatnonzero(t == end)
            if len(match) != 1:
                lines = ", ".join(str(r + 2) for r in match[:5])
                where = f"is on {len(match)} rows (lines {lines})" if len(match) else "is not a row of the file"
                raise DataError(f"{name}: window {k} timestamp {end} {where}; a window end must be the timestamp of "
                                "exactly one row")
            rows.append(int(match[0]))
        start, stop = rows
        if start > stop:
            raise DataError(f"{name}: window {k} starts at {ends[0]}, after its end {ends[1]}")
        if out and start <= out[-1][1]:
            raise DataError(f"{name}: window {k} [{pair[0]}, {pair[1]}] overlaps or precedes window {k - 1}; windows "
                            "must be sorted and disjoint")
        out.append((start, stop))
    return tuple(out)


def read_nab(root: str | Path, windows_file: str = WINDOWS_FILE, strict: bool = False) -> list[NABFile]:
    """The NAB series under ``root`` (the folder holding ``data/`` and ``labels/``) with their windows from
    ``labels/<windows_file>``, sorted by name. Every file the labels list must exist, and every CSV under
    ``data/`` must be listed (NAB scores a file only through its labels). ``strict=True`` also refuses a file
    whose timestamps repeat or go back (module docstring)."""
    root = Path(root)
    data, labels = root / "data", root / "labels" / windows_file
    if not data.is_dir():
        raise DataError(f"NAB corpus not found: {data} is not a folder; pass the folder holding data/ and labels/ "
                        "(e.g. $AEKIT_DATA/nab)")
    if not labels.is_file():
        raise DataError(f"NAB labels not found: {labels} is missing; it maps each data/<group>/<name>.csv to its "
                        "windows")
    try:
        windows = json.loads(labels.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{labels}: not valid JSON ({e})") from None
    if not isinstance(windows, dict):
        raise DataError(f"{labels}: expected an object mapping file names to window lists")
    on_disk = {p.relative_to(data).as_posix() for p in data.glob("*/*.csv")}
    unlabelled = sorted(on_disk - set(windows))
    if unlabelled:
        raise DataError(f"{data / unlabelled[0]} has no entry in {labels}; add it (an empty list if it has no "
                        "anomaly) or remove the file")
    files = []
    for name in sorted(windows):
        path = data / name
        if not path.is_file():
            raise DataError(f"{labels} lists {name}, but {path} does not exist")
        t, v = _read_series(path, name, strict)
        files.append(NABFile(name, t, v, _window_rows(t, windows[name], name)))
    return files
