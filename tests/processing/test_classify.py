"""The service's coalescer: concurrent callers share forward passes and each gets its own rows back."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from processing.classify import _Coalescer


def test_concurrent_calls_share_a_pass_and_get_their_own_rows():
    passes: list[list[str]] = []
    release = threading.Event()

    def encode(texts: list[str]) -> np.ndarray:
        passes.append(list(texts))
        if len(passes) == 1:
            release.wait(10)  # the first pass runs while the other callers queue
        return np.array([[len(t)] for t in texts])

    coalescer = _Coalescer(encode)
    results: dict[int, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, coalescer(["x" * i, "y" * i]))) for i in range(1, 6)
    ]
    threads[0].start()
    time.sleep(0.2)
    for t in threads[1:]:
        t.start()
    time.sleep(0.3)
    release.set()
    for t in threads:
        t.join(10)
    assert {i: r.ravel().tolist() for i, r in results.items()} == {i: [i, i] for i in range(1, 6)}
    assert [len(p) for p in passes] == [2, 8]  # one pass alone, then the four that queued, merged


def test_an_error_reaches_every_waiting_caller():
    def encode(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model gone")

    coalescer = _Coalescer(encode)
    with pytest.raises(RuntimeError, match="model gone"):
        coalescer(["a"])
    with pytest.raises(RuntimeError, match="model gone"):  # and the loop lives on
        coalescer(["b"])
