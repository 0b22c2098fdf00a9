"""`ray job submit` to a real two-node loopback cluster: shared storage on S3 (moto), results in a
MLflow tracking server, and a worker node killed mid-job."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import replace

import duckdb
import pytest
from pyarrow import fs

from tests.cluster.conftest import BIN, kill_matching

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

RUN_ARGS = [
    "--set",
    "corpus.heldout_size=40",
    "--set",
    "corpus.bad_file_rate=0.1",
    "--set",
    "train.classifiers=logreg,mlp",
    "--set",
    "embed.texts_per_call=16",
]


def submit(cluster, workspace, *extra: str, run_args=RUN_ARGS, capture=None) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "processing.submit",
        "--address",
        cluster.address,
        "--tier",
        "50",
        "--workspace",
        str(workspace),
        "--summary",
        str(workspace / "summary.json"),
        *extra,
        "--",
        *run_args,
    ]
    return subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=500)


def make_bucket(s3_server, name: str) -> None:
    s3 = fs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{s3_server['port']}",
        scheme="http",
        access_key="test",
        secret_key="test",
        allow_bucket_creation=True,
    )
    s3.create_dir(name)


def test_job_runs_on_both_nodes_reads_s3_and_logs_to_the_tracking_server(cluster, s3_server, mlflow_server, tmp_path):
    make_bucket(s3_server, "corpus")
    workspace = tmp_path / "ws"
    started = time.monotonic()
    result = submit(cluster, workspace, "--corpus-root", "s3://corpus/shared", "--mlflow-uri", mlflow_server)
    round_trip = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout.lower()  # the job's own status, streamed back with its logs
    summary = json.loads((workspace / "summary.json").read_text())
    assert summary["documents"] == 90
    assert summary["cluster"]["nodes"] == 2
    assert len(summary["cluster"]["tasks_per_node"]) == 2, summary["cluster"]  # both nodes did work
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM run_inputs").fetchone()[0] == 90
        assert (
            con.execute(
                "SELECT count(DISTINCT path) FROM run_inputs WHERE path LIKE 's3://corpus/shared/%'"
            ).fetchone()[0]
            == 90
        )
    # The corpus lives in the bucket, where every node can read it.
    s3 = fs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{s3_server['port']}", scheme="http", access_key="test", secret_key="test"
    )
    listed = s3.get_file_info(fs.FileSelector("corpus/shared", recursive=True))
    assert sum(f.type == fs.FileType.File for f in listed) == 90
    # Results landed in the tracking server, not in a file beside the driver.
    from mlflow.tracking import MlflowClient

    run = MlflowClient(mlflow_server).get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["tier"] == "50"
    assert not (workspace / "mlflow.db").exists()
    print(f"\nloopback cluster round trip for tier 50: {round_trip:.1f}s")


def test_wrong_token_is_refused(cluster, tmp_path):
    env = {**cluster.env, "RAY_AUTH_TOKEN": "not-the-token"}
    result = subprocess.run(
        [sys.executable, "-m", "processing.submit", "--address", cluster.address, "--workspace", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "auth" in (result.stdout + result.stderr).lower() or "401" in result.stdout + result.stderr


def test_worker_node_dies_mid_job_and_nothing_is_lost_or_doubled(cluster, tmp_path):
    workspace = tmp_path / "ws"
    args = [*RUN_ARGS, "--set", "corpus.heldout_size=200"]
    killed = threading.Event()
    env = {**cluster.env, "DOCSCALE_PROGRESS_SECONDS": "0"}  # forwarded to the job: a line per embedding call

    def kill_worker_when_embedding() -> None:
        # Poll the job's logs; kill the worker node once the first embeddings are in, before the end.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed.is_set():
            logs = subprocess.run(
                [str(BIN / "ray"), "job", "logs", "--address", cluster.address, "node-kill-1"],
                env=env,
                capture_output=True,
                text=True,
            ).stdout
            if re.search(r"\[docscale\] embed: (1[6-9]|[2-9]\d|\d{3})/", logs):
                kill_matching(cluster.worker_marker)
                if "[docscale] features:" not in logs:  # still mid-job when the node died
                    killed.set()
                return
            time.sleep(0.3)

    watcher = threading.Thread(target=kill_worker_when_embedding, daemon=True)
    watcher.start()
    # The embedding actor is pinned to the worker node, so the kill takes it down mid-stream: the job must
    # fail with a clear message, and the same command again must finish from what was saved.
    pinned = [*args, "--set", "embed.actor_resource=worker_node"]
    first = submit(replace(cluster, env=env), workspace, "--submission-id", "node-kill-1", run_args=pinned)
    watcher.join(timeout=5)
    assert killed.is_set(), "the worker node was not killed mid-job: " + first.stdout[-2000:]
    assert first.returncode != 0, first.stdout[-4000:]
    assert "run the same command again to resume from the cache" in first.stdout + first.stderr
    second = submit(replace(cluster, env=env), workspace, "--submission-id", "node-kill-2", run_args=args)
    assert second.returncode == 0, second.stdout[-3000:]
    summary = json.loads((workspace / "summary.json").read_text())
    total = 50 + 200
    assert summary["documents"] == total
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        hashes, distinct = con.execute("SELECT count(*), count(DISTINCT content_hash) FROM extractions").fetchone()
        assert hashes == distinct  # no document extracted twice
        rows = con.execute(
            "SELECT count(*), count(DISTINCT path) FROM run_inputs WHERE run_id = ?", [summary["run_id"]]
        ).fetchone()
        assert rows == (total, total)  # every file exactly once in the finishing run
        ok = summary["outcomes"].get("ok", 0) + summary["outcomes"].get("fallback_ok", 0)
        assert con.execute("SELECT count(*) FROM text_embeddings_384").fetchone()[0] == ok
        statuses = sorted(r[0] for r in con.execute("SELECT status FROM runs").fetchall())
        assert statuses == ["failed", "finished"]
    assert summary["work"]["extracted"] == 0  # the failed job's extractions were all kept
    assert summary["work"]["embedded"] <= ok - 16  # and so were its committed embeddings
    print(f"\nnode kill: rerun embedded {summary['work']['embedded']} of {ok}")
