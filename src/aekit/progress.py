"""Progress of the long steps after training (evaluation, scoring, figures): never silent for long.

On a terminal a step is a tqdm bar (gone when it ends); otherwise (a log file, a pipe, a batch job) it is a line
when it starts, a line at most every ``every`` seconds while it runs, and a line with its time when it ends, all on
standard error, so that standard output keeps only the results.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from collections.abc import Iterator
from typing import IO

_SHOWN: contextvars.ContextVar[bool] = contextvars.ContextVar("aekit_progress_shown", default=False)


@contextlib.contextmanager
def shown(on: bool = True) -> Iterator[None]:
    """Within the block, library calls that take a while (scoring, a detector's training) show their progress,
    as a run's own steps do: ``aekit detect`` and ``aekit.detect`` run in it."""
    token = _SHOWN.set(on)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def showing() -> bool:
    """Whether progress is shown here (:func:`shown`)."""
    return _SHOWN.get()


class Phase:
    """One step of ``total`` units (examples, rows, steps; None: not counted), named by ``what``: ``update(n)``
    after each batch, ``heartbeat()`` inside a long batch, ``close()`` (or leave the ``with`` block) at the end.
    ``enabled=False`` says nothing; ``None``: as :func:`showing` says. ``initial``: units done before (a resumed
    run)."""

    def __init__(self, what: str, total: int | None, unit: str = "examples", enabled: bool | None = True,
                 stream: IO[str] | None = None, every: float = 10.0, initial: int = 0) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = showing() if enabled is None else enabled
        self.done, self.detail, self.start = initial, "", time.perf_counter()
        self.last_line = self.start
        self.bar = None
        if total is not None and initial >= total:  # nothing left to do (a finished run resumed): nothing to say
            self.enabled = False
        if not self.enabled:
            return
        if _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=f"aekit: {what}", unit=f" {unit}", leave=False,
                            dynamic_ncols=True, mininterval=0.5, file=self.stream)
        elif total is None:
            self.line(f"{what} ...")
        else:
            self.line(f"{what}: {total:,} {unit}" + (f", from {initial:,}" if initial else ""))

    def line(self, text: str) -> None:
        print(f"aekit: {text}", file=self.stream, flush=True)
        self.last_line = time.perf_counter()

    def update(self, n: int = 1, detail: str = "") -> None:
        """``n`` more units done (``detail``: what is under way, or the latest figures, shown beside the count)."""
        if not self.enabled:
            return
        self.done += n
        self.detail = detail or self.detail
        if self.bar is not None:
            self.bar.update(n)
            if detail:
                self.bar.set_postfix_str(detail, refresh=False)
        else:
            self.heartbeat()

    def heartbeat(self, detail: str = "") -> None:
        """A line if none was written for ``every`` seconds (inside a long batch: ``detail`` says where)."""
        if not self.enabled:
            return
        self.detail = detail or self.detail
        if self.bar is not None:
            if detail:
                self.bar.set_postfix_str(detail)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.every:
            count = (f" {self.done:,}/{self.total:,} {self.unit} ({100 * self.done / max(self.total, 1):.0f}%)"
                     if self.total is not None else "")
            extra = f" {self.detail}" if self.detail else ""
            self.line(f"{self.what}:{count}{',' if count and extra else ''}{extra}, {now - self.start:.0f} s")

    def close(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        if self.bar is not None:
            self.bar.close()
        elif time.perf_counter() - self.start >= 1.0:  # a step too short to notice ends without a line
            self.line(f"{self.what}: done in {time.perf_counter() - self.start:.1f} s")

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def note(text: str, stream: IO[str] | None = None) -> None:
    """One line on standard error: what aekit chose or did for the user."""
    print(f"aekit: {text}", file=stream if stream is not None else sys.stderr, flush=True)
