import warnings

import numpy as np

from evaluation.metrics import expected_calibration_error, full_report, plot_confusion, score


def test_score_macro_f1_weighs_classes_equally():
    y = np.array(["a"] * 9 + ["b"])
    predicted = np.array(["a"] * 10)
    result = score(y, predicted)
    assert result["accuracy"] == 0.9
    assert abs(result["macro_f1"] - (2 * 0.9 / 1.9) / 2) < 1e-9


def test_confusion_png_is_written(tmp_path):
    path = plot_confusion(np.array(["a", "b"]), np.array(["a", "a"]), "t", tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_held_out_set_of_one_class_still_gets_every_class_and_no_warning(tmp_path):
    """A small folder's held-out split can hold one class only: scikit-learn warned on every classifier."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_confusion(np.array(["a", "a"]), np.array(["a", "a"]), "t", tmp_path / "c.png", np.array(["a", "b"]))


def test_calibration_error_separates_honest_from_overconfident():
    classes = np.array(["a", "b"])
    y = np.array(["a"] * 8 + ["b"] * 2)
    honest = np.tile([0.8, 0.2], (10, 1))  # says 80%, is right 80% of the time
    overconfident = np.tile([0.99, 0.01], (10, 1))
    assert expected_calibration_error(y, honest, classes) < 0.01
    assert expected_calibration_error(y, overconfident, classes) > 0.15


def test_full_report_interval_brackets_the_estimate():
    rng = np.random.default_rng(1)
    classes = np.array(["a", "b", "c"])
    y = rng.choice(classes, 200)
    proba = rng.dirichlet([1, 1, 1], 200)
    proba[np.arange(200), np.searchsorted(classes, y)] += 0.8  # mostly right
    proba /= proba.sum(axis=1, keepdims=True)
    report = full_report(y, proba, classes)
    assert report["macro_f1_low"] < report["macro_f1"] < report["macro_f1_high"]
    assert set(report["per_class_f1"]) == {"a", "b", "c"} and report["log_loss"] > 0
    assert "precision" in report["report"]


def test_log_loss_matches_sklearn_and_survives_unseen_classes():
    from sklearn.metrics import log_loss

    from evaluation.metrics import log_loss_any

    classes = np.array(["a", "b"])
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    y = np.array(["a", "b", "b"])
    assert abs(log_loss_any(y, proba, classes) - log_loss(y, proba, labels=list(classes))) < 1e-9
    assert log_loss_any(np.array(["a", "c"]), proba[:2], classes) > 8  # "c" was never seen: p = 1e-7


def test_vectorised_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    from evaluation.metrics import macro_f1_rows

    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 5, (20, 40)), rng.integers(0, 4, (20, 40))
    expected = [f1_score(t[i], p[i], average="macro", zero_division=0) for i in range(20)]
    np.testing.assert_allclose(macro_f1_rows(t, p, 5), expected)
