"""The real-documents benchmark's calibration figure: the champion's ECE on the files it scored, read from
processing.predict's Parquet columns, with files it could not score left out rather than counted."""

import pandas as pd
import pytest

from tests.scripts import load_script


def predictions(confidence: float) -> pd.DataFrame:
    """Four scored files, three of them right, each at the same confidence; one file without a prediction."""
    rest = 1.0 - confidence
    return pd.DataFrame(
        {
            "path": ["/c/a/1.pdf", "/c/a/2.pdf", "/c/b/3.pdf", "/c/b/4.pdf", "/c/b/5.pdf"],
            "label": ["a", "a", "b", "a", None],
            "p_a": [confidence, confidence, rest, confidence, None],
            "p_b": [rest, rest, confidence, rest, None],
        }
    )


def test_the_champions_ece_is_the_gap_between_its_confidence_and_its_accuracy():
    bench = load_script("bench_real")
    truth = {
        bench.where(f"/c/{label}/{n}.pdf"): label for label, n in [("a", 1), ("a", 2), ("b", 3), ("b", 4), ("b", 5)]
    }
    # Right on 3 of the 4 it scored: calibrated at 0.75, 0.2 off at 0.95, 0.15 off at 0.6.
    assert bench.champion_ece(predictions(0.75), truth) == pytest.approx(0.0)
    assert bench.champion_ece(predictions(0.95), truth) == pytest.approx(0.2)
    assert bench.champion_ece(predictions(0.6), truth) == pytest.approx(0.15)
