"""Ray in one place: starting or joining Ray, mapping a pure function over batches, and the embedding
actor pool. Stage code (ingestion.*, processing.embed) knows nothing of Ray; the laptop run, the
tests and a cluster submission all go through here, and only the address and resources differ.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import ray

from processing.progress import Progress

T = TypeVar("T")
R = TypeVar("R")

# A task lost to a dead worker or node is retried by Ray this many times before we give up on it.
TASK_RETRIES = 3


@dataclass(frozen=True)
class Cluster:
    address: str
    cpus: int
    gpus: int
    nodes: int


def start_ray(address: str | None = None, num_cpus: int = 0) -> Cluster:
    """Join `address` (or 'auto'), or start a private local Ray bound to 127.0.0.1. Reuses a running one."""
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                _node_ip_address="127.0.0.1",
            )
    resources = ray.cluster_resources()
    return Cluster(
        address=address or "local",
        cpus=int(resources.get("CPU", 0)),
        gpus=int(resources.get("GPU", 0)),
        nodes=len([n for n in ray.nodes() if n.get("Alive")]),
    )


# Which node ran how many batches, for the summary (and the cluster test that proves work spread).
TASKS_PER_NODE: Counter[str] = Counter()


@ray.remote(max_retries=TASK_RETRIES)
def _call(fn: Callable[[Any], Any], batch: Any) -> tuple[str, Any]:
    return ray.get_runtime_context().get_node_id(), fn(batch)


def map_batches(
    fn: Callable[[list[T]], list[R]],
    items: Iterable[T],
    batch_size: int,
    *,
    desc: str,
    total: int | None = None,
    max_in_flight: int | None = None,
    item_timeout_s: float | None = None,
    on_lost: Callable[[T, str], R] | None = None,
    grace_s: float = 30.0,
) -> Iterator[list[R]]:
    """Run fn over consecutive batches of items as Ray tasks; yield each batch's results as it finishes.

    - Bounded: at most `max_in_flight` batches are submitted at once, so memory stays flat however
      long the input is.
    - Poison items: if a batch's task dies for good (a worker segfaults on one PDF), its items are
      retried one by one, so one bad item cannot take its neighbours down with it.
    - Hangs: with `item_timeout_s`, a batch still running well past its budget is cancelled with
      force (its worker process is killed: the only way to stop a hang inside C code) and its items
      retried one by one; a single item that hangs or crashes again becomes `on_lost(item, reason)`.
    fn must turn ordinary per-item errors into results itself.
    """
    max_in_flight = max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    fn_ref = ray.put(fn)
    pending: dict[ray.ObjectRef, tuple[list[T], float]] = {}
    progress = Progress(desc, total)

    def submit(batch: list[T]) -> None:
        # A queued batch may wait for one batch ahead of it: hence twice the batch's own budget.
        budget = 2 * len(batch) * item_timeout_s + grace_s if item_timeout_s else float("inf")
        pending[_call.remote(fn_ref, batch)] = (batch, time.monotonic() + budget)

    def give_up(batch: list[T], reason: str) -> Iterator[list[R]]:
        if len(batch) > 1:
            for item in batch:
                submit([item])
            return
        if on_lost is None:
            raise RuntimeError(f"task failed on item {batch[0]!r}: {reason}")
        progress.update(1)
        yield [on_lost(batch[0], reason)]

    def drain(block_until: int) -> Iterator[list[R]]:
        while len(pending) > block_until:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not done:
                now = time.monotonic()
                for ref, (batch, deadline) in list(pending.items()):
                    if now > deadline:
                        ray.cancel(ref, force=True)
                        del pending[ref]
                        yield from give_up(batch, f"timeout: worker killed after {item_timeout_s:g}s per item")
                continue
            batch, _ = pending.pop(done[0])
            try:
                node, results = ray.get(done[0])
                TASKS_PER_NODE[node] += 1
            except (
                ray.exceptions.RayTaskError,
                ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError,
                ray.exceptions.TaskCancelledError,
            ) as exc:
                yield from give_up(batch, f"worker failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                continue
            progress.update(len(batch))
            yield results

    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            submit(batch)
            batch = []
            yield from drain(max_in_flight - 1)
    if batch:
        submit(batch)
    yield from drain(0)
    progress.close()


@ray.remote
class _EmbedActor:
    def __init__(self, model_spec: str, device: str, threads: int, options: dict[str, Any]) -> None:
        from processing.embed import Embedder

        self.embedder = Embedder(model_spec, device, threads=threads, **options)

    def encode(self, keys: list[str], texts: list[str]) -> tuple[list[str], np.ndarray]:
        return keys, self.embedder.encode(texts)

    def device(self) -> str:
        return self.embedder.device

    def dim(self) -> int:
        return self.embedder.dim


class EmbeddingLost(RuntimeError):
    pass


class EmbedPool:
    """One actor per GPU when the cluster has GPUs, else one CPU actor holding all cores of a node.

    On CPU one actor with N torch threads beats N single-thread actors on small machines: the model is
    loaded once and matrix multiplies parallelise well inside torch. `cpu_share` < 1 leaves cores to
    extraction tasks while both run (streaming).
    """

    def __init__(
        self, model_spec: str, device: str, cpu_share: float = 1.0, resource: str = "", **options: Any
    ) -> None:
        """resource: a custom Ray resource the actor must sit on (e.g. a node label such as "gpu_pool").
        options: the rest of processing.embed.Embedder's keyword arguments (batch_size, max_chars, ...)."""
        placement = {"resources": {resource: 0.01}} if resource else {}
        gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpu = device == "cuda" or (device == "auto" and gpus > 0)
        if use_gpu:
            self.actors = [
                _EmbedActor.options(num_gpus=1, num_cpus=1, **placement).remote(model_spec, "cuda", 1, options)
                for _ in range(max(gpus, 1))
            ]
        else:
            node_cpus = max(int(n["Resources"].get("CPU", 1)) for n in ray.nodes() if n.get("Alive"))
            cpus = max(1, int(node_cpus * cpu_share))
            self.actors = [_EmbedActor.options(num_cpus=cpus, **placement).remote(model_spec, "cpu", cpus, options)]
        self.device = ray.get(self.actors[0].device.remote())
        self.dim = ray.get(self.actors[0].dim.remote())
        self.pending: dict[ray.ObjectRef, int] = {}
        self.load = [0] * len(self.actors)

    @property
    def busy(self) -> bool:
        """True while every actor already has two calls queued: submitting more only adds memory."""
        return min(self.load) >= 2

    def submit(self, keys: list[str], texts: list[str]) -> None:
        actor = min(range(len(self.actors)), key=self.load.__getitem__)
        self.pending[self.actors[actor].encode.remote(keys, texts)] = actor
        self.load[actor] += 1

    def finished(self, wait: bool) -> Iterator[tuple[list[str], np.ndarray]]:
        """Results of calls that are done; with wait, block until at least one is (if any is pending)."""
        while self.pending:
            done, _ = ray.wait(list(self.pending), num_returns=1, timeout=None if wait else 0)
            if not done:
                return
            self.load[self.pending.pop(done[0])] -= 1
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayActorError as exc:
                raise EmbeddingLost(
                    "the embedding actor died (its node or process was lost); everything embedded so far is "
                    "saved: run the same command again to resume from the cache"
                ) from exc
            yield result
            wait = False

    def embed(
        self, items: Iterable[tuple[str, str]], texts_per_call: int, total: int
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Embed (key, text) pairs; yields (keys, vectors) per call, keeping two calls queued per actor."""
        progress = Progress("embed", total)
        batch: list[tuple[str, str]] = []

        def flush() -> None:
            self.submit([k for k, _ in batch], [t for _, t in batch])
            batch.clear()

        for item in items:
            batch.append(item)
            if len(batch) == texts_per_call:
                flush()
                while self.busy:
                    for keys, vectors in self.finished(wait=True):
                        progress.update(len(keys))
                        yield keys, vectors
        if batch:
            flush()
        while self.pending:
            for keys, vectors in self.finished(wait=True):
                progress.update(len(keys))
                yield keys, vectors
        progress.close()

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
