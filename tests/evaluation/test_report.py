"""The printed run summary says which version is the champion after the gate, and where to look next."""

from evaluation.report import format_summary, registry_line

BASE = {"registry_model": "docscale-classifier", "challenger": "svm", "margin": 0.005}


def test_first_model_becomes_the_champion() -> None:
    line = registry_line(
        {
            **BASE,
            "challenger_version": "1",
            "challenger_macro_f1": 0.7,
            "decision": "promoted",
            "reason": "no champion yet",
        }
    )
    assert line == "registry docscale-classifier: svm registered as version 1, promoted (no champion yet)"


def test_a_challenger_that_does_not_win_leaves_the_champion_named() -> None:
    decision = {
        **BASE,
        "challenger_version": "4",
        "challenger_macro_f1": 0.678,
        "champion_version": "1",
        "champion_macro_f1": 0.6781,
        "champion_scored": "rescored on this held-out set",
        "decision": "kept_champion",
        "reason": "does not beat champion by more than 0.005",
    }
    line = registry_line(decision)
    assert "version 1 stays the champion" in line
    assert "0.678 against version 1's 0.678 (rescored on this held-out set;" in line
    promoted = registry_line({**decision, "challenger_macro_f1": 0.9, "decision": "promoted", "reason": "beats"})
    assert "registered as version 4, now the champion: macro-F1 0.900 against version 1's" in promoted


def test_summary_prints_the_registry_line_after_the_classifiers() -> None:
    summary = {
        "run_id": "r",
        "tier": "50",
        "device": "cpu",
        "documents": 2,
        "train_documents": 1,
        "heldout_documents": 500,
        "failed": {},
        "work": {},
        "feature_version": "fv-1",
        "feature_version_created": True,
        "mlflow_run_id": "m",
        "classifiers": {"svm": {"accuracy": 1.0, "macro_f1": 1.0, "ece": 0.0, "train_seconds": 0.1}},
        "best_classifier": "svm",
        "registry": {
            **BASE,
            "challenger_version": "1",
            "challenger_macro_f1": 1.0,
            "decision": "promoted",
            "reason": "no champion yet",
        },
        "stage_seconds": {"train": 0.1},
        "workspace": "/w",
        "tracking_uri": "sqlite:////w/mlflow.db",
    }
    lines = format_summary(summary).splitlines()
    svm_row = next(i for i, line in enumerate(lines) if line.startswith("svm "))
    assert lines[svm_row + 1].startswith("registry docscale-classifier: svm registered as version 1")
    assert lines[svm_row + 2].startswith("reports /w/reports/r/ (confusion_*.png")
    assert lines[svm_row + 3] == "browse  mlflow ui --backend-store-uri sqlite:////w/mlflow.db"
    unlabelled = {"files": 3, "predicted": 1, "without_prediction": {"not_pdf": 1, "corrupt": 1}}
    told_where = format_summary({**summary, "unlabelled": unlabelled, "predictions": "/w/reports/r/predictions.csv"})
    assert told_where.splitlines()[svm_row + 3 : svm_row + 5] == [
        "predictions: 3 files without a label, 1 predicted -> /w/reports/r/predictions.csv"
        " (without a prediction: corrupt 1, not_pdf 1)",
        lines[svm_row + 3],
    ]
    assert not any(line.startswith("weakest") for line in lines)
    f1s = {"invoice": 0.9, "nda": 0.4, "contract": 0.55, "receipt": 0.4}
    weakest = format_summary({**summary, "best_classifier": "svm", "best_per_class_f1": f1s}).splitlines()
    assert "weakest classes on the held-out set (svm, F1): nda 0.40, receipt 0.40, contract 0.55" in weakest
    three = {k: v for k, v in f1s.items() if k != "receipt"}
    assert not any(
        line.startswith("weakest") for line in format_summary({**summary, "best_per_class_f1": three}).splitlines()
    )
    remote = format_summary({**summary, "tracking_uri": "http://127.0.0.1:5000"})
    assert "browse  http://127.0.0.1:5000" in remote.splitlines()
    assert not any(line.startswith("held-out:") for line in lines)
    few = format_summary({**summary, "heldout_documents": 3}).splitlines()
    assert few[svm_row + 1] == "held-out: only 3 documents, too few for its figures to say much"
    with_cv = {
        "svm": {**summary["classifiers"]["svm"], "cv_macro_f1": 0.6, "cv_macro_f1_low": 0.4, "cv_macro_f1_high": 0.8}
    }
    told = format_summary({**summary, "heldout_documents": 3, "classifiers": with_cv}).splitlines()
    assert told[svm_row + 2].endswith("too few for its figures to say much; the cv column is the better guide")
