"""Classifiers. Pure: arrays in, a fitted estimator out; no MLflow, no DuckDB.

Every classifier follows scikit-learn's estimator protocol (fit / predict / predict_proba / classes_),
so tracking and evaluation treat them alike and MLflow's sklearn flavour can log and load them.
Most read the embeddings; `tfidf` and `svm` read the extracted text and need no embeddings at all, so
every report shows what the embeddings add over strong bag-of-words models. On real documents (README,
"Real documents") the text models win; on the generated tiers the embedding models do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import Pipeline, make_pipeline, make_union

CLASSIFIERS = ("logreg", "sgd", "mlp", "tfidf", "svm", "fusion")
TEXT_INPUT = frozenset({"tfidf", "svm"})  # these read text, the others embedding vectors ...
FUSED_INPUT = frozenset({"fusion"})  # ... except these, which read both: a list of (text, vector) pairs
# The few hyper-parameters model selection tries besides the configured value (evaluation/selection.py).
GRID: dict[str, dict[str, tuple[float, ...]]] = {
    "logreg": {"logreg_c": (1.0, 16.0)},
    "sgd": {"sgd_alpha": (1e-5, 1e-3)},
    "tfidf": {"tfidf_c": (1.0, 100.0)},
    "svm": {"svm_c": (0.1, 10.0)},
    "fusion": {"fusion_c": (1.0, 100.0)},
}


@dataclass
class TrainConfig:
    """train.* in the config: which classifiers, their hyper-parameters, and the registry gate."""

    classifiers: list[str] = field(default_factory=lambda: list(CLASSIFIERS))  # tfidf: the no-embeddings baseline
    seed: int = 0  # the random state of every classifier and of the cross-validation folds
    # Each classifier's hyper-parameter: model selection tries this value and those GRID lists for it (above)
    # and keeps the best.
    logreg_c: float = 4.0  # logreg: inverse strength of the L2 penalty
    mlp_hidden: int = 256  # torch MLP: hidden units
    mlp_epochs: int = 60  # torch MLP: passes over the training documents
    mlp_lr: float = 0.002  # torch MLP: AdamW's learning rate
    sgd_alpha: float = 1e-4  # sgd: strength of the L2 penalty
    tfidf_max_features: int = 50000  # words (and svm's character n-grams) kept: the most frequent
    tfidf_c: float = 10.0  # tfidf: inverse strength of the logistic regression's L2 penalty
    svm_c: float = 1.0  # svm: the linear SVM's C
    fusion_c: float = 10.0  # fusion: inverse strength of the logistic regression's L2 penalty
    # How much the (unit-length) embedding counts beside the (unit-length) TF-IDF vector in `fusion`.
    fusion_weight: float = 0.5
    # Model selection: stratified k-fold cross-validation on the training documents (at most this many,
    # a stratified sample) chooses each classifier's setting and the best classifier.
    cv_folds: int = 5
    cv_max_documents: int = 3000  # the final fit uses every training document that fits in memory
    # The most memory (GiB) one final fit of a text classifier (tfidf, svm, fusion) may add; when all the
    # documents would need more, it reads the largest stratified sample that fits, and says so
    # (training/memory.py). 0 = three quarters of what is available when the fit starts.
    fit_memory_gb: float = 0.0
    # Processes fitting folds side by side (each fold of each classifier is a task); 0 = one per CPU core.
    # Only selection runs in parallel: its sample is capped, while the final fits grow with the tier and
    # would multiply the peak memory.
    cv_workers: int = 0
    # Documents that are related (one package's manuals, one customer's invoices) score too well when they
    # straddle folds. A regular expression over each training file's name: files whose first match (its
    # first group, if it has one) is the same stay in one fold. "" = plain stratified folds.
    cv_groups: str = ""
    registry_model: str = "docscale-classifier"  # its @champion alias is what predict, serve and the loop use
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
        positive = ("logreg_c", "mlp_lr", "sgd_alpha", "mlp_hidden", "mlp_epochs", "tfidf_max_features", "tfidf_c")
        for key in (*positive, "svm_c", "fusion_c", "fusion_weight", "cv_max_documents"):
            if not getattr(self, key) > 0:
                raise ValueError(f"train.{key} must be > 0; got {getattr(self, key)}")
        if not self.fit_memory_gb >= 0:
            raise ValueError(
                f"train.fit_memory_gb must be >= 0 (GiB; 0 = three quarters of the available memory); got"
                f" {self.fit_memory_gb}"
            )
        if self.cv_workers < 0:
            raise ValueError(f"train.cv_workers must be >= 0 (0 = one per CPU core); got {self.cv_workers}")
        if self.cv_folds < 2:
            raise ValueError(f"train.cv_folds must be >= 2 (stratified k-fold cross-validation); got {self.cv_folds}")
        if self.cv_groups:
            try:
                re.compile(self.cv_groups)
            except re.error as error:
                raise ValueError(
                    f"train.cv_groups is not a regular expression ({error}); e.g. '^(.*)__' groups files by"
                    " the name before their last '__', or '' for none"
                ) from None
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


class CalibratedLinearSVC(ClassifierMixin, BaseEstimator):
    """A linear SVM with probabilities: Platt scaling fitted on internal folds (CalibratedClassifierCV),
    so the drift and gate logic can read its probabilities (ECE in the README). With fewer than two
    documents in some class there are no folds to calibrate on, and a softmax of the margins stands in."""

    def __init__(self, c: float = 1.0, seed: int = 0) -> None:
        self.c = c
        self.seed = seed

    def fit(self, x: Any, y: np.ndarray) -> CalibratedLinearSVC:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import LinearSVC

        self.classes_, counts = np.unique(y, return_counts=True)
        svm = LinearSVC(C=self.c, random_state=self.seed)
        folds = min(3, int(counts.min()))
        self.model_ = CalibratedClassifierCV(svm, cv=folds, method="sigmoid") if folds >= 2 else svm
        self.model_.fit(x, y)
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        if hasattr(self.model_, "predict_proba"):
            return self.model_.predict_proba(x)
        margins = np.atleast_2d(self.model_.decision_function(x))
        if margins.shape[0] == 1 and len(self.classes_) == 2:  # binary: one margin per row
            margins = np.column_stack([-margins[0], margins[0]])
        exp = np.exp(margins - margins.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, x: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def fused_rows(texts: Any, vectors: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The input of a FUSED_INPUT classifier: one (text, embedding) pair per document."""
    return list(zip((str(t) for t in texts), np.asarray(vectors, dtype=np.float32), strict=True))


