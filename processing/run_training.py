"""Pipeline wiring for the training half: feature version -> classifiers -> held-out metrics -> MLflow
(one parent run, a nested run per classifier) -> registry gate -> predictions for unlabelled files.

Wiring beside the conductor (processing/run.py): it may import every stage package; nothing but the
conductor imports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.heldout import Evaluation, evaluate
from evaluation.metrics import score
from evaluation.report import write_heldout_predictions
from evaluation.selection import CvScore, groups_of, select_settings
from processing.classify import DocumentClassifier
from processing.config import Config
from processing.features import FeatureStore
from processing.prediction_rows import write_prediction_file
from processing.progress import Progress, Stopwatch, log
from processing.scoring import file_probabilities
from training import tracking
from training.classifiers import FUSED_INPUT, TEXT_INPUT, TrainConfig, fused_rows
from training.fit import Trained, fit
from training.gate import GateDecision, gate


@dataclass
class RunContext:
    """What one pipeline run has learned so far; becomes the summary."""

    run_id: str
    tier: str
    source: str
    workspace: Path
    clock: Stopwatch = field(default_factory=Stopwatch)
    work: dict[str, int] = field(default_factory=dict)
    device: str = "cpu"  # where embeddings were computed
    train_device: str = "cpu"  # where the torch MLP trains: this process's device, not the embedder's
    cluster: dict[str, Any] = field(default_factory=dict)
    tasks_per_node: dict[str, int] = field(default_factory=dict)
    embedder: str = ""
    extractor: str = ""
    tags: dict[str, str] = field(default_factory=dict)  # extra MLflow tags (e.g. the loop's batch)


@dataclass
class Inputs:
    """One feature version, as each kind of classifier wants it."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_heldout: np.ndarray
    y_heldout: np.ndarray
    embedder: str = ""
    load_texts: Callable[[], tuple[list[str], list[str]]] | None = None  # (train, held-out), read on first use
    groups: np.ndarray | None = None  # train.cv_groups: each training row's group of related documents
    _texts: tuple[np.ndarray, np.ndarray] | None = None

    def train(self, name: str) -> Any:
        if name in FUSED_INPUT:
            return fused_rows(self.texts()[0], self.x_train)
        return self.texts()[0] if name in TEXT_INPUT else self.x_train

    def heldout(self, name: str) -> Any:
        if name in FUSED_INPUT:
            return fused_rows(self.texts()[1], self.x_heldout)
        return self.texts()[1] if name in TEXT_INPUT else self.x_heldout

    def texts(self) -> tuple[np.ndarray, np.ndarray]:
        """The version's texts, for text classifiers: the ones this run trains, and a champion that
        reads text even when this run trains none."""
        if self._texts is None:
            if self.load_texts is None:
                raise RuntimeError("these inputs have no texts to give a text classifier")
            train, heldout = self.load_texts()
            # dtype=object: a fixed-width str array is as wide as the longest text (a 700k-character
            # manual made 15k texts 39 GiB).
            self._texts = (np.asarray(train, dtype=object), np.asarray(heldout, dtype=object))
        return self._texts


@dataclass
class RunSummary:
    """What a pipeline run did, for the printed table, the JSON file and MLflow."""

    run_id: str
    tier: str
    source: str
    documents: int
    outcomes: dict[str, int]
    failed: dict[str, int]
    train_documents: int
    heldout_documents: int
    feature_version: str
    feature_version_created: bool
    mlflow_run_id: str
    classifiers: dict[str, dict[str, float]]
    best_classifier: str
    registry: dict[str, Any]
    stage_seconds: dict[str, float]
    docs_per_second: dict[str, float]
    device: str
    work: dict[str, int]
    cluster: dict[str, Any]
    workspace: str
    tracking_uri: str
    predictions: str | None
    unlabelled: dict[str, Any] | None = None  # files without a label: how many, predicted, why not
    best_per_class_f1: dict[str, float] = field(default_factory=dict)  # held-out F1 of each class, best model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The loop's own gate: (best classifier's name, its fitted model, its registered-to-be URI, its held-out
# macro-F1, the run's tags, the inputs) -> the decision. Default: training.gate.gate on the held-out set.
Decide = Callable[[str, Any, str, float, dict[str, str], "Inputs"], GateDecision]


