"""Text extraction from PDF bytes. Pure: bytes in, an Extraction out, never an exception.

Every input file must end with exactly one recorded outcome, so whatever a backend raises becomes an
outcome with its message. One backend failing is not the end: the other one gets a go (fallback_ok).
Guards per document: a byte limit, a page limit, and a time limit (see `time_limit`; the engine adds
a hard one that kills the worker for hangs inside C code).
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ingestion import ocr
from ingestion.backends import BACKENDS, Encrypted, TooManyPages, get_backend
from ingestion.inflation import inflated_bytes
from ingestion.sources import read_bytes

OUTCOMES = (
    "ok",
    "fallback_ok",
    "empty_text",
    "encrypted",
    "corrupt",
    "not_pdf",
    "too_large",
    "timeout",
    "unreadable",
    "worker_error",
)
USABLE = ("ok", "fallback_ok")  # outcomes whose text goes on to embedding
# Not cached: a rerun (perhaps with a longer timeout) tries again. worker_error is a failure of ours (a
# worker or node lost, a bug, a bad setting), never a property of the document, so it must not stick.
TRANSIENT = ("timeout", "unreadable", "worker_error")
# Bump when this module's behaviour changes: cached extractions are keyed by extractor_version().
LOGIC_VERSION = 5  # 4: inflation check before parsing; 5: long documents truncated, OCR


@dataclass
class ExtractConfig:
    """extract.* in the config: the backends and the guards per document. Each default lives here."""

    backend: str = "pypdfium2"  # measured ~10x faster than pypdf on real PDFs (README)
    fallback: str = "pypdf"  # tried when the backend fails on a document; "" = no fallback
    timeout_s: float = 30.0  # per document; the engine's watchdog adds a hard stop for hangs in C code
    files_per_task: int = 128  # the first, largest tasks; they shrink to min_files_per_task as input runs out
    min_files_per_task: int = 8  # the last, smallest tasks: every worker finishes at about the same time
    max_pages: int = 500  # pages read; a longer document is kept, flagged truncated (its first pages carry its type)
    # A page tree declaring more pages than this is a page-tree bomb, refused as too_large unread.
    max_declared_pages: int = 100_000
    max_bytes: int = 50 * 1024 * 1024  # a larger file is refused unread, as too_large
    # What a document's (non-image) streams may inflate to: PDFium needed ~20 bytes of memory per byte of
    # an inflated content-stream bomb, so 128 MiB bounds a worker at a few GiB (README, reliability).
    max_inflated_bytes: int = 128 * 1024 * 1024
    min_chars: int = 30  # fewer extracted characters than this = empty_text (likely a scan)
    # Ask the fallback backend too when the first finds under min_chars characters. Off by default:
    # on the 971 pdf.js files it read 17 more files (one a real paper, most a few garbled characters)
    # and made extraction 5x slower, since pypdf then re-reads every scan.
    fallback_on_empty: bool = False
    # Memory cap of an extraction worker (0 = none): the address space of the service's isolated workers,
    # the private memory of the engine's Ray workers. A hostile PDF that gets past the inflation check
    # then fails its allocations and ends as its own outcome or worker_error, never as the host's OOM.
    worker_memory_mb: int = 4096
    # OCR of pages without a text layer (Tesseract): auto = when installed, on = required, off.
    ocr: str = "auto"
    ocr_max_pages: int = 20  # textless pages read by OCR per document (each ~1 s on one core)
    ocr_max_pixels: int = 6_000_000  # a rendered page is scaled down to this (A4 at 200 dpi: 3.9 M)
    ocr_page_timeout_s: float = 20.0  # Tesseract is stopped after this on one page; that page stays unread

    def validate(self) -> None:
        """Raise ValueError naming the key, before any work starts."""
        positive = ("timeout_s", "files_per_task", "min_files_per_task", "max_pages", "max_bytes", "max_inflated_bytes")
        ocr_limits = ("max_declared_pages", "ocr_max_pages", "ocr_max_pixels", "ocr_page_timeout_s")
        for key in (*positive, *ocr_limits, "min_chars"):
            if not getattr(self, key) > 0:
                raise ValueError(f"extract.{key} must be > 0; got {getattr(self, key)}")
        if self.worker_memory_mb < 0:
            raise ValueError(f"extract.worker_memory_mb must be >= 0 (0 = no cap); got {self.worker_memory_mb}")
        if self.timeout_s > 24 * 3600:
            raise ValueError(f"extract.timeout_s must be at most 86400 (a day); got {self.timeout_s:g}")
        if self.backend not in BACKENDS:
            raise ValueError(f"extract.backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.fallback not in (*BACKENDS, ""):
            raise ValueError(f"extract.fallback must be one of {', '.join(BACKENDS)} or empty; got {self.fallback!r}")
        if self.ocr not in ocr.OCR_MODES:
            raise ValueError(f"extract.ocr must be one of {', '.join(ocr.OCR_MODES)}; got {self.ocr!r}")
        if self.ocr == "on" and not ocr.tesseract_version():
            raise ValueError(f"extract.ocr=on: {ocr.missing_message()}; or set extract.ocr=auto to go on without")
        if self.min_files_per_task > self.files_per_task:
            raise ValueError(
                f"extract.min_files_per_task ({self.min_files_per_task}) must not exceed extract.files_per_task "
                f"({self.files_per_task}): lower it or raise files_per_task"
            )

    @property
    def backends(self) -> list[str]:
        """The backends to try, in order."""
        return [self.backend] + ([self.fallback] if self.fallback and self.fallback != self.backend else [])

    @property
    def ocr_active(self) -> bool:
        return self.ocr != "off" and bool(ocr.tesseract_version())

    def ocr_warning(self) -> str | None:
        """One line for the user when scans will not be read: extract.ocr=auto without Tesseract."""
        if self.ocr == "auto" and not ocr.tesseract_version():
            return f"extract.ocr=auto: {ocr.missing_message()}; pages without a text layer will not be read"
        return None

    def cache_key(self) -> str:
        """The settings that decide an extraction's outcome (the timeout does not: timeouts are not cached)."""
        key = f"pages{self.max_pages},bytes{self.max_bytes},inflated{self.max_inflated_bytes},chars{self.min_chars}"
        key += f",declared{self.max_declared_pages}"
        if self.ocr_active:  # installing Tesseract later reads the scans again
            key += f",ocr-tesseract-{ocr.tesseract_version()}-{self.ocr_max_pages}-{self.ocr_max_pixels}"
        return key + (",empty-fallback" if self.fallback_on_empty else "")


