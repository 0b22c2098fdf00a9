"""How work is cut up and kept in flight, whatever runs it: pure, free of Ray.

Both executors (processing/engine.py on Ray, processing/local.py in this process) cut their input with
`plan_batches`, count their tasks in an `EngineStats`, and hand embedding calls to a pool through the
one `EmbedFeeder` loop, streaming or not.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from processing.progress import Progress

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("ray", "local")


@dataclass
class EngineConfig:
    """engine.* in the config."""

    executor: str = "ray"  # local = every stage in this process, no Ray: for debugging and fast tests
    num_cpus: int = 0  # CPUs of a local Ray; 0 = all cores of this machine

    def validate(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"engine.executor must be one of {', '.join(EXECUTORS)}; got {self.executor!r}")
        if self.num_cpus < 0:
            raise ValueError(f"engine.num_cpus must be >= 0 (0 = all cores); got {self.num_cpus}")


@dataclass(frozen=True)
class Cluster:
    address: str
    cpus: int
    gpus: int
    nodes: int


@dataclass
class EngineStats:
    """What one executor did, per run (returned, never a module global)."""

    tasks_per_node: Counter[str] = field(default_factory=Counter)


class EmbedPool(Protocol):
    """Where embedding calls go: Ray actors (engine.RayEmbedPool) or this process (local.LocalEmbedPool)."""

    device: str
    dim: int

    @property
    def busy(self) -> bool: ...

    @property
    def pending(self) -> int: ...

    def submit(self, keys: list[str], texts: list[str]) -> None: ...

    def finished(self, wait: bool) -> Iterator[tuple[list[str], np.ndarray]]: ...

    def close(self) -> None: ...


class Executor(Protocol):
    cluster: Cluster
    stats: EngineStats

    def map_batches(
        self,
        fn: Callable[[list[T]], list[R]],
        items: Iterable[T],
        batch_size: int,
        *,
        desc: str,
        total: int | None = None,
        min_batch_size: int | None = None,
        item_timeout_s: float | None = None,
        on_lost: Callable[[T, str], R] | None = None,
        memory_cap_mb: int = 0,
    ) -> Iterator[list[R]]: ...

    def embed_pool(self, config: Any, cpu_share: float, cache_dir: Path) -> EmbedPool: ...


def guided_batch_size(remaining: int, slots: int, largest: int, smallest: int) -> int:
    """How many items the next task gets: a share of what is left, so tasks start large and shrink.

    Guided self-scheduling with a factor of two ("factoring", Hummel et al. 1992): each task takes
    1/(2 * slots) of the remaining items, between `smallest` and `largest`. Large early tasks keep the
    per-task cost of Ray (scheduling, the driver's bookkeeping, the raylet) small next to the work; small
    late tasks let every worker finish at about the same time instead of one worker running the last big
    batch alone. A remainder smaller than `smallest` joins the last task.
    """
    share = math.ceil(remaining / (2 * max(slots, 1)))
    size = min(largest, max(smallest, share))
    if 0 < remaining - size < smallest:  # no task smaller than `smallest` left behind at the end
        size = min(largest, remaining)
    return max(1, size)


def plan_batches(
    items: Iterable[T], batch_size: int, min_batch_size: int | None, total: int | None, slots: int
) -> Iterator[list[T]]:
    """Consecutive batches of items, streamed: guided sizes (see guided_batch_size) when `min_batch_size`
    and `total` are given, else all `batch_size`."""

    def size_after(submitted: int) -> int:
        if min_batch_size is None or total is None:
            return batch_size
        return guided_batch_size(total - submitted, slots, batch_size, min_batch_size)

    batch: list[T] = []
    submitted, wanted = 0, size_after(0)
    for item in items:
        batch.append(item)
        if len(batch) >= wanted:
            yield batch
            submitted += len(batch)
            wanted = size_after(submitted)
            batch = []
    if batch:
        yield batch


class EmbedFeeder:
    """The one loop that keeps embedding calls in flight: the embed stage and streaming (embedding
    fresh extractions while extraction goes on) both go through it.

    `add(items, block=True)` submits every full call, waiting for results while the pool is busy (the
    embed stage: memory stays at a few calls). `add(items, block=False)` submits only while the pool has
    room and keeps the rest buffered (streaming: extraction must never wait for the embedder).
    Both yield (keys, vectors) of the calls that finished.
    """

    def __init__(self, pool: EmbedPool, per_call: int, progress: Progress | None = None) -> None:
        self.pool, self.per_call, self.progress = pool, per_call, progress
        self.buffer: list[tuple[str, str]] = []
        self.embedded = 0

    def add(self, items: Iterable[tuple[str, str]], block: bool) -> Iterator[tuple[list[str], np.ndarray]]:
        for item in items:
            self.buffer.append(item)
            if len(self.buffer) >= self.per_call and block:
                yield from self._submit_full(block=True)
        yield from self._submit_full(block=block)
        yield from self._collect(wait=False)

    def finish(self) -> Iterator[tuple[list[str], np.ndarray]]:
        yield from self._submit_full(block=True)
        if self.buffer:
            yield from self._wait_for_room()
            self._submit(self.buffer)
            self.buffer = []
        while self.pool.pending:
            yield from self._collect(wait=True)
        if self.progress:
            self.progress.close()

    def _submit_full(self, block: bool) -> Iterator[tuple[list[str], np.ndarray]]:
        while len(self.buffer) >= self.per_call:
            if self.pool.busy:
                if not block:
                    return
                yield from self._wait_for_room()
            self._submit(self.buffer[: self.per_call])
            del self.buffer[: self.per_call]

    def _wait_for_room(self) -> Iterator[tuple[list[str], np.ndarray]]:
        while self.pool.busy:
            yield from self._collect(wait=True)

    def _submit(self, items: list[tuple[str, str]]) -> None:
        self.pool.submit([k for k, _ in items], [t for _, t in items])

    def _collect(self, wait: bool) -> Iterator[tuple[list[str], np.ndarray]]:
        for keys, vectors in self.pool.finished(wait=wait):
            self.embedded += len(keys)
            if self.progress:
                self.progress.update(len(keys))
            yield keys, vectors
