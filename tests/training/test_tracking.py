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


class _Echo:
    """The smallest document predictor: a fixed label for every row."""

    def settings(self) -> dict:
        return {"label": "invoice"}

    def classify_frame(self, frame):
        return frame.assign(label="invoice")


def test_a_model_whose_stored_files_changed_is_refused_before_unpickling(tmp_path):
    import pytest

    tracking.setup(f"sqlite:///{tmp_path / 'm.db'}", "t", tmp_path / "art")
    with mlflow.start_run():
        uri = tracking.log_document_model(_Echo())
    version = tracking.register_challenger(uri, "digest-test", {})
    registered = f"models:/digest-test/{version.version}"
    assert isinstance(tracking.load_document_model(registered), _Echo)
    pickles = list((tmp_path / "art").rglob("python_model.pkl"))
    assert len(pickles) == 1
    pickles[0].write_bytes(pickles[0].read_bytes() + b"\n")  # one byte more: what an attacker's pickle would be
    with pytest.raises(tracking.ModelDigestError, match="differ from the digest its training run recorded"):
        tracking.load_document_model(registered)


def test_a_password_in_the_tracking_uri_is_never_shown():
    from training.tracking import shown_uri

    assert shown_uri("https://me:s3cret@mlflow.example:443/p") == "https://***@mlflow.example:443/p"
    assert shown_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert shown_uri("sqlite:////w/mlflow.db") == "sqlite:////w/mlflow.db"


def test_an_unreachable_server_is_named_without_its_password():
    import pytest

    from tests.servers import free_port

    with pytest.raises(ConnectionError, match=r"server http://\*\*\*@127\.0\.0\.1:\d+ does not answer") as err:
        tracking.check_reachable(f"http://me:s3cret@127.0.0.1:{free_port()}", timeout_s=2)
    assert "s3cret" not in str(err.value)


def test_an_interrupted_run_is_killed_in_mlflow_and_a_failed_one_failed(tmp_path):
    """Ctrl-C or SIGTERM (a KeyboardInterrupt to the conductors) leaves the pipeline run and the classifier
    run inside it KILLED, as MLflow marks a run stopped by hand; an error leaves them FAILED."""
    import pytest

    tracking.setup(f"sqlite:///{tmp_path / 'm.db'}", "t", tmp_path / "art")
    ids = {}
    for stop, error in (("interrupted", KeyboardInterrupt), ("broken", ValueError)):
        with (
            pytest.raises(error),
            tracking.pipeline_run(stop, {}, {}) as ids[stop],
            tracking.child_run(f"{stop}-logreg", {}) as ids[f"{stop}-logreg"],
        ):
            raise error
    statuses = {name: mlflow.get_run(run_id).info.status for name, run_id in ids.items()}
    assert statuses == {
        "interrupted": "KILLED",
        "interrupted-logreg": "KILLED",
        "broken": "FAILED",
        "broken-logreg": "FAILED",
    }
    assert mlflow.active_run() is None


def test_ctrl_c_while_the_gate_scores_the_champion_registers_nothing(tmp_path):
    """The champion is scored before the challenger is registered: an interrupt there used to leave a
    version registered that the gate never judged."""
    import pytest
    from mlflow.tracking import MlflowClient

    from training.classifiers import TrainConfig
    from training.gate import gate

    tracking.setup(f"sqlite:///{tmp_path / 'm.db'}", "t", tmp_path / "art")
    with mlflow.start_run():
        first, second = tracking.log_document_model(_Echo()), tracking.log_document_model(_Echo())
    config = TrainConfig(registry_model="gate-test")

    def interrupted(champion):
        raise KeyboardInterrupt

    assert gate(config, first, "logreg", 0.5, {}, interrupted).decision == "promoted"  # no champion to score
    with pytest.raises(KeyboardInterrupt):
        gate(config, second, "logreg", 0.9, {}, interrupted)
    versions = MlflowClient().search_model_versions("name='gate-test'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(tracking.champion("gate-test").version) == "1"