class TextAndVectors(BaseEstimator):
    """(text, embedding) pairs -> [TF-IDF of the words | weight x embedding], one sparse row each: the two
    views side by side, so a linear model weighs words and meaning together."""

    def __init__(self, max_features: int = 50000, weight: float = 0.5) -> None:
        self.max_features = max_features
        self.weight = weight

    def fit(self, rows: list[tuple[str, np.ndarray]], y: Any = None) -> TextAndVectors:
        self.tfidf_ = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=self.max_features)
        self.tfidf_.fit([text for text, _ in rows])
        return self

    def transform(self, rows: list[tuple[str, np.ndarray]]) -> Any:
        from scipy import sparse

        words = self.tfidf_.transform([text for text, _ in rows])
        vectors = np.stack([vector for _, vector in rows]) * self.weight
        return sparse.hstack([words, sparse.csr_matrix(vectors)]).tocsr()

    def fit_transform(self, rows: list[tuple[str, np.ndarray]], y: Any = None) -> Any:
        return self.fit(rows).transform(rows)


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
            LogisticRegression(C=params.tfidf_c, max_iter=2000, random_state=params.seed),
        )
    if name == "svm":
        # Words and character n-grams (robust to OCR errors, hyphenation, odd encodings), a linear SVM.
        features = params.tfidf_max_features
        return make_pipeline(
            make_union(
                TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=features),
                TfidfVectorizer(
                    sublinear_tf=True,
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    min_df=2,
                    max_features=features,
                ),
            ),
            CalibratedLinearSVC(params.svm_c, params.seed),
        )
    if name == "fusion":
        return make_pipeline(
            TextAndVectors(params.tfidf_max_features, params.fusion_weight),
            LogisticRegression(C=params.fusion_c, max_iter=3000, random_state=params.seed),
        )
    raise ValueError(f"unknown classifier {name!r}")


def train_classifier(
    name: str, x: Any, y: np.ndarray, params: TrainConfig, device: str = "cpu", final_step_only: bool = False
) -> Any:
    """device: where the torch MLP trains (the others are CPU-only); chosen by the caller for training,
    independently of where embeddings were computed. final_step_only: x is already the output of the
    classifier's feature steps (model selection fits those once per fold); fit its last step alone."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    if len(np.unique(y)) < 2:
        raise ValueError(f"cannot train {name}: the training set has {len(np.unique(y))} label(s), need >= 2")
    with warnings.catch_warnings():
        # sgd stops at max_iter on small or noisy sets; its scores (cross-validated, held-out) say what
        # that costs, and a warning per fold would bury the progress lines.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = build_classifier(name, params, device)
        if final_step_only and isinstance(model, Pipeline):
            model = model[-1]
        return model.fit(x, y)
