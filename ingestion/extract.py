"""Text extraction from PDF bytes with pypdf. Pure: bytes in, an Extraction out, never an exception.

Every input file must end with exactly one recorded outcome, so anything pypdf raises becomes an
outcome with its message instead of stopping the run.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import dataclass

import pypdf
from pypdf.errors import FileNotDecryptedError, PdfReadError

from ingestion.sources import read_bytes

# Bump the suffix when this module's behaviour changes: cached extractions are keyed by it.
EXTRACTOR_VERSION = f"pypdf-{pypdf.__version__}/1"

OUTCOMES = ("ok", "empty_text", "encrypted", "corrupt", "not_pdf", "too_large", "unreadable")

# pypdf logs a warning for every recoverable oddity; a run over thousands of PDFs would drown in them.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Extraction:
    outcome: str
    text: str = ""
    pages: int = 0
    message: str = ""
    seconds: float = 0.0

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class FileRecord:
    """One input file after reading and extraction: what the driver stores."""

    path: str
    content_hash: str
    size_bytes: int
    extraction: Extraction | None  # None: the content was already extracted (cache hit)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract_text(data: bytes, *, max_pages: int = 500, max_bytes: int = 50 << 20, min_chars: int = 30) -> Extraction:
    start = time.perf_counter()
    result = _extract(data, max_pages=max_pages, max_bytes=max_bytes, min_chars=min_chars)
    return Extraction(result.outcome, result.text, result.pages, result.message, time.perf_counter() - start)


def _extract(data: bytes, *, max_pages: int, max_bytes: int, min_chars: int) -> Extraction:
    if len(data) > max_bytes:
        return Extraction("too_large", message=f"{len(data)} bytes > extract.max_bytes={max_bytes}")
    if not data:
        return Extraction("not_pdf", message="empty file (0 bytes)")
    if b"%PDF-" not in data[:1024]:
        return Extraction("not_pdf", message="no %PDF- header in the first 1 KiB")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return Extraction("encrypted", message="encrypted with a user password")
        pages = len(reader.pages)
        if pages > max_pages:
            return Extraction("too_large", pages=pages, message=f"{pages} pages > extract.max_pages={max_pages}")
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except FileNotDecryptedError as exc:
        return Extraction("encrypted", message=_one_line(exc))
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        return Extraction("corrupt", message=f"{type(exc).__name__}: {_one_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - a broken PDF may raise anything; it must become an outcome
        return Extraction("corrupt", message=f"{type(exc).__name__}: {_one_line(exc)}")
    if pages == 0:
        return Extraction("corrupt", message="no pages could be read")
    if len(text.strip()) < min_chars:
        return Extraction(
            "empty_text", text=text, pages=pages, message=f"{len(text.strip())} chars < {min_chars}: likely a scan"
        )
    return Extraction("ok", text=text, pages=pages)


def read_and_extract(path: str, skip_hashes: frozenset[str] = frozenset(), **limits: int) -> FileRecord:
    """Read one file and extract it unless its content is in `skip_hashes` (already extracted).

    A file that cannot be read (vanished, permissions) still gets a record.
    """
    try:
        data = read_bytes(path)
    except OSError as exc:  # vanished, permissions, network: pyarrow's errors are OSErrors too
        return FileRecord(path, "", 0, Extraction("unreadable", message=_one_line(exc)))
    digest = content_hash(data)
    if digest in skip_hashes:
        return FileRecord(path, digest, len(data), None)
    return FileRecord(path, digest, len(data), extract_text(data, **limits))


def extract_files(paths: list[str], skip_hashes: frozenset[str] = frozenset(), **limits: int) -> list[FileRecord]:
    return [read_and_extract(p, skip_hashes, **limits) for p in paths]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]
