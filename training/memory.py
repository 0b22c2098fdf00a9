"""How many documents a text classifier's final fit can read in the memory it has.

A text classifier's final fit holds its whole sparse feature matrix, and the svm about three copies of it
while it fits (the matrix, calibration's fold of it, liblinear's own copy): its peak grows with the
documents, and with how many words and character n-grams each one has. On the 15k tier the svm's fit
added 1.5 GiB to the driver, ~7.7 GiB at 75k; real manuals have 2.6 times as many n-grams a document
as generated ones (README, "Memory at 75k"). A fit that does not fit is killed by the kernel without a
word, after every stage before it; so before a fit that could be too large, its cost a document is
measured on a sample, and a fit that would not fit reads the largest stratified sample that does, and
says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.classifiers import FUSED_INPUT, TrainConfig, build_classifier

# What a final fit adds to the process at its peak: a part that hardly grows with the documents (the
# vocabularies counted before they are pruned, the fitted model) and a part a non-zero of its feature
# matrix. Measured from the driver's RSS while final fits ran on the 15k tier (README, "Memory at 75k"):
# svm +1.54 GiB for 44.3M non-zeros (all 14,932 documents) and +0.86 GiB for 22.4M (7,553), hence 256 MiB
# and 30 bytes a non-zero; tfidf +0.32 GiB for 6.3M and fusion +0.45 GiB for 12.1M (its words and the
# embedding's values), measured at one size only, so their fixed part is inside their bytes a non-zero.
FIXED_BYTES = {"svm": 256 * 2**20, "tfidf": 0, "fusion": 0}
BYTES_PER_NONZERO = {"svm": 30, "tfidf": 54, "fusion": 40}
SAMPLE_DOCUMENTS = 1000  # their non-zeros a document were within 5% of all 14,932's at 15k
MIN_DOCUMENTS = 200  # a fit on fewer would be a worse model than the user can fix by adding memory
DEFAULT_SHARE = 0.75  # of the memory available when the fit starts (train.fit_memory_gb = 0)


@dataclass(frozen=True)
class Budget:
    documents: int  # how many of the training documents the fit reads
    note: str = ""  # why fewer than all, for the log and the run's record; "" when all


def available_bytes() -> int | None:
    """Memory this process can still take: the kernel's MemAvailable, capped by the container's
    (cgroup v2) limit less its usage. None where neither can be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(found)) if found else None


def fit_budget(name: str, x: Any, y: np.ndarray, config: TrainConfig, available: int | None) -> Budget:
    """How many of the len(y) documents the final fit of `name` reads: all, unless its estimated peak is
    over train.fit_memory_gb (or, when that is 0, DEFAULT_SHARE of `available`)."""
    if name not in BYTES_PER_NONZERO:  # the embedding classifiers read vectors already in memory
        return Budget(len(y))
    if config.fit_memory_gb > 0:
        budget, source = config.fit_memory_gb * 2**30, "train.fit_memory_gb"
    elif available is not None:
        budget, source = DEFAULT_SHARE * available, f"{DEFAULT_SHARE:.0%} of the memory available"
    else:
        return Budget(len(y))
    # No document has more non-zeros than the features kept: below that bound, nothing to measure.
    most = config.tfidf_max_features * (2 if name == "svm" else 1) + (4096 if name in FUSED_INPUT else 0)
    fixed = FIXED_BYTES[name]
    if fixed + len(y) * most * BYTES_PER_NONZERO[name] <= budget:
        return Budget(len(y))
    per_document = bytes_per_document(name, take_rows(x, stratified_rows(y, SAMPLE_DOCUMENTS, config.seed)), config)
    if fixed + len(y) * per_document <= budget:
        return Budget(len(y))
    documents = min(len(y), max(MIN_DOCUMENTS, int((budget - fixed) // per_document)))
    need = f"~{(fixed + len(y) * per_document) / 2**30:.2f} GiB, over {source} ({budget / 2**30:.2f} GiB)"
    if documents == len(y):
        return Budget(
            documents,
            f"fitted on all {len(y):,} documents though they may need {need}: a sample is never under {MIN_DOCUMENTS}",
        )
    return Budget(
        documents,
        f"fitted on a stratified {documents:,} of {len(y):,} documents: all would need {need}; more memory or"
        " a larger train.fit_memory_gb fits more",
    )


def bytes_per_document(name: str, sample: Any, config: TrainConfig) -> float:
    """The final fit's peak a document beyond its fixed part, from the non-zeros of its features on `sample`."""
    features = build_classifier(name, config)[:-1].fit_transform(sample)
    return features.nnz / max(1, features.shape[0]) * BYTES_PER_NONZERO[name]


def stratified_rows(y: np.ndarray, max_documents: int, seed: int) -> np.ndarray:
    """Row indices of a stratified sample of at most max_documents rows (all rows when fewer), sorted."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    if len(y) <= max_documents:
        return rows
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 and max_documents >= len(counts) else None
    sample, _ = train_test_split(rows, train_size=max_documents, stratify=stratify, random_state=seed)
    return np.sort(sample)


def take_rows(x: Any, rows: np.ndarray) -> Any:
    """Those rows of a classifier's input: an array (vectors, texts) or a list ((text, vector) pairs)."""
    return x[rows] if isinstance(x, np.ndarray) else [x[i] for i in rows]
