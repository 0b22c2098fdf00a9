from pathlib import Path

import pytest

from ingestion.corpus import CorpusEntry, render_entry
from ingestion.extract import OUTCOMES, content_hash, extract_files, extract_text
from tests.conftest import SHARED


def _pdf(tmp_path: Path, name: str = "a.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(render_entry(1, CorpusEntry("train", 1, "invoice")))
    return path


def test_limits_give_too_large():
    data = render_entry(1, CorpusEntry("train", 1, "contract"))
    assert extract_text(data, max_bytes=100).outcome == "too_large"
    assert extract_text(data, max_pages=0).outcome == "too_large"


def test_short_text_is_empty_text_not_ok():
    data = render_entry(1, CorpusEntry("train", 1, "contract"))
    assert extract_text(data, min_chars=10**7).outcome == "empty_text"


def test_extract_files_records_every_path_and_skips_cached_content(tmp_path):
    good = _pdf(tmp_path)
    missing = tmp_path / "vanished.pdf"
    records = extract_files([str(good), str(missing)])
    assert [r.extraction.outcome for r in records] == ["ok", "unreadable"]
    cached = extract_files([str(good)], skip_hashes=frozenset({content_hash(good.read_bytes())}))
    assert cached[0].extraction is None and cached[0].content_hash == records[0].content_hash


@pytest.mark.skipif(not (SHARED / "corpora" / "pypdf-sample-files").is_dir(), reason="../shared not present")
def test_real_world_sample_files_each_get_one_known_outcome():
    paths = sorted(str(p) for p in (SHARED / "corpora" / "pypdf-sample-files").rglob("*") if p.is_file())
    records = extract_files(paths, max_pages=300)
    assert len(records) == len(paths)
    assert all(r.extraction.outcome in OUTCOMES for r in records)
    assert sum(r.extraction.outcome == "ok" for r in records) >= len(paths) // 2
