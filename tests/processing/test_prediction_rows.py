"""The rows both batch scorers write: one per file, a label only where there is text (or a copy of it)."""

import numpy as np

from processing.prediction_rows import prediction_rows, prediction_schema


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
