"""The CPU side of a run: how many torch threads, and whether freed memory stays in the process.

Both matter for small models on a small or shared machine, where torch's defaults (a thread for every core,
freed memory handed back to the OS after every step) slow the step down.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path

import torch


def idle_cores(interval: float = 0.05) -> float | None:
    """How many of this machine's cores were idle over the last ``interval`` seconds (Linux ``/proc/stat``), or
    None where that cannot be read."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return cores * (idle1 - idle0) / max(total1 - total0, 1)


def set_threads(threads: int) -> int:
    """The number of torch threads for a CPU run. ``threads > 0``: that many. ``0``: the cores this process may
    use that are idle now, at least one. torch's default, every core, collapses when another process keeps a
    core busy: each parallel region waits for its slowest thread, and the descheduled one arrives late."""
    if threads <= 0:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        idle = idle_cores()
        threads = usable if idle is None else max(1, min(usable, int(idle + 0.25)))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def retain_cpu_memory() -> bool:
    """Keep freed memory in the process instead of handing it back to the OS after every step (opt-in:
    ``retain_cpu_memory=true``).

    glibc returns large freed blocks to the OS (``munmap``, heap trimming), so each training step page-faults
    its activations, gradients and bf16 weight copies back in. Raising the trim and mmap thresholds
    (``mallopt``) makes those blocks reusable by the next step. The setting is process-wide and stays after
    training, and the process keeps its peak memory, which is why it is not the default. Linux with glibc only;
    elsewhere it does nothing. Returns whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    trimmed = libc.mallopt(m_trim_threshold, 1 << 30)
    mapped = libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value on 64-bit
    return bool(trimmed and mapped)
