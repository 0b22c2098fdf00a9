from collections import Counter

from ingestion.corpus import DEFECTS, CorpusEntry, manifest, missing_entries, render_entry, write_entries
from ingestion.extract import extract_text
from ingestion.templates import LABELS


def test_tiers_nest_and_heldout_is_fixed():
    small = manifest(7, train_size=20, heldout_size=10, bad_file_rate=0.1)
    large = manifest(7, train_size=60, heldout_size=10, bad_file_rate=0.1)
    train_small = [e for e in small if e.split == "train"]
    train_large = [e for e in large if e.split == "train"]
    assert train_large[:20] == train_small
    assert [e for e in small if e.split == "heldout"] == [e for e in large if e.split == "heldout"]
    assert {e.relpath for e in train_large}.isdisjoint({e.relpath for e in large if e.split == "heldout"})


def test_seed_changes_the_corpus_and_bytes_are_deterministic():
    a, b = manifest(1, 30, 0, 0.0), manifest(2, 30, 0, 0.0)
    assert [e.label for e in a] != [e.label for e in b]
    assert render_entry(1, a[0]) == render_entry(1, a[0])
    assert render_entry(1, a[0]) != render_entry(2, a[0])


def test_labels_cover_at_least_eight_classes_and_heldout_is_clean():
    entries = manifest(1234, 400, 200, bad_file_rate=0.2)
    assert len(LABELS) >= 8
    assert len(Counter(e.label for e in entries)) == len(LABELS)
    assert all(e.defect is None for e in entries if e.split == "heldout")
    assert any(e.defect for e in entries if e.split == "train")


def test_every_defect_ends_with_its_expected_outcome():
    for defect in DEFECTS:
        entry = CorpusEntry("train", 3, "invoice", defect)
        outcome = extract_text(render_entry(5, entry)).outcome
        assert outcome == entry.expected_outcome, (defect, outcome)


def test_clean_documents_extract_with_their_class_vocabulary():
    entry = CorpusEntry("train", 11, "prescription")
    extraction = extract_text(render_entry(5, entry))
    assert extraction.outcome == "ok"
    assert extraction.pages >= 1
    assert extraction.words > 30


def test_only_missing_entries_are_written_and_no_temp_files_remain(tmp_path):
    entries = manifest(3, 5, 2, 0.0)
    root = str(tmp_path / "corpus")
    assert write_entries(root, 3, missing_entries(root, entries[:4])) == 4
    assert missing_entries(root, entries) == entries[4:]
    assert write_entries(root, 3, missing_entries(root, entries)) == 3
    assert missing_entries(root, entries) == []
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert (tmp_path / "corpus" / entries[0].relpath).read_bytes() == render_entry(3, entries[0])


def test_label_noise_flips_only_training_labels_at_about_the_configured_rate():
    entries = manifest(99, 3000, 300, bad_file_rate=0.0, label_noise=0.05)
    flipped = [e for e in entries if e.true_label is not None]
    assert all(e.split == "train" and e.label != e.true_label for e in flipped)
    assert 0.03 < len(flipped) / 3000 < 0.07


def test_documents_vary_in_layout_pages_and_ocr_noise():
    import random

    from ingestion.compose import LAYOUTS, compose

    plans = [compose(random.Random(i), LABELS[i % len(LABELS)]) for i in range(400)]
    assert {p.layout for p in plans} == set(LAYOUTS)
    assert min(len(p.pages) for p in plans) == 1 and 8 <= max(len(p.pages) for p in plans) <= 12
    assert 0.04 < sum(p.ocr_noise > 0 for p in plans) / len(plans) < 0.2
    assert len({p.font for p in plans}) == 3


def test_confusable_pairs_share_vocabulary():
    import random

    from ingestion.compose import compose

    # Contract documents borrow NDA sentences often enough that the pair is genuinely confusable.
    texts = [compose(random.Random(i), "contract").text() for i in range(60)]
    assert sum("confidential information" in t for t in texts) > 10


def test_the_same_seed_renders_the_same_bytes_on_any_day():
    """Dates in documents come from a fixed window, not from today: a corpus is the same tomorrow."""
    import hashlib

    from freezegun import freeze_time

    entries = manifest(1234, 12, 0, 0.0)
    digests = []
    for today in ("2026-01-15", "2031-07-04"):
        with freeze_time(today):
            digests.append([hashlib.sha256(render_entry(1234, e)).hexdigest() for e in entries])
    assert digests[0] == digests[1]
