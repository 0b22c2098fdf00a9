"""The MLOps loop end to end: the small drift scenario makes each expected decision, a batch is never
decided twice, and bad batches are one-line errors. Real DuckDB, MLflow, model and generated PDFs."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import Counter
from functools import partial

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from processing.cycle import main as cycle_main
from processing.scenario import main as scenario_main
from tests.servers import free_port

pytestmark = pytest.mark.slow
FAST = ["--set", "engine.executor=local", "--set", "train.classifiers=logreg"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("loop") / "ws"
    with contextlib.redirect_stdout(None):
        code = scenario_main(["--small", "--workspace", str(workspace)])
    rows = json.loads((workspace / "scenario" / "report" / "scenario.json").read_text())
    return workspace, code, rows


def test_the_scenario_makes_each_expected_decision(scenario):
    workspace, code, rows = scenario
    assert [r["decision"] for r in rows] == ["no_drift", "promoted", "rejected"] and code == 0
    a, b, c = rows
    assert not a["drift"]["detected"] and b["drift"]["detected"]
    assert b["champion_version_after"] != b["champion_version_before"] == a["champion_version_after"]
    assert c["champion_version_after"] == b["champion_version_after"]  # the bad labels did not get in
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("docscale-classifier", "champion")
    assert str(champion.version) == b["champion_version_after"] and champion.tags["gate"] == "promoted"
    rejected = client.get_model_version("docscale-classifier", c["challenger_version"])
    assert rejected.tags["gate"] == "rejected" and "cycle_reason" in rejected.tags
    experiment = client.get_experiment_by_name("docscale").experiment_id
    monitoring = client.search_runs([experiment], "tags.kind = 'monitoring'")
    assert sorted(r.data.tags["decision"] for r in monitoring) == ["no_drift", "promoted", "rejected"]
    by_decision = {r.data.tags["decision"]: r for r in monitoring}
    promoted = by_decision["promoted"].data.tags
    assert (promoted["champion_version_before"], promoted["champion_version_after"]) == ("1", "2")
    assert promoted["current_fv"] == b["feature_version"] and promoted["reference_fv"].startswith("fv-")
    artifacts = {f.path for f in client.list_artifacts(by_decision["no_drift"].info.run_id, "cycle")}
    assert {"cycle/drift.json", "cycle/drift.md", "cycle/predictions.parquet"} <= artifacts
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        recorded = con.execute("SELECT decision FROM decisions ORDER BY decided_at").fetchall()
    assert [d for (d,) in recorded] == ["no_drift", "promoted", "rejected"]
    predictions = pq.read_table(a["predictions"]).to_pylist()
    assert len(predictions) == a["documents"] == 100 and all(p["label"] for p in predictions)
    assert a["labels"] == Counter(p["label"] for p in predictions)  # what the cycle printed and summarised
    assert a["uncertain"] == sum(p["probability"] < 0.5 for p in predictions)
    assert 'docscale_cycle_decision{batch="' in (workspace / "metrics" / "cycle.prom").read_text()
    assert (workspace / "scenario" / "report" / "scenario.png").stat().st_size > 10_000


def test_rerunning_a_batch_scores_decides_and_promotes_nothing_again(scenario, capsys):
    workspace, _, rows = scenario
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    versions = len(client.search_model_versions("name='docscale-classifier'"))
    batches = workspace / "scenario" / "batches"
    args = ["--input", str(batches / "B-shifted"), "--labels", str(batches / "B-shifted.labels.csv")]
    assert cycle_main([*args, "--workspace", str(workspace), *FAST]) == 0
    assert "already decided" in capsys.readouterr().out
    assert len(client.search_model_versions("name='docscale-classifier'")) == versions
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_batches_are_one_line_errors_and_unreadable_only_batches_are_reported(scenario, tmp_path, capsys):
    workspace, _, _ = scenario
    base = ["--workspace", str(workspace), *FAST]
    (tmp_path / "empty").mkdir()
    assert cycle_main(["--input", str(tmp_path / "empty"), *base]) == 2
    assert "holds no files" in _error(capsys)
    batch = workspace / "scenario" / "batches" / "A-same"
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("path,label\nnot-there.pdf,invoice\n")
    assert cycle_main(["--input", str(batch), "--labels", str(unknown), *base]) == 2
    assert "unknown.csv:2: not-there.pdf is neither in this batch nor in an earlier one" in _error(capsys)
    new_class = tmp_path / "new.csv"
    new_class.write_text("000001.pdf,warranty_claim\n")
    assert cycle_main(["--input", str(batch), "--labels", str(new_class), *base]) == 2
    assert "unknown to the champion" in _error(capsys)
    down = f"http://127.0.0.1:{free_port()}"
    assert cycle_main(["--input", str(batch), "--mlflow-uri", down, *base]) == 2
    assert "does not answer" in _error(capsys)
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(3):
        (junk / f"{i}.pdf").write_bytes(b"not a pdf at all " * i)
    assert cycle_main(["--input", str(junk), *base, "--summary", str(tmp_path / "junk.json")]) == 0
    summary = json.loads((tmp_path / "junk.json").read_text())
    assert summary["decision"] == "not_judged" and "no usable document" in summary["reason"]
    junk_rows = pq.read_table(summary["predictions"]).to_pylist()
    assert len(junk_rows) == 3 and all(r["label"] is None and r["message"] for r in junk_rows)
    tiny = tmp_path / "tiny"  # five readable documents: scored, but too few to test for drift
    tiny.mkdir()
    for pdf in sorted(batch.glob("*.pdf"))[:5]:
        shutil.copy(pdf, tiny / f"tiny-{pdf.name}")
    assert cycle_main(["--input", str(tiny), *base, "--summary", str(tmp_path / "tiny.json")]) == 0
    summary = json.loads((tmp_path / "tiny.json").read_text())
    assert summary["decision"] == "not_judged" and "too small to judge drift (5 usable" in summary["reason"]
    assert sum(r["label"] is not None for r in pq.read_table(summary["predictions"]).to_pylist()) == 5


# After the batch's features are stored; while the challenger trains; as the gate registers it (MLflow's line).
@pytest.mark.parametrize("kill_after", ["cycle: ", "[docscale] select: ", "Created version"])
def test_a_cycle_killed_mid_way_is_decided_once_by_its_rerun(scenario, tmp_path, kill_after):
    """SIGKILL at a point of the cycle; the rerun of the same batch decides it once, and the champion alias
    ends where the recorded decision says."""
    import os
    import signal
    import subprocess
    import sys

    from ingestion.corpus import BatchSpec
    from processing.scenario import write_batch

    workspace, _, _ = scenario
    name = f"D-kill-{len(kill_after)}"
    spec = BatchSpec(name, size=60, generation_2_share=1.0, labelled_share=0.8)
    folder, labels = write_batch(tmp_path, 1234, spec)
    args = ["--input", str(folder), "--labels", str(labels), "--workspace", str(workspace), *FAST]
    child = subprocess.Popen(
        [sys.executable, "-m", "processing.cycle", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        for line in child.stderr:
            if kill_after in line:
                break
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    summary = tmp_path / "rerun.json"
    assert cycle_main([*args, "--summary", str(summary)]) == 0
    result = json.loads(summary.read_text())
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT decision, champion_after FROM decisions WHERE input LIKE ?", [f"%{name}%"]
        ).fetchall()
    assert rows == [(result["decision"], result["champion_version_after"])]
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("docscale-classifier", "champion")
    assert str(champion.version) == str(result["champion_version_after"])


def test_a_cycle_killed_after_its_gate_acted_records_that_decision_and_trains_nothing_again(scenario, tmp_path):
    """The state a kill between the gate (MLflow: challenger registered, alias moved or not) and the decision
    row (DuckDB) leaves, made by deleting the decision row of a finished cycle: the rerun records what the
    gate did, registers no second challenger, and leaves the alias where it is."""
    from ingestion.corpus import BatchSpec
    from processing.scenario import write_batch

    workspace, _, _ = scenario
    folder, labels = write_batch(
        tmp_path, 1234, BatchSpec("E-gate", size=60, generation_2_share=1.0, labelled_share=0.8)
    )
    args = ["--input", str(folder), "--labels", str(labels), "--workspace", str(workspace), "--retrain", *FAST]
    first, rerun = tmp_path / "first.json", tmp_path / "rerun.json"
    assert cycle_main([*args, "--summary", str(first)]) == 0
    decided = json.loads(first.read_text())
    assert decided["decision"] in ("promoted", "rejected") and decided["challenger_version"]
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    versions = len(client.search_model_versions("name='docscale-classifier'"))
    with duckdb.connect(str(workspace / "features.duckdb")) as con:
        con.execute("DELETE FROM decisions WHERE batch_id = ?", [decided["batch_id"]])

    assert cycle_main([*args, "--summary", str(rerun)]) == 0
    again = json.loads(rerun.read_text())
    assert "recorded on rerun" in again["reason"]
    keys = ("decision", "challenger_version", "champion_version_before", "champion_version_after")
    assert {k: again[k] for k in keys} == {k: decided[k] for k in keys}
    assert len(client.search_model_versions("name='docscale-classifier'")) == versions
    champion = client.get_model_version_by_alias("docscale-classifier", "champion")
    assert str(champion.version) == decided["champion_version_after"]
    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT decision FROM decisions WHERE batch_id = ?", [decided["batch_id"]]).fetchall()
    assert rows == [(decided["decision"],)]


def test_the_loop_runs_on_a_champion_that_reads_text_and_vectors(tmp_path):
    """processing.run picks fusion on real documents; the loop scores, monitors and retrains it, reading the
    texts from the store a chunk at a time."""
    import mlflow

    from processing.features import FeatureStore
    from processing.local import LocalExecutor
    from processing.scoring import champion_probabilities
    from training import tracking

    workspace = tmp_path / "ws"
    with contextlib.redirect_stdout(None):
        scenario_main(["--small", "--workspace", str(workspace), "--set", "train.classifiers=fusion"])
    rows = json.loads((workspace / "scenario" / "report" / "scenario.json").read_text())
    assert len(rows) == 3 and rows[0]["decision"] == "no_drift"
    assert rows[1]["drift"]["detected"] and rows[1]["decision"] in ("promoted", "rejected")
    predictions = pq.read_table(rows[0]["predictions"]).to_pylist()
    assert len(predictions) == rows[0]["documents"] and all(p["label"] for p in predictions)
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    champion = tracking.load_document_model("models:/docscale-classifier/1")
    challenger = tracking.load_document_model(f"models:/docscale-classifier/{rows[1]['challenger_version']}")
    assert champion.view == challenger.view == "both"
    with FeatureStore(workspace / "features.duckdb", read_only=True) as store:
        reference = store.version_rows(champion.feature_version, splits=("train",))
        extractor = store.version(champion.feature_version)["extractor"]
        whole = champion_probabilities(champion, store, reference.hashes, reference.vectors, extractor)
        chunked = champion_probabilities(champion, store, reference.hashes, reference.vectors, extractor, chunk=7)
        embedder = store.version(champion.feature_version)["embedder"]
        loader = partial(store.load_vectors, embedder=embedder, extractor=extractor)
        engine = champion_probabilities(champion, store, reference.hashes, loader, extractor, LocalExecutor(), chunk=7)
    assert whole.shape == (len(reference.hashes), len(champion.classes))
    np.testing.assert_allclose(chunked, whole)
    np.testing.assert_allclose(engine, whole, rtol=1e-6)  # executor batches, vectors loaded by part


def test_watch_on_ray_stops_between_batches_when_terminated(scenario, ray_session, tmp_path):
    """`cycle --watch` as a pod runs it: it decides a new batch on Ray, and SIGTERM while it waits for the
    next one stops it cleanly (exit 0). Joining Ray used to replace its handler with Ray's abort (rc -6)."""
    import signal
    import subprocess
    import sys

    import ray

    workspace, _, _ = scenario
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)  # the module's workspace keeps its three decisions
    inbox = tmp_path / "inbox" / "new-batch"
    inbox.mkdir(parents=True)
    for pdf in sorted((copy / "scenario" / "batches" / "B-shifted").glob("*.pdf"))[:20]:
        shutil.copyfile(pdf, inbox / f"again-{pdf.name}")
    (inbox / "extra.pdf").write_bytes(b"%PDF-1.4 not a real document")  # new bytes: a batch not seen before
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "processing.cycle", "--watch", str(inbox.parent), "--interval", "1"]
    command += ["--workspace", str(copy), "--ray-address", address, "--set", "train.classifiers=logreg"]
    watch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in watch.stdout:  # until the batch is decided
            seen.append(line)
            if line.startswith("cycle batch-"):
                break
        assert seen and "already decided" not in seen[-1], "".join(seen[-20:])
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=120)
    finally:
        watch.kill()
    assert watch.returncode == 0, out[-2000:]
    assert "watch stopped between batches" in out and "SIGTERM received" not in out


