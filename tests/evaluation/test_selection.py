"""Model selection by stratified k-fold cross-validation (evaluation/selection.py)."""

import numpy as np
import pytest

from evaluation.selection import (
    cross_validate,
    folds_for,
    groups_of,
    select_setting,
    select_settings,
    settings,
)
from training.classifiers import GRID, TrainConfig
from training.memory import stratified_rows


def _noisy_blobs(seed: int, n: int = 40, spread: float = 2.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8))
    y = np.repeat(np.array(["a", "b", "c"]), n)
    x = centres[np.repeat(np.arange(3), n)] + spread * rng.normal(size=(3 * n, 8))
    return x.astype(np.float32), y


def test_cross_validation_scores_every_document_once_with_an_interval():
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["a", "b", "c"]), 30)
    x = (np.eye(3)[np.repeat(np.arange(3), 30)] * 6 + rng.normal(size=(90, 3))).astype(np.float32)
    easy = cross_validate("logreg", x, y, TrainConfig())
    assert easy is not None and easy.folds == 5 and easy.documents == 90
    assert easy.macro_f1 > 0.95 and easy.low <= easy.macro_f1 <= easy.high
    hard = cross_validate("logreg", *_noisy_blobs(0, spread=20.0), TrainConfig())
    assert hard.macro_f1 < easy.macro_f1 - 0.2  # noise-level data scores near chance, not near 1


def test_a_class_with_one_document_cannot_be_cross_validated():
    x, y = _noisy_blobs(1)
    y = y.copy()
    y[0] = "lonely"
    assert folds_for(y, 5) == 0
    assert cross_validate("logreg", x, y, TrainConfig()) is None
    assert folds_for(np.array(["a", "a", "b", "b", "b"]), 5) == 2  # as many folds as the rarest class allows


def test_the_sample_is_stratified_and_bounded():
    y = np.array(["a"] * 900 + ["b"] * 100)
    rows = stratified_rows(y, 200, seed=0)
    assert len(rows) == 200 and len(set(rows)) == 200
    assert 15 <= (y[rows] == "b").sum() <= 25  # the class mix of the whole
    assert len(stratified_rows(y, 5000, seed=0)) == 1000


@pytest.mark.parametrize("name", ["logreg", "sgd"])
def test_selection_keeps_the_setting_with_the_best_cross_validated_score(name):
    x, y = _noisy_blobs(2)
    config = TrainConfig()
    candidates = settings(name, config)
    assert len(candidates) == 1 + len(next(iter(GRID[name].values())))
    scores = [cross_validate(name, x, y, c).macro_f1 for c in candidates]
    chosen, scored = select_setting(name, x, y, config)
    assert scored.macro_f1 == max(scores)
    assert chosen == candidates[scores.index(max(scores))]
    assert scored.params == {k: getattr(chosen, k) for k in GRID[name]}


def test_bad_selection_settings_name_the_key():
    with pytest.raises(ValueError, match="train.cv_folds must be >= 2"):
        TrainConfig(cv_folds=1).validate()
    with pytest.raises(ValueError, match="train.cv_max_documents must be > 0"):
        TrainConfig(cv_max_documents=0).validate()
    with pytest.raises(ValueError, match=r"train.cv_workers must be >= 0 \(0 = one per CPU core\)"):
        TrainConfig(cv_workers=-1).validate()
    with pytest.raises(ValueError, match=r"train.cv_groups is not a regular expression .*e.g. '\^\(\.\*\)__'"):
        TrainConfig(cv_groups="([").validate()


def _related_documents(groups: int = 30, per_group: int = 4):
    """Near-copies within a group, labels drawn per group and unrelated to the groups' positions: a model
    can only recognise a group it has seen, never learn the class."""
    rng = np.random.default_rng(3)
    labels = np.array(["a", "b", "c"])[np.arange(groups) % 3]
    member = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=(groups, 48))[member] + 0.05 * rng.normal(size=(groups * per_group, 48))
    names = [f"pkg{g}__manual{i}.pdf" for g, i in zip(member, range(len(member)), strict=True)]
    return x.astype(np.float32), labels[member], names


def test_related_documents_kept_in_one_fold_score_what_a_new_document_would():
    x, y, names = _related_documents()
    stratified = cross_validate("logreg", x, y, TrainConfig())
    grouped = cross_validate("logreg", x, y, TrainConfig(), groups=groups_of(names, r"^(.*)__"))
    assert stratified.groups == 0 and grouped.groups == 30
    assert stratified.macro_f1 > 0.9  # a near-copy of every scored document was trained on
    assert grouped.macro_f1 < 0.6  # nothing to learn across groups: near chance (1/3)
    assert grouped.scalars()["cv_groups"] == 30.0


def test_groups_come_from_the_file_name():
    names = ["/data/latex__amscls__amsclass.pdf", "/other/latex__amscls__amsdoc.pdf", "readme.pdf", "x__y.pdf"]
    groups = groups_of(names, r"^(.*)__")
    assert groups[0] == groups[1]  # the folder does not matter, the name before the last "__" does
    assert len(set(groups)) == 3  # a name without a match is a group of its own
    assert len(set(groups_of(["", "", "a.pdf"], r"^(.*)__"))) == 3  # also when no path was recorded
    whole = groups_of(["inv-ACME-01.pdf", "inv-ACME-02.pdf", "inv-BOLT-01.pdf"], r"ACME|BOLT")
    assert whole[0] == whole[1] != whole[2]  # no capture group: the whole match
    assert groups_of(names, "") is None


