"""A disk that fills during a run: one line saying so, on Ray or not, and a rerun with space that resumes."""

from __future__ import annotations

import errno
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from processing.out_of_space import out_of_space_error, out_of_space_message

RUN = [sys.executable, "-m", "processing.run", "--tier", "50", "--set", "embed.backend=torch"]
RUN += ["--set", "train.classifiers=logreg,tfidf"]


def test_a_full_disk_is_found_wherever_the_writer_wrapped_it(tmp_path):
    assert out_of_space_error(ValueError("no such label")) is None
    try:  # as the engine reports a task that died writing a PDF: the OSError is the context
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.pdf"))
        except OSError:
            raise RuntimeError("task failed on item CorpusEntry(...): worker failed")  # noqa: B904 - as the engine does
    except RuntimeError as wrapped:
        found = out_of_space_error(wrapped)
    assert isinstance(found, OSError) and found.errno == errno.ENOSPC
    ray_text = RuntimeError(
        "\x1b[36mray::_call()\x1b[39m (pid=1)\n  File x\nOSError: [Errno 28] No space left on device"
    )
    line = out_of_space_message(out_of_space_error(ray_text), tmp_path / "never-made" / "ws")
    assert line.startswith("a disk is full: OSError: [Errno 28] No space left on device (free: workspace ")
    assert "\x1b" not in line and "\n" not in line and "run the same command again" in line


def _tmpfs_mount_works() -> bool:
    """Whether this machine lets a private mount namespace mount a tmpfs (root, or user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder])
    return probe.returncode == 0


def _mib(*paths: Path) -> float:
    """What files take on disk (whole blocks, as a tmpfs counts them), in MiB."""
    files = [f for path in paths for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file()]
    return sum(f.stat().st_blocks * 512 for f in files) / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not _tmpfs_mount_works(), reason="needs `unshare -rm` with mount rights (util-linux)")
def test_a_disk_filling_at_each_stage_stops_in_one_line_and_the_rerun_resumes(tmp_path):
    """A real small file system (a tmpfs in a private mount namespace) holds the workspace and is full in
    turn half-way through MLflow's database, the corpus (written by Ray tasks, which report it wrapped)
    and two later points; each run ends in one line and exit 1, and the run once the disk has grown
    makes what a run that never ran short of space makes (a database cut short used to fail every later
    run). Then predict, export_model and features export write to a disk with no room. Ray starts inside the namespace:
    the session's shared Ray would write outside the mount."""
    clean = tmp_path / "clean"
    reference = subprocess.run(
        [*RUN, "--workspace", str(clean), "--set", "engine.executor=local", "--summary", str(tmp_path / "clean.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    database, corpus = _mib(clean / "mlflow.db"), _mib(clean / "corpus")
    store, artifacts = _mib(clean / "features.duckdb"), _mib(clean / "mlartifacts")
    disk, logs = tmp_path / "disk", tmp_path / "logs"
    disk.mkdir()
    logs.mkdir()
    workspace = disk / "ws"
    local = [*RUN, "--workspace", str(workspace), "--set", "engine.executor=local"]
    steps = [  # in the order a run writes them; each size fills the disk half-way through one
        (database / 2, local),  # MLflow's database, created before any work
        (database + corpus / 2, [*RUN, "--workspace", str(workspace)]),  # on Ray
        (database + corpus + store / 2, local),
        (database + corpus + store + artifacts / 2, local),
        (2048, [*local, "--summary", str(tmp_path / "last.json")]),
    ]
    script = []
    for number, (mib, command) in enumerate(steps):
        size = f"size={int(mib * 1024)}k"
        mount = f"mount -t tmpfs -o {size} tmpfs {disk}" if number == 0 else f"mount -o remount,{size} {disk}"
        script += [f"{mount} || exit 3", f"{shlex.join(command)} > {logs}/{number}.out 2> {logs}/{number}.err"]
        script += [f"echo $? > {logs}/{number}.rc"]
    out = tmp_path / "out"  # predictions written to a disk with room for none
    predict = [sys.executable, "-m", "processing.predict", "--workspace", str(clean), "--out", str(out / "p.parquet")]
    predict += ["--input", str(clean / "corpus" / "seed-1234" / "train")]
    script += [f"mkdir {out} && mount -t tmpfs -o size=4k tmpfs {out} || exit 3"]
    script += [f"{shlex.join(predict)} > {logs}/5.out 2> {logs}/5.err; echo $? > {logs}/5.rc"]
    script += [f"ls -A {out} > {logs}/5.ls"]
    export = [sys.executable, "-m", "processing.export_model", "--workspace", str(clean), "--out", str(out / "m")]
    script += [f"{shlex.join(export)} > {logs}/6.out 2> {logs}/6.err; echo $? > {logs}/6.rc; ls -A {out} > {logs}/6.ls"]
    version = json.loads((tmp_path / "clean.json").read_text())["feature_version"]
    features = [sys.executable, "-m", "processing.features", "--workspace", str(clean), "export", version]
    script += [f"{shlex.join([*features, str(out / 'fv')])} > {logs}/7.out 2> {logs}/7.err; echo $? > {logs}/7.rc"]
    script += [f"find {out} -type f > {logs}/7.ls"]
    subprocess.run(["unshare", "-rm", "sh", "-c", "\n".join(script)], check=True, timeout=1800)

    stopped = []
    for number in (0, 1, 2, 3, 5, 6, 7):
        rc, err = (logs / f"{number}.rc").read_text().strip(), (logs / f"{number}.err").read_text()
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert rc == "1", err[-3000:]
        assert "Traceback" not in err and "Unhandled error" not in err, err[-3000:]
        assert len(errors) == 1 and errors[0].startswith("error: a disk is full: "), errors
        assert (f"workspace {clean} " if number > 4 else f"workspace {workspace} 0 MiB") in errors[0], errors[0]
        stopped.append(errors[0])
    print(f"clean workspace: MLflow {database + artifacts:.1f} MiB, corpus {corpus:.1f}, store {store:.1f}")
    print(*stopped, sep="\n")
    assert "[Errno 28] No space left on device" in stopped[1]  # a generating task's, through Ray
    for number, error in zip((5, 6, 7), stopped[4:], strict=True):  # predict, export_model, features export
        assert re.search(rf" {re.escape(str(out))}\S* 0 MiB", error), error
        assert (logs / f"{number}.ls").read_text() == ""  # no partial file left
    assert (logs / "4.rc").read_text().strip() == "0", (logs / "4.err").read_text()[-3000:]
    last, first = json.loads((tmp_path / "last.json").read_text()), json.loads((tmp_path / "clean.json").read_text())
    assert last["feature_version"] == first["feature_version"]
    assert last["outcomes"] == first["outcomes"] == {"ok": 550}
    assert last["work"]["generated"] < 550  # the files made before the disk filled were kept
