"""A text classifier's final fit reads as many documents as fit in its memory budget (training/memory.py)."""

from pathlib import Path

import numpy as np
import pytest

from training.classifiers import TrainConfig
from training.fit import fit
from training.memory import FIXED_BYTES, MIN_DOCUMENTS, available_bytes, bytes_per_document, fit_budget

TOPICS = {
    "invoice": "invoice payment due amount total remit account",
    "medical": "patient discharge ward physician dose clinic",
    "legal": "agreement party law clause court witness",
}


def _texts(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Documents of a few hundred words each: their topic's words among common ones, with numbers, so each
    has its own character n-grams as real documents do."""
    rng = np.random.default_rng(seed)
    y = np.array([label for label in TOPICS for _ in range(per_class)])
    common = ["the", "of", "and", "to", "in", "for", "with", "on", "by", "from", "this", "that", "is", "are"]
    texts = [" ".join(rng.choice(TOPICS[label].split() + common, 300)) + f" ref {rng.integers(10**8)}" for label in y]
    return np.array(texts, dtype=object), y


def test_a_fit_over_its_budget_reads_a_stratified_sample_that_fits_and_says_so():
    texts, y = _texts(150)
    per_document = bytes_per_document("svm", texts, TrainConfig())
    budget_gb = (FIXED_BYTES["svm"] + 300 * per_document) / 2**30  # room for about 300 of the 450 documents
    trained = fit("svm", texts, y, TrainConfig(fit_memory_gb=budget_gb), "cpu")
    assert MIN_DOCUMENTS <= trained.documents < len(y)
    assert abs(trained.documents - 300) <= 30  # the estimate is from a sample: close, not exact
    assert f"of {len(y):,} documents" in trained.note and "train.fit_memory_gb" in trained.note
    assert sorted(trained.model.classes_) == sorted(TOPICS)  # every class is in the sample
    assert list(trained.model.predict(np.array(["patient ward physician clinic dose"]))) == ["medical"]


@pytest.mark.parametrize("name", ["tfidf", "svm"])
def test_a_fit_within_its_budget_reads_every_document(name):
    texts, y = _texts(40)
    trained = fit(name, texts, y, TrainConfig(fit_memory_gb=1.0), "cpu")
    assert trained.documents == len(y) and trained.note == ""


def test_the_embedding_classifiers_are_not_limited_and_the_default_budget_is_the_available_memory():
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 20)
    assert fit_budget("logreg", x, y, TrainConfig(fit_memory_gb=1e-9), available_bytes()).documents == 60
    texts, y = _texts(100)
    assert fit_budget("svm", texts, y, TrainConfig(), available=10**12).documents == len(y)
    tight = fit_budget("svm", texts, y, TrainConfig(), available=2**20)  # 1 MiB free: the floor
    assert tight.documents == MIN_DOCUMENTS and "of the memory available" in tight.note
    few = fit_budget("svm", texts[:150], y[:150], TrainConfig(), available=2**20)  # under the floor: all
    assert few.documents == 150 and few.note.startswith("fitted on all 150 documents though")
    total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    assert 0 < available_bytes() <= total


def test_a_negative_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="train.fit_memory_gb must be >= 0"):
        TrainConfig(fit_memory_gb=-1).validate()
