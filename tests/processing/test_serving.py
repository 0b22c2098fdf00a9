"""Serving: the registered champion is a self-contained pyfunc; `mlflow models serve` and
`processing.serve` classify the 500 held-out PDFs exactly as processing.run did, with no feature store,
using the extractor the model was trained with (pypdf here, not the default pypdfium2)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from processing.export_model import main as export_main
from processing.run import main as run_main
from processing.serve import main as serve_main
from tests.conftest import SHARED
from tests.servers import free_port, wait_http
from training.classifiers import CLASSIFIERS

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODEL = "models:/docscale-classifier@champion"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tier 50 trained with extract.backend=pypdf; then the feature store is moved away (no workspace)."""
    workspace = tmp_path_factory.mktemp("serving") / "ws"
    args = ["--tier", "50", "--workspace", str(workspace), "--device", "cpu"]
    settings = ["engine.executor=local", "train.classifiers=logreg", "extract.backend=pypdf", "extract.fallback="]
    with contextlib.redirect_stdout(None):
        assert run_main([*args, *(x for s in settings for x in ("--set", s))]) == 0
    (workspace / "features.duckdb").rename(workspace.parent / "features-moved-away.duckdb")
    heldout = sorted((workspace / "corpus").glob("*/heldout/*.pdf"))
    (report,) = workspace.glob("reports/*/heldout_predictions.csv")
    expected = {row["content_hash"]: row["predicted"] for row in csv.DictReader(report.open())}
    return workspace, heldout, expected


def _env(workspace: Path) -> dict[str, str]:
    # PATH as an activated venv has it: `mlflow models serve` starts the `uvicorn` it finds there.
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}"}


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"content-type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except json.JSONDecodeError:  # e.g. MLflow's plain-text "Request processing time exceeded limit"
            return exc.code, {"error": text}