@dataclass(frozen=True)
class Extraction:
    outcome: str
    text: str = ""
    pages: int = 0
    message: str = ""
    seconds: float = 0.0
    backend: str = ""
    flags: tuple[str, ...] = field(default=())

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


class Timeout(Exception):
    pass


def extractor_version(config: ExtractConfig) -> str:
    """Key of cached extractions: backends and their versions, this module's logic, and the settings
    that change outcomes, so that changing any of them extracts again."""
    names = "+".join(f"{n}-{get_backend(n).version()}" for n in config.backends)
    return f"{names}/{LOGIC_VERSION}/{config.cache_key()}"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract_text(data: bytes, config: ExtractConfig | None = None) -> Extraction:
    config = config or ExtractConfig()
    start = time.perf_counter()
    try:
        with time_limit(config.timeout_s):
            result = _extract(data, config)
    except Timeout:
        result = Extraction("timeout", message=f"stopped after extract.timeout_s={config.timeout_s:g}s")
    return Extraction(
        result.outcome,
        result.text,
        result.pages,
        result.message,
        time.perf_counter() - start,
        result.backend,
        (*quality_flags(result.text), *result.flags) if result.outcome in USABLE else (),
    )


def _extract(data: bytes, config: ExtractConfig) -> Extraction:
    if len(data) > config.max_bytes:
        return Extraction("too_large", message=f"{len(data)} bytes > extract.max_bytes={config.max_bytes}")
    if not data:
        return Extraction("not_pdf", message="empty file (0 bytes)")
    if b"%PDF-" not in data[:1024]:
        return Extraction("not_pdf", message="no %PDF- header in the first 1 KiB")
    if inflated_bytes(data, config.max_inflated_bytes) > config.max_inflated_bytes:
        limit = config.max_inflated_bytes
        return Extraction("too_large", message=f"streams inflate past extract.max_inflated_bytes={limit} (not parsed)")
    errors = []
    empty: Extraction | None = None  # the first backend's result when it read the file but found no text
    ocr_tried = False
    for attempt, name in enumerate(config.backends):
        try:
            pages, page_texts = get_backend(name).extract(data, config.max_pages, config.max_declared_pages)
        except (Encrypted, TooManyPages) as exc:
            if empty is not None:  # the first backend could open it: its (empty) reading stands
                break
            if isinstance(exc, Encrypted):  # the other backend has no password either
                return Extraction("encrypted", message=str(exc), backend=name)
            return Extraction(
                "too_large",
                pages=exc.pages,
                backend=name,
                message=f"{exc.pages} pages > extract.max_declared_pages={config.max_declared_pages}: a page-tree bomb",
            )
        except Timeout:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken PDF may raise anything; it must become an outcome
            errors.append(f"{name}: {type(exc).__name__}: {_one_line(exc)}")
            continue
        if pages == 0:
            errors.append(f"{name}: no pages could be read")
            continue
        flags, notes = [], []
        if pages > config.max_pages:
            flags.append("truncated")
            notes.append(f"read the first {config.max_pages} of {pages} pages (extract.max_pages)")
        if config.ocr_active and not ocr_tried:  # once per document: the fallback would OCR the same pages
            ocr_tried = True
            page_texts, read, failed = read_textless_pages(data, page_texts, config)
            if read:
                flags.append("ocr")
                notes.append("ocr pages " + ",".join(str(i + 1) for i in read))
            notes += failed
        text = "\n".join(page_texts)
        stripped = len(text.strip())
        if stripped < config.min_chars:
            # Each backend misses text the other finds (fonts without a Unicode map, odd encodings):
            # with fallback_on_empty, ask the other before calling it a scan.
            errors.append(f"{name}: {stripped} chars")
            why = why_empty(config)
            empty = empty or Extraction(
                "empty_text",
                text=text,
                pages=pages,
                backend=name,
                message="; ".join([f"{stripped} chars < extract.min_chars={config.min_chars}: {why}", *notes]),
            )
            if config.fallback_on_empty:
                continue
            break
        outcome = "ok" if attempt == 0 else "fallback_ok"
        message = "; ".join([*errors, *notes])[:1000]
        return Extraction(outcome, text=text, pages=pages, backend=name, message=message, flags=tuple(flags))
    return empty or Extraction("corrupt", message="; ".join(errors)[:1000])


