"""The self-contained document classifier: the service's coalescer (concurrent callers share forward passes,
each gets its own rows back) and the views a classifier reads (vectors, text, or both)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from processing.classify import _Coalescer


def test_concurrent_calls_share_a_pass_and_get_their_own_rows():
    passes: list[list[str]] = []
    release = threading.Event()

    def encode(texts: list[str]) -> np.ndarray:
        passes.append(list(texts))
        if len(passes) == 1:
            release.wait(10)  # the first pass runs while the other callers queue
        return np.array([[len(t)] for t in texts])

    coalescer = _Coalescer(encode)
    results: dict[int, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, coalescer(["x" * i, "y" * i]))) for i in range(1, 6)
    ]
    threads[0].start()
    time.sleep(0.2)
    for t in threads[1:]:
        t.start()
    time.sleep(0.3)
    release.set()
    for t in threads:
        t.join(10)
    assert {i: r.ravel().tolist() for i, r in results.items()} == {i: [i, i] for i in range(1, 6)}
    assert [len(p) for p in passes] == [2, 8]  # one pass alone, then the four that queued, merged


def test_an_error_reaches_every_waiting_caller():
    def encode(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model gone")

    coalescer = _Coalescer(encode)
    with pytest.raises(RuntimeError, match="model gone"):
        coalescer(["a"])
    with pytest.raises(RuntimeError, match="model gone"):  # and the loop lives on
        coalescer(["b"])


def test_a_fused_model_reads_text_and_embeddings_of_uploaded_pdfs():
    from ingestion.corpus import CorpusEntry, render_entry
    from ingestion.extract import ExtractConfig, extract_text
    from ingestion.ocr import tesseract_version
    from processing.classify import Document, DocumentClassifier
    from processing.embed import EmbedConfig, Embedder, concrete_backend, embedder_id
    from training.classifiers import TrainConfig, fused_rows, train_classifier

    labels = ["invoice", "contract", "lab_report"]
    pdfs = [(label, render_entry(2, CorpusEntry("train", i, label))) for i in range(6) for label in labels]
    texts = [extract_text(data, ExtractConfig(ocr="off")).text for _, data in pdfs]
    embed = concrete_backend(EmbedConfig(), gpus=0)  # the CPU default, as a run records it
    embedder = Embedder(embed, device="cpu")
    y = np.array([label for label, _ in pdfs])
    fusion = train_classifier("fusion", fused_rows(texts, embedder.encode(texts)), y, TrainConfig())
    model = DocumentClassifier(fusion, "fusion", ExtractConfig(), embed, embedder_id(embed), "fv-x", "both")
    scan = render_entry(2, CorpusEntry("train", 8, "invoice", defect="scanned"))
    try:
        rows = model.classify([*(Document(f"{label}.pdf", data) for label, data in pdfs[:3]), Document("s.pdf", scan)])
    finally:
        model.close()
    rows, scanned = rows[:3], rows[3]
    assert [r["label"] for r in rows] == labels and all(r["outcome"] == "ok" and r["flags"] == "" for r in rows)
    if tesseract_version():  # each row says what its label rests on: here pages read by OCR
        assert scanned["outcome"] == "ok" and scanned["flags"] == "ocr" and scanned["label"] in labels
    else:
        assert scanned["outcome"] == "empty_text" and scanned["label"] is None
    assert model.settings()["view"] == "both" and model.needs_text and not model.reads_text


def test_models_registered_before_views_still_load():
    from processing.classify import DocumentClassifier

    old = DocumentClassifier.__new__(DocumentClassifier)
    old.__setstate__({"classifier": None, "name": "tfidf", "reads_text": True})
    assert old.view == "text" and old.reads_text
    old.__setstate__({"classifier": None, "name": "logreg", "reads_text": False})
    assert old.view == "vectors"


def test_one_very_long_text_does_not_widen_every_text():
    """A fixed-width str array is as wide as its longest text: a 700k-character manual among 15k
    documents once asked for 39 GiB. Texts are kept as objects."""
    from processing.run_training import Inputs

    long_text, short = "word " * 140_000, ["short text"] * 1000
    inputs = Inputs(
        np.zeros((1001, 2)),
        np.zeros(1001),
        np.zeros((1, 2)),
        np.zeros(1),
        load_texts=lambda: ([long_text, *short], ["x"]),
    )
    train, heldout = inputs.texts()
    assert train.dtype == object and train.nbytes < 1 << 20 and train[0] == long_text and heldout[0] == "x"


@pytest.mark.ray
def test_batch_scoring_on_ray_workers_gives_each_document_its_own_probabilities(ray_session):
    """processing.predict sends a text model's documents to the engine's workers in batches that finish in
    any order; every key must get the probabilities the model gives its own text in this process."""
    from functools import partial

    from ingestion.extract import ExtractConfig
    from processing import engine
    from processing.classify import DocumentClassifier, score_documents
    from processing.embed import EmbedConfig
    from training.classifiers import TrainConfig, train_classifier

    rng = np.random.default_rng(5)
    labels = np.array(["invoice", "contract", "lab"])[rng.integers(0, 3, 300)]
    texts = [f"{label} total {rng.integers(1000)} {'page ' * int(rng.integers(1, 50))}" for label in labels]
    svm = train_classifier("svm", np.asarray(texts, dtype=object), labels, TrainConfig())
    model = DocumentClassifier(svm, "svm", ExtractConfig(), EmbedConfig(), "e", "fv-x", "text")
    documents = [(f"h{i}", text, None) for i, text in enumerate(texts)]
    scored = {}
    for batch in engine.map_batches(
        partial(score_documents, model), documents, 64, desc="t", total=300, min_batch_size=8
    ):
        scored.update(batch)
    expected = svm.predict_proba(np.asarray(texts, dtype=object))
    assert len(scored) == 300
    np.testing.assert_allclose(np.stack([scored[f"h{i}"] for i in range(300)]), expected, rtol=1e-6)