def test_folds_are_capped_by_the_groups_a_class_spans():
    y = np.array(["a"] * 6 + ["b"] * 6)
    groups = np.array(["g1"] * 3 + ["g2"] * 3 + ["g3"] * 2 + ["g4"] * 2 + ["g5"] * 2)
    assert folds_for(y, 5) == 5
    assert folds_for(y, 5, groups) == 2  # class a spans two groups
    assert folds_for(y, 5, np.array(["g1"] * 6 + ["g2"] * 6)) == 0


def test_folds_fitted_in_worker_processes_choose_what_one_process_chooses():
    """Every fold of every classifier is a task; in two spawned worker processes the folds finish in any
    order, and the chosen settings and their scores must not depend on it."""
    x, y = _noisy_blobs(4)
    rng = np.random.default_rng(4)
    topic = np.where(rng.random(len(y)) < 0.85, y, rng.choice(["a", "b", "c"], len(y)))  # 15% misleading
    texts = np.array([f"topic{t} filler{i % 5} word{i % 7}" for i, t in enumerate(topic)], dtype=object)

    def x_for(name):
        return texts if name == "tfidf" else x

    names, config = ["logreg", "tfidf"], TrainConfig()
    progress = []
    alone = select_settings(names, x_for, y, config, workers=1)
    side_by_side = select_settings(names, x_for, y, config, workers=2, on_fold=lambda *a: progress.append(a))
    assert side_by_side == alone
    assert [done for done, _ in progress] == list(range(1, 11)) and {total for _, total in progress} == {10}
    assert 0.7 < alone["tfidf"][1].macro_f1 < 1 and alone["logreg"][1].folds == 5
    assert alone["logreg"] == select_setting("logreg", x, y, config)  # one classifier alone: the same


def test_a_fold_that_fails_in_a_worker_process_fails_the_selection_with_its_error():
    x, y = _noisy_blobs(5)
    with pytest.raises(AttributeError, match="object has no attribute .lower."):  # numbers where texts belong
        select_settings(
            ["logreg", "tfidf"],
            lambda name: np.full(len(y), np.nan, dtype=object) if name == "tfidf" else x,
            y,
            TrainConfig(),
            workers=2,
        )


SLOW_SELECTION = """
import signal, sys
import numpy as np
from evaluation.selection import select_settings
from training.classifiers import TrainConfig

def stop(signum, frame):
    raise KeyboardInterrupt  # as the engine has SIGTERM do once Ray runs

signal.signal(signal.SIGTERM, stop)
rng = np.random.default_rng(0)
x, y = rng.normal(size=(600, 16)).astype(np.float32), np.repeat(np.array(["a", "b", "c"]), 200)
print("ready", flush=True)
try:
    select_settings(["mlp"], lambda name: x, y, TrainConfig(mlp_epochs=1_000_000), workers=2)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_an_interrupted_selection_ends_its_folds_in_flight_instead_of_waiting_for_them():
    """A stopped pod has seconds, and a text classifier's fold takes a minute at 75k: the driver must end
    the worker processes fitting folds, not wait for them (here each fold would take many minutes)."""
    import contextlib
    import subprocess
    import sys
    import time

    import psutil

    run = subprocess.Popen([sys.executable, "-c", SLOW_SELECTION], stdout=subprocess.PIPE, text=True)
    workers: list[psutil.Process] = []
    try:
        assert run.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(workers := psutil.Process(run.pid).children(recursive=True)) < 2:  # the pool's workers
            assert time.monotonic() < deadline, "the fold workers never started"
            time.sleep(0.2)
        time.sleep(3)  # they import torch and start fitting
        run.terminate()
        stopped = time.monotonic()
        out, _ = run.communicate(timeout=60)
        assert out.strip() == "interrupted" and time.monotonic() - stopped < 20
        _, alive = psutil.wait_procs(workers, timeout=10)  # ended: gone at once, not after their folds
        assert not alive
    finally:  # a failing check leaves no process fitting for minutes
        for process in [run, *workers]:
            with contextlib.suppress(Exception):
                process.kill()


SLOW_STARTING_WORKERS = """
import time

if __name__ != "__main__":  # a fold worker importing the driver's main module, as spawn does
    time.sleep(2)  # what a real driver's imports take (torch, Ray, MLflow)
else:
""" + "\n".join("    " + line for line in SLOW_SELECTION.strip().splitlines())


def test_ctrl_c_while_the_fold_workers_start_is_one_quiet_interruption(tmp_path):
    """Ctrl-C in a terminal reaches the whole process group, fold workers included, and may land while
    they still import, before their own handler is set: each printed a KeyboardInterrupt traceback
    under the run's one-line message. They now start with Ctrl-C held until they can take it. Here the
    workers get the signal a moment before the driver, which then ends them as it does on Ctrl-C."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "driver.py"
    script.write_text(SLOW_STARTING_WORKERS)
    run = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a terminal's Ctrl-C, not nohup's
    )
    workers: list[psutil.Process] = []
    try:
        assert run.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(workers := psutil.Process(run.pid).children(recursive=True)) < 2:
            assert time.monotonic() < deadline, "the fold workers never started"
            time.sleep(0.02)
        time.sleep(0.5)  # past Python's own start-up, into the import
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        time.sleep(0.5)
        os.kill(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
        assert out.strip() == "interrupted"
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive
    finally:
        for process in [run, *workers]:
            with contextlib.suppress(Exception):
                process.kill()
