"""Progress for long stages: a tqdm bar on a terminal, periodic log lines elsewhere.

Under `ray job submit`, CI or a log file there is no terminal, and a bar would be either silent or
thousands of carriage returns; a line every DOCSCALE_PROGRESS_SECONDS (default 10) is what a person
tailing the log wants.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


class Progress:
    def __init__(self, desc: str, total: int | None, unit: str = "doc") -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0
        self.start = self.last = time.monotonic()
        self.interval = float(os.environ.get("DOCSCALE_PROGRESS_SECONDS", "10"))
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False) if sys.stderr.isatty() else None

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            of_total = f"/{self.total}" if self.total else ""
            print(
                f"[docscale] {self.desc}: {self.done}{of_total} ({rate:.1f} {self.unit}/s)", file=sys.stderr, flush=True
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Stopwatch:
    """Seconds per named stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def log(message: str) -> None:
    """One line for the person watching, on stderr (stdout carries the summary)."""
    print(f"[docscale] {message}", file=sys.stderr, flush=True)
