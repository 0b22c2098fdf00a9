"""Model selection by stratified k-fold cross-validation. Pure: arrays (or texts) in, scores out.
It lives in evaluation because it scores classifiers; training only fits them.

One 20% split of a few hundred real documents scores a classifier on ~40 of them, an interval of
+-0.1 macro-F1: it picks noise. Cross-validation scores every training document once, so selection
holds on small real corpora. Folds run on a stratified sample of at most `cv_max_documents` documents:
at 75k that keeps selection minutes, not hours; the chosen setting is then fitted on all of them. The
folds of all classifiers can run side by side in worker processes (`select_settings`): scikit-learn's
own `n_jobs` would parallelise one classifier's folds at a time, and this keeps the per-fold sharing of
features across grid values.
Related documents (`train.cv_groups`) are kept in one fold, so that the score is for documents unlike
the ones trained on, as a user's next documents will be.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from evaluation.metrics import bootstrap_macro_f1, score
from training.classifiers import FUSED_INPUT, GRID, TEXT_INPUT, TrainConfig, build_classifier, train_classifier
from training.memory import stratified_rows, take_rows


@dataclass(frozen=True)
class CvScore:
    """Macro-F1 of the out-of-fold predictions of one classifier setting, with a 95% interval."""

    macro_f1: float
    low: float
    high: float
    accuracy: float
    folds: int
    documents: int
    params: dict[str, float]  # the hyper-parameters this score is for
    groups: int = 0  # how many groups of related documents the folds kept whole (0: none given)

    def scalars(self) -> dict[str, float]:
        return {
            "cv_macro_f1": self.macro_f1,
            "cv_macro_f1_low": self.low,
            "cv_macro_f1_high": self.high,
            "cv_accuracy": self.accuracy,
            "cv_folds": float(self.folds),
            "cv_documents": float(self.documents),
            "cv_groups": float(self.groups),
        }


def folds_for(y: np.ndarray, wanted: int, groups: np.ndarray | None = None) -> int:
    """As many folds as wanted, but no more than the rarest class has members, or groups when groups are
    given (0: cannot cross-validate)."""
    labels, counts = np.unique(y, return_counts=True)
    if groups is not None:  # a class spread over k groups can reach at most k folds
        counts = np.array([len(set(groups[y == label])) for label in labels])
    folds = min(wanted, int(counts.min())) if len(counts) >= 2 else 0
    return folds if folds >= 2 else 0


def groups_of(names: list[str], pattern: str) -> np.ndarray | None:
    """Each file's group: the first match of `pattern` in its file name (the match's first group when
    the pattern has one); a name without a match is a group of its own. None when no pattern is set."""
    if not pattern:
        return None
    compiled = re.compile(pattern)
    out = []
    for row, name in enumerate(names):
        found = compiled.search(PurePath(name).name)
        # "=" and "#" keep a matched text from ever equalling an unmatched row's own group.
        out.append(f"={found.group(1) if compiled.groups else found.group(0)}" if found else f"#{row}")
    return np.asarray(out, dtype=object)


def cross_validate(
    name: str, x: Any, y: np.ndarray, config: TrainConfig, device: str = "cpu", groups: np.ndarray | None = None
) -> CvScore | None:
    """Out-of-fold macro-F1 of `name` with `config`'s hyper-parameters; None when some class has
    fewer than two documents (or groups): nothing to cross-validate."""
    return cross_validate_settings(name, x, y, [config], device, groups)[0]


def cross_validate_settings(
    name: str,
    x: Any,
    y: np.ndarray,
    candidates: list[TrainConfig],
    device: str = "cpu",
    groups: np.ndarray | None = None,
) -> list[CvScore | None]:
    """Out-of-fold macro-F1 of each candidate setting, on the same folds (of candidates[0]'s sample).
    With `groups` (one per row of x), rows of one group never straddle folds."""
    plan = _plan(name, x, y, candidates, device, groups)
    for fold, predicted in _run(plan.folds, workers=1):
        plan.record(fold.score_rows, predicted)
    return plan.scores()


def select_setting(
    name: str, x: Any, y: np.ndarray, config: TrainConfig, device: str = "cpu", groups: np.ndarray | None = None
) -> tuple[TrainConfig, CvScore | None]:
    """The classifier's hyper-parameters (from GRID) with the best cross-validated macro-F1, as a
    TrainConfig to fit with, and that score. Ties go to the first setting, the config's own."""
    return select_settings([name], lambda _: x, y, config, device, groups)[name]


def select_settings(
    names: list[str],
    x_for: Callable[[str], Any],
    y: np.ndarray,
    config: TrainConfig,
    device: str = "cpu",
    groups: np.ndarray | None = None,
    workers: int = 1,
    on_fold: Callable[[int, int], None] | None = None,
) -> dict[str, tuple[TrainConfig, CvScore | None]]:
    """select_setting for each classifier, every fold of every classifier one task, `workers` processes
    at a time (1: in this process). x_for(name) gives a classifier's input rows; only its sample is
    kept. on_fold(done, total) is called as each fold finishes (progress)."""
    plans = {name: _plan(name, x_for(name), y, settings(name, config), device, groups) for name in names}
    # The text classifiers' folds take far longer: started first, they do not end up running alone.
    folds = sorted((fold for plan in plans.values() for fold in plan.folds), key=lambda f: f.name not in _SLOW)
    for done, (fold, predicted) in enumerate(_run(folds, workers), 1):
        plans[fold.name].record(fold.score_rows, predicted)
        if on_fold is not None:
            on_fold(done, len(folds))
    chosen = {}
    for name, plan in plans.items():
        scored = plan.scores()
        if scored[0] is None:
            chosen[name] = (config, None)
            continue
        best = max(range(len(scored)), key=lambda i: (scored[i].macro_f1, -i))  # type: ignore[union-attr]
        chosen[name] = (plan.candidates[best], scored[best])
    return chosen


def settings(name: str, config: TrainConfig) -> list[TrainConfig]:
    """The config itself, then one config per other grid value of the classifier's hyper-parameter."""
    out = [config]
    for key, values in GRID.get(name, {}).items():
        out += [replace(config, **{key: v}) for v in values if v != getattr(config, key)]
    return out


_SLOW = TEXT_INPUT | FUSED_INPUT


@dataclass(frozen=True)
class _Fold:
    """One fold of one classifier: everything a worker process needs to fit its candidates and predict."""

    name: str
    candidates: tuple[TrainConfig, ...]
    device: str
    x_fit: Any
    y_fit: np.ndarray
    x_score: Any
    score_rows: np.ndarray


@dataclass
class _Plan:
    """One classifier's folds, and the out-of-fold predictions of each candidate as folds come back."""

    name: str
    candidates: list[TrainConfig]
    y_cv: np.ndarray
    documents: int
    n_groups: int
    folds: list[_Fold]
    n_folds: int

    def __post_init__(self) -> None:
        self.predicted = [np.empty(len(self.y_cv), dtype=object) for _ in self.candidates]

    def record(self, score_rows: np.ndarray, predicted: list[np.ndarray]) -> None:
        for out, guesses in zip(self.predicted, predicted, strict=True):
            out[score_rows] = guesses

    def scores(self) -> list[CvScore | None]:
        if not self.folds:
            return [None] * len(self.candidates)
        truth, out = self.y_cv.astype(str), []
        for guessed, setting in zip((p.astype(str) for p in self.predicted), self.candidates, strict=True):
            low, high = bootstrap_macro_f1(truth, guessed, seed=setting.seed)
            figures = score(truth, guessed)
            params = {key: float(getattr(setting, key)) for key in GRID.get(self.name, {})}
            f1, accuracy = figures["macro_f1"], figures["accuracy"]
            out.append(CvScore(f1, low, high, accuracy, self.n_folds, self.documents, params, self.n_groups))
        return out


def _plan(
    name: str, x: Any, y: np.ndarray, candidates: list[TrainConfig], device: str, groups: np.ndarray | None
) -> _Plan:
    """The folds of `name` on the stratified sample of candidates[0] (no folds: nothing to cross-validate)."""
    config = candidates[0]
    rows = stratified_rows(y, config.cv_max_documents, config.seed)
    x_cv, y_cv = take_rows(x, rows), y[rows]
    groups_cv = groups[rows] if groups is not None else None
    n_folds = folds_for(y_cv, config.cv_folds, groups_cv)
    n_groups = len(set(groups_cv)) if groups_cv is not None else 0
    folds: list[_Fold] = []
    if n_folds:
        if groups_cv is None:
            splitter: Any = StratifiedKFold(n_folds, shuffle=True, random_state=config.seed)
        else:
            splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=config.seed)
        for fit_rows, score_rows in splitter.split(np.zeros(len(y_cv)), y_cv, groups_cv):
            fitting, scoring = take_rows(x_cv, fit_rows), take_rows(x_cv, score_rows)
            folds.append(_Fold(name, tuple(candidates), device, fitting, y_cv[fit_rows], scoring, score_rows))
    return _Plan(name, candidates, y_cv, len(rows), n_groups, folds, n_folds)


