"""OCR figures: how fast Tesseract reads pages, what it recovers, what it adds to a tier, and the pdf.js
files it turns from empty_text into text.

    .venv/bin/python scripts/bench_ocr.py                  # generated scans + the tier projection (~2 min)
    .venv/bin/python scripts/bench_ocr.py --pdfjs          # also the 971 pdf.js files (~10 min on 2 cores)
    .venv/bin/python scripts/bench_ocr.py --rapidocr DIR   # also RapidOCR, installed with pip --target DIR

Word recall: the share of the original document's words (5+ letters) on the scanned pages that OCR
gives back. The tier projection multiplies the generator's scan rate by the measured seconds per page.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestion.corpus import LABELS, CorpusConfig, CorpusEntry, manifest, render_entry  # noqa: E402
from ingestion.extract import ExtractConfig, extract_text  # noqa: E402
from ingestion.ocr import render_page_png, tesseract_version  # noqa: E402

PDFJS = ROOT.parent / "shared" / "corpora" / "pdfjs"


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{5,}", text)}


def generated_scans(count: int) -> list[tuple[bytes, str]]:
    """(scan, the text of the same document's pages as generated)."""
    out = []
    for index in range(count):
        entry = CorpusEntry("train", index, LABELS[index % len(LABELS)])
        original = extract_text(render_entry(11, entry), ExtractConfig(ocr="off", max_pages=3))
        out.append((render_entry(11, CorpusEntry(entry.split, index, entry.label, "scanned")), original.text))
    return out


def tesseract_figures(scans: list[tuple[bytes, str]]) -> dict[str, float]:
    pages = seconds = 0.0
    recalls = []
    for scan, original in scans:
        result = extract_text(scan, ExtractConfig())
        pages += result.pages
        seconds += result.seconds
        truth = words(original)
        recalls.append(len(words(result.text) & truth) / max(len(truth), 1))
    return {"pages": pages, "seconds": seconds, "recall": sum(recalls) / len(recalls)}


def rapidocr_figures(scans: list[tuple[bytes, str]], folder: str) -> dict[str, float]:
    sys.path.insert(0, folder)
    import numpy as np
    from PIL import Image
    from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-not-found]

    engine = RapidOCR()
    pages = seconds = 0.0
    recalls = []
    for scan, original in scans:
        import io

        import pypdfium2 as pdfium

        texts = []
        start = time.perf_counter()
        for index in range(len(pdfium.PdfDocument(scan))):
            image = np.asarray(Image.open(io.BytesIO(render_page_png(scan, index, 6_000_000))).convert("RGB"))
            found, _ = engine(image)
            texts.append(" ".join(line[1] for line in found or []))
            pages += 1
        seconds += time.perf_counter() - start
        truth = words(original)
        recalls.append(len(words(" ".join(texts)) & truth) / max(len(truth), 1))
    return {"pages": pages, "seconds": seconds, "recall": sum(recalls) / len(recalls)}


def _outcome(args: tuple[str, str]) -> tuple[str, str, int, float, tuple[str, ...]]:
    path, mode = args
    result = extract_text(Path(path).read_bytes(), ExtractConfig(ocr=mode, timeout_s=120))
    read = re.search(r"ocr pages ([\d,]+)", result.message)
    ocr_pages = len(read.group(1).split(",")) if read else 0
    return path, result.outcome, ocr_pages, result.seconds, result.flags


def pdfjs_figures(workers: int) -> dict[str, float]:
    paths = sorted(str(p) for p in PDFJS.glob("*.pdf"))
    with ProcessPoolExecutor(workers) as pool:
        before = list(pool.map(_outcome, [(p, "off") for p in paths], chunksize=8))
        empty = [p for p, outcome, *_ in before if outcome == "empty_text"]
        start = time.perf_counter()
        after = list(pool.map(_outcome, [(p, "auto") for p in empty], chunksize=2))
        wall = time.perf_counter() - start
    readable = [row for row in after if row[1] in ("ok", "fallback_ok")]
    return {
        "files": len(paths),
        "empty_text_without_ocr": len(empty),
        "readable_with_ocr": len(readable),
        "ocr_pages": sum(row[2] for row in after),
        "wall_seconds": wall,
        "workers": workers,
        "garbled_among_readable": sum("garbled" in row[4] for row in readable),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=20, help="generated scans to read")
    parser.add_argument("--pdfjs", action="store_true", help="also the pdf.js corpus (../shared)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rapidocr", default="", help="a folder holding rapidocr_onnxruntime and its dependencies")
    args = parser.parse_args()
    if not tesseract_version():
        print("error: Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)", file=sys.stderr)
        return 2
    scans = generated_scans(args.scans)
    rows = {f"Tesseract {tesseract_version()} (Debian)": tesseract_figures(scans)}
    if args.rapidocr:
        rows["RapidOCR (PyPI, onnxruntime)"] = rapidocr_figures(scans, args.rapidocr)
    print(f"\n{len(scans)} generated scans (150 dpi, skew, blur, noise), one core:")
    print("| engine | pages | s/page | pages/s | word recall |\n|---|---|---|---|---|")
    for name, f in rows.items():
        per_page = f["seconds"] / f["pages"]
        print(f"| {name} | {f['pages']:.0f} | {per_page:.2f} | {1 / per_page:.2f} | {f['recall']:.3f} |")

    tesseract = next(iter(rows.values()))
    per_page = tesseract["seconds"] / tesseract["pages"]
    pages_per_scan = tesseract["pages"] / len(scans)
    defaults = CorpusConfig()  # the 75k tier as processing.run builds it: its training files can be scans
    entries = manifest(defaults.seed, 75_000, defaults.heldout_size, defaults.bad_file_rate)
    scanned = sum(e.defect == "scanned" for e in entries)
    added = scanned * pages_per_scan * per_page
    print(
        f"\n75k tier: {scanned} scans of {len(entries)} files; at {pages_per_scan:.1f} pages each and "
        f"{per_page:.2f} s/page, OCR adds {added:.0f} CPU-seconds ({added / 2:.0f} s wall on 2 cores)"
    )
    if args.pdfjs:
        f = pdfjs_figures(args.workers)
        print(
            f"\npdf.js: {f['empty_text_without_ocr']} of {f['files']} files are empty_text without OCR; with OCR "
            f"{f['readable_with_ocr']} become readable"
            f" ({f['readable_with_ocr'] / max(f['empty_text_without_ocr'], 1):.1%})"
            f", {f['garbled_among_readable']} of them flagged garbled; {f['ocr_pages']} pages OCR'd in "
            f"{f['wall_seconds']:.0f} s on {f['workers']} workers"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
