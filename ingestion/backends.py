"""PDF text backends behind one small interface: bytes in, (pages, text) out, or a typed failure.

pypdf is the user's choice and always available; pypdfium2 (PDFium, the engine in Chrome) is several
times faster and fails on different files, so each is the other's fallback (ingestion/extract.py).
"""

from __future__ import annotations

import io
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol


class Encrypted(Exception):
    """The document needs a password we do not have."""


class TooManyPages(Exception):
    """The page tree declares more pages than any real document has: a page-tree bomb, never read."""

    def __init__(self, pages: int) -> None:
        super().__init__(f"{pages} pages")
        self.pages = pages


class Backend(Protocol):
    name: str

    def version(self) -> str: ...

    def extract(self, data: bytes, max_pages: int, max_declared_pages: int) -> tuple[int, list[str]]:
        """(pages the document declares, the text of each of its first `max_pages` pages)."""
        ...


class PypdfBackend:
    name = "pypdf"

    def __init__(self) -> None:
        # pypdf logs a warning for every recoverable oddity; thousands of PDFs would drown the log.
        logging.getLogger("pypdf").setLevel(logging.ERROR)

    def version(self) -> str:
        return version("pypdf")

    def extract(self, data: bytes, max_pages: int, max_declared_pages: int) -> tuple[int, list[str]]:
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        # decrypt("") opens files that only carry an owner password (copy/print restrictions).
        if reader.is_encrypted and not reader.decrypt(""):
            raise Encrypted("encrypted with a user password")
        pages = len(reader.pages)
        if pages > max_declared_pages:
            raise TooManyPages(pages)
        return pages, [reader.pages[i].extract_text() or "" for i in range(min(pages, max_pages))]


class PdfiumBackend:
    name = "pypdfium2"

    def version(self) -> str:
        return version("pypdfium2")

    def extract(self, data: bytes, max_pages: int, max_declared_pages: int) -> tuple[int, list[str]]:
        import pypdfium2 as pdfium

        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise Encrypted("encrypted with a user password") from exc
            raise
        try:
            pages = len(document)
            if pages > max_declared_pages:
                raise TooManyPages(pages)
            texts = []
            for index in range(min(pages, max_pages)):
                page = document[index]
                textpage = page.get_textpage()
                texts.append(textpage.get_text_bounded())
                textpage.close()
                page.close()
            return pages, texts
        finally:
            document.close()


BACKENDS: dict[str, type] = {"pypdf": PypdfBackend, "pypdfium2": PdfiumBackend}


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown extraction backend {name!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[name]()


def available(name: str) -> bool:
    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True
