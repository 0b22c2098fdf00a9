"""Model selection by stratified k-fold cross-validation (evaluation/selection.py)."""

import numpy as np
import pytest

from evaluation.selection import cross_validate, cv_sample, folds_for, select_setting, settings
from training.classifiers import GRID, TrainConfig


def _noisy_blobs(seed: int, n: int = 40, spread: float = 2.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8))
    y = np.repeat(np.array(["a", "b", "c"]), n)
    x = centres[np.repeat(np.arange(3), n)] + spread * rng.normal(size=(3 * n, 8))
    return x.astype(np.float32), y


def test_cross_validation_scores_every_document_once_with_an_interval():
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["a", "b", "c"]), 30)
    x = (np.eye(3)[np.repeat(np.arange(3), 30)] * 6 + rng.normal(size=(90, 3))).astype(np.float32)
    easy = cross_validate("logreg", x, y, TrainConfig())
    assert easy is not None and easy.folds == 5 and easy.documents == 90
    assert easy.macro_f1 > 0.95 and easy.low <= easy.macro_f1 <= easy.high
    hard = cross_validate("logreg", *_noisy_blobs(0, spread=20.0), TrainConfig())
    assert hard.macro_f1 < easy.macro_f1 - 0.2  # noise-level data scores near chance, not near 1


def test_a_class_with_one_document_cannot_be_cross_validated():
    x, y = _noisy_blobs(1)
    y = y.copy()
    y[0] = "lonely"
    assert folds_for(y, 5) == 0
    assert cross_validate("logreg", x, y, TrainConfig()) is None
    assert folds_for(np.array(["a", "a", "b", "b", "b"]), 5) == 2  # as many folds as the rarest class allows


def test_the_sample_is_stratified_and_bounded():
    y = np.array(["a"] * 900 + ["b"] * 100)
    rows = cv_sample(y, 200, seed=0)
    assert len(rows) == 200 and len(set(rows)) == 200
    assert 15 <= (y[rows] == "b").sum() <= 25  # the class mix of the whole
    assert len(cv_sample(y, 5000, seed=0)) == 1000


@pytest.mark.parametrize("name", ["logreg", "sgd"])
def test_selection_keeps_the_setting_with_the_best_cross_validated_score(name):
    x, y = _noisy_blobs(2)
    config = TrainConfig()
    candidates = settings(name, config)
    assert len(candidates) == 1 + len(next(iter(GRID[name].values())))
    scores = [cross_validate(name, x, y, c).macro_f1 for c in candidates]
    chosen, scored = select_setting(name, x, y, config)
    assert scored.macro_f1 == max(scores)
    assert chosen == candidates[scores.index(max(scores))]
    assert scored.params == {k: getattr(chosen, k) for k in GRID[name]}


def test_bad_selection_settings_name_the_key():
    with pytest.raises(ValueError, match="train.cv_folds must be >= 2"):
        TrainConfig(cv_folds=1).validate()
    with pytest.raises(ValueError, match="train.cv_max_documents must be > 0"):
        TrainConfig(cv_max_documents=0).validate()
