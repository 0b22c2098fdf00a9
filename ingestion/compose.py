"""What a generated document says and how it is laid out, as plain data. Pure and PDF-free.

The difficulty of the corpus lives here. Each document mixes its own class's sentences with its
confusable sibling's (ingestion/templates.py), other classes', boilerplate and filler, in proportions
drawn per document; titles are sometimes the sibling's or generic. So a few examples leave the pairs
confused and many examples pay off, which is the learning curve the tiers exist to show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date

from faker import Faker

from ingestion.templates import (
    BOILERPLATE,
    BOILERPLATE_2,
    CLASSES,
    COMPANIES,
    FILLER_WORDS,
    GENERATION_2_WORDS,
    GENERIC_TITLES,
    LABELS,
    MONTHS,
    NEW_CLASSES,
    NEW_SIBLINGS,
    SIBLINGS,
)

ALL_CLASSES = {**CLASSES, **NEW_CLASSES}
ALL_SIBLINGS = {**SIBLINGS, **NEW_SIBLINGS}

LAYOUTS = ("single", "two_column", "letter", "table")
FONTS = ("Helvetica", "Times", "Courier")
# Page counts: most business documents are short; a few run to a dozen pages.
PAGE_WEIGHTS = {1: 36, 2: 22, 3: 14, 4: 8, 5: 6, 6: 4, 7: 3, 8: 2, 9: 2, 10: 1, 11: 1, 12: 1}

_FAKER = Faker("en_GB")
# Dates are drawn from a fixed window, never relative to today: a seed must render the same bytes on
# any day (README). Six years up to the corpus' fixed creation date (ingestion/render.py).
FIRST_DATE, LAST_DATE = date(2020, 1, 1), date(2025, 12, 31)


@dataclass(frozen=True)
class Block:
    kind: str  # "heading", "paragraph" or "table"
    text: str = ""
    rows: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class DocumentPlan:
    label: str
    title: str
    letterhead: tuple[str, ...]
    recipient: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    pages: tuple[tuple[Block, ...], ...]
    layout: str
    font: str
    footer: str
    ocr_noise: float = 0.0

    def text(self) -> str:
        """The document's words in reading order: what a perfect extractor would return."""
        parts = [*self.letterhead, self.title, *self.recipient, *(f"{k}: {v}" for k, v in self.fields)]
        for page in self.pages:
            for block in page:
                parts.append(block.text if block.kind != "table" else "\n".join(" ".join(r) for r in block.rows))
        return "\n".join(parts)


def compose(rng: random.Random, label: str, generation: int = 1, ocr: bool | None = None) -> DocumentPlan:
    """One document's plan. generation 2 is the later template generation (other words, boilerplate,
    letterheads and field names); ocr forces a damaged OCR text layer on (True) or off (False); by default
    one document in ten has one. Generation 1 with ocr=None draws exactly what it always drew."""
    _FAKER.seed_instance(rng.getrandbits(32))
    spec, sibling = ALL_CLASSES[label], ALL_SIBLINGS[label]
    mix = _Mix(rng, label, sibling, BOILERPLATE_2 if generation == 2 else BOILERPLATE)
    roll = rng.random()
    title = rng.choice(
        spec["titles"] if roll < 0.6 else ALL_CLASSES[sibling]["titles"] if roll < 0.8 else GENERIC_TITLES
    )
    company = rng.choice([_FAKER.company(), rng.choice(COMPANIES)])
    letterhead = (_ascii(company), *(_ascii(x) for x in _FAKER.address().split("\n")[:2]))
    recipient = (_ascii(_FAKER.name()), *(_ascii(x) for x in _FAKER.address().split("\n")[:2]))
    field_names = rng.sample(spec["fields"], rng.randint(2, len(spec["fields"])))
    if rng.random() < 0.4:
        field_names.append(rng.choice(ALL_CLASSES[sibling]["fields"]))
    fields = tuple((name, _field_value(rng, name)) for name in field_names)
    n_pages = rng.choices(list(PAGE_WEIGHTS), weights=list(PAGE_WEIGHTS.values()))[0]
    layout = rng.choice(LAYOUTS)
    pages = tuple(_page(rng, mix, first=i == 0, layout=layout) for i in range(n_pages))
    footer = f"{_ascii(company)} - ref {rng.choice('ABCDEFGH')}{rng.randint(10000, 99999)}"
    ocr_noise = rng.uniform(0.02, 0.06) if rng.random() < 0.1 else 0.0
    if ocr is not None:
        ocr_noise = rng.uniform(0.04, 0.08) if ocr else 0.0
    if generation == 2:
        title = _generation_2(title).upper()
        letterhead = (" | ".join(letterhead[:2]).upper(), "Registered in England and Wales")
        fields = tuple((_generation_2(k).replace(" No.", " Ref").replace("Date", "Dated"), v) for k, v in fields)
        pages = tuple(tuple(replace(b, text=_generation_2(b.text)) for b in page) for page in pages)
    if ocr_noise:  # a poor scan run through OCR: the text layer itself is damaged
        pages = tuple(tuple(replace(b, text=add_ocr_noise(b.text, ocr_noise, rng)) for b in page) for page in pages)
    return DocumentPlan(
        label, title, letterhead, recipient, fields, pages, layout, rng.choice(FONTS), footer, ocr_noise
    )


