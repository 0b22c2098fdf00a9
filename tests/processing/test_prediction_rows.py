"""The rows both batch scorers write: one per file, a label only where there is text (or a copy of it)."""

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest

from processing import prediction_rows as module
from processing.prediction_rows import prediction_rows, prediction_schema, write_prediction_file


def test_each_file_gets_one_row_saying_what_its_label_rests_on_or_why_it_has_none():
    files = {
        "a.pdf": ("h1", "ok", "", ""),
        "scan.pdf": ("h2", "ok", "ocr pages 1", "ocr"),
        "copy-of-a.pdf": ("h1", "duplicate", "same bytes as a.pdf", ""),
        "locked.pdf": ("h3", "encrypted", "encrypted with a user password", ""),
    }
    probabilities = {"h1": np.array([0.2, 0.8]), "h2": np.array([0.6, 0.4])}
    schema = prediction_schema(["invoice", "contract"], with_hash=True)
    rows = prediction_rows(list(files), files, probabilities, schema).to_pylist()
    assert [r["path"] for r in rows] == list(files)
    a, scan, copy, locked = rows
    assert (a["label"], a["probability"], a["p_invoice"]) == ("contract", 0.8, 0.2)
    assert (scan["label"], scan["flags"], scan["message"]) == ("invoice", "ocr", "ocr pages 1")
    assert copy["label"] == "contract" and copy["content_hash"] == "h1"  # the same bytes: the same prediction
    assert locked["label"] is None and locked["probability"] is None and locked["p_contract"] is None
    assert locked["message"] == "encrypted with a user password"
    assert "content_hash" not in prediction_schema(["invoice"]).names


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_written_file_holds_every_row_and_says_what_it_holds(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(module, "CHUNK", 2)  # three chunks for five files: counts add up across chunks
    files = {
        "a.pdf": ("h1", "ok", "", ""),
        "b.pdf": ("h2", "ok", "", ""),
        "copy-of-a.pdf": ("h1", "duplicate", "same bytes as a.pdf", ""),
        "locked.pdf": ("h3", "encrypted", "encrypted with a user password", ""),
        "copy-of-locked.pdf": ("h3", "duplicate", "same bytes as locked.pdf", ""),
    }
    probabilities = {"h1": np.array([0.2, 0.8]), "h2": np.array([0.55, 0.45])}
    out = tmp_path / f"predictions{suffix}"
    written = write_prediction_file(out, list(files), files, probabilities, ["invoice", "contract"])
    assert written.labels == {"contract": 2, "invoice": 1} and written.predicted == 3
    assert written.without == {"encrypted": 1, "duplicate": 1}
    assert written.uncertain == 0  # 0.8, 0.8, 0.55: none under even odds
    rows = list(csv.DictReader(out.open(newline=""))) if suffix == ".csv" else pq.read_table(out).to_pylist()
    assert [r["path"] for r in rows] == list(files) and not list(tmp_path.glob("*.tmp"))
    probabilities["h2"] = np.array([0.45, 0.35, 0.2])
    three = write_prediction_file(out, ["b.pdf"], files, probabilities, ["invoice", "contract", "nda"])
    assert three.uncertain == 1 and three.labels == {"invoice": 1}
