"""A run killed mid-way leaves a consistent workspace, and the next run finishes the job without doubles."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import duckdb
import pytest

from processing.run import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ARGS = [
    "--tier",
    "50",
    "--set",
    "corpus.heldout_size=150",
    "--set",
    "corpus.bad_file_rate=0.1",
    "--set",
    "train.classifiers=logreg",
    "--set",
    "embed.texts_per_call=16",
    "--device",
    "cpu",
]


def _start_run(workspace, *extra: str) -> subprocess.Popen:
    """processing.run in its own process group, a progress line per committed batch on its stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", "processing.run", *ARGS, *extra, "--workspace", str(workspace)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ, "DOCSCALE_PROGRESS_SECONDS": "0"},
        # A terminal's default: a suite started in the background (nohup, &) would pass SIGINT on ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_kill_during_embedding_then_rerun_completes_without_duplicates(tmp_path, ray_session):
    workspace = tmp_path / "ws"
    child = _start_run(workspace)
    try:
        for line in child.stderr:
            # "embed: 32/195" is printed after the first batch of 16 was committed, before the second is.
            match = re.match(r"\[docscale\] embed: (\d+)/", line)
            if match and int(match.group(1)) >= 32:
                break
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the driver and the Ray it started, like a power cut
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        extracted_before = con.execute("SELECT count(*) FROM extractions").fetchone()[0]
        assert con.execute("SELECT count(*) FROM feature_versions").fetchone()[0] == 0

    summary_path = tmp_path / "summary.json"
    assert main([*ARGS, "--workspace", str(workspace), "--summary", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    ok = summary["outcomes"]["ok"]
    assert summary["work"]["extracted"] == 200 - extracted_before
    assert extracted_before == 200  # extraction had finished before the kill
    assert 16 <= ok - summary["work"]["embedded"] < ok  # the killed run's committed embeddings were kept

    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT content_hash) FROM extractions").fetchone() == (200, 200)
        assert con.execute("SELECT count(*), count(DISTINCT text_hash) FROM text_embeddings_384").fetchone() == (ok, ok)
        statuses = sorted(r[0] for r in con.execute("SELECT status FROM runs").fetchall())
        assert statuses == ["finished", "interrupted"]
        assert con.execute("SELECT count(*) FROM feature_versions").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM run_inputs WHERE run_id = ?", [summary["run_id"]]).fetchone()[0] == 200


def test_ctrl_c_during_embedding_is_one_line_and_the_rerun_resumes(tmp_path, ray_session):
    """Ctrl-C in a terminal: SIGINT to the driver's whole process group, mid-embedding."""
    workspace = tmp_path / "ws"
    child = _start_run(workspace)
    lines = []
    try:
        for line in child.stderr:
            lines.append(line)
            match = re.match(r"\[docscale\] embed: (\d+)/", line)
            if match and int(match.group(1)) >= 32:
                os.killpg(child.pid, signal.SIGINT)
                break
        lines += child.stderr.readlines()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    output = "".join(lines)
    assert child.returncode == 130, output[-2000:]
    assert "Traceback" not in output
    assert lines[-1].startswith("interrupted: every batch extracted and embedded so far is saved")

    summary_path = tmp_path / "summary.json"
    assert main([*ARGS, "--workspace", str(workspace), "--summary", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    ok = summary["outcomes"]["ok"]
    assert summary["work"]["extracted"] == 0  # everything extracted before Ctrl-C was kept
    assert 16 <= ok - summary["work"]["embedded"] < ok
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT text_hash) FROM text_embeddings_384").fetchone() == (ok, ok)


def test_a_run_killed_while_it_trains_is_marked_failed_in_mlflow_by_the_next(tmp_path):
    """A process killed outright cannot end its MLflow run: it stayed RUNNING in the UI for good. The next
    run on the workspace, whose store knows that run is over, marks it FAILED and says so."""
    from mlflow.tracking import MlflowClient

    workspace, local = tmp_path / "ws", ["--set", "engine.executor=local"]
    child = _start_run(workspace, *local)
    try:
        for line in child.stderr:
            if line.startswith("[docscale] train: logreg"):  # inside the run's MLflow run
                break
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("docscale").experiment_id
    killed = {run.info.run_id for run in client.search_runs([experiment])}  # the run, maybe its logreg child
    assert killed and {run.info.status for run in client.search_runs([experiment])} == {"RUNNING"}

    assert main([*ARGS, *local, "--workspace", str(workspace)]) == 0
    runs = client.search_runs([experiment])
    assert {run.info.status for run in runs if run.info.run_id in killed} == {"FAILED"}
    assert all("its process stopped" in run.data.tags["docscale_ended"] for run in runs if run.info.run_id in killed)
    assert sorted(run.info.status for run in runs if run.info.run_id not in killed) == ["FINISHED", "FINISHED"]