def train_and_report(
    config: Config,
    store: FeatureStore,
    state: RunContext,
    version_id: str,
    created: bool,
    decide: Decide | None = None,
) -> dict[str, Any]:
    """Wiring: each classifier is fitted (training.fit), scored (evaluation.heldout) and logged (tracking);
    the best goes through the registry gate (training.gate, or `decide`); unlabelled files get its
    predictions."""
    clock, t = state.clock, config.train
    with clock.stage("load_features"):
        inputs = _inputs(store, version_id, needs_texts=bool((TEXT_INPUT | FUSED_INPUT) & set(t.classifiers)))
        inputs.groups = groups_of(store.member_names(version_id), t.cv_groups) if t.cv_groups else None
    with clock.stage("mlflow_setup"):
        experiment_id = tracking.setup(
            config.mlflow.uri(state.workspace), config.mlflow.experiment, state.workspace / "mlartifacts"
        )
        if abandoned := tracking.end_abandoned_runs(experiment_id, store.ended_runs()):
            log(f"mlflow: {abandoned} run(s) left RUNNING by an earlier run that stopped abruptly, now marked FAILED")
    tags = {
        "tier": state.tier,
        "feature_version": version_id,
        "device": state.device,
        "docscale_run": state.run_id,
        "embedder": inputs.embedder,
        "git_commit": _git_commit(),
        **state.tags,
    }
    reports = state.workspace / "reports" / state.run_id
    results: dict[str, dict[str, float]] = {}
    per_class: dict[str, dict[str, float]] = {}  # each classifier's held-out F1 per class
    models: dict[str, tuple[Any, str]] = {}
    with tracking.pipeline_run(f"tier-{state.tier}", config.flat(), tags) as mlflow_run_id:
        tracking.log_feature_version(version_id, inputs.x_train, inputs.y_train, store.path)
        with clock.stage("select"):  # stratified k-fold on the training documents only
            chosen = _select(t, inputs, state.train_device)
        settings: dict[str, TrainConfig] = {}
        for number, name in enumerate(t.classifiers, 1):
            # One line as each classifier starts: at 75k one fit takes minutes, and a person should see which.
            log(f"train: {name} ({number}/{len(t.classifiers)}) on {len(inputs.y_train):,} documents")
            setting, cv = chosen[name]
            with tracking.child_run(name, {**tags, "classifier": name}):
                with clock.stage("train"):
                    trained = fit(name, inputs.train(name), inputs.y_train, setting, state.train_device)
                with clock.stage("evaluate"):
                    title, png = f"{name} - tier {state.tier}", reports / f"confusion_{name}.png"
                    scored = evaluate(trained.model, inputs.heldout(name), inputs.y_heldout, t.seed, title, png)
                selection = {**cv.scalars(), **{f"param.{k}": v for k, v in cv.params.items()}} if cv else {}
                log(f"{_selection_line(name, cv, scored.scalars['macro_f1'])}; fitted in {trained.seconds:.1f} s")
                if trained.note:
                    log(f"train: {name} {trained.note}")
                    tracking.set_tags({"fit_note": trained.note})
                with clock.stage("log_models"):
                    uri = _log_classifier(name, trained, scored, inputs, selection)
            results[name] = {
                **scored.scalars,
                **selection,
                "train_seconds": trained.seconds,
                "train_documents_fitted": trained.documents,
            }
            per_class[name] = scored.per_class_f1
            models[name] = (trained.model, uri)
            settings[name] = setting
            tracking.log_metrics({f"{name}.{k}": v for k, v in results[name].items()})

        best = max(results, key=lambda n: _selection_score(results[n]))
        evaluated = models[best][0]  # the model the held-out figures are of
        if state.tier == "input" and decide is None:
            # The user's folder has no fixed held-out set: the held-out split scored the models above;
            # the model that goes on is the winner fitted on every labelled document.
            with clock.stage("train"):
                models[best] = (_refit_on_all(best, inputs, settings[best], state.train_device), models[best][1])
            tags["fitted_on"] = "train+heldout"
        with clock.stage("log_models"):
            # The held-out predictions behind the figures, with each file and its label, to look at mistakes.
            # On the generated tiers this is the registered model, so serving must reproduce them; a folder
            # of the user's own registers the winner refitted on the held-out files too.
            heldout_csv = reports / "heldout_predictions.csv"
            named = zip(store.heldout_hashes(version_id), store.member_names(version_id, "heldout"), strict=True)
            write_heldout_predictions(heldout_csv, evaluated, inputs.heldout(best), named, inputs.y_heldout)
            tracking.log_artifact(heldout_csv)
            document_model = DocumentClassifier(
                models[best][0],
                best,
                config.extract,
                config.embed,
                inputs.embedder,
                version_id,
                view=_view(best),
            )
            document_uri = tracking.log_document_model(document_model)
        with clock.stage("registry"):
            gate_tags = {**tags, "heldout_accuracy": f"{results[best]['accuracy']:.6f}"}  # the loop compares with it
            if decide is not None:
                gated = decide(best, models[best][0], document_uri, results[best]["macro_f1"], gate_tags, inputs)
            else:
                score_champion = partial(_champion_score, inputs=inputs)
                gated = gate(t, document_uri, best, results[best]["macro_f1"], gate_tags, score_champion)
            decision = gated.to_dict()
        tracking.log_json(decision, "registry_decision.json")
        tracking.set_tags({"best_classifier": best, "registry_decision": decision["decision"]})

        predictions, unlabelled_counts = None, None
        unlabelled = store.unlabelled_paths(state.run_id) if state.embedder else []
        if unlabelled:  # files without a label: one row each, the best model's prediction or why there is none
            with clock.stage("predict"):
                predictions = reports / "predictions.csv"
                files = store.run_files(state.run_id, state.extractor)
                scored = file_probabilities(document_model, store, unlabelled, files, state.embedder, state.extractor)
                written = write_prediction_file(predictions, unlabelled, files, scored, document_model.classes)
                unlabelled_counts = {
                    "files": len(unlabelled),
                    "predicted": written.predicted,
                    "without_prediction": dict(written.without),
                }
                tracking.log_artifact(predictions)
        outcomes = store.outcome_counts(state.run_id)
        summary = RunSummary(
            run_id=state.run_id,
            tier=state.tier,
            source=state.source,
            documents=sum(outcomes.values()),
            outcomes=outcomes,
            # A duplicate is not a failure: its content is read once, under its twin's path.
            failed={k: v for k, v in outcomes.items() if k not in ("ok", "fallback_ok", "duplicate")},
            train_documents=len(inputs.y_train),
            heldout_documents=len(inputs.y_heldout),
            feature_version=version_id,
            feature_version_created=created,
            mlflow_run_id=mlflow_run_id,
            classifiers=results,
            best_classifier=best,
            best_per_class_f1=per_class[best],
            registry=decision,
            stage_seconds=clock.seconds,
            docs_per_second=_rates(state),
            device=state.device,
            work=state.work,
            cluster={**state.cluster, "tasks_per_node": dict(state.tasks_per_node)},
            workspace=str(state.workspace),
            tracking_uri=tracking.shown_uri(config.mlflow.uri(state.workspace)),
            predictions=str(predictions) if predictions else None,
            unlabelled=unlabelled_counts,
        )
        _log_run_figures(summary)
        tracking.log_json(summary.to_dict(), "summary.json")
    return summary.to_dict()


