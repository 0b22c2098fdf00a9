"""Pipeline wiring for the training half: feature version -> classifiers -> held-out metrics -> MLflow
(one parent run, a nested run per classifier) -> registry gate -> predictions for unlabelled files.

Wiring beside the conductor (processing/run.py): it may import every stage package; nothing but the
conductor imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import full_report, plot_confusion, score
from evaluation.report import write_predictions
from processing.config import Config
from processing.features import FeatureStore
from processing.progress import Stopwatch
from training import tracking
from training.classifiers import TEXT_INPUT, train_classifier
from training.gate import gate


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


@dataclass
class Inputs:
    """One feature version, as each kind of classifier wants it."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_heldout: np.ndarray
    y_heldout: np.ndarray
    embedder: str = ""
    load_texts: Callable[[], tuple[list[str], list[str]]] | None = None  # (train, held-out), read on first use
    _texts: tuple[np.ndarray, np.ndarray] | None = None

    def train(self, name: str) -> Any:
        return self.texts()[0] if name in TEXT_INPUT else self.x_train

    def heldout(self, name: str) -> Any:
        return self.texts()[1] if name in TEXT_INPUT else self.x_heldout

    def texts(self) -> tuple[np.ndarray, np.ndarray]:
        """The version's texts, for text classifiers: the ones this run trains, and a champion that
        reads text even when this run trains none."""
        if self._texts is None:
            if self.load_texts is None:
                raise RuntimeError("these inputs have no texts to give a text classifier")
            train, heldout = self.load_texts()
            self._texts = (np.asarray(train), np.asarray(heldout))
        return self._texts


def train_and_report(
    config: Config, store: FeatureStore, state: RunContext, version_id: str, created: bool
) -> dict[str, Any]:
    clock, t = state.clock, config.train
    with clock.stage("load_features"):
        features = store.load_features(version_id)
        version = store.version(version_id)
        inputs = Inputs(
            features.x_train,
            features.y_train,
            features.x_heldout,
            features.y_heldout,
            version["embedder"],
            load_texts=lambda: store.load_texts(version_id),
        )
        if TEXT_INPUT & set(t.classifiers):
            inputs.texts()
    with clock.stage("mlflow_setup"):
        tracking.setup(config.mlflow.uri(state.workspace), config.mlflow.experiment, state.workspace / "mlartifacts")
    tags = {
        "tier": state.tier,
        "feature_version": version_id,
        "device": state.device,
        "docscale_run": state.run_id,
        "embedder": version["embedder"],
        "git_commit": _git_commit(),
    }
    reports = state.workspace / "reports" / state.run_id
    results: dict[str, dict[str, Any]] = {}
    models: dict[str, tuple[Any, str]] = {}
    with tracking.pipeline_run(f"tier-{state.tier}", config.flat(), tags) as mlflow_run_id:
        tracking.log_feature_version(version_id, features.x_train, features.y_train, store.path)
        for name in t.classifiers:
            with tracking.child_run(name, {**tags, "classifier": name}):
                with clock.stage("train"):
                    start = time.perf_counter()
                    model = train_classifier(name, inputs.train(name), inputs.y_train, t, state.train_device)
                    train_seconds = time.perf_counter() - start
                with clock.stage("evaluate"):
                    proba = model.predict_proba(inputs.heldout(name))
                    report = full_report(inputs.y_heldout, proba, np.asarray(model.classes_), seed=t.seed)
                    predicted = np.asarray(model.classes_)[proba.argmax(axis=1)]
                    png = plot_confusion(
                        inputs.y_heldout, predicted, f"{name} - tier {state.tier}", reports / f"confusion_{name}.png"
                    )
                with clock.stage("log_models"):
                    scalars = {k: v for k, v in report.items() if isinstance(v, float)}
                    tracking.log_metrics({**scalars, "train_seconds": train_seconds})
                    tracking.log_metrics({f"f1.{label}": f for label, f in report["per_class_f1"].items()})
                    tracking.log_artifact(png, "confusion")
                    tracking.log_text(report["report"], "classification_report.txt")
                    example = inputs.train(name)[:5]
                    uri = tracking.log_model(name, model, example if name in TEXT_INPUT else example.astype(np.float32))
            results[name] = {**scalars, "train_seconds": train_seconds}
            models[name] = (model, uri)
            tracking.log_metrics({f"{name}.{k}": v for k, v in results[name].items()})

        best = max(results, key=lambda n: results[n]["macro_f1"])
        with clock.stage("registry"):
            decided = gate(
                t, models[best][1], best, results[best]["macro_f1"], tags, lambda v: _champion_score(v, inputs)
            )
            decision = decided.to_dict()
        tracking.log_json(decision, "registry_decision.json")
        tracking.set_tags({"best_classifier": best, "registry_decision": decision["decision"]})

        predictions = None
        unlabelled = store.unlabelled(state.run_id) if state.embedder else []
        if unlabelled and best not in TEXT_INPUT:  # documents without a label get the best model's prediction
            with clock.stage("predict"):
                vectors = store.load_vectors([h for _, h in unlabelled], state.embedder, state.extractor)
                predictions = reports / "predictions.csv"
                write_predictions(predictions, [p for p, _ in unlabelled], models[best][0], vectors)
                tracking.log_artifact(predictions)
        outcomes = store.outcome_counts(state.run_id)
        summary = {
            "run_id": state.run_id,
            "tier": state.tier,
            "source": state.source,
            "documents": sum(outcomes.values()),
            "outcomes": outcomes,
            "failed": {k: v for k, v in outcomes.items() if k not in ("ok", "fallback_ok")},
            "train_documents": len(inputs.y_train),
            "heldout_documents": len(inputs.y_heldout),
            "feature_version": version_id,
            "feature_version_created": created,
            "mlflow_run_id": mlflow_run_id,
            "classifiers": results,
            "best_classifier": best,
            "registry": decision,
            "stage_seconds": clock.seconds,
            "docs_per_second": _rates(state),
            "device": state.device,
            "work": state.work,
            "cluster": {**state.cluster, "tasks_per_node": dict(state.tasks_per_node)},
            "workspace": str(state.workspace),
            "predictions": str(predictions) if predictions else None,
        }
        tracking.log_metrics({f"seconds.{k}": v for k, v in clock.seconds.items()})
        tracking.log_metrics({f"docs_per_second.{k}": v for k, v in summary["docs_per_second"].items()})
        counts = {
            "documents": summary["documents"],
            "train_documents": len(inputs.y_train),
            "heldout_documents": len(inputs.y_heldout),
            "wall_seconds": sum(clock.seconds.values()),
        }
        tracking.log_metrics({**counts, **{f"work.{k}": v for k, v in state.work.items()}})
        tracking.log_json(summary, "summary.json")
    return summary


def _champion_score(champion: Any, inputs: Inputs) -> tuple[float, str]:
    """Re-score the champion on this run's held-out set when it reads the same inputs; else its record."""
    name = champion.tags.get("classifier", "")
    same_embedder = champion.tags.get("embedder") == inputs.embedder
    if name in TEXT_INPUT or same_embedder:
        model = tracking.load_model(f"models:/{champion.name}/{champion.version}")
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