def why_empty(config: ExtractConfig) -> str:
    """What an empty_text outcome most likely means, and what the user can do about it."""
    if config.ocr_active:  # OCR looked at its pages too: not an unread scan
        return "no readable text, OCR included (drawings, pictures without words, or glyphs without a Unicode map)"
    if config.ocr == "off":
        return "likely a scan (extract.ocr=off: set it to auto to read scans)"
    return f"likely a scan ({ocr.missing_message()})"


# A page with fewer characters than this has no text layer worth the name: OCR reads it.
TEXTLESS_PAGE_CHARS = 10


def read_textless_pages(
    data: bytes, page_texts: list[str], config: ExtractConfig
) -> tuple[list[str], list[int], list[str]]:
    """OCR the first `ocr_max_pages` pages without a text layer. Returns the page texts with those
    pages filled in, the indices read, and one note per page OCR could not read (time, a bad image):
    a page's failure costs that page, never the document."""
    texts, read, failed = list(page_texts), [], []
    # A document short of text as a whole (a scan with a stray text layer: a stamp, a page number) has
    # every page read; otherwise only its pages without text (a scanned appendix, a signed last page).
    short = sum(len(t.strip()) for t in texts) < config.min_chars
    textless = [i for i, t in enumerate(texts) if short or len(t.strip()) < TEXTLESS_PAGE_CHARS]
    textless = textless[: config.ocr_max_pages]
    for index in textless:
        try:
            found = ocr.ocr_page(data, index, config.ocr_max_pixels, config.ocr_page_timeout_s)
        except Timeout:
            raise
        except subprocess.TimeoutExpired:
            limit = config.ocr_page_timeout_s
            failed.append(f"page {index + 1}: OCR stopped after extract.ocr_page_timeout_s={limit:g}")
            continue
        except Exception as exc:  # noqa: BLE001 - a broken page image may fail anywhere; the page is lost, not the file
            failed.append(f"page {index + 1}: OCR failed: {type(exc).__name__}: {_one_line(exc)[:200]}")
            continue
        if len(found.strip()) > len(texts[index].strip()):
            texts[index] = found
            read.append(index)
    return texts, read, failed


