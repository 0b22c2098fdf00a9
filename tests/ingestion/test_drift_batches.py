"""The generator's drift knobs: deterministic batches whose shifts are what the knobs say."""

from __future__ import annotations

from collections import Counter

from ingestion.corpus import BatchSpec, batch_manifest, render_entry
from ingestion.extract import extract_text


def test_batches_are_deterministic_and_the_knobs_shift_them():
    same = batch_manifest(1, BatchSpec("x", size=300))
    assert same == batch_manifest(1, BatchSpec("x", size=300))
    assert all(e.generation == 1 and e.true_label is None for e, _ in same)
    spec = BatchSpec("y", size=300, favour=("invoice",), favour_share=0.6, generation_2_share=0.5,
                     new_class="warranty_claim", new_class_share=0.1, label_noise=0.2, labelled_share=0.5)  # fmt: skip
    shifted = batch_manifest(1, spec)
    true = Counter(e.content_label for e, _ in shifted)
    assert 0.55 < (true["invoice"] / 300) < 0.8 and 0.05 < true["warranty_claim"] / 300 < 0.15
    assert 0.4 < sum(e.generation == 2 for e, _ in shifted) / 300 < 0.6
    assert 0.12 < sum(e.true_label is not None for e, _ in shifted) / 300 < 0.28  # noisy labels
    assert 0.4 < sum(given for _, given in shifted) / 300 < 0.6


def test_a_second_generation_document_says_the_same_in_other_words():
    ((old, _),) = batch_manifest(3, BatchSpec("g1", size=1))
    entry = old.__class__(old.split, old.index, old.label, generation=2)
    first, second = extract_text(render_entry(3, old)).text, extract_text(render_entry(3, entry)).text
    assert first != second
    assert "DocuFlow" in second or "Registered in England and Wales" in second