def _generation_2(text: str) -> str:
    """The later template generation's wording: the same things in other words."""
    for old, new in GENERATION_2_WORDS.items():
        text = text.replace(old, new).replace(old.capitalize(), new.capitalize())
    return text


class _Mix:
    """Per-document proportions of own, sibling, other-class, boilerplate and filler sentences."""

    def __init__(self, rng: random.Random, label: str, sibling: str, boilerplate: list[str] = BOILERPLATE) -> None:
        self.rng, self.label, self.sibling, self.boilerplate = rng, label, sibling, boilerplate
        own = rng.uniform(0.18, 0.6)
        sib = rng.uniform(0.1, 0.4)
        self.cuts = (own, own + sib, own + sib + 0.1, own + sib + 0.1 + 0.2)

    def sentence(self) -> str:
        rng, roll = self.rng, self.rng.random()
        if roll < self.cuts[0]:
            return _fill(rng.choice(ALL_CLASSES[self.label]["sentences"]), rng)
        if roll < self.cuts[1]:
            return _fill(rng.choice(ALL_CLASSES[self.sibling]["sentences"]), rng)
        if roll < self.cuts[2]:
            return _fill(rng.choice(CLASSES[LABELS[rng.randrange(len(LABELS))]]["sentences"]), rng)
        if roll < self.cuts[3]:
            return rng.choice(self.boilerplate)
        return " ".join(rng.sample(FILLER_WORDS, rng.randint(4, 9))).capitalize() + "."

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(3, 7)))


def _page(rng: random.Random, mix: _Mix, first: bool, layout: str) -> tuple[Block, ...]:
    blocks: list[Block] = []
    if not first and rng.random() < 0.5:
        blocks.append(Block("heading", rng.choice(["Details", "Terms", "Notes", "Schedule", "Summary", "Annex"])))
    for _ in range(rng.randint(2, 5) if not first else rng.randint(1, 3)):
        blocks.append(Block("paragraph", mix.paragraph()))
    if layout == "table" or rng.random() < 0.2:
        rows = [("Item", "Qty", "Unit price", "Amount")]
        for _ in range(rng.randint(2, 8)):
            qty, price = rng.randint(1, 40), rng.uniform(2, 900)
            rows.append((_ascii(_FAKER.bs())[:38], str(qty), f"{price:,.2f}", f"{qty * price:,.2f}"))
        blocks.insert(min(1, len(blocks)), Block("table", rows=tuple(rows)))
    return tuple(blocks)


def _field_value(rng: random.Random, name: str) -> str:
    if name in ("Patient", "Applicant", "Claimant", "Prescriber", "Requested By", "Attending Physician"):
        return _ascii(_FAKER.name())
    if "Date" in name or name in ("Collected", "Reported", "Detected On", "Period"):
        return _FAKER.date_between(FIRST_DATE, LAST_DATE).strftime(rng.choice(["%d %B %Y", "%Y-%m-%d", "%d/%m/%Y"]))
    if "Address" in name or name in ("Ship To", "Bill To"):
        return _ascii(_FAKER.address().replace("\n", ", "))
    if any(w in name for w in ("Amount", "Total", "Balance", "Income", "Fees", "VAT")):
        return f"{rng.uniform(10, 250000):,.2f} {rng.choice(['EUR', 'GBP', 'USD'])}"
    if name in ("Vendor", "Carrier", "Provider", "Employer", "Parties", "Disclosing Party", "Receiving Party"):
        return _ascii(_FAKER.company())
    return f"{rng.choice('ABCDEFGHJK')}{rng.randint(100000, 9999999)}"


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        n=rng.randint(2, 90),
        amount=f"{rng.uniform(10, 99999):,.2f} {rng.choice(['EUR', 'GBP', 'USD'])}",
        pct=f"{rng.uniform(0.5, 4):.1f}%",
        month=rng.choice(MONTHS),
        date=f"{rng.randint(1, 28):02d} {rng.choice(MONTHS)} {rng.randint(2019, 2026)}",
        company=rng.choice(COMPANIES),
        code=f"{rng.choice('ABCDEFGH')}{rng.randint(100000, 999999)}",
        num=f"{rng.uniform(1, 200):.1f}",
    )


_OCR_CONFUSIONS = {"l": "1", "O": "0", "o": "0", "e": "c", "m": "rn", "S": "5", "B": "8", "i": "l", "a": "o"}


def add_ocr_noise(text: str, rate: float, rng: random.Random) -> str:
    """Character confusions and dropped spaces, as OCR of a poor scan produces."""
    if rate <= 0:
        return text
    out = []
    for ch in text:
        roll = rng.random()
        if roll < rate and ch in _OCR_CONFUSIONS:
            out.append(_OCR_CONFUSIONS[ch])
        elif roll < rate / 2 and ch == " ":
            continue
        else:
            out.append(ch)
    return "".join(out)


def _ascii(text: str) -> str:
    # The PDFs use the core fonts (Latin-1); keep generated names and addresses within plain ASCII.
    return text.encode("ascii", "replace").decode("ascii")
