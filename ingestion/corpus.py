"""The generated, labelled PDF corpus: deterministic, nested across tiers, with a fixed held-out set.

Every document is a pure function of (seed, split, index): its label, its defect (if any) and its
bytes. So tier 50 is the first 50 training documents of tier 1k, and the held-out set is the same
whatever the tier. Files are written once under <workspace>/corpus/seed-<seed>/ and reused.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ingestion.compose import compose
from ingestion.ocr import tesseract_version
from ingestion.render import absurd_page_count, break_xref, render_plan, render_scan
from ingestion.sources import existing_relpaths, join, write_bytes
from ingestion.templates import LABELS

TIERS = ("50", "1k", "15k", "75k")  # training-set sizes, in order; each nests in the next


@dataclass
class CorpusConfig:
    """corpus.* in the config. Each default lives here; configs/tiers/<tier>.yaml sets train_size."""

    seed: int = 1234  # with the tier, fully determines the generated corpus
    train_size: int = 50  # generated training documents; configs/tiers/<tier>.yaml sets it
    heldout_size: int = 500  # the fixed evaluation set, identical for every tier
    bad_file_rate: float = 0.01  # share of deliberately broken training files
    label_noise: float = 0.02  # share of training labels flipped to a wrong class, as real annotation has
    heldout_fraction: float = 0.2  # --input folders: share of labelled files held out (stable, by path hash)
    root: str = ""  # where generated PDFs go; "" = <workspace>/corpus; s3://... on a multi-node cluster

    def validate(self) -> None:
        for key in ("train_size", "heldout_size"):
            if getattr(self, key) <= 0:
                raise ValueError(f"corpus.{key} must be > 0; got {getattr(self, key)}")
        for key in ("bad_file_rate", "label_noise", "heldout_fraction"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"corpus.{key} must be in [0, 1); got {getattr(self, key)}")


# A deliberately broken file, and the extraction outcome it must end with (checked by the tests).
DEFECTS: dict[str, str] = {
    "zero_bytes": "not_pdf",
    "not_pdf": "not_pdf",
    "truncated": "corrupt",
    "bad_xref": "ok",  # pypdf rebuilds a broken cross-reference table by scanning the file
    "encrypted": "encrypted",
    "encrypted_empty_password": "ok",  # opens with the empty password, like many "protected" PDFs
    "scanned": "ok",  # an image-only scan, read by OCR (empty_text where Tesseract is missing)
    "absurd_page_count": "ok",  # 2,000 listed pages, a billion claimed: the first extract.max_pages are read
}


@dataclass(frozen=True)
class CorpusEntry:
    split: str  # "train" or "heldout"
    index: int
    label: str  # the recorded label: what a (sometimes wrong) human annotator wrote
    defect: str | None = None
    true_label: str | None = None  # differs from label when label noise flipped it
    generation: int = 1  # 2: the later template generation (drift batches only)
    ocr: bool | None = None  # force a damaged OCR text layer on or off; None: one document in ten

    @property
    def relpath(self) -> str:
        return f"{self.split}/{self.index:06d}.pdf"

    @property
    def content_label(self) -> str:
        return self.true_label or self.label

    @property
    def expected_outcome(self) -> str:
        if self.defect == "scanned" and not tesseract_version():
            return "empty_text"
        return DEFECTS[self.defect] if self.defect else "ok"


def corpus_dir(workspace: Path, seed: int, root: str = "") -> str:
    """Where a seed's corpus lives: under the workspace, or under `root` (a folder or a URI such as
    s3://bucket/corpus, which every node of a cluster can read)."""
    return join(root or str(Path(workspace) / "corpus"), f"seed-{seed}")


def make_entry(seed: int, split: str, index: int, bad_file_rate: float, label_noise: float = 0.0) -> CorpusEntry:
    rng = _rng(seed, split, index)
    label = LABELS[rng.randrange(len(LABELS))]
    # The held-out set stays clean and correctly labelled: it measures the classifier, not the data.
    is_bad = rng.random() < bad_file_rate and split == "train"
    defect = sorted(DEFECTS)[rng.randrange(len(DEFECTS))] if is_bad else None
    if split == "train" and rng.random() < label_noise:
        wrong = LABELS[(LABELS.index(label) + rng.randrange(1, len(LABELS))) % len(LABELS)]
        return CorpusEntry(split, index, wrong, defect, true_label=label)
    return CorpusEntry(split, index, label, defect)


