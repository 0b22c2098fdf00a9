"""Classifiers. Pure: arrays in, a fitted estimator out; no MLflow, no DuckDB.

Every classifier follows scikit-learn's estimator protocol (fit / predict / predict_proba / classes_),
so tracking and evaluation treat them alike and MLflow's sklearn flavour can log and load them.
Most read the embeddings; `tfidf` reads the extracted text and needs no embeddings at all, so every
report shows what the embeddings add over a strong bag-of-words baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline

CLASSIFIERS = ("logreg", "sgd", "mlp", "tfidf")
TEXT_INPUT = frozenset({"tfidf"})  # these read text, the others embedding vectors


@dataclass
class TrainConfig:
    """train.* in the config: which classifiers, their hyper-parameters, and the registry gate."""

    classifiers: list[str] = field(default_factory=lambda: list(CLASSIFIERS))  # tfidf: the no-embeddings baseline
    seed: int = 0
    logreg_c: float = 4.0
    mlp_hidden: int = 256
    mlp_epochs: int = 60
    mlp_lr: float = 0.002
    sgd_alpha: float = 1e-4
    tfidf_max_features: int = 50000
    registry_model: str = "docscale-classifier"
    promotion_margin: float = 0.005  # a challenger must beat the champion's held-out macro-F1 by this much
    # In the loop (processing.cycle) a challenger must also not lose more than this on the fixed held-out set.
    heldout_tolerance: float = 0.01

    def validate(self) -> None:
        """Raise ValueError naming the key, before any work starts."""
        if not self.classifiers:
            raise ValueError("train.classifiers is empty: name at least one of " + ", ".join(CLASSIFIERS))
        for name in self.classifiers:
            if name not in CLASSIFIERS:
                raise ValueError(f"train.classifiers: unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}")
        for key in ("logreg_c", "mlp_lr", "sgd_alpha", "mlp_hidden", "mlp_epochs", "tfidf_max_features"):
            if not getattr(self, key) > 0:
                raise ValueError(f"train.{key} must be > 0; got {getattr(self, key)}")
        if not -1.0 <= self.promotion_margin <= 1.0:  # a macro-F1 difference; -1 promotes every challenger
            raise ValueError(
                f"train.promotion_margin must be in [-1, 1] (a macro-F1 difference); got {self.promotion_margin}"
            )
        if not 0.0 <= self.heldout_tolerance <= 1.0:
            raise ValueError(
                f"train.heldout_tolerance must be in [0, 1] (a macro-F1 drop); got {self.heldout_tolerance}"
            )
        if not self.registry_model.strip():
            raise ValueError("train.registry_model must name the registered model, e.g. docscale-classifier")


class TorchMLP(ClassifierMixin, BaseEstimator):
    """One hidden layer, dropout, AdamW, full-batch-ish mini-batches. Small enough to train in seconds.

    The fitted network is kept on the CPU so that pickling (and MLflow logging) never needs a GPU.
    """

    def __init__(
        self,
        hidden: int = 256,
        epochs: int = 60,
        lr: float = 0.002,
        seed: int = 0,
        device: str = "cpu",
        batch_size: int = 256,
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.seed = seed
        self.device = device
        self.batch_size = batch_size

    def fit(self, x: np.ndarray, y: np.ndarray) -> TorchMLP:
        import torch
        from torch import nn

        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        self.classes_ = np.unique(y)
        targets = torch.as_tensor(np.searchsorted(self.classes_, y))
        inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
        net = nn.Sequential(
            nn.Linear(inputs.shape[1], self.hidden),
            nn.GELU(),
            nn.Dropout(0.2),
            nn.Linear(self.hidden, len(self.classes_)),
        ).to(self.device)
        optimiser = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-2)
        loss_fn = nn.CrossEntropyLoss()
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), self.batch_size):
                idx = order[start : start + self.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(net(inputs[idx].to(self.device)), targets[idx].to(self.device))
                loss.backward()
                optimiser.step()
        self.net_ = net.cpu().eval()
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.net_(torch.as_tensor(np.asarray(x, dtype=np.float32)))
            return torch.softmax(logits, dim=1).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def build_classifier(name: str, params: TrainConfig, device: str = "cpu") -> Any:
    if name == "logreg":
        return LogisticRegression(C=params.logreg_c, max_iter=2000, random_state=params.seed)
    if name == "mlp":
        return TorchMLP(params.mlp_hidden, params.mlp_epochs, params.mlp_lr, params.seed, device)
    if name == "sgd":
        # modified_huber: a linear SVM's margin loss that still yields probabilities (for log-loss, ECE).
        return SGDClassifier(
            loss="modified_huber", alpha=params.sgd_alpha, max_iter=300, tol=1e-4, random_state=params.seed
        )
    if name == "tfidf":
        return make_pipeline(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=params.tfidf_max_features),
            LogisticRegression(C=10.0, max_iter=2000, random_state=params.seed),
        )
    raise ValueError(f"unknown classifier {name!r}")


def train_classifier(name: str, x: Any, y: np.ndarray, params: TrainConfig, device: str = "cpu") -> Any:
    """device: where the torch MLP trains (the others are CPU-only); chosen by the caller for training,
    independently of where embeddings were computed."""
    if len(np.unique(y)) < 2:
        raise ValueError(f"cannot train {name}: the training set has {len(np.unique(y))} label(s), need >= 2")
    return build_classifier(name, params, device).fit(x, y)
