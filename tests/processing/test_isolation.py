"""Isolated extraction workers: the same answers as in-process extraction, and a worker that hangs or
dies costs that one document, never the caller."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from ingestion.extract import ExtractConfig, extract_text
from processing.isolation import ExtractorPool
from tests.conftest import SHARED

SAMPLE = SHARED / "corpora/pypdf-sample-files/004-pdflatex-4-pages_pdflatex-4-pages.pdf"


@pytest.fixture()
def pool():
    pool = ExtractorPool(ExtractConfig(timeout_s=2), workers=2, grace_s=1)
    yield pool
    pool.close()


def _worker_pids(pool: ExtractorPool) -> list[int]:
    return [w.process.pid for w in pool._all]


def test_isolated_extraction_equals_in_process(pool):
    data = SAMPLE.read_bytes()
    isolated, local = pool.extract(data), extract_text(data, ExtractConfig(timeout_s=2))
    assert isolated.outcome == local.outcome == "ok"
    assert (isolated.text, isolated.pages, isolated.backend) == (local.text, local.pages, local.backend)
    assert pool.extract(b"not a pdf").outcome == "not_pdf"


def test_a_worker_that_stops_answering_is_killed_and_replaced(pool):
    data = SAMPLE.read_bytes()
    for pid in _worker_pids(pool):  # a hang inside C code looks like this from outside: no answer
        os.kill(pid, signal.SIGSTOP)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(pool.extract(data))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.outcome for a in answers] == ["timeout", "timeout"]
    assert pool.replaced == 2
    assert pool.extract(data).outcome == "ok"  # the replacements serve


def test_a_worker_that_dies_gives_worker_error_and_the_next_document_is_fine(pool):
    data = SAMPLE.read_bytes()
    for pid in _worker_pids(pool):
        os.kill(pid, signal.SIGKILL)
    lost = pool.extract(data)
    assert lost.outcome == "worker_error" and "died" in lost.message
    assert pool.extract(data).outcome == "worker_error"  # the second worker was killed too
    assert pool.extract(data).outcome == "ok"


def test_workers_run_under_the_memory_cap():
    pool = ExtractorPool(ExtractConfig(worker_memory_mb=3000), workers=1)
    try:
        pool.extract(b"%PDF-1.4")  # the worker has set its limit once it answers
        (pid,) = _worker_pids(pool)
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        assert str(3000 * 1024 * 1024) in line
    finally:
        pool.close()
