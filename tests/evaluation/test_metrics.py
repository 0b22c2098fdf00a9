import numpy as np

from evaluation.metrics import plot_confusion, score


def test_score_macro_f1_weighs_classes_equally():
    y = np.array(["a"] * 9 + ["b"])
    predicted = np.array(["a"] * 10)
    result = score(y, predicted)
    assert result["accuracy"] == 0.9
    assert abs(result["macro_f1"] - (2 * 0.9 / 1.9) / 2) < 1e-9


def test_confusion_png_is_written(tmp_path):
    path = plot_confusion(np.array(["a", "b"]), np.array(["a", "a"]), "t", tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
