"""The in-process executor (engine.executor=local): the same stages, the same batching, no Ray.

For debugging (a breakpoint in a stage function just works) and for fast tests. What is Ray's own —
the worker watchdog that kills a hang inside C code, retries, node loss, cluster submission — is not
here and stays tested on Ray. Per-document time limits still hold: extraction's own SIGALRM guard
stops hangs in Python code (pypdf), which is where this executor runs them, in the main thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from processing.embed import EmbedConfig, Embedder
from processing.progress import Progress
from processing.scheduling import Cluster, EngineStats, plan_batches

T = TypeVar("T")
R = TypeVar("R")
NODE = "local"


class LocalEmbedPool:
    """An Embedder in this process; a call runs when it is submitted."""

    def __init__(self, config: EmbedConfig, cache_dir: Path | None = None) -> None:
        self.embedder = Embedder(config, threads=os.cpu_count(), cache_dir=cache_dir)
        self.device, self.dim = self.embedder.device, self.embedder.dim
        self.done: list[tuple[list[str], np.ndarray]] = []

    @property
    def busy(self) -> bool:
        return False

    @property
    def pending(self) -> int:
        return len(self.done)

    def submit(self, keys: list[str], texts: list[str]) -> None:
        self.done.append((keys, self.embedder.encode(texts)))

    def finished(self, wait: bool) -> Iterator[tuple[list[str], np.ndarray]]:
        while self.done:
            yield self.done.pop(0)

    def close(self) -> None:
        self.done.clear()


class LocalExecutor:
    def __init__(self) -> None:
        import torch

        self.cluster = Cluster("in-process", os.cpu_count() or 1, torch.cuda.device_count(), 1)
        self.stats = EngineStats()

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
    ) -> Iterator[list[R]]:
        """fn over consecutive batches, in order. A batch that raises (a bug of ours, not a bad document:
        fn turns those into results) gives each of its items `on_lost(item, reason)`, as on Ray.
        `memory_cap_mb` is not applied: here it would cap the driver itself (debugging runs only)."""
        progress = Progress(desc, total)
        for batch in plan_batches(items, batch_size, min_batch_size, total, slots=1):
            try:
                results = fn(batch)
            except Exception as exc:  # noqa: BLE001 - becomes each item's outcome, as a lost Ray task would
                if on_lost is None:
                    raise
                reason = f"worker failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                results = [on_lost(item, reason) for item in batch]
            self.stats.tasks_per_node[NODE] += 1
            progress.update(len(batch))
            yield results
        progress.close()

    def embed_pool(self, config: EmbedConfig, cpu_share: float, cache_dir: Path) -> LocalEmbedPool:
        return LocalEmbedPool(config, cache_dir)
