"""processing.run says when a final fit's memory estimate is over train.fit_memory_gb: in its log and on
the classifier's MLflow run (training/memory.py decides; this is the wiring)."""

from __future__ import annotations

import contextlib
import re

from mlflow.tracking import MlflowClient

from processing.run import main as run_main


def test_a_fit_over_its_memory_budget_is_reported_in_the_log_and_on_its_mlflow_run(tmp_path, capsys):
    workspace = tmp_path / "ws"
    settings = [
        "engine.executor=local",
        "train.classifiers=tfidf",
        "corpus.heldout_size=40",
        "train.fit_memory_gb=1e-6",
    ]
    with contextlib.redirect_stdout(None):
        assert (
            run_main(["--tier", "50", "--workspace", str(workspace), *(x for s in settings for x in ("--set", s))]) == 0
        )
    logged = capsys.readouterr().err
    # 50 documents are under the smallest sample, so all are read, and the log says what was over the budget.
    line = re.search(
        r"train: tfidf fitted on all (\d+) documents though they may need ~[\d.]+ GiB, over "
        r"train.fit_memory_gb \(0.00 GiB\): a sample is never under 200",
        logged,
    )
    assert line, logged
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    (child,) = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.classifier = 'tfidf'")
    assert child.data.tags["fit_note"].startswith(f"fitted on all {line.group(1)} documents")
    parent = client.get_run(child.data.tags["mlflow.parentRunId"])
    assert parent.data.metrics["tfidf.train_documents_fitted"] == int(line.group(1))
