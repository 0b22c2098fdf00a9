"""The loop's decisions as pure functions: when to retrain, and when a challenger wins."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.metrics import paired_difference
from evaluation.triggers import Evidence, retrain_reason
from training.gate import Challenge, judge

RULES = {"min_labels": 20, "label_count": 500, "f1_drop": 0.05, "streak": 3}


def _perf(f1: float, f1_high: float, accuracy_high: float, champion_accuracy: float = 0.85) -> dict[str, float]:
    return {
        "labelled": 100, "macro_f1": f1, "macro_f1_high": f1_high, "accuracy": accuracy_high - 0.05,
        "accuracy_high": accuracy_high, "champion_macro_f1": 0.8, "champion_accuracy": champion_accuracy,
    }  # fmt: skip


NONE: dict[str, float] = {}


@pytest.mark.parametrize(
    ("evidence", "fires"),
    [
        (Evidence(False, 0, 0, NONE), None),
        (Evidence(True, 1, 5, NONE), None),  # drift, too few labels: drift_no_labels
        (Evidence(True, 1, 20, NONE), "drift with 20"),
        (Evidence(False, 3, 25, NONE), "drift with 25"),  # a streak counts as drift
        (Evidence(False, 0, 500, NONE), "500 new labelled"),
        (Evidence(False, 0, 30, _perf(0.70, 0.75, 0.80)), "below the champion"),
        (Evidence(False, 0, 30, _perf(0.77, 0.82, 0.80)), None),  # a drop within the tolerance
        (Evidence(False, 0, 30, _perf(0.70, 0.75, 0.90)), None),  # noisy: accuracy may well be the champion's
        (Evidence(False, 0, 30, _perf(0.70, 0.85, 0.80, float("nan"))), None),  # no accuracy record: F1's interval
        (Evidence(False, 0, 0, NONE, on_demand=True), "on demand"),
    ],
)
def test_retrain_triggers(evidence, fires):
    reason = retrain_reason(evidence, **RULES)
    assert (reason is None) if fires is None else (fires in reason)


def test_a_challenger_wins_only_with_a_margin_a_sure_gain_and_no_heldout_regression():
    sure = Challenge(100, 0.06, 0.15, 0.08, 0.22, heldout_challenger=0.80, heldout_champion=0.80)
    assert judge(sure, margin=0.005, tolerance=0.01)[0]
    unsure = Challenge(100, 0.06, 0.02, -0.03, 0.07, heldout_challenger=0.80, heldout_champion=0.80)
    assert "including 0" in judge(unsure, 0.005, 0.01)[1]
    small = Challenge(100, 0.003, 0.1, 0.05, 0.15, heldout_challenger=0.80, heldout_champion=0.80)
    assert "not above margin" in judge(small, 0.005, 0.01)[1]
    regress = Challenge(100, 0.06, 0.15, 0.08, 0.22, heldout_challenger=0.75, heldout_champion=0.80)
    assert "held-out macro-F1 drops" in judge(regress, 0.005, 0.01)[1]
    assert not judge(Challenge(0, *[float("nan")] * 4, 0.8, 0.8), 0.005, 0.01)[0]


def test_paired_difference_sees_a_real_gain_and_not_a_coin_flip():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 80)
    b = np.where(rng.random(80) < 0.6, y, (y + 1) % 4)  # 60% right
    a = np.where(rng.random(80) < 0.5, y, b)  # fixes about half of b's mistakes
    better = paired_difference(y, a, b)
    assert better["accuracy"] > 0.1 and better["accuracy_low"] > 0 and better["macro_f1"] > 0
    same = paired_difference(y, b, b)
    assert same["accuracy"] == same["accuracy_low"] == 0.0
