"""Held-out metrics and the confusion-matrix picture. Pure functions of labels and predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def full_report(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, seed: int = 0) -> dict[str, object]:
    """Everything we log per classifier: accuracy, macro-F1 with a bootstrap interval, per-class F1,
    log-loss and expected calibration error."""
    y_pred = classes[proba.argmax(axis=1)]
    low, high = bootstrap_macro_f1(y_true, y_pred, seed=seed)
    labels = sorted(set(y_true) | set(classes))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        **score(y_true, y_pred),
        "macro_f1_low": low,
        "macro_f1_high": high,
        "log_loss": log_loss_any(y_true, proba, classes),
        "ece": expected_calibration_error(y_true, proba, classes),
        "per_class_f1": {str(label): float(f) for label, f in zip(labels, per_class, strict=True)},
        "report": classification_report(y_true, y_pred, zero_division=0),
    }


def log_loss_any(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, floor: float = 1e-7) -> float:
    """Log-loss that also works when a held-out class never appeared in training (small tiers): the
    model gave it probability 0, which counts as `floor`. sklearn's log_loss refuses such labels."""
    index = {c: i for i, c in enumerate(classes)}
    p_true = np.array([proba[row, index[y]] if y in index else 0.0 for row, y in enumerate(y_true)])
    return float(-np.log(np.clip(p_true, floor, 1.0)).mean())


def bootstrap_macro_f1(
    y_true: np.ndarray, y_pred: np.ndarray, rounds: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of macro-F1 by resampling the held-out documents with replacement.

    All rounds at once with bincounts: a loop over sklearn's f1_score took ~2.5 s per classifier.
    """
    labels = np.unique(np.concatenate([y_true, y_pred]))
    t, p = np.searchsorted(labels, y_true), np.searchsorted(labels, y_pred)
    idx = np.random.default_rng(seed).integers(0, len(t), (rounds, len(t)))
    scores = macro_f1_rows(t[idx], p[idx], len(labels))
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def macro_f1_rows(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 of each row of integer-coded (true, predicted) label arrays, as sklearn computes it with
    zero_division=0: averaged over the labels present in that row's truth or predictions."""
    rows = t.shape[0]
    offsets = (np.arange(rows) * k)[:, None]

    def count(codes: np.ndarray) -> np.ndarray:
        return np.bincount(codes.ravel(), minlength=rows * k).reshape(rows, k)

    tp = count((offsets + t)[t == p])
    support, predicted = count(offsets + t), count(offsets + p)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros((rows, k)), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, bins: int = 10) -> float:
    """How far confidence is from accuracy, averaged over 10 confidence bins weighted by their size."""
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def plot_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, title: str, path: Path, classes: np.ndarray | None = None
) -> Path:
    """The confusion matrix as a picture, over every class the model knows (`classes`) and every label seen:
    a class the held-out set lacks still gets its row."""
    import matplotlib

    matplotlib.use("Agg")  # headless: runs on servers and in CI
    import matplotlib.pyplot as plt

    known = [] if classes is None else list(classes)
    labels = sorted(set(y_true) | set(y_pred) | set(known))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.55 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > matrix.max() / 2 else "black",
            )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def paired_difference(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, rounds: int = 2000, seed: int = 0
) -> dict[str, float]:
    """a against b on the same documents: the macro-F1 difference, and the accuracy difference with a 90%
    paired-bootstrap interval (both resampled with the same indices; the low end is a one-sided 95%
    bound). Accuracy carries the interval: on a few dozen documents spread over a dozen classes,
    macro-F1's own interval is too wide to ever exclude zero."""
    labels = np.unique(np.concatenate([y_true, pred_a, pred_b]))
    t, a, b = (np.searchsorted(labels, v) for v in (y_true, pred_a, pred_b))
    f1 = macro_f1_rows(t[None, :], a[None, :], len(labels))[0] - macro_f1_rows(t[None, :], b[None, :], len(labels))[0]
    gained = (a == t).astype(float) - (b == t).astype(float)
    idx = np.random.default_rng(seed).integers(0, len(t), (rounds, len(t)))
    low, high = np.percentile(gained[idx].mean(axis=1), [5, 95])
    return {
        "macro_f1": float(f1),
        "accuracy": float(gained.mean()),
        "accuracy_low": float(low),
        "accuracy_high": float(high),
    }
