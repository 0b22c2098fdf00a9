from pathlib import Path

import pytest

from ingestion.corpus import CorpusEntry, render_entry
from ingestion.extract import (
    OUTCOMES,
    ExtractConfig,
    content_hash,
    extract_files,
    extract_text,
    extractor_version,
    lost_record,
    quality_flags,
)
from tests.conftest import SHARED

BACKENDS = ["pypdf", "pypdfium2"]


def _pdf(tmp_path: Path, name: str = "a.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(render_entry(1, CorpusEntry("train", 1, "invoice")))
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_limits_give_too_large_and_short_text_is_empty_text(backend):
    data = render_entry(1, CorpusEntry("train", 1, "contract"))
    assert extract_text(data, ExtractConfig(backend, "", max_bytes=100)).outcome == "too_large"
    assert extract_text(data, ExtractConfig(backend, "", max_declared_pages=1)).outcome == "too_large"
    assert extract_text(data, ExtractConfig(backend, "", min_chars=10**7)).outcome == "empty_text"
    ok = extract_text(data, ExtractConfig(backend, ""))
    assert ok.outcome == "ok" and ok.backend == backend and "near_empty" not in ok.flags


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_document_that_runs_past_its_time_limit_is_stopped(backend):
    # 12 pages of text take milliseconds; a limit of a tenth of a millisecond stops pypdf mid-way.
    data = render_entry(3, CorpusEntry("train", 5, "contract"))
    result = extract_text(data, ExtractConfig(backend, "", timeout_s=0.0001))
    assert result.outcome == "timeout" and "extract.timeout_s" in result.message


def test_backend_versions_key_the_cache():
    assert extractor_version(ExtractConfig("pypdfium2", "pypdf")).startswith("pypdfium2-")
    assert extractor_version(ExtractConfig("pypdf", "")) != extractor_version(ExtractConfig("pypdf", "pypdfium2"))
    # settings that change outcomes change the key; the timeout does not (timeouts are never cached)
    assert extractor_version(ExtractConfig(min_chars=5)) != extractor_version(ExtractConfig())
    assert extractor_version(ExtractConfig(fallback_on_empty=True)) != extractor_version(ExtractConfig())
    assert extractor_version(ExtractConfig(timeout_s=5)) == extractor_version(ExtractConfig())


def test_quality_flags():
    assert quality_flags("") == ("near_empty",)
    assert quality_flags("word " * 100) == ()
    assert "garbled" in quality_flags("\x01\x02#$%&" * 100)


def test_extract_files_records_every_path_and_skips_cached_content(tmp_path):
    good = _pdf(tmp_path)
    missing = tmp_path / "vanished.pdf"
    records = extract_files([str(good), str(missing)])
    assert [r.extraction.outcome for r in records] == ["ok", "unreadable"]
    cached = extract_files([str(good)], skip_hashes=frozenset({content_hash(good.read_bytes())}))
    assert cached[0].extraction is None and cached[0].content_hash == records[0].content_hash
    lost = lost_record(str(good), "timeout: worker killed")
    assert lost.extraction.outcome == "timeout" and lost.content_hash == records[0].content_hash


@pytest.mark.skipif(not (SHARED / "corpora" / "pypdf-sample-files").is_dir(), reason="../shared not present")
@pytest.mark.parametrize("backend", BACKENDS)
def test_real_world_sample_files_each_get_one_known_outcome(backend):
    paths = sorted(str(p) for p in (SHARED / "corpora" / "pypdf-sample-files").rglob("*") if p.is_file())
    records = extract_files(paths, ExtractConfig(backend, "", max_pages=300, timeout_s=20))
    assert len(records) == len(paths)
    assert all(r.extraction.outcome in OUTCOMES for r in records)
    assert sum(r.extraction.outcome == "ok" for r in records) >= len(paths) // 2
    password = next(r for r in records if "password" in r.path)
    assert password.extraction.outcome == "encrypted"


PDFJS = SHARED / "corpora" / "pdfjs"


@pytest.mark.skipif(not PDFJS.is_dir(), reason="../shared not present")
def test_the_fallback_reads_what_the_first_backend_cannot():
    data = (PDFJS / "issue19800.pdf").read_bytes()  # pypdf raises on it; PDFium reads it
    assert extract_text(data, ExtractConfig("pypdf", "")).outcome == "corrupt"
    rescued = extract_text(data, ExtractConfig("pypdf", "pypdfium2"))
    assert rescued.outcome == "fallback_ok" and rescued.backend == "pypdfium2"
    assert "pypdf:" in rescued.message  # what the first backend said is kept


@pytest.mark.skipif(not PDFJS.is_dir(), reason="../shared not present")
def test_fallback_on_empty_asks_the_other_backend_before_calling_a_file_a_scan():
    data = (PDFJS / "issue16316.pdf").read_bytes()  # PDFium finds 16 characters in a 5,000-character paper
    no_ocr = ExtractConfig("pypdfium2", "pypdf", ocr="off")
    assert extract_text(data, no_ocr).outcome == "empty_text"  # the default: no second try
    rescued = extract_text(data, ExtractConfig("pypdfium2", "pypdf", fallback_on_empty=True, ocr="off"))
    assert rescued.outcome == "fallback_ok" and rescued.backend == "pypdf" and len(rescued.text) > 1000
    assert "pypdfium2: 16 chars" in rescued.message


def test_a_scan_stays_empty_text_when_both_backends_find_nothing():
    data = render_entry(1, CorpusEntry("train", 7, "invoice", defect="scanned"))
    result = extract_text(data, ExtractConfig("pypdfium2", "pypdf", fallback_on_empty=True, ocr="off"))
    assert result.outcome == "empty_text" and result.backend == "pypdfium2"
