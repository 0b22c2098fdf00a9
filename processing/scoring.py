"""A registered model's class probabilities for documents already in the store: batch prediction
(processing.predict), each arriving batch (processing.loop), monitoring (processing.monitoring) and the
files without a label of a run (processing.run_training).

A model that reads only embeddings scores here, in milliseconds. One that reads text spends its time
turning texts into TF-IDF rows (svm: 180 documents/s on one core), so its texts are read from the store
a chunk at a time (memory stays bounded) and, given an executor, scored on the engine's workers in
batches: every core scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from ingestion.extract import USABLE
from processing.classify import DocumentClassifier, score_documents
from processing.features import FeatureStore
from processing.prediction_rows import SCORED

CHUNK = 2048  # documents whose texts are read from the store at a time
SCORE_BATCH = 1024  # the largest batch one engine task scores (batches shrink towards the end)

# The documents' embeddings: an array aligned with their hashes, or a function that loads a part's.
Vectors = np.ndarray | Callable[[list[str]], np.ndarray]


def champion_probabilities(
    champion: DocumentClassifier,
    store: FeatureStore,
    hashes: list[str],
    vectors: Vectors,
    extractor: str,
    executor: Any = None,
    chunk: int = CHUNK,
) -> np.ndarray:
    """The champion's probabilities for these documents, one row per hash, in order: in this process, or
    on the executor's workers (processing.engine or processing.local)."""
    if not len(hashes):
        return np.zeros((0, len(champion.classes)))
    starts = range(0, len(hashes), chunk)
    if not champion.needs_text:
        parts = (champion.features(None, _vectors(vectors, hashes, start, chunk)) for start in starts)
        return np.vstack([champion.classifier.predict_proba(part) for part in parts])
    documents = _documents(champion, store, hashes, vectors, extractor, chunk)
    score = partial(score_documents, champion)
    if executor is None:
        batches: Iterator[list[tuple[str, np.ndarray]]] = (score(part) for part in _parts(documents, chunk))
    else:
        batches = executor.map_batches(
            score, documents, SCORE_BATCH, desc="score", total=len(hashes), min_batch_size=64
        )
    scored = {doc: row for batch in batches for doc, row in batch}
    return np.stack([scored[doc] for doc in hashes])


def file_probabilities(
    champion: DocumentClassifier,
    store: FeatureStore,
    paths: list[str],
    files: dict[str, tuple[str, str, str, str]],
    embedder: str,
    extractor: str,
    executor: Any = None,
) -> dict[str, np.ndarray]:
    """content hash -> the champion's probabilities, for each of `paths` it can score: a usable file, or a
    copy of a usable file of the same run. `files`: FeatureStore.run_files of that run."""
    readable = {digest for digest, outcome, _, _ in files.values() if outcome in USABLE}
    hashes = sorted({files[p][0] for p in paths if files[p][1] in SCORED} & readable)
    vectors = partial(store.load_vectors, embedder=embedder, extractor=extractor)
    scored = champion_probabilities(champion, store, hashes, vectors, extractor, executor)
    return dict(zip(hashes, scored, strict=True))


def _documents(
    champion: DocumentClassifier, store: FeatureStore, hashes: list[str], vectors: Vectors, extractor: str, chunk: int
) -> Iterator[tuple[str, str, np.ndarray | None]]:
    """(hash, text, embedding or None) for each document, its text read from the store `chunk` at a time."""
    for start in range(0, len(hashes), chunk):
        part = hashes[start : start + chunk]
        texts = dict(store.iter_texts(part, extractor))
        embedded = None if champion.reads_text else _vectors(vectors, hashes, start, chunk)
        for row, doc in enumerate(part):
            yield doc, texts[doc], None if embedded is None else embedded[row]


def _vectors(vectors: Vectors, hashes: list[str], start: int, chunk: int) -> np.ndarray:
    if isinstance(vectors, np.ndarray):
        return vectors[start : start + chunk]
    return vectors(hashes[start : start + chunk])


def _parts(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    part: list[Any] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part