def quality_flags(text: str) -> tuple[str, ...]:
    """Warnings about usable text: too little of it, or mostly not words (bad encoding, OCR soup)."""
    flags = []
    stripped = text.strip()
    if len(stripped) < 200:
        flags.append("near_empty")
    if stripped:
        letters = sum(ch.isalpha() or ch.isspace() for ch in stripped)
        if letters / len(stripped) < 0.7:
            flags.append("garbled")
    return tuple(flags)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Timeout in this thread after `seconds` of Python execution (main thread only).

    A SIGALRM stops pure-Python loops (pypdf); a hang inside C code (PDFium) only ends when the call
    returns, which is why the engine also enforces a hard deadline by killing the worker.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise Timeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_and_extract(path: str, config: ExtractConfig, skip_hashes: frozenset[str] = frozenset()) -> FileRecord:
    """Read one file and extract it unless its content is in `skip_hashes` (already extracted).

    The size is checked on the file system before a byte is read, so an oversized (or sparse) file costs
    nothing; what is not a regular file (a FIFO, a device, a link to a directory or to nowhere) is never
    opened. A file that cannot be read (vanished, permissions, network) still gets a record.
    """
    try:
        size = file_size(path)
        if size > config.max_bytes:
            message = f"{size} bytes > extract.max_bytes={config.max_bytes} (not read)"
            return FileRecord(path, f"size:{size}:{path}", size, Extraction("too_large", message=message))
        data = read_bytes(path)
    except OSError as exc:  # pyarrow's filesystem errors are OSErrors too
        return FileRecord(path, "", 0, Extraction("unreadable", message=_one_line(exc)))
    digest = content_hash(data)
    if digest in skip_hashes:
        return FileRecord(path, digest, len(data), None)
    return FileRecord(path, digest, len(data), extract_text(data, config))


def file_size(path: str) -> int:
    """Bytes of a regular file, from the file system; OSError for anything else."""
    if "://" in path:
        from ingestion.sources import filesystem_for

        filesystem, inner = filesystem_for(path)
        return int(filesystem.get_file_info(inner).size or 0)
    info = os.stat(path)  # follows a link to a file; a dangling or looping link raises
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory (links to folders are not followed)" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise OSError(f"{kind}: {os.path.basename(path)!r}")
    return info.st_size


def extract_files(
    paths: list[str], config: ExtractConfig | None = None, skip_hashes: frozenset[str] = frozenset()
) -> list[FileRecord]:
    config = config or ExtractConfig()
    return [read_and_extract(p, config, skip_hashes) for p in paths]


def lost_record(path: str, reason: str) -> FileRecord:
    """The record for a file whose worker was killed (hard timeout) or failed while extracting it."""
    outcome = "timeout" if reason.startswith("timeout") else "worker_error"
    try:
        size = file_size(path)
        digest = content_hash(read_bytes(path)) if size <= 1 << 30 else f"size:{size}:{path}"
    except OSError as exc:
        return FileRecord(path, "", 0, Extraction("unreadable", message=_one_line(exc)))
    return FileRecord(path, digest, size, Extraction(outcome, message=reason))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]
