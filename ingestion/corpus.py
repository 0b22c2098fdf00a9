"""The generated, labelled PDF corpus: deterministic, nested across tiers, with a fixed held-out set.

Every document is a pure function of (seed, split, index): its label, its defect (if any) and its
bytes. So tier 50 is the first 50 training documents of tier 1k, and the held-out set is the same
whatever the tier. Files are written once under <workspace>/corpus/seed-<seed>/ and reused.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

from ingestion.templates import BOILERPLATE, CLASSES, COMPANIES, FILLER_WORDS, LABELS, MONTHS, NAMES

FIXED_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)

# A deliberately broken file, and the extraction outcome it must end with.
DEFECTS: dict[str, str] = {
    "zero_bytes": "not_pdf",
    "not_pdf": "not_pdf",
    "truncated": "corrupt",
    "encrypted": "encrypted",
    "scanned": "empty_text",
}


@dataclass(frozen=True)
class CorpusEntry:
    split: str  # "train" or "heldout"
    index: int
    label: str
    defect: str | None = None

    @property
    def relpath(self) -> str:
        return f"{self.split}/{self.index:06d}.pdf"

    @property
    def expected_outcome(self) -> str:
        return DEFECTS[self.defect] if self.defect else "ok"


def corpus_dir(workspace: Path, seed: int) -> Path:
    return Path(workspace) / "corpus" / f"seed-{seed}"


def make_entry(seed: int, split: str, index: int, bad_file_rate: float) -> CorpusEntry:
    rng = _rng(seed, split, index)
    label = LABELS[rng.randrange(len(LABELS))]
    # The held-out set stays clean: it measures the classifier, not the extractor.
    is_bad = split == "train" and rng.random() < bad_file_rate
    defect = sorted(DEFECTS)[rng.randrange(len(DEFECTS))] if is_bad else None
    return CorpusEntry(split, index, label, defect)


def manifest(seed: int, train_size: int, heldout_size: int, bad_file_rate: float) -> list[CorpusEntry]:
    """All entries of a tier, cheaply (nothing is rendered)."""
    train = [make_entry(seed, "train", i, bad_file_rate) for i in range(train_size)]
    heldout = [make_entry(seed, "heldout", i, bad_file_rate) for i in range(heldout_size)]
    return train + heldout


def render_entry(seed: int, entry: CorpusEntry) -> bytes:
    """The bytes of one document. Pure: the same entry always gives the same bytes."""
    rng = _rng(seed, entry.split, entry.index, "body")
    if entry.defect == "zero_bytes":
        return b""
    if entry.defect == "not_pdf":
        return ("Quarterly notes, exported as plain text by mistake.\n" * 20).encode()
    if entry.defect == "scanned":
        return _render_scan(rng)
    pdf_bytes = _render_document(rng, entry.label, encrypt=entry.defect == "encrypted")
    if entry.defect == "truncated":
        return pdf_bytes[: len(pdf_bytes) // 3]
    return pdf_bytes


def write_entries(root: Path, seed: int, entries: Iterable[CorpusEntry]) -> int:
    """Render and write the entries whose file is missing; returns how many were written.

    Writes go to a temporary name and are renamed into place, so a killed run never leaves a
    half-written PDF that a rerun would mistake for a finished one.
    """
    written = 0
    for entry in entries:
        path = Path(root) / entry.relpath
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(render_entry(seed, entry))
        tmp.replace(path)
        written += 1
    return written


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across processes and runs.
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        n=rng.randint(2, 90),
        amount=f"{rng.randint(10, 99999):,}.{rng.randint(0, 99):02d} EUR",
        pct=f"{rng.uniform(0.5, 4):.1f}%",
        month=rng.choice(MONTHS),
        date=f"{rng.randint(1, 28):02d} {rng.choice(MONTHS)} {rng.randint(2019, 2026)}",
        company=rng.choice(COMPANIES),
        code=f"{rng.choice('ABCDEFGH')}{rng.randint(100000, 999999)}",
        num=f"{rng.uniform(1, 200):.1f}",
    )


def _paragraph(rng: random.Random, label: str) -> str:
    own = CLASSES[label]["sentences"]
    other = CLASSES[LABELS[rng.randrange(len(LABELS))]]["sentences"]
    parts = []
    for _ in range(rng.randint(3, 7)):
        roll = rng.random()
        if roll < 0.55:
            parts.append(_fill(rng.choice(own), rng))
        elif roll < 0.70:
            parts.append(_fill(rng.choice(other), rng))
        elif roll < 0.85:
            parts.append(rng.choice(BOILERPLATE))
        else:
            words = rng.sample(FILLER_WORDS, rng.randint(4, 9))
            parts.append(" ".join(words).capitalize() + ".")
    return " ".join(parts)


def _render_document(rng: random.Random, label: str, encrypt: bool) -> bytes:
    spec = CLASSES[label]
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)  # not "now", so the bytes are deterministic
    pdf.set_auto_page_break(auto=True, margin=15)
    if encrypt:
        pdf.set_encryption(owner_password="owner", user_password="secret")
    font = rng.choice(["Helvetica", "Times", "Courier"])
    pdf.add_page()
    pdf.set_font(font, "B", 11)
    pdf.cell(0, 6, f"{rng.choice(COMPANIES)} - {rng.randint(1, 400)} Market Street", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, "B", rng.choice([14, 16, 18]))
    pdf.cell(0, 12, rng.choice(spec["titles"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, "", 10)
    for name in rng.sample(spec["fields"], rng.randint(2, len(spec["fields"]))):
        value = _fill(rng.choice(["{code}", "{date}", "{amount}", "{company}", "{n}"]), rng)
        if name in ("Patient", "Applicant", "Claimant", "Prescriber"):
            value = rng.choice(NAMES)
        pdf.cell(50, 6, f"{name}:")
        pdf.cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for _ in range(rng.randint(2, 5 * rng.randint(1, 3))):
        pdf.multi_cell(0, 5, _paragraph(rng, label), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    return bytes(pdf.output())


def _render_scan(rng: random.Random) -> bytes:
    """A page with drawings but no text layer, as a scanner without OCR produces."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.add_page()
    for _ in range(rng.randint(20, 60)):
        pdf.rect(rng.uniform(10, 180), rng.uniform(10, 270), rng.uniform(5, 30), rng.uniform(1, 4), style="F")
    return bytes(pdf.output())
