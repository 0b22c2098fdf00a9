"""Training one classifier: arrays (or texts) in, a fitted model and its cost out. No MLflow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.classifiers import TrainConfig, train_classifier
from training.memory import available_bytes, fit_budget, stratified_rows, take_rows


@dataclass
class Trained:
    name: str
    model: Any
    seconds: float
    documents: int  # the documents it was fitted on: all it was given unless memory allowed fewer
    note: str = ""  # why fewer, when fewer


def fit(name: str, x: Any, y: np.ndarray, config: TrainConfig, device: str) -> Trained:
    """The classifier fitted on x, y: on all of them, or on the largest stratified sample whose fit fits in
    memory (training.memory) when all would not."""
    start = time.perf_counter()
    budget = fit_budget(name, x, y, config, available_bytes())
    if budget.documents < len(y):
        rows = stratified_rows(y, budget.documents, config.seed)
        x, y = take_rows(x, rows), y[rows]
    model = _stoppable(train_classifier, name, x, y, config, device)
    return Trained(name, model, time.perf_counter() - start, len(y), budget.note)


def _stoppable(call: Callable[..., Any], *args: Any) -> Any:
    """call(*args), while Ctrl-C and SIGTERM still stop the run at once. Python runs signal handlers only
    between bytecodes, so a classifier fitting inside one long C call (liblinear for svm: minutes at 75k)
    held them until it returned. Those C calls let go of the interpreter: the fit runs in a thread, and
    this thread waits where a signal reaches it. An interrupted fit is left to the process's exit."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call(*args)
        except BaseException as error:  # handed to the caller, with its traceback
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="docscale-fit", daemon=True).start()
    # An Event, not Thread.join: a KeyboardInterrupt inside join marks the still running thread stopped
    # and releases its lock (Python 3.11's threading._wait_for_tstate_lock).
    while not done.wait(0.2):
        pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
