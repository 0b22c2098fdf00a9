"""OCR for pages without a text layer: render the page with pypdfium2, read it with Tesseract.

Tesseract comes from Debian (`apt-get install tesseract-ocr tesseract-ocr-eng`, done by scripts/setup.sh
when it runs as root) and ships its English model, so nothing is downloaded at run time. It runs as a
subprocess per page: a hang or a crash in it costs that page, never the worker, and `timeout_s` bounds
it. The rendered image is capped in pixels, so a page declaring a huge MediaBox cannot take the memory.
Chosen over a PyPI OCR wheel by measurement (README, "Scans and OCR").
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import lru_cache

DPI = 200  # Tesseract reads body text best at 200-300 dpi; 200 is ~2x faster than 300 for the same words
OCR_MODES = ("auto", "on", "off")


class OcrUnavailable(RuntimeError):
    pass


@lru_cache(maxsize=1)
def tesseract_version() -> str:
    """The installed Tesseract's version with its English data, or "" when either is missing."""
    binary = shutil.which("tesseract")
    if binary is None:
        return ""
    try:
        out = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=20)
        if "eng" not in out.stdout.split():
            return ""
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    first = (version.stdout or version.stderr).split("\n", 1)[0].split()
    return first[-1] if first else "unknown"


def missing_message() -> str:
    return "Tesseract with English data is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)"


def render_page_png(data: bytes, index: int, max_pixels: int) -> bytes:
    """Page `index` of the PDF as a grayscale PNG at DPI, scaled down to at most `max_pixels` pixels."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        page = document[index]
        width, height = page.get_size()  # points: 1/72 inch
        scale = DPI / 72
        if width * height * scale * scale > max_pixels:
            scale = 0.99 * (max_pixels / max(width * height, 1.0)) ** 0.5  # 0.99: room for rounding up
        image = page.render(scale=scale, grayscale=True).to_pil()
        page.close()
    finally:
        document.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_image(png: bytes, timeout_s: float) -> str:
    """Tesseract's text for one image; OcrUnavailable when it is not installed, TimeoutExpired past
    `timeout_s`, CalledProcessError when it fails on the image."""
    binary = shutil.which("tesseract")
    if binary is None or not tesseract_version():
        raise OcrUnavailable(missing_message())
    # One thread per page: the engine already runs one extraction worker per core.
    env = {"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [binary, "stdin", "stdout", "-l", "eng", "--psm", "3"],
        input=png,
        capture_output=True,
        timeout=timeout_s,
        check=True,
        env=env,
    )
    return out.stdout.decode("utf-8", errors="replace")


def ocr_page(data: bytes, index: int, max_pixels: int, timeout_s: float) -> str:
    return read_image(render_page_png(data, index, max_pixels), timeout_s)
