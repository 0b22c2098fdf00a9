"""Scoring one trained classifier on the held-out set: metrics with intervals and a confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import full_report, plot_confusion


@dataclass
class Evaluation:
    scalars: dict[str, float]  # accuracy, macro_f1 and its interval, log_loss, ece, ...
    per_class_f1: dict[str, float]
    report: str  # the classification report as text
    confusion_png: Path


def evaluate(model: Any, x: Any, y: np.ndarray, seed: int, title: str, png: Path) -> Evaluation:
    proba = model.predict_proba(x)
    classes = np.asarray(model.classes_)
    report = full_report(y, proba, classes, seed=seed)
    plot_confusion(y, classes[proba.argmax(axis=1)], title, png, classes)
    scalars = {k: v for k, v in report.items() if isinstance(v, float)}
    return Evaluation(scalars, dict(report["per_class_f1"]), report["report"], png)
