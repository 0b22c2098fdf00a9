"""Ray in one place: starting or joining Ray, mapping a pure function over batches, and the embedding
actor pool. Stage code (ingestion.*, processing.embed) knows nothing of Ray; the laptop run, the
tests and a cluster submission all go through here, and only the address and resources differ.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import ray

from processing.embed import EmbedConfig
from processing.progress import Progress
from processing.scheduling import Cluster, EngineConfig, EngineStats, plan_batches
from processing.signals import HeldSignals

T = TypeVar("T")
R = TypeVar("R")

# A task lost to a dead worker or node is retried by Ray this many times before we give up on it.
TASK_RETRIES = 3


def start_ray(address: str | None = None, num_cpus: int = 0) -> Cluster:
    """Join `address` (or 'auto'), or start a private local Ray that listens on loopback only.
    Reuses a running one."""
    if not ray.is_initialized():
        previous = signal.getsignal(signal.SIGTERM)
        if not address:
            _loopback_only()
            _start_reaper()
            _quiet_token_notice()
        # Ctrl-C during Ray's start (seconds) takes effect once it has started: landing inside it, the
        # interrupt could be swallowed by a callback from Ray's C++ core (leaving logging's lock taken: a
        # later thread hung), or leave Ray half-started, whose shutdown at exit could crash (SIGSEGV).
        with HeldSignals():
            try:
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
            except KeyboardInterrupt:  # a second Ctrl-C: stop now, and never run a half-started Ray's shutdown
                atexit.register(_exit_without_ray_shutdown)
                raise
        _keep_sigterm(previous)
        atexit.register(_end_quietly_on_signals)  # runs before Ray's own shutdown, registered at its import
    resources = ray.cluster_resources()
    return Cluster(
        address=address or "local",
        cpus=int(resources.get("CPU", 0)),
        gpus=int(resources.get("GPU", 0)),
        nodes=len([n for n in ray.nodes() if n.get("Alive")]),
    )


def _keep_sigterm(previous: Any) -> None:
    """Joining Ray replaces the driver's SIGTERM handling with Ray's own, which aborts the process (rc -6,
    a C++ stack trace): a pod stopped by Kubernetes or a `kill` would end like a crash, and `cycle --watch`
    could not finish its batch. Put back the handler this process had (the watch loop's), or else stop as
    Ctrl-C does: the conductors then say what was kept and how to resume."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous if callable(previous) else _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _end_quietly_on_signals() -> None:
    """At exit the run's work is saved and its summary printed; what is left is Ray's shutdown, which
    takes a second. A Ctrl-C or SIGTERM then would print a KeyboardInterrupt traceback from inside Ray
    over a finished run: end at once instead (the reaper ends a local Ray's processes)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) not in (None, signal.SIG_IGN):
                signal.signal(signum, _exit_now)


def _exit_now(signum: int, frame: Any) -> None:
    os._exit(128 + signum)


def _exit_without_ray_shutdown() -> None:
    """After Ctrl-C stopped ray.init half-way, Ray's own shutdown at exit could crash the process with
    SIGSEGV under the conductor's "interrupted" line (6 of 16 runs of `processing.run --tier 50` interrupted
    4-13 s in while the test suite ran; 1 of 10 with one core busy). Nothing of the run has started: end as
    interrupted (130), leaving the half-started Ray's processes to the reaper, as every exit of a local
    Ray's driver does."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _loopback_only() -> None:
    """Make a private local Ray bind to 127.0.0.1. Ray turns a node IP of 127.0.0.1 into the machine's
    reachable address unless it runs as a single-machine Ray (its switch for laptops): with that switch,
    the GCS, raylet, workers, dashboard agent and metrics all listen on loopback (tested with the
    sockets listed during a run). The variable reaches Ray's child processes; the constant, read when
    Ray was imported, is this process's copy of it. Only for a Ray this process starts, never when
    joining a cluster, whose nodes must reach each other."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def _quiet_token_notice() -> None:
    """Token auth is on by default for the local Ray we start, as we want it, and Ray announces that at
    the top of every run; the announcement says nothing a user must act on, so it is dropped here. Every
    other message of Ray's, and a cluster's own auth setting, stand."""
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_drop_token_notice)


def _drop_token_notice(record: logging.LogRecord) -> bool:
    return "Token authentication is enabled for this Ray cluster" not in record.getMessage()


_reaper: subprocess.Popen | None = None  # held so that it is not collected as a finished child


def _start_reaper() -> None:
    """Start processing/reaper.py for this process: if it dies without shutting Ray down (SIGKILL, the
    kernel's OOM killer), the reaper ends the Ray processes it started instead of leaving Ray's agents
    listening for a minute. Run by path, in its own session (a Ctrl-C to the driver's group is the
    driver's to handle); it needs only psutil."""
    global _reaper
    _reaper = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reaper.py")), str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def cap_worker_memory(memory_cap_mb: int) -> None:
    """Cap this worker process's private memory (RLIMIT_DATA, the soft limit only, so that a later task
    may set another): a hostile PDF that gets past the inflation check then fails an allocation, and
    ends as its own outcome (or, if PDFium aborts, as `worker_error` after the split retry) instead of
    taking the node's memory. Not RLIMIT_AS: a Ray worker maps the shared object store into its address
    space, which RLIMIT_DATA does not count. 0 = no cap."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = memory_cap_mb * 1024 * 1024 if memory_cap_mb > 0 else hard
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


@ray.remote(max_retries=TASK_RETRIES)
def _call(
    fn: Callable[[Any], Any], batch: Any, item_deadline_s: float | None = None, memory_cap_mb: int = 0
) -> tuple[str, Any]:
    node = ray.get_runtime_context().get_node_id()
    cap_worker_memory(memory_cap_mb)
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
    memory_cap_mb: int = 0,
    grace_s: float = 30.0,
    stats: EngineStats | None = None,
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
    - Memory: with `memory_cap_mb`, each worker's private memory is capped (cap_worker_memory).
    fn must turn ordinary per-item errors into results itself; with `item_timeout_s` it must return one
    result per item. `stats` counts the batches each node ran.
    """
    stats = stats if stats is not None else EngineStats()
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
            pending[_call.remote(fn_ref, batch, None, memory_cap_mb)] = (batch, now, float("inf"))
            return
        # The backstop: a queued batch may wait for one batch ahead of it, hence twice the batch's own budget.
        task = guarded_item if len(batch) == 1 else guarded_batch
        ref = task.remote(fn_ref, batch, item_deadline_s, memory_cap_mb)
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
            raise RuntimeError(f"task failed on item {repr(batch[0])[:200]}: {reason}")  # an item may hold a text
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
                stats.tasks_per_node[node] += 1
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

    try:
        for batch in plan_batches(items, batch_size, min_batch_size, total, slots):
            submit(batch)
            yield from drain(max_in_flight - 1)
        yield from drain(0)
    except Exception:  # the run stops on this error: the batches still in flight will never be read
        _abandon(list(pending))
        raise
    progress.close()


def _abandon(refs: list[ray.ObjectRef], wait_s: float = 2.0) -> None:
    """Cancel tasks whose results nobody will read, and read the errors that cancelling gives them: Ray
    prints every error result dropped unread as an "Unhandled error" with its traceback, so a full disk
    printed one per batch in flight after the line that said why the run stopped. A task stuck in C code
    past `wait_s` is left to Ray's shutdown."""
    for ref in refs:
        ray.cancel(ref)
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=wait_s) if refs else ([], [])
    for ref in ready:
        with contextlib.suppress(Exception):
            ray.get(ref, timeout=0)


@ray.remote
class _EmbedActor:
    def __init__(self, config: EmbedConfig, device: str, threads: int, cache_dir: Path) -> None:
        from processing.embed import Embedder

        self.embedder = Embedder(config, device, threads=threads, cache_dir=cache_dir)

    def encode(self, keys: list[str], texts: list[str]) -> tuple[list[str], np.ndarray]:
        return keys, self.embedder.encode(texts)

    def encode_tokens(self, keys: list[str], *parts: Any) -> tuple[list[str], np.ndarray]:
        """Token ids made by CPU tasks (Ray resolves the parts' object refs before the call runs)."""
        from processing.tokens import Tokens

        return keys, self.embedder.encode_tokens(Tokens.concat(list(parts)))

    def tokenizer(self) -> tuple[Any, tuple[int, int, int]]:
        return self.embedder.text_tokenizer, self.embedder.token_args

    def info(self) -> tuple[str, int]:
        return self.embedder.device, self.embedder.dim


@ray.remote(num_cpus=1)
def _tokenize(tokenizer: Any, texts: list[str], args: tuple[int, int, int]) -> Any:
    from processing.tokens import tokenize_texts

    return tokenize_texts(tokenizer, texts, *args)


class EmbeddingLost(RuntimeError):
    pass


class RayEmbedPool:
    """One actor per GPU when the cluster has GPUs, else one CPU actor holding all cores of a node.

    On CPU one actor with N torch threads beats N single-thread actors on small machines: the model is
    loaded once and matrix multiplies parallelise well inside torch. `cpu_share` < 1 leaves cores to
    extraction tasks while both run (streaming).

    On a GPU, tokenising is what starves the device (README, "Embedding"): each call's texts are then
    tokenised by CPU tasks, one piece per CPU, and the actor receives compact token ids, never texts.
    Two calls are queued per actor; a GPU actor runs two at once (one tokenising while the other computes).
    """

    def __init__(self, config: EmbedConfig, cpu_share: float = 1.0, cache_dir: Path | None = None) -> None:
        placement = {"resources": {config.actor_resource: 0.01}} if config.actor_resource else {}
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        use_gpu = config.device == "cuda" or (config.device == "auto" and gpus > 0)
        tokenize_in_tasks = config.tokenize == "tasks" or (config.tokenize == "auto" and use_gpu)
        if use_gpu:
            self.actors = [
                _EmbedActor.options(num_gpus=1, num_cpus=1, max_concurrency=2, **placement).remote(
                    config, "cuda", 1, cache_dir
                )
                for _ in range(max(gpus, 1))
            ]
        else:
            node_cpus = max(int(n["Resources"].get("CPU", 1)) for n in ray.nodes() if n.get("Alive"))
            cpus = max(1, int(node_cpus * cpu_share) - (1 if tokenize_in_tasks else 0))  # a core for the tasks
            self.actors = [_EmbedActor.options(num_cpus=cpus, **placement).remote(config, "cpu", cpus, cache_dir)]
        self.device, self.dim = ray.get(self.actors[0].info.remote())
        self.tokenizer, self.token_args = None, None
        if tokenize_in_tasks:
            tokenizer, self.token_args = ray.get(self.actors[0].tokenizer.remote())
            self.tokenizer = ray.put(tokenizer)
        self.pieces = max(1, int(resources.get("CPU", 1)) - len(self.actors))
        self.calls: dict[ray.ObjectRef, int] = {}
        self.load = [0] * len(self.actors)

    @property
    def busy(self) -> bool:
        """True while every actor already has two calls queued: submitting more only adds memory."""
        return min(self.load) >= 2

    @property
    def pending(self) -> int:
        return len(self.calls)

    def submit(self, keys: list[str], texts: list[str]) -> None:
        actor = min(range(len(self.actors)), key=self.load.__getitem__)
        if self.tokenizer is None:
            ref = self.actors[actor].encode.remote(keys, texts)
        else:
            step = -(-len(texts) // self.pieces)
            parts = [
                _tokenize.remote(self.tokenizer, texts[i : i + step], self.token_args)
                for i in range(0, len(texts), step)
            ]
            ref = self.actors[actor].encode_tokens.remote(keys, *parts)
        self.calls[ref] = actor
        self.load[actor] += 1

    def finished(self, wait: bool) -> Iterator[tuple[list[str], np.ndarray]]:
        """Results of calls that are done; with wait, block until at least one is (if any is pending)."""
        while self.calls:
            done, _ = ray.wait(list(self.calls), num_returns=1, timeout=None if wait else 0)
            if not done:
                return
            self.load[self.calls.pop(done[0])] -= 1
            try:
                result = ray.get(done[0])
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                raise EmbeddingLost(
                    "the embedding actor died (its node or process was lost); everything embedded so far is "
                    "saved: run the same command again to resume from the cache"
                ) from exc
            yield result
            wait = False

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)


class RayExecutor:
    """The stages on Ray: a private local Ray bound to loopback, or the cluster at `address`."""

    def __init__(self, config: EngineConfig, address: str | None = None) -> None:
        self.cluster = start_ray(address, config.num_cpus)
        self.stats = EngineStats()

    def map_batches(self, fn: Callable[[list[T]], list[R]], items: Iterable[T], batch_size: int, **kw: Any):  # noqa: ANN201
        return map_batches(fn, items, batch_size, stats=self.stats, **kw)

    def embed_pool(self, config: EmbedConfig, cpu_share: float, cache_dir: Path) -> RayEmbedPool:
        return RayEmbedPool(config, cpu_share, cache_dir)
