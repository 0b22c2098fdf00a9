"""Training one classifier: arrays (or texts) in, a fitted model and its cost out. Pure: no MLflow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.classifiers import TrainConfig, train_classifier


@dataclass
class Trained:
    name: str
    model: Any
    seconds: float


def fit(name: str, x: Any, y: np.ndarray, config: TrainConfig, device: str) -> Trained:
    start = time.perf_counter()
    model = train_classifier(name, x, y, config, device)
    return Trained(name, model, time.perf_counter() - start)
