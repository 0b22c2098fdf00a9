"""A user's mistake is one line on stderr and a non-zero exit, found before the work, never a traceback."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from processing.run import main

LOCAL = ["--set", "engine.executor=local", "--set", "train.classifiers=logreg"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    return errors[0]


def test_a_workspace_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "ws"
    path.write_text("x")
    assert main(["--workspace", str(path), *LOCAL]) == 2
    assert "is a file, not a folder" in _one_line_error(capsys)


def test_a_damaged_feature_store_is_named_before_any_work(tmp_path, capsys):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "features.duckdb").write_bytes(b"DUCK" * 100)  # truncated garbage where the store was
    assert main(["--workspace", str(workspace), *LOCAL]) == 1
    assert "feature store is damaged" in _one_line_error(capsys)
    assert not (workspace / "corpus").exists()  # found before generating anything


def test_an_input_of_only_non_pdf_files_commits_nothing(tmp_path, capsys):
    for label in ("a", "b"):
        (tmp_path / "in" / label).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "in" / label / f"{i}.pdf").write_text("plain text, not a PDF")
    workspace = tmp_path / "ws"
    assert main(["--input", str(tmp_path / "in"), "--workspace", str(workspace), *LOCAL]) == 2
    assert "nothing to train on" in _one_line_error(capsys)
    import duckdb

    with duckdb.connect(str(workspace / "features.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM feature_versions").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM run_inputs").fetchone()[0] == 4  # each file kept its outcome


@pytest.mark.parametrize("bad", ["--set", "--config"])
def test_bad_settings_are_one_line(tmp_path, capsys, bad):
    value = "embed.batch_size=[1" if bad == "--set" else str(tmp_path)
    assert main(["--workspace", str(tmp_path / "ws"), bad, value]) == 2
    _one_line_error(capsys)


def test_a_bad_input_folder_is_found_before_the_engine_starts(tmp_path, capsys, monkeypatch):
    import processing.pipeline as pipeline

    def no_engine(*args, **kwargs):
        raise AssertionError("the engine must not start for a bad --input")

    monkeypatch.setattr(pipeline, "start_executor", no_engine)
    (tmp_path / "in").mkdir()
    assert main(["--input", str(tmp_path / "in"), "--workspace", str(tmp_path / "ws")]) == 2
    assert "holds no files" in _one_line_error(capsys)


def test_a_feature_version_on_a_new_workspace_creates_nothing(tmp_path, capsys):
    workspace = tmp_path / "new"
    assert main(["--workspace", str(workspace), "--feature-version", "fv-1234"]) == 2
    assert "holds no feature store" in _one_line_error(capsys)
    assert not workspace.exists()


def test_a_damaged_mlflow_database_is_named_before_any_work(tmp_path, capsys):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "mlflow.db").write_bytes(b"\x00garbage" * 200)
    assert main(["--workspace", str(workspace), *LOCAL]) == 2
    assert "MLflow database is damaged" in _one_line_error(capsys)
    assert not (workspace / "corpus").exists()


def test_an_mlflow_database_whose_creation_was_cut_short_is_named_before_any_work(tmp_path, capsys):
    """What MLflow's schema migration leaves when a full disk stops it: every later run used to fail on it
    with a traceback ("table _alembic_tmp_latest_metrics already exists")."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with sqlite3.connect(workspace / "mlflow.db") as con:
        con.execute("CREATE TABLE _alembic_tmp_latest_metrics (key VARCHAR)")
    assert main(["--workspace", str(workspace), *LOCAL]) == 2
    assert "creation was cut short" in _one_line_error(capsys)
    assert not (workspace / "corpus").exists()


def test_a_new_mlflow_database_appears_whole_before_any_work(tmp_path):
    from training.tracking import check_reachable

    database = tmp_path / "ws" / "mlflow.db"
    check_reachable(f"sqlite:///{database}")
    assert [p.name for p in database.parent.iterdir()] == ["mlflow.db"]  # no partial file left beside it
    with sqlite3.connect(database) as con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"experiments", "runs", "registered_models", "model_versions", "alembic_version"} <= tables


def test_features_list_while_a_run_writes_says_to_wait(tmp_path, capsys):
    from processing.features import FeatureStore
    from processing.features.__main__ import main as features_main

    path = tmp_path / "features.duckdb"
    FeatureStore(path).close()
    with _held(path):
        assert features_main(["--workspace", str(tmp_path), "list"]) != 0
        err = capsys.readouterr().err
        assert "try again when that run has finished" in err and "lock_wait_seconds" not in err


