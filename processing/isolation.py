"""Extraction in worker processes that a hostile PDF cannot take down with it.

The service and the self-contained model extract untrusted uploads inside a long-lived process; a PDF
that hangs PDFium in C code, or makes it allocate without bound, must not stall or kill that process.
Each worker is a separate `python -m processing.isolation` process (not a fork, and not multiprocessing's
spawn, which re-runs the host's main script: a uvicorn or MLflow server's) with a hard address-space cap
(RLIMIT_AS). A document that overruns its time is answered `timeout` and its worker killed and replaced;
one that kills its worker is answered `worker_error`. Other requests go on in the other workers.

Protocol on the worker's stdin/stdout: a 4-byte length, then the PDF bytes; back a 4-byte length, then a
pickled Extraction.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import resource
import select
import struct
import subprocess
import sys
import threading
from dataclasses import asdict
from typing import IO

from ingestion.extract import ExtractConfig, Extraction, extract_text

GRACE_S = 5.0  # past extract.timeout_s before a worker is killed: SIGALRM stops Python hangs first
HEADER = struct.Struct("!I")


class _Lost(Exception):
    pass


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise _Lost()
    return data


class _Worker:
    def __init__(self, config: ExtractConfig) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "processing.isolation", json.dumps(asdict(config))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def ask(self, data: bytes, deadline_s: float) -> Extraction | None:
        """The worker's answer, or None when it did not answer in time. Raises _Lost if it died."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(HEADER.pack(len(data)) + data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _Lost() from None
        ready, _, _ = select.select([self.process.stdout], [], [], deadline_s)
        if not ready:
            return None
        (size,) = HEADER.unpack(_read_exact(self.process.stdout, HEADER.size))
        return pickle.loads(_read_exact(self.process.stdout, size))

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class ExtractorPool:
    """`extract(bytes) -> Extraction`, thread-safe; at most `workers` documents at once."""

    def __init__(self, config: ExtractConfig, workers: int = 2, grace_s: float = GRACE_S) -> None:
        self.config, self.grace_s = config, grace_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self.replaced = 0  # workers killed (timeouts) or lost (crashes) and started anew
        for _ in range(workers):
            self._idle.put(self._start())

    def _start(self) -> _Worker:
        worker = _Worker(self.config)
        with self._lock:
            self._all.append(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop()
        with self._lock:
            self._all.remove(worker)
            self.replaced += 1
        return self._start()

    def extract(self, data: bytes) -> Extraction:
        worker = self._idle.get()  # waits while every worker is busy
        try:
            result = worker.ask(data, self.config.timeout_s + self.grace_s)
            if result is None:
                worker = self._replace(worker)
                return Extraction("timeout", message=f"killed after extract.timeout_s={self.config.timeout_s:g}s")
            return result
        except (_Lost, pickle.UnpicklingError, EOFError):
            code = worker.process.poll()
            worker = self._replace(worker)
            return Extraction("worker_error", message=f"the extraction worker died (exit code {code})")
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


def _serve(config: ExtractConfig) -> None:
    """A worker's loop: PDF bytes in, an Extraction out, until stdin closes."""
    if config.worker_memory_mb > 0:
        limit = config.worker_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Answers go to a private copy of stdout; anything a library prints goes to stderr, not into the protocol.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer
    while True:
        try:
            (size,) = HEADER.unpack(_read_exact(source, HEADER.size))
            data = _read_exact(source, size)
        except _Lost:
            return
        answer = pickle.dumps(extract_text(data, config))
        sink.write(HEADER.pack(len(answer)) + answer)
        sink.flush()


if __name__ == "__main__":
    _serve(ExtractConfig(**json.loads(sys.argv[1])))