def _inputs(store: FeatureStore, version_id: str, needs_texts: bool) -> Inputs:
    features = store.load_features(version_id)
    inputs = Inputs(
        features.x_train,
        features.y_train,
        features.x_heldout,
        features.y_heldout,
        store.version(version_id)["embedder"],
        load_texts=lambda: store.load_texts(version_id),
    )
    if needs_texts:
        inputs.texts()
    return inputs


def model_input(name: str, vectors: np.ndarray, store: FeatureStore, hashes: list[str], extractor: str) -> Any:
    """What classifier `name` reads for these documents: their vectors, their texts (from the store, read
    with the version's extractor), or both."""
    if name not in TEXT_INPUT | FUSED_INPUT:
        return vectors
    texts = dict(store.iter_texts(hashes, extractor))
    if name in FUSED_INPUT:
        return fused_rows([texts[h] for h in hashes], vectors)
    return np.asarray([texts[h] for h in hashes], dtype=object)  # not fixed-width: as wide as the longest


def _view(name: str) -> str:
    return "text" if name in TEXT_INPUT else "both" if name in FUSED_INPUT else "vectors"


def _select(t: TrainConfig, inputs: Inputs, device: str) -> dict[str, tuple[TrainConfig, CvScore | None]]:
    """Every classifier's setting, chosen by cross-validation; the folds of all of them run side by side
    on `train.cv_workers` processes (in this one when the MLP trains on a GPU: one device, one process)."""
    workers = (t.cv_workers or len(os.sched_getaffinity(0))) if device == "cpu" else 1
    progress: Progress | None = None
    folds = 0

    def advance(done: int, total: int) -> None:
        nonlocal progress, folds
        progress = progress or Progress("select", total, unit="fold")
        progress.update(1)
        folds = total

    start = time.perf_counter()
    try:
        chosen = select_settings(
            t.classifiers, inputs.train, inputs.y_train, t, device, inputs.groups, workers, on_fold=advance
        )
    finally:
        if progress is not None:
            progress.close()
    if folds:
        seconds = time.perf_counter() - start
        processes = min(workers, folds)
        log(f"select: {folds} folds of {len(t.classifiers)} classifiers in {seconds:.0f} s on {processes} process(es)")
    return chosen