@contextlib.contextmanager
def _held(path):
    """Another process holds the store for writing (as a running docscale run does) while the body runs."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    ready, release = spawn.Event(), spawn.Event()
    holder = spawn.Process(target=_hold_store, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        yield
    finally:
        release.set()
        holder.join(30)


def _hold_store(path, ready, release):
    from processing.features import FeatureStore

    with FeatureStore(path):
        ready.set()
        release.wait(60)


def test_a_cycle_on_a_workspace_another_run_writes_is_one_line(tmp_path, capsys):
    from processing.cycle import main as cycle_main
    from processing.features import FeatureStore

    path = tmp_path / "features.duckdb"
    FeatureStore(path).close()
    (tmp_path / "batch" / "a").mkdir(parents=True)
    (tmp_path / "batch" / "a" / "x.pdf").write_bytes(b"%PDF-1.4 not much")
    with _held(path):
        args = ["--input", str(tmp_path / "batch"), "--workspace", str(tmp_path), "--set", "engine.executor=local"]
        assert cycle_main(args) == 1 and "locked by PID" in _one_line_error(capsys)


def _read_only_mount_works() -> bool:
    """Whether this machine lets an unprivileged mount namespace make a read-only bind mount."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder}"],
            capture_output=True,
        )
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs `unshare -rm` with mount rights (util-linux)")
@pytest.mark.parametrize("workspace", ["ws", "new/ws"], ids=["existing workspace", "new workspace"])
def test_a_workspace_on_a_read_only_mount_is_one_line(tmp_path, workspace):
    """A real read-only mount (a bind mount remounted ro in a private mount namespace): root is refused too."""
    (tmp_path / "src" / "ws").mkdir(parents=True)
    (tmp_path / "ro").mkdir()
    mount = f"mount --bind {tmp_path / 'src'} {tmp_path / 'ro'} && mount -o remount,ro,bind {tmp_path / 'ro'}"
    run = f"{sys.executable} -m processing.run --workspace {tmp_path / 'ro' / workspace} {' '.join(LOCAL)}"
    command = f"{mount} && exec {run}"
    result = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be written" in lines[0] and "read-only" in lines[0], lines
    assert list((tmp_path / "src").rglob("*")) == [tmp_path / "src" / "ws"]  # nothing was created


def test_predict_names_an_output_it_cannot_write_before_any_work(tmp_path, capsys):
    from processing.predict import main as predict_main

    args = ["--input", str(tmp_path), "--workspace", str(tmp_path / "absent")]
    assert predict_main([*args, "--out", str(tmp_path / "p.json")]) == 2
    assert "name a .parquet or .csv file" in _one_line_error(capsys)
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "absent").exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--port", "99999"], "--port 99999: a port is 1 to 65535"),
        (["--reload-seconds", "-1"], "--reload-seconds -1.0: seconds >= 0"),
        (["--extract-workers", "0"], "--extract-workers 0: at least 1"),
    ],
)
def test_serve_flags_out_of_range_are_one_line_before_anything_loads(tmp_path, capsys, flags, says):
    from processing.serve import main as serve_main

    assert serve_main(["--workspace", str(tmp_path), *flags]) == 2
    assert says in _one_line_error(capsys)


def test_serving_beyond_loopback_is_warned_about(tmp_path, capsys):
    from processing.serve import main as serve_main

    assert serve_main(["--workspace", str(tmp_path), "--host", "0.0.0.0"]) == 2  # no registry there: stops
    err = capsys.readouterr().err
    assert err.startswith("warning: --host 0.0.0.0 reaches beyond this machine") and "no registry at" in err


def _torch_sees_a_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_torch_sees_a_gpu(), reason="asks for CUDA where there is none")
def test_asking_for_cuda_without_a_gpu_is_one_line_not_a_wait(tmp_path, capsys):
    args = ["--workspace", str(tmp_path / "ws"), "--device", "cuda", "--set", "corpus.heldout_size=20", *LOCAL]
    assert main(args) == 2
    assert "embed.device=cuda (--device cuda), but the engine sees no GPU" in _one_line_error(capsys)


def test_commands_that_read_models_name_a_missing_registry_and_create_none(tmp_path, capsys):
    from processing.export_model import main as export_main
    from processing.predict import main as predict_main

    missing = tmp_path / "typo"
    assert export_main(["--workspace", str(missing), "--out", str(tmp_path / "copy")]) == 2
    assert "no registry at sqlite:///" in _one_line_error(capsys)
    assert predict_main(["--input", str(tmp_path), "--workspace", str(missing)]) == 2
    assert "train first" in _one_line_error(capsys)
    assert not missing.exists() and not (tmp_path / "copy").exists()


def test_ctrl_c_while_a_command_imports_its_libraries_ends_quietly(tmp_path):
    """The first seconds of every `python -m processing.X` import torch, Ray and MLflow; Ctrl-C then
    printed Python's traceback of whichever import it stopped. Nothing has started: one line, 130."""
    import signal
    import time
    from pathlib import Path

    workspace = tmp_path / "ws"
    command = subprocess.Popen(
        [sys.executable, "-m", "processing.run", "--tier", "50", "--workspace", str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a terminal's Ctrl-C, even under nohup
    )
    deadline = time.monotonic() + 60
    while "_multiarray_umath" not in (maps := Path(f"/proc/{command.pid}/maps").read_text()):  # numpy: importing
        assert time.monotonic() < deadline and command.poll() is None, "the command never started importing"
        time.sleep(0.005)
    assert "libtorch" not in maps  # torch, Ray and MLflow are still to come: seconds of imports
    command.send_signal(signal.SIGINT)
    out, err = command.communicate(timeout=60)
    assert (command.returncode, err) == (130, "interrupted: nothing had started\n"), err[-1500:]
    assert not workspace.exists()