def test_watch_tries_a_batch_that_failed_for_a_passing_reason_again_before_any_later_one(scenario, tmp_path):
    """While another process holds the workspace, `cycle --watch` fails its first batch (exit 1) and tries
    that batch again at each look, never the next one (each cycle starts from the champion the one before
    it left); once the workspace is free, that batch is decided. It used to be skipped until a restart."""
    import signal
    import subprocess
    import sys
    import threading

    from processing.features import FeatureStore

    workspace, _, _ = scenario
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    shifted = sorted((copy / "scenario" / "batches" / "B-shifted").glob("*.pdf"))
    for name, pdfs in (("a-first", shifted[:10]), ("b-second", shifted[10:20])):
        (tmp_path / "inbox" / name).mkdir(parents=True)
        for pdf in pdfs:
            shutil.copyfile(pdf, tmp_path / "inbox" / name / f"again-{pdf.name}")
        (tmp_path / "inbox" / name / "extra.pdf").write_bytes(f"%PDF-1.4 {name}".encode())  # a batch not seen
    command = [sys.executable, "-m", "processing.cycle", "--watch", str(tmp_path / "inbox"), "--interval", "1"]
    command += ["--workspace", str(copy), *FAST]
    holder = FeatureStore(copy / "features.duckdb")  # another run holding the workspace
    watch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    give_up = threading.Timer(300, watch.kill)  # a watch that never decides the batch ends the reading below
    give_up.start()
    seen: list[str] = []
    try:
        for line in watch.stdout:
            seen.append(line)
            if sum("a-first: tried again in 1 s" in s for s in seen) == 2 and holder is not None:
                holder.close()  # the workspace is free from now on
                holder = None
            if line.startswith("cycle batch-"):  # a batch decided
                break
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=120)
    finally:
        give_up.cancel()
        watch.kill()
        if holder is not None:
            holder.close()
    text = "".join(seen)
    assert holder is None and "is locked by" in text, text[-3000:]
    assert "b-second" not in text, text[-3000:]  # never tried while the batch before it waited
    assert watch.returncode == 0, out[-2000:]
