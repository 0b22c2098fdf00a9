"""processing.export_model: the copy it writes for `mlflow models serve` is the one whose digest was checked."""

from __future__ import annotations

import mlflow

from processing.export_model import main
from tests.training.test_tracking import _Echo
from training import tracking


def _registered(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.setup(uri, "t", tmp_path / "art")
    with mlflow.start_run():
        model = tracking.log_document_model(_Echo())
    tracking.register_challenger(model, "export-test", {})
    return uri


def test_the_exported_copy_is_the_checked_model(tmp_path, capsys):
    uri = _registered(tmp_path)
    out = tmp_path / "out" / "served"
    assert main(["--model", "models:/export-test/1", "--tracking-uri", uri, "--out", str(out)]) == 0
    assert (out / "MLmodel").is_file() and (out / "python_model.pkl").is_file()
    run = mlflow.MlflowClient().get_run(tracking.model_version("models:/export-test/1").run_id)
    assert tracking.model_digest(out) == run.data.tags[tracking.DIGEST_TAG]
    assert "mlflow models serve -m" in capsys.readouterr().out
    assert main(["--model", "models:/export-test/1", "--tracking-uri", uri, "--out", str(out)]) == 2  # never merged


def test_a_tampered_model_is_one_line_and_nothing_is_written(tmp_path, capsys):
    uri = _registered(tmp_path)
    capsys.readouterr()  # MLflow's own registration messages
    (pickle,) = (tmp_path / "art").rglob("python_model.pkl")
    pickle.write_bytes(pickle.read_bytes() + b"\n")
    out = tmp_path / "out" / "served"
    assert main(["--model", "models:/export-test/1", "--tracking-uri", uri, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ from the digest its training run recorded" in err[0], err
    assert list((tmp_path / "out").iterdir()) == []  # no copy, no leftover download


def test_an_unknown_model_is_one_line(tmp_path, capsys):
    uri = _registered(tmp_path)
    capsys.readouterr()
    assert main(["--model", "models:/no-such-model@champion", "--tracking-uri", uri, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: models:/no-such-model@champion"), err
