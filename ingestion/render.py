"""DocumentPlan -> PDF bytes with fpdf2, plus the deliberately broken files. Pure: same input, same bytes."""

from __future__ import annotations

import random
import re
import textwrap
from datetime import UTC, datetime

from fpdf import FPDF

from ingestion.compose import DocumentPlan

FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)  # not "now", so the bytes are deterministic


class _Page(FPDF):
    def __init__(self, plan: DocumentPlan) -> None:
        super().__init__(format="A4")
        self.plan = plan
        self.set_creation_date(FIXED_DATE)
        self.set_auto_page_break(auto=False)

    def footer(self) -> None:
        self.set_font(self.plan.font, "I", 7)
        self.text(80, 290, f"{self.plan.footer}    page {self.page_no()}")


class _Writer:
    """Places pre-wrapped lines with `FPDF.text`, a column at a time, starting pages as they fill.

    fpdf2's multi_cell measures every character and dominated generation time (about 80%); wrapping
    by an average character width is plenty for synthetic documents and several times faster.
    """

    TOP, BOTTOM, LEFT, WIDTH = 18.0, 280.0, 15.0, 180.0

    def __init__(self, pdf: _Page, columns: int) -> None:
        self.pdf, self.columns, self.column, self.y = pdf, columns, 0, self.TOP
        self.col_width = (self.WIDTH - 6 * (columns - 1)) / columns

    def new_page(self) -> None:
        self.pdf.add_page()
        self.column, self.y = 0, self.TOP

    def _advance(self, height: float) -> None:
        if self.y + height > self.BOTTOM:
            self.column += 1
            self.y = self.TOP
            if self.column >= self.columns:
                self.new_page()

    def line(self, text: str, size: float = 10, style: str = "", align_right: bool = False) -> None:
        height = size * 0.5
        self._advance(height)
        self.pdf.set_font(self.pdf.plan.font, style, size)
        x = self.LEFT + self.column * (self.col_width + 6)
        if align_right:
            x += self.col_width - _approx_width(text, size, self.pdf.plan.font)
        self.pdf.text(x, self.y + height * 0.8, text)
        self.y += height

    def paragraph(self, text: str, size: float = 10) -> None:
        chars = max(20, int(self.col_width / (size * _CHAR_EM[self.pdf.plan.font] * 0.3528)))
        for line in textwrap.wrap(text, chars):
            self.line(line, size)
        self.y += 2

    def table(self, rows: tuple[tuple[str, ...], ...], size: float = 8) -> None:
        widths = (0.52, 0.1, 0.19, 0.19)
        for i, row in enumerate(rows):
            self._advance(size * 0.55)
            self.pdf.set_font(self.pdf.plan.font, "B" if i == 0 else "", size)
            x = self.LEFT + self.column * (self.col_width + 6)
            for value, share in zip(row, widths, strict=False):
                self.pdf.text(x, self.y + size * 0.45, value[: int(share * self.col_width / (size * 0.2))])
                x += share * self.col_width
            self.y += size * 0.55
        self.y += 2


# Average glyph width in em for the core fonts (Courier is monospaced at 0.6 em).
_CHAR_EM = {"Helvetica": 0.5, "Times": 0.45, "Courier": 0.6}


def _approx_width(text: str, size: float, font: str) -> float:
    return len(text) * size * _CHAR_EM[font] * 0.3528


def render_plan(plan: DocumentPlan, password: str | None = None) -> bytes:
    pdf = _Page(plan)
    if password is not None:
        pdf.set_encryption(owner_password="owner-secret", user_password=password)
    for number, page in enumerate(plan.pages):
        writer = _Writer(pdf, columns=1)
        writer.new_page()
        if number == 0:
            _first_page_head(writer, plan)
        writer.columns = 2 if plan.layout == "two_column" else 1
        writer.col_width = (writer.WIDTH - 6 * (writer.columns - 1)) / writer.columns
        for block in page:
            if block.kind == "heading":
                writer.line(block.text, 12, "B")
            elif block.kind == "table":
                writer.table(block.rows)
            else:
                writer.paragraph(block.text, 9.5 if plan.layout == "two_column" else 10)
    return bytes(pdf.output())


def _first_page_head(writer: _Writer, plan: DocumentPlan) -> None:
    right = plan.layout == "letter"
    for i, line in enumerate(plan.letterhead):
        writer.line(line, 11 if i == 0 else 8, "B" if i == 0 else "", align_right=right)
    writer.y += 3
    if plan.layout == "letter":
        for line in plan.recipient:
            writer.line(line, 9)
        writer.y += 3
    writer.line(plan.title, 15, "B")
    writer.y += 1
    for name, value in plan.fields:
        writer.line(f"{name}: {value}", 9)
    writer.y += 3


def render_scan(pdf_bytes: bytes, rng: random.Random, max_pages: int = 3) -> bytes:
    """The document as a scanner without OCR produces it: each page rasterised at 150 dpi, slightly
    skewed, blurred and speckled, stored as an image with no text layer. OCR has real text to recover."""
    import io

    import numpy as np
    import pypdfium2 as pdfium
    from PIL import Image, ImageFilter

    noise = np.random.default_rng(rng.getrandbits(32))
    document = pdfium.PdfDocument(pdf_bytes)
    images = []
    for index in range(min(len(document), max_pages)):
        page = document[index]
        image = page.render(scale=150 / 72, grayscale=True).to_pil().convert("L")
        page.close()
        image = image.rotate(rng.uniform(-1.5, 1.5), resample=Image.BILINEAR, expand=False, fillcolor=255)
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
        pixels = np.asarray(image, dtype=np.int16) + noise.normal(0, 8, (image.height, image.width))
        specks = noise.random((image.height, image.width)) < 0.002  # dust
        pixels[specks] = 0
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
    document.close()
    buffer = io.BytesIO()
    # Fixed dates keep the bytes deterministic; JPEG, as scanners write.
    images[0].save(
        buffer,
        format="PDF",
        save_all=True,
        append_images=images[1:],
        resolution=150.0,
        quality=75,
        creationDate=FIXED_DATE.timetuple(),
        modDate=FIXED_DATE.timetuple(),
    )
    return buffer.getvalue()


def break_xref(pdf_bytes: bytes) -> bytes:
    """Point every cross-reference entry at the wrong offset, as a bad incremental save does."""
    start = pdf_bytes.rfind(b"\nxref")
    head, tail = pdf_bytes[:start], pdf_bytes[start:]
    return head + re.sub(rb"(\d{10}) 00000 n", lambda m: b"%010d 00000 n" % (int(m.group(1)) + 7), tail)


def absurd_page_count(pdf_bytes: bytes, copies: int = 2000, claimed: int = 10**9) -> bytes:
    """A page tree that lists the same pages thousands of times and claims a billion, as hostile or
    corrupted files do."""
    kids = re.search(rb"/Kids \[([^\]]*)\]", pdf_bytes)
    refs = kids.group(1).split()
    n_pages = len(refs) // 3
    many = b" ".join([kids.group(1).replace(b"\n", b" ")] * copies)
    out = pdf_bytes[: kids.start()] + b"/Kids [" + many + b"]" + pdf_bytes[kids.end() :]
    return re.sub(rb"/Count \d+", b"/Count %d" % max(claimed, n_pages * copies), out, count=1)
