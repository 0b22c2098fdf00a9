"""One feature version against another, seen by the champion: the two sides of evaluation.drift's
comparison built from the store, for any champion (one that reads vectors, text or both).
processing.monitor (a version on demand) and processing.loop (each arriving batch) both use it.

Wiring: it reads the store (processing.features) and runs evaluation's tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evaluation.drift import DriftReport, MonitorConfig, Side, monitor
from processing.classify import DocumentClassifier
from processing.features import FeatureStore
from processing.scoring import champion_probabilities


def monitor_versions(
    store: FeatureStore,
    reference_fv: str,
    current_fv: str | None,
    champion: DocumentClassifier | None,
    config: MonitorConfig,
    recorded: dict[str, float] | None = None,
    outcomes: dict[str, int] | None = None,
    scored: dict[str, np.ndarray] | None = None,
) -> DriftReport:
    """Every drift test of `current_fv` (None: a batch without a usable document) against the training
    documents of `reference_fv`. A champion adds prediction drift and, where current documents carry
    labels, its macro-F1 on them. `outcomes`: the current files' outcome counts (a version holds only
    usable documents; default: those of the run that produced it); `scored`: content hash -> the
    champion's probabilities already computed."""
    if outcomes is None and current_fv:
        outcomes = store.version_outcomes(current_fv)
    ref = store.version_rows(reference_fv, splits=("train",))
    cur = store.version_rows(current_fv) if current_fv else None
    n = config.text_sample
    ref_side = Side(ref.vectors, lengths=ref.lengths, texts=store.sample_texts(reference_fv, n, splits=("train",)))
    cur_side = Side(
        cur.vectors if cur else np.zeros((0, ref.vectors.shape[1])),
        outcomes=outcomes or {},
        lengths=cur.lengths if cur else np.zeros(0),
        texts=store.sample_texts(current_fv, n) if current_fv else [],
    )
    classes: list[str] = []
    labelled = None
    if champion is not None:
        classes = champion.classes
        # The reference's class shares from a fixed sample of its documents, as the embedding tests use:
        # scoring all of them reads every text of a text champion's training version at each cycle.
        picked = _sample_rows(len(ref.hashes), config.sample_per_side, config.seed)
        ref_side.probabilities = champion_probabilities(
            champion,
            store,
            [ref.hashes[i] for i in picked],
            ref.vectors[picked],
            store.version(reference_fv)["extractor"],
        )
        if cur is not None:
            cur_side.probabilities = _probabilities(
                champion, store, cur, store.version(current_fv)["extractor"], scored
            )
            known = np.asarray([bool(label) for label in cur.labels])
            if known.any():
                predicted = np.asarray(classes)[cur_side.probabilities[known].argmax(axis=1)]
                labelled = (np.asarray(cur.labels)[known], predicted)
    return monitor(ref_side, cur_side, classes, config, labelled, recorded)


def _sample_rows(n: int, k: int, seed: int) -> np.ndarray:
    """Indices of a fixed sample of k of n rows (all of them when n <= k), in order."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


def _probabilities(
    champion: DocumentClassifier, store: FeatureStore, rows: Any, extractor: str, scored: dict[str, np.ndarray] | None
) -> np.ndarray:
    """The champion's probabilities for a version's rows, reusing those already computed (the loop scores
    the batch before it monitors it: a text champion should not read every text twice)."""
    if scored and all(h in scored for h in rows.hashes):
        return np.asarray([scored[h] for h in rows.hashes]).reshape(len(rows.hashes), len(champion.classes))
    return champion_probabilities(champion, store, rows.hashes, rows.vectors, extractor)