def _mismatches(paths: list[Path], labels: list[str], expected: dict[str, str]) -> list[str]:
    return [p.name for p, label in zip(paths, labels, strict=True) if expected[_digest(p)] != label]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _server(command: list[str], env: dict[str, str], health: str):
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(health, seconds=180)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_mlflow_models_serve_reproduces_the_runs_heldout_predictions(trained, tmp_path):
    """Served as the README says: the champion copied out by processing.export_model (digest checked)."""
    workspace, heldout, expected = trained
    assert len(heldout) == 500 and not (workspace / "features.duckdb").exists()
    checked = tmp_path / "served-model"
    assert export_main(["--workspace", str(workspace), "--out", str(checked)]) == 0
    port = free_port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", str(checked), "--env-manager", "local"]
    # 500 PDFs in one request: past MLflow's 60 s request limit on a loaded 2-core machine (README, Serving).
    env = {**_env(workspace), "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "900"}
    with _server([*command, "-h", "127.0.0.1", "-p", str(port)], env, f"http://127.0.0.1:{port}/ping"):
        records = json.dumps({"dataframe_records": [{"path": str(p)} for p in heldout]}).encode()
        status, body = _post(f"http://127.0.0.1:{port}/invocations", records, "application/json")
    assert status == 200, body
    rows = body["predictions"]
    assert {r["backend"] for r in rows} == {"pypdf"}, "the model must extract with its own backend"
    assert _mismatches(heldout, [r["label"] for r in rows], expected) == []


def test_processing_serve_classifies_like_the_run_and_turns_bad_input_into_4xx(trained):
    workspace, heldout, expected = trained
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "processing.serve", "--workspace", str(workspace), "--port", str(port)]
    command += ["--paths-under", str(workspace / "corpus")]  # JSON paths: the corpus' files only
    with _server(command, _env(workspace), f"{url}/healthz") as proc:
        status, body = _post(
            f"{url}/v1/classify", json.dumps({"paths": [str(p) for p in heldout]}).encode(), "application/json"
        )
        assert status == 200 and body["model_version"] == "1"
        assert {r["backend"] for r in body["results"]} == {"pypdf"}
        assert _mismatches(heldout, [r["label"] for r in body["results"]], expected) == []

        one = heldout[0]
        status, single = _post(f"{url}/v1/classify", one.read_bytes(), "application/pdf")
        assert status == 200 and single["label"] == expected[_digest(one)]
        boundary = "docscale-test-boundary"
        multipart = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{one.name}"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + one.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, uploaded = _post(f"{url}/v1/classify", multipart, f"multipart/form-data; boundary={boundary}")
        assert status == 200 and uploaded["label"] == single["label"] and uploaded["path"] == one.name

        encrypted = (
            SHARED / "corpora/pypdf-sample-files/005-libreoffice-writer-password_libreoffice-writer-password.pdf"
        )
        cases = [
            (b"just text", "application/pdf", 415, "not_pdf"),
            (b"", "application/pdf", 400, None),
            (b"x", "text/plain", 415, None),
            (b"{not json", "application/json", 400, None),
            (b'{"paths": []}', "application/json", 400, None),
            (json.dumps({"paths": [str(workspace / "mlflow.db")]}).encode(), "application/json", 403, None),
            (b"%PDF-1.4 " + b"0" * (50 * 1024 * 1024), "application/pdf", 413, "too_large"),
            (encrypted.read_bytes(), "application/pdf", 422, "encrypted"),
        ]
        for data, kind, code, outcome in cases:
            status, answer = _post(f"{url}/v1/classify", data, kind)
            assert status == code, (kind, data[:20], answer)
            assert "\n" not in answer["error"] and answer.get("outcome") == outcome

        with urllib.request.urlopen(f"{url}/healthz") as response:
            health = json.loads(response.read())
        assert health["version"] == "1" and health["classifier"] in CLASSIFIERS
        assert health["feature_version"].startswith("fv-")
        status, reloaded = _post(f"{url}/v1/reload", b"", "application/json")
        assert status == 200 and reloaded == {"version": "1", "changed": False}
        with urllib.request.urlopen(f"{url}/metrics") as response:
            metrics = response.read().decode()
        assert 'docscale_serve_requests_total{code="200",endpoint="classify"} 3.0' in metrics
        assert 'docscale_serve_documents_total{outcome="ok"} 502.0' in metrics
        assert 'docscale_serve_documents_total{outcome="encrypted"} 1.0' in metrics
        assert "docscale_serve_model_version 1.0" in metrics
        assert proc.poll() is None


def test_serve_entry_point_errors_are_one_line(trained, tmp_path, capsys):
    workspace, _, _ = trained
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workspace / 'mlflow.db'}"
    try:
        assert serve_main(["--workspace", str(tmp_path / "none")]) == 2
        assert "no registry at" in capsys.readouterr().err
        with contextlib.closing(__import__("socket").socket()) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            assert serve_main(["--workspace", str(workspace), "--port", str(port)]) == 2
            assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
        assert serve_main(["--workspace", str(workspace), "--port", str(free_port()), "--model", "models:/nope@x"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: models:/nope@x") and err.count("\n") == 1
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_batch_scoring_extracts_with_the_models_backend(trained, tmp_path):
    """processing.predict on a fresh feature store: the pypdf-trained model's files are read with pypdf."""
    import duckdb

    from processing.predict import main as predict_main

    workspace, heldout, expected = trained
    folder = tmp_path / "inbox"
    folder.mkdir()
    for pdf in heldout[:30]:
        (folder / pdf.name).write_bytes(pdf.read_bytes())
    out = tmp_path / "scored.parquet"
    args = ["--input", str(folder), "--workspace", str(workspace), "--out", str(out), "--set", "engine.executor=local"]
    assert predict_main(args) == 0
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    assert (
        _mismatches([folder / r["path"].rsplit("/", 1)[-1] for r in rows], [r["label"] for r in rows], expected) == []
    )
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        assert {b for (b,) in con.execute("SELECT DISTINCT backend FROM extractions").fetchall()} == {"pypdf"}
