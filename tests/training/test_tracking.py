"""Labels from users' folders become MLflow metric keys: any text must log, the label itself unchanged."""

from __future__ import annotations

import mlflow

from training import tracking


def test_metric_keys_from_any_label_are_accepted_by_mlflow(tmp_path):
    labels = ["R&D (legacy)", "lab/../report", "/abs", "naïve", "a:b"]
    keys = [tracking.metric_key(f"f1.{label}") for label in labels]
    assert all(".." not in k and not k.startswith("/") for k in keys)
    assert len(set(keys)) == len(keys)
    tracking.setup(f"sqlite:///{tmp_path / 'm.db'}", "t", tmp_path / "art")
    with mlflow.start_run() as run:
        tracking.log_metrics({f"f1.{label}": 0.5 for label in labels})
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert set(logged) == set(keys)
