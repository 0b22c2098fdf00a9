"""Ray in one place: starting or joining Ray, mapping a pure function over batches, and the embedding
actor pool. Stage code (ingestion.*, processing.embed) knows nothing of Ray; the laptop run, the
tests and a cluster submission all go through here, and only the address and resources differ.
"""

from __future__ import annotations

import math
import os
import threading
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
def _call(fn: Callable[[Any], Any], batch: Any, item_deadline_s: float | None = None) -> tuple[str, Any]:
    node = ray.get_runtime_context().get_node_id()
    if item_deadline_s is None:
        return node, fn(batch)
    results: list[Any] = []
    with Watchdog(item_deadline_s) as watchdog:
        for item in batch:  # one item at a time, so that the watchdog times each item, not the batch
            watchdog.item_started()
            results.extend(fn([item]))
    return node, results


WATCHDOG_EXIT_CODE = 75  # how a worker the watchdog ended exits (visible in Ray's worker logs)


class Watchdog:
    """Ends this worker process when one item runs past `deadline_s`.

    A hang inside C code (PDFium) cannot be interrupted from Python: a signal handler only runs once the
    call returns. Killing the process is the one sure stop; ctypes releases the GIL during the call, so
    this thread still runs. The driver sees the worker crash and retries the batch's items one by one,
    which isolates the item that hangs. It bounds the cost of a hang by the item's deadline, however
    large the batch.
    """

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def item_started(self) -> None:
        self._started = time.monotonic()

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self.deadline_s / 10)):
            if time.monotonic() - self._started > self.deadline_s:
                os._exit(WATCHDOG_EXIT_CODE)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


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


def map_batches(
    fn: Callable[[list[T]], list[R]],
    items: Iterable[T],
    batch_size: int,
    *,
    desc: str,
    total: int | None = None,
    min_batch_size: int | None = None,
    max_in_flight: int | None = None,
    item_timeout_s: float | None = None,
    on_lost: Callable[[T, str], R] | None = None,
    grace_s: float = 30.0,
) -> Iterator[list[R]]:
    """Run fn over consecutive batches of items as Ray tasks; yield each batch's results as it finishes.

    - Batch sizes: with `min_batch_size` and `total`, batches shrink from `batch_size` down to
      `min_batch_size` as the input runs out (see guided_batch_size); otherwise all are `batch_size`.
    - Bounded: at most `max_in_flight` batches are submitted at once, so memory stays flat however
      long the input is.
    - Poison items: if a batch's task dies for good (a worker segfaults on one PDF), its items are
      retried one by one, so one bad item cannot take its neighbours down with it.
    - Hangs: with `item_timeout_s`, fn is called one item at a time inside each task, and a worker
      whose item runs past `item_timeout_s + grace_s` ends itself (Watchdog); its batch's items are
      retried one by one, and a single item that hangs or crashes again becomes `on_lost(item, reason)`.
      Ray does not retry such a batch (a retry would only hang again): the split is the retry; a single
      item gets one retry, so that losing its node is not taken for a broken file. A batch far past its
      whole budget is also cancelled with force, for a worker whose watchdog could not run (a C call
      holding the GIL).
    fn must turn ordinary per-item errors into results itself; with `item_timeout_s` it must return one
    result per item.
    """
    slots = int(ray.cluster_resources().get("CPU", 1))
    max_in_flight = max_in_flight or max(2, 2 * slots)
    fn_ref = ray.put(fn)
    pending: dict[ray.ObjectRef, tuple[list[T], float, float]] = {}  # batch, submitted at, deadline
    progress = Progress(desc, total)
    item_deadline_s = item_timeout_s + grace_s if item_timeout_s else None
    guarded_batch, guarded_item = _call.options(max_retries=0), _call.options(max_retries=1)

    def submit(batch: list[T]) -> None:
        now = time.monotonic()
        if item_deadline_s is None:
            pending[_call.remote(fn_ref, batch)] = (batch, now, float("inf"))
            return
        # The backstop: a queued batch may wait for one batch ahead of it, hence twice the batch's own budget.
        ref = (guarded_item if len(batch) == 1 else guarded_batch).remote(fn_ref, batch, item_deadline_s)
        pending[ref] = (batch, now, now + 2 * len(batch) * item_timeout_s + grace_s)

    def failure_reason(submitted_at: float, exc: Exception) -> str:
        crashed = isinstance(exc, ray.exceptions.WorkerCrashedError)
        if crashed and item_deadline_s and time.monotonic() - submitted_at >= item_deadline_s:
            return f"timeout: still running after {item_deadline_s:g}s, its worker was stopped"
        return f"worker failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"

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
                for ref, (batch, _, deadline) in list(pending.items()):
                    if now > deadline:
                        ray.cancel(ref, force=True)
                        del pending[ref]
                        yield from give_up(batch, f"timeout: worker killed after {item_timeout_s:g}s per item")
                continue
            batch, submitted_at, _ = pending.pop(done[0])
            try:
                node, results = ray.get(done[0])
                TASKS_PER_NODE[node] += 1
            except (
                ray.exceptions.RayTaskError,
                ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError,
                ray.exceptions.TaskCancelledError,
            ) as exc:
                yield from give_up(batch, failure_reason(submitted_at, exc))
                continue
            progress.update(len(batch))
            yield results

    for batch in plan_batches(items, batch_size, min_batch_size, total, slots):
        submit(batch)
        yield from drain(max_in_flight - 1)
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
