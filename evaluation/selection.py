"""Model selection by stratified k-fold cross-validation. Pure: arrays (or texts) in, scores out.
It lives in evaluation because it scores classifiers; training only fits them.

One 20% split of a few hundred real documents scores a classifier on ~40 of them, an interval of
+-0.1 macro-F1: it picks noise. Cross-validation scores every training document once, so selection
holds on small real corpora. Folds run on a stratified sample of at most `cv_max_documents` documents:
at 75k that keeps selection a minute, not an hour; the chosen setting is then fitted on all of them.
Related documents (`train.cv_groups`) are kept in one fold, so that the score is for documents unlike
the ones trained on, as a user's next documents will be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from evaluation.metrics import bootstrap_macro_f1, score
from training.classifiers import GRID, TrainConfig, build_classifier, train_classifier


@dataclass(frozen=True)
class CvScore:
    """Macro-F1 of the out-of-fold predictions of one classifier setting, with a 95% interval."""

    macro_f1: float
    low: float
    high: float
    accuracy: float
    folds: int
    documents: int
    params: dict[str, float]  # the hyper-parameters this score is for
    groups: int = 0  # how many groups of related documents the folds kept whole (0: none given)

    def scalars(self) -> dict[str, float]:
        return {
            "cv_macro_f1": self.macro_f1,
            "cv_macro_f1_low": self.low,
            "cv_macro_f1_high": self.high,
            "cv_accuracy": self.accuracy,
            "cv_folds": float(self.folds),
            "cv_documents": float(self.documents),
            "cv_groups": float(self.groups),
        }


def cv_sample(y: np.ndarray, max_documents: int, seed: int) -> np.ndarray:
    """Row indices of a stratified sample of at most max_documents rows (all rows when fewer)."""
    rows = np.arange(len(y))
    if len(y) <= max_documents:
        return rows
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    sample, _ = train_test_split(rows, train_size=max_documents, stratify=stratify, random_state=seed)
    return np.sort(sample)


def folds_for(y: np.ndarray, wanted: int, groups: np.ndarray | None = None) -> int:
    """As many folds as wanted, but no more than the rarest class has members, or groups when groups are
    given (0: cannot cross-validate)."""
    labels, counts = np.unique(y, return_counts=True)
    if groups is not None:  # a class spread over k groups can reach at most k folds
        counts = np.array([len(set(groups[y == label])) for label in labels])
    folds = min(wanted, int(counts.min())) if len(counts) >= 2 else 0
    return folds if folds >= 2 else 0


def groups_of(names: list[str], pattern: str) -> np.ndarray | None:
    """Each file's group: the first match of `pattern` in its file name (the match's first group when
    the pattern has one); a name without a match is a group of its own. None when no pattern is set."""
    if not pattern:
        return None
    compiled = re.compile(pattern)
    out = []
    for row, name in enumerate(names):
        found = compiled.search(PurePath(name).name)
        # "=" and "#" keep a matched text from ever equalling an unmatched row's own group.
        out.append(f"={found.group(1) if compiled.groups else found.group(0)}" if found else f"#{row}")
    return np.asarray(out, dtype=object)


def cross_validate(
    name: str, x: Any, y: np.ndarray, config: TrainConfig, device: str = "cpu", groups: np.ndarray | None = None
) -> CvScore | None:
    """Out-of-fold macro-F1 of `name` with `config`'s hyper-parameters; None when some class has
    fewer than two documents (or groups): nothing to cross-validate."""
    return cross_validate_settings(name, x, y, [config], device, groups)[0]


def cross_validate_settings(
    name: str,
    x: Any,
    y: np.ndarray,
    candidates: list[TrainConfig],
    device: str = "cpu",
    groups: np.ndarray | None = None,
) -> list[CvScore | None]:
    """Out-of-fold macro-F1 of each candidate setting, on the same folds (of candidates[0]'s sample).
    With `groups` (one per row of x), rows of one group never straddle folds.

    The grid only varies the last step of a pipeline (a C or alpha), so each fold's features (TF-IDF
    over words and character n-grams: most of a text classifier's fitting time) are fitted once and
    shared by every candidate: 3x less work for a three-value grid, the same scores."""
    config = candidates[0]
    rows = cv_sample(y, config.cv_max_documents, config.seed)
    x_cv, y_cv = _take(x, rows), y[rows]
    groups_cv = groups[rows] if groups is not None else None
    folds = folds_for(y_cv, config.cv_folds, groups_cv)
    if folds == 0:
        return [None] * len(candidates)
    predicted = [np.empty(len(y_cv), dtype=object) for _ in candidates]
    if groups_cv is None:
        splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=config.seed)
    else:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=config.seed)
    for fit_rows, score_rows in splitter.split(np.zeros(len(y_cv)), y_cv, groups_cv):
        x_fit, y_fit, x_score = _take(x_cv, fit_rows), y_cv[fit_rows], _take(x_cv, score_rows)
        features: tuple[Any, Any] | None = None
        for out, setting in zip(predicted, candidates, strict=True):
            model = build_classifier(name, setting, device)
            if not isinstance(model, Pipeline):
                out[score_rows] = train_classifier(name, x_fit, y_fit, setting, device).predict(x_score)
                continue
            if features is None:  # the same for every candidate: fitted once per fold
                prepare = model[:-1].fit(x_fit, y_fit)
                features = (prepare.transform(x_fit), prepare.transform(x_score))
            final = train_classifier(name, features[0], y_fit, setting, device, final_step_only=True)
            out[score_rows] = final.predict(features[1])
    truth = y_cv.astype(str)
    scores = []
    for out, setting in zip(predicted, candidates, strict=True):
        guessed = out.astype(str)
        low, high = bootstrap_macro_f1(truth, guessed, seed=setting.seed)
        figures = score(truth, guessed)
        params = {key: float(getattr(setting, key)) for key in GRID.get(name, {})}
        n_groups = len(set(groups_cv)) if groups_cv is not None else 0
        scores.append(CvScore(figures["macro_f1"], low, high, figures["accuracy"], folds, len(rows), params, n_groups))
    return scores


def select_setting(
    name: str, x: Any, y: np.ndarray, config: TrainConfig, device: str = "cpu", groups: np.ndarray | None = None
) -> tuple[TrainConfig, CvScore | None]:
    """The classifier's hyper-parameters (from GRID) with the best cross-validated macro-F1, as a
    TrainConfig to fit with, and that score. Ties go to the first setting, the config's own."""
    candidates = settings(name, config)
    scored = cross_validate_settings(name, x, y, candidates, device, groups)
    if scored[0] is None:
        return config, None
    best = max(range(len(candidates)), key=lambda i: (scored[i].macro_f1, -i))
    return candidates[best], scored[best]


def settings(name: str, config: TrainConfig) -> list[TrainConfig]:
    """The config itself, then one config per other grid value of the classifier's hyper-parameter."""
    out = [config]
    for key, values in GRID.get(name, {}).items():
        out += [replace(config, **{key: v}) for v in values if v != getattr(config, key)]
    return out


def _take(x: Any, rows: np.ndarray) -> Any:
    return x[rows] if isinstance(x, np.ndarray) else [x[i] for i in rows]
