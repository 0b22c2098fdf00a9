"""Every real-world PDF in ../shared/corpora (pdf.js' test suite and pypdf's samples) through the Ray
extraction stage with the default backends and guards: one outcome each, nothing hangs, the run ends."""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest

from ingestion.extract import OUTCOMES, ExtractConfig, extract_files, lost_record
from processing import engine
from tests.conftest import SHARED

pytestmark = [pytest.mark.ray, pytest.mark.slow]
CORPORA = SHARED / "corpora"


@pytest.mark.skipif(not CORPORA.is_dir(), reason="../shared/corpora not present")
def test_every_real_pdf_gets_exactly_one_outcome(ray_session):
    files = sorted(
        str(p) for name in ("pdfjs", "pypdf-sample-files") for p in (CORPORA / name).rglob("*") if p.is_file()
    )
    assert len(files) > 900
    config = ExtractConfig(timeout_s=10)
    run = partial(extract_files, config=config)
    records = [
        r
        for batch in engine.map_batches(run, files, 16, desc="real pdfs", item_timeout_s=10, on_lost=lost_record)
        for r in batch
    ]
    assert sorted(r.path for r in records) == files  # each file exactly once
    outcomes = Counter(r.extraction.outcome for r in records)
    assert set(outcomes) <= set(OUTCOMES)
    assert outcomes["ok"] + outcomes["fallback_ok"] > 250  # plenty of real text came out
    assert outcomes["encrypted"] > 0 and outcomes["corrupt"] > 0  # and the odd ones were named
    assert max(r.extraction.seconds for r in records) <= 10 + 1  # no document ran past its time limit