def manifest(
    seed: int, train_size: int, heldout_size: int, bad_file_rate: float, label_noise: float = 0.0
) -> list[CorpusEntry]:
    """All entries of a tier, cheaply (nothing is rendered)."""
    train = [make_entry(seed, "train", i, bad_file_rate, label_noise) for i in range(train_size)]
    heldout = [make_entry(seed, "heldout", i, bad_file_rate, label_noise) for i in range(heldout_size)]
    return train + heldout


def render_entry(seed: int, entry: CorpusEntry) -> bytes:
    """The bytes of one document. Pure: the same entry always gives the same bytes."""
    rng = _rng(seed, entry.split, entry.index, "body")
    if entry.defect == "zero_bytes":
        return b""
    if entry.defect == "not_pdf":
        return ("Quarterly notes, exported as plain text by mistake.\n" * 20).encode()
    password = {"encrypted": "secret", "encrypted_empty_password": ""}.get(entry.defect or "")
    pdf_bytes = render_plan(compose(rng, entry.content_label, entry.generation, entry.ocr), password=password)
    if entry.defect == "scanned":
        return render_scan(pdf_bytes, rng)
    if entry.defect == "truncated":
        return pdf_bytes[: len(pdf_bytes) // 3]
    if entry.defect == "bad_xref":
        return break_xref(pdf_bytes)
    if entry.defect == "absurd_page_count":
        return absurd_page_count(pdf_bytes)
    return pdf_bytes


@dataclass
class BatchSpec:
    """An arriving batch of generated documents, with drift knobs; deterministic by (seed, name)."""

    name: str
    size: int = 200
    favour: tuple[str, ...] = ()  # class mix: these classes make `favour_share` of the batch
    favour_share: float = 0.0
    generation_2_share: float = 0.0  # the later template generation (other words, boilerplate, fields)
    ocr_share: float | None = None  # damaged OCR text layers; None = as in training (one in ten)
    new_class: str = ""  # a class the models never saw (ingestion.templates.NEW_CLASSES) ...
    new_class_share: float = 0.0  # ... making this share of the batch
    label_noise: float = 0.0  # share of recorded labels that are wrong
    labelled_share: float = 0.0  # share of the batch whose labels are given (labels CSV)

    def validate(self) -> None:
        if self.size <= 0:
            raise ValueError(f"batch {self.name}: size must be > 0")
        for key in ("favour_share", "generation_2_share", "new_class_share", "label_noise", "labelled_share"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"batch {self.name}: {key} must be in [0, 1]")
        unknown = [c for c in self.favour if c not in LABELS]
        if unknown:
            raise ValueError(f"batch {self.name}: favour names unknown classes {unknown}")


def batch_manifest(seed: int, spec: BatchSpec) -> list[tuple[CorpusEntry, bool]]:
    """The batch's entries, and whether each one's label is given."""
    spec.validate()
    out = []
    for index in range(spec.size):
        rng = _rng(seed, spec.name, index, "batch")
        roll = rng.random()
        if spec.new_class and roll < spec.new_class_share:
            label = spec.new_class
        elif spec.favour and roll < spec.new_class_share + spec.favour_share:
            label = spec.favour[rng.randrange(len(spec.favour))]
        else:
            label = LABELS[rng.randrange(len(LABELS))]
        generation = 2 if rng.random() < spec.generation_2_share else 1
        ocr = None if spec.ocr_share is None else rng.random() < spec.ocr_share
        recorded = label
        if rng.random() < spec.label_noise:
            recorded = (
                LABELS[(LABELS.index(label) + rng.randrange(1, len(LABELS))) % len(LABELS)]
                if label in LABELS
                else LABELS[0]
            )
        entry = CorpusEntry(
            f"batch-{spec.name}", index, recorded, None, label if recorded != label else None, generation, ocr
        )
        out.append((entry, rng.random() < spec.labelled_share))
    return out


def missing_entries(root: str, entries: list[CorpusEntry]) -> list[CorpusEntry]:
    have = existing_relpaths(root)
    return [e for e in entries if e.relpath not in have]


def write_entries(root: str, seed: int, entries: Iterable[CorpusEntry]) -> int:
    """Render and write the given entries; returns how many were written.

    Each file appears whole or not at all (see write_bytes), so a killed run never leaves a
    half-written PDF that a rerun would mistake for a finished one.
    """
    written = 0
    for entry in entries:
        write_bytes(join(root, entry.relpath), render_entry(seed, entry))
        written += 1
    return written


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across processes and runs.
    return random.Random(":".join(str(p) for p in (seed, *parts)))