def _selection_line(name: str, cv: CvScore | None, heldout_f1: float) -> str:
    if cv is None:
        return (
            f"select: {name} held-out macro-F1 {heldout_f1:.3f}"
            " (a class has < 2 documents, or groups of them: no cross-validation)"
        )
    params = ", ".join(f"{k}={v:g}" for k, v in cv.params.items())
    grouped = f" in {cv.groups} groups" if cv.groups else ""
    return (
        f"select: {name} cv macro-F1 {cv.macro_f1:.3f} [{cv.low:.3f}, {cv.high:.3f}] ({cv.folds} folds of"
        f" {cv.documents} documents{grouped}{'; ' + params if params else ''}), held-out {heldout_f1:.3f}"
    )


def _selection_score(row: dict[str, float]) -> float:
    """Cross-validated macro-F1 where there is one (every classifier has one, or none does: a class
    with a single training document), else the held-out split's."""
    return row.get("cv_macro_f1", row["macro_f1"])


def _refit_on_all(name: str, inputs: Inputs, setting: TrainConfig, device: str) -> Any:
    train, heldout = inputs.train(name), inputs.heldout(name)
    x = np.concatenate([train, heldout]) if isinstance(train, np.ndarray) else [*train, *heldout]
    trained = fit(name, x, np.concatenate([inputs.y_train, inputs.y_heldout]), setting, device)
    if trained.note:
        log(f"train: {name} refitted on every labelled document: {trained.note}")
    return trained.model


def _log_classifier(
    name: str, trained: Trained, scored: Evaluation, inputs: Inputs, selection: dict[str, float]
) -> str:
    """One classifier's metrics, artifacts and model in its nested run; returns the model's URI."""
    tracking.log_metrics({**scored.scalars, **selection, "train_seconds": trained.seconds})
    tracking.log_metrics({f"f1.{label}": f for label, f in scored.per_class_f1.items()})
    tracking.log_artifact(scored.confusion_png, "confusion")
    tracking.log_text(scored.report, "classification_report.txt")
    if name in FUSED_INPUT:  # MLflow cannot describe (text, vector) pairs: no signature
        return tracking.log_model(name, trained.model, None)
    example = inputs.train(name)[:5]
    return tracking.log_model(name, trained.model, example if name in TEXT_INPUT else example.astype(np.float32))


def _log_run_figures(summary: RunSummary) -> None:
    tracking.log_metrics({f"seconds.{k}": v for k, v in summary.stage_seconds.items()})
    tracking.log_metrics({f"docs_per_second.{k}": v for k, v in summary.docs_per_second.items()})
    counts = {
        "documents": summary.documents,
        "train_documents": summary.train_documents,
        "heldout_documents": summary.heldout_documents,
        "wall_seconds": sum(summary.stage_seconds.values()),
    }
    tracking.log_metrics({**counts, **{f"work.{k}": v for k, v in summary.work.items()}})


def _champion_score(champion: Any, inputs: Inputs) -> tuple[float, str]:
    """Re-score the champion on this run's held-out set when it reads the same inputs; else its record."""
    name = champion.tags.get("classifier", "")
    same_embedder = champion.tags.get("embedder") == inputs.embedder
    if name in TEXT_INPUT or same_embedder:
        model = tracking.load_classifier(f"models:/{champion.name}/{champion.version}")
        predicted = model.predict(inputs.heldout(name))
        return score(inputs.y_heldout, predicted)["macro_f1"], "rescored on this held-out set"
    return float(champion.tags.get("heldout_macro_f1", "nan")), "recorded score (different embedder)"


def _rates(state: RunContext) -> dict[str, float]:
    """Documents per second of the stages that process documents."""
    seconds, work = state.clock.seconds, state.work
    rates = {}
    for stage, key in (("corpus", "generated"), ("extract", "extracted"), ("embed", "embedded")):
        if seconds.get(stage) and work.get(key):
            rates[stage] = round(work[key] / seconds[stage], 2)
    return rates


def _git_commit() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
