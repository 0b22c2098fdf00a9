"""Scans are read by OCR (Tesseract) and long documents are read up to extract.max_pages, not discarded.

Real parts: the generator's scans are its documents rasterised with skew, blur and noise (no text
layer), so the test can compare what OCR recovers with the text the document was made of.
"""

from __future__ import annotations

import re

import pytest

from ingestion.corpus import CorpusEntry, render_entry
from ingestion.extract import ExtractConfig, extract_text
from ingestion.ocr import render_page_png, tesseract_version
from ingestion.render import absurd_page_count

needs_tesseract = pytest.mark.skipif(not tesseract_version(), reason="Tesseract is not installed (scripts/setup.sh)")


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{5,}", text)}


def _scan_and_original(index: int) -> tuple[bytes, str]:
    entry = CorpusEntry("train", index, "invoice")
    original = extract_text(render_entry(1, entry), ExtractConfig(ocr="off")).text
    return render_entry(1, CorpusEntry("train", index, "invoice", defect="scanned")), original


@needs_tesseract
def test_a_generated_scan_comes_back_as_its_text_through_ocr():
    scan, original = _scan_and_original(8)
    without = extract_text(scan, ExtractConfig(ocr="off"))
    assert without.outcome == "empty_text" and "likely a scan (extract.ocr=off" in without.message
    result = extract_text(scan, ExtractConfig())
    assert result.outcome == "ok" and "ocr" in result.flags
    assert re.search(r"ocr pages 1(,\d+)*", result.message)
    # The scan's pages (at most 3) hold the first part of the original: most of its words come back.
    first_pages = _words(original) & _words(result.text + original[: len(result.text)])
    recovered = _words(result.text) & first_pages
    assert len(recovered) >= 0.6 * len(_words(original[: len(result.text)]) & first_pages)
    assert len(recovered) >= 20


@needs_tesseract
def test_ocr_stops_at_its_page_limits_and_a_failed_page_costs_only_that_page():
    scan, _ = _scan_and_original(9)
    pages = extract_text(scan, ExtractConfig(ocr="off")).pages
    assert pages >= 2
    one = extract_text(scan, ExtractConfig(ocr_max_pages=1))
    assert one.message.startswith("ocr pages 1") and "ocr pages 1," not in one.message
    hurried = extract_text(scan, ExtractConfig(ocr_page_timeout_s=0.001))
    assert hurried.outcome == "empty_text" and "OCR stopped after extract.ocr_page_timeout_s" in hurried.message


@needs_tesseract
def test_a_page_with_nothing_to_read_is_not_called_a_scan_once_ocr_has_looked():
    from io import BytesIO

    from pypdf import PdfWriter

    writer, out = PdfWriter(), BytesIO()
    writer.add_blank_page(width=612, height=792)
    writer.write(out)
    blank = extract_text(out.getvalue(), ExtractConfig())
    assert blank.outcome == "empty_text"
    assert "OCR included" in blank.message and "scan" not in blank.message


def test_a_rendered_page_never_exceeds_the_pixel_cap():
    from io import BytesIO

    from PIL import Image

    data = render_entry(1, CorpusEntry("train", 3, "contract"))
    small = Image.open(BytesIO(render_page_png(data, 0, max_pixels=200_000)))
    assert small.width * small.height <= 200_000
    full = Image.open(BytesIO(render_page_png(data, 0, max_pixels=50_000_000)))
    assert full.width * full.height > 3_000_000  # A4 at 200 dpi when the cap allows it


def test_bad_ocr_settings_name_the_key():
    with pytest.raises(ValueError, match="extract.ocr must be one of auto, on, off"):
        ExtractConfig(ocr="maybe").validate()
    with pytest.raises(ValueError, match="extract.ocr_max_pixels must be > 0"):
        ExtractConfig(ocr_max_pixels=0).validate()


@pytest.mark.parametrize("backend", ["pypdfium2", "pypdf"])
def test_a_long_document_is_read_up_to_max_pages_and_flagged_truncated(backend):
    data = render_entry(3, CorpusEntry("train", 5, "contract"))  # several pages
    whole = extract_text(data, ExtractConfig(backend, ""))
    assert whole.pages >= 3 and "truncated" not in whole.flags
    cut = extract_text(data, ExtractConfig(backend, "", max_pages=1))
    assert cut.outcome == "ok" and "truncated" in cut.flags and cut.pages == whole.pages
    assert f"read the first 1 of {whole.pages} pages" in cut.message
    assert 0 < len(cut.text) < len(whole.text) and whole.text.startswith(cut.text[:200])


def test_a_page_tree_bomb_is_refused_but_a_long_tree_is_read():
    data = absurd_page_count(render_entry(3, CorpusEntry("train", 5, "contract")), copies=200)
    long_tree = extract_text(data, ExtractConfig(max_pages=50))
    assert long_tree.outcome == "ok" and "truncated" in long_tree.flags
    bomb = extract_text(data, ExtractConfig(max_declared_pages=100))
    assert bomb.outcome == "too_large" and "page-tree bomb" in bomb.message
