"""Decompression bombs end as too_large before any backend parses them, and memory stays flat."""

from __future__ import annotations

import subprocess
import sys
import zlib

from ingestion.extract import ExtractConfig, extract_text
from ingestion.inflation import inflated_bytes


def bomb(inflated_mib: int) -> bytes:
    """A one-page PDF whose content stream inflates to `inflated_mib` MiB of path operators (the shape
    that drove PDFium to 15.6 GB), a few hundred KB on disk."""
    content = zlib.compress(b"0 0 m 1 1 l S\n" * (inflated_mib * (1 << 20) // 14), 9)
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R>>",
        b"<</Length %d/Filter/FlateDecode>>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    body = b"%PDF-1.4\n" + b"".join(b"%d 0 obj\n%s\nendobj\n" % (i + 1, o) for i, o in enumerate(objects))
    return body + b"trailer\n<</Root 1 0 R/Size 5>>\n%%EOF\n"


def test_the_inflation_count_stops_at_the_limit():
    data = bomb(40)
    assert len(data) < 1 << 20
    assert inflated_bytes(data, 1 << 30) >= 40 * (1 << 20) - 14
    assert (1 << 20) < inflated_bytes(data, 1 << 20) <= (1 << 20) + 1  # stops just past a small limit


def test_a_bomb_is_too_large_and_the_worker_stays_small(tmp_path):
    path = tmp_path / "bomb.pdf"
    path.write_bytes(bomb(400))  # 400 MiB inflated: ~8 GB in PDFium by the measured ratio
    code = (
        "import re\n"
        "from ingestion.extract import ExtractConfig, extract_text\n"
        f"r = extract_text(open({str(path)!r}, 'rb').read(), ExtractConfig(max_inflated_bytes=64 << 20))\n"
        # VmHWM, the peak RSS of this program (ru_maxrss would carry over the forking parent's peak)
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(r.outcome, int(peak) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    outcome, peak_mib = out.stdout.split()
    assert outcome == "too_large"
    assert int(peak_mib) < 300  # the process never held the inflated content


def test_an_ordinary_document_passes_the_check():
    from ingestion.corpus import CorpusEntry, render_entry

    data = render_entry(7, CorpusEntry("train", 1, "invoice"))
    assert extract_text(data, ExtractConfig()).outcome == "ok"
    assert extract_text(data, ExtractConfig(max_inflated_bytes=10)).outcome == "too_large"