def _fit_fold(fold: _Fold) -> list[np.ndarray]:
    """Each candidate fitted on the fold's rows, its predictions for the fold's held-back rows.

    The grid only varies the last step of a pipeline (a C or alpha), so the fold's features (TF-IDF over
    words and character n-grams: most of a text classifier's fitting time) are fitted once and shared
    by every candidate: 3x less work for a three-value grid, the same scores."""
    out, features = [], None
    for setting in fold.candidates:
        model = build_classifier(fold.name, setting, fold.device)
        if not isinstance(model, Pipeline):
            out.append(train_classifier(fold.name, fold.x_fit, fold.y_fit, setting, fold.device).predict(fold.x_score))
            continue
        if features is None:
            prepare = model[:-1].fit(fold.x_fit, fold.y_fit)
            features = (prepare.transform(fold.x_fit), prepare.transform(fold.x_score))
        final = train_classifier(fold.name, features[0], fold.y_fit, setting, fold.device, final_step_only=True)
        out.append(final.predict(features[1]))
    return out


def _run(folds: list[_Fold], workers: int) -> Iterator[tuple[_Fold, list[np.ndarray]]]:
    """Each fold with its predictions, as they finish: in this process, or in `workers` fresh ones."""
    workers = min(workers, len(folds))
    if workers <= 1:
        for fold in folds:
            yield fold, _fit_fold(fold)
        return
    # Spawned, not forked: the driver holds threads (Ray, torch, DuckDB) that a fork would copy half-way.
    context = multiprocessing.get_context("spawn")
    threads = max(1, len(os.sched_getaffinity(0)) // workers)  # the cores this process may use, shared
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(threads,))
    try:
        # The workers start with Ctrl-C held (a blocked signal stays blocked across exec) until their
        # start-up has set its handler: a Ctrl-C to the terminal's process group while they import
        # would print a KeyboardInterrupt traceback from each. The driver is not slowed: a signal its
        # main thread holds is taken by one of its other threads, and Python still runs the handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pending = {pool.submit(_fit_fold, fold): fold for fold in folds}  # spawns the workers
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        for future in as_completed(pending):
            yield pending[future], future.result()
    except BaseException:
        # A failed fold, Ctrl-C or SIGTERM: the folds in flight are ended now, not waited for (a fold of
        # a text classifier takes a minute at 75k, past a stopped pod's grace period).
        for process in list(pool._processes.values()):  # no public way before Python 3.14
            process.terminate()
        raise
    finally:  # the folds not yet started are dropped, not fitted for nothing
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_start(threads: int) -> None:
    """A fold worker: its share of the cores for BLAS and torch, and Ctrl-C ends it quietly (the run
    that started it reports the interruption)."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # held since the driver spawned it
