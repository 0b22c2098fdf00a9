"""The MLOps loop for one arriving batch: extract and embed it with the champion's own settings, score
every file, judge drift, decide whether to retrain, retrain and gate when a trigger fires, record it all.

Wiring beside the conductor (processing/cycle.py): it may import every stage package. The stages are the
pipeline's own (processing.build, processing.run_training); nothing here extracts or embeds by itself.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.drift_report import write_report
from evaluation.triggers import Evidence, retrain_reason
from ingestion.extract import USABLE, content_hash, extractor_version, file_size
from ingestion.sources import InputError, display_path, filesystem_for, list_files, read_bytes, read_label_rows
from processing.build import embed_stage, extract_stage
from processing.challenger import retrain
from processing.classify import DocumentClassifier
from processing.config import Config
from processing.embed import embedder_id
from processing.features import FeatureStore, Member
from processing.metrics_export import Series, drift_series, export
from processing.monitoring import monitor_versions
from processing.pipeline import run_pipeline, start_executor
from processing.prediction_rows import Written, write_prediction_file
from processing.progress import Stopwatch, log
from processing.scoring import champion_probabilities
from training import tracking


@dataclass
class Batch:
    input: str
    paths: list[str]
    hashes: dict[str, str]  # path -> content hash ("" when the file cannot be read)
    batch_id: str


@dataclass
class CycleResult:
    """What a cycle did; `--summary` writes it as JSON."""

    batch_id: str
    input: str
    decision: str  # one of evaluation.triggers.DECISIONS
    reason: str
    drift: dict[str, Any] = field(default_factory=dict)
    champion_version_before: str | None = None
    champion_version_after: str | None = None
    challenger_version: str | None = None
    predictions: str | None = None
    labels: dict[str, int] = field(default_factory=dict)  # the champion's labels for the batch, commonest first
    uncertain: int = 0  # of them, given at a probability under 0.5
    documents: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    new_labels: int = 0
    feature_version: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    already_decided: bool = False


def list_batch(input_dir: str, max_bytes: int) -> Batch:
    """Every file of the batch and its content hash; the batch's id is a digest of the contents, so the
    same files are the same batch wherever they lie."""
    paths = list_files(input_dir)
    if not paths:
        raise InputError(f"--input {input_dir}: the folder holds no files")
    hashes = {}
    for path in paths:
        try:
            hashes[path] = content_hash(read_bytes(path)) if file_size(path) <= max_bytes else f"size:{path}"
        except OSError:
            hashes[path] = ""
    digest = hashlib.sha256("\n".join(sorted(f"{display_path(p)}\t{h}" for p, h in hashes.items())).encode())
    return Batch(input_dir, paths, hashes, "batch-" + digest.hexdigest()[:12])


def batch_labels(
    labels_csv: str, batch: Batch, store: FeatureStore, classes: list[str], allow_new_classes: bool
) -> dict[str, str]:
    """content hash -> label from a CSV naming files of this batch or of earlier ones. Unknown files and
    (unless allowed) unknown classes are one-line errors naming the line."""
    _, base = filesystem_for(batch.input)
    here = {display_path(p): h for p, h in batch.hashes.items() if h}
    rows = read_label_rows(labels_csv)
    resolved = {}
    for line_no, path, label in rows:
        full = path if path in here else str(Path(base) / path) if not path.startswith("/") else path
        resolved[line_no] = (path, full, label)
    earlier = store.hashes_of_paths([full for _, full, _ in resolved.values() if full not in here])
    labels: dict[str, str] = {}
    for line_no, (path, full, label) in resolved.items():
        digest = here.get(full) or earlier.get(full)
        if not digest:
            raise InputError(f"{labels_csv}:{line_no}: {path} is neither in this batch nor in an earlier one")
        if classes and label not in classes and not allow_new_classes:
            raise InputError(
                f"{labels_csv}:{line_no}: class {label!r} is unknown to the champion ({', '.join(classes)}); "
                "fix the label or pass --allow-new-classes"
            )
        labels[digest] = label
    return labels


def run_cycle(
    config: Config,
    input_dir: str,
    workspace: Path,
    labels_csv: str | None = None,
    on_demand: bool = False,
    allow_new_classes: bool = False,
    ray_address: str | None = None,
) -> CycleResult:
    workspace = workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    uri = config.mlflow.uri(workspace)
    tracking.check_reachable(uri)
    tracking.setup(uri, config.mlflow.experiment, workspace / "mlartifacts")
    registry = config.train.registry_model
    clock = Stopwatch()
    batch = list_batch(input_dir, config.extract.max_bytes)
    champion_entry = tracking.champion(registry)
    if champion_entry is None:  # the first cycle trains the first champion, like processing.run --input
        summary = run_pipeline(config, "input", workspace, ray_address, input_dir=input_dir, labels_csv=labels_csv)
        after = tracking.champion(registry)
        result = CycleResult(
            batch.batch_id,
            input_dir,
            "trained_first",
            "no champion yet: trained one on this batch",
            champion_version_after=str(after.version) if after else None,
            documents=summary["documents"],
            outcomes=summary["outcomes"],
            feature_version=summary["feature_version"],
            stage_seconds=summary["stage_seconds"],
        )
        with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
            store.record_decision(batch.batch_id, _row(result))
        return result

    champion = tracking.load_document_model(f"models:/{registry}/{champion_entry.version}")
    # The batch is read exactly as the champion's training data was: its settings, not the config's.
    # The device is where it runs, not what it computes: this machine's setting (default auto) stands.
    config.extract, config.embed = champion.extract, replace(champion.embed, device=config.embed.device)
    with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
        labels = batch_labels(labels_csv, batch, store, champion.classes, allow_new_classes) if labels_csv else {}
        done = store.decision(batch.batch_id)
        if done is not None:  # rerunning a batch never scores, decides or promotes twice ...
            added = store.add_labels(labels, batch.batch_id, "labels")  # ... but late labels still count
            if added:
                log(f"cycle {batch.batch_id}: already decided; {added} new labels recorded for the next cycle")
            fields = CycleResult.__dataclass_fields__
            return CycleResult(**{k: v for k, v in done.items() if k in fields} | {"already_decided": True})
        recovered = _interrupted_gate(registry, batch, champion_entry)
        if recovered is not None:  # killed after its gate acted: record what the gate did, train nothing again
            store.add_labels(labels, batch.batch_id, "labels")
            store.record_decision(batch.batch_id, _row(recovered))
            log(f"cycle {batch.batch_id}: {recovered.decision} ({recovered.reason})")
            return recovered
        run_id = time.strftime("cycle-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        store.begin_run(run_id, f"cycle:{input_dir}", config.to_dict())
        try:
            result = _cycle(
                config,
                store,
                run_id,
                batch,
                labels,
                (champion, champion_entry),
                clock,
                workspace,
                on_demand,
                ray_address,
            )
        except BaseException:
            store.finish_run(run_id, "failed", None)
            raise
        store.finish_run(run_id, "finished", result.feature_version)
        store.record_decision(batch.batch_id, _row(result))
    log(f"cycle {batch.batch_id}: {result.decision} ({result.reason})")
    return result


def _interrupted_gate(registry: str, batch: Batch, champion_entry: Any) -> CycleResult | None:
    """What the gate did in an earlier run of this batch that was killed before its decision was written
    (MLflow holds the registry, DuckDB the decisions: no commit spans both). A challenger the gate had
    tagged, or that holds the champion alias, was judged: that is the decision. One registered but never
    judged is marked abandoned, and the rerun trains and judges again: the alias never moves twice."""
    for version in tracking.batch_challengers(registry, batch.batch_id):
        gate, holds_alias = version.tags.get("gate"), str(version.version) == str(champion_entry.version)
        if gate == "abandoned" or (gate is None and not holds_alias):
            if gate is None:
                reason = "its cycle was killed before the gate judged it; the rerun trained again"
                tags = {"gate": "abandoned", "gate_reason": reason}
                tracking.set_model_version_tags(registry, str(version.version), tags)
            continue
        decision = gate or "promoted"
        return CycleResult(
            batch.batch_id,
            batch.input,
            decision,
            f"recorded on rerun: the killed cycle's gate had {decision} version {version.version} "
            f"({version.tags.get('gate_reason', 'its reason was not recorded')})",
            champion_version_before=version.tags.get("champion_before"),
            champion_version_after=str(champion_entry.version),
            challenger_version=str(version.version),
            feature_version=version.tags.get("feature_version"),
        )
    return None


def _cycle(
    config: Config,
    store: FeatureStore,
    run_id: str,
    batch: Batch,
    labels: dict[str, str],
    champions: tuple[DocumentClassifier, Any],
    clock: Stopwatch,
    workspace: Path,
    on_demand: bool,
    ray_address: str | None,
) -> CycleResult:
    champion, champion_entry = champions
    settings = (config.extract, config.embed)
    extractor, embedder = extractor_version(config.extract), embedder_id(config.embed)
    executor = start_executor(config, ray_address)
    work: dict[str, int] = {}
    label_map = {p: (labels.get(h), "batch" if h in labels else "predict") for p, h in batch.hashes.items()}
    pool = extract_stage(executor, store, run_id, settings, label_map, clock, workspace / "models", work)
    files = store.run_files(run_id, extractor)
    usable = sorted({h for h, outcome, _, _ in files.values() if outcome in USABLE})
    embed_stage(executor, store, settings, usable, pool, clock, workspace / "models", work)
    new = store.add_labels(labels, batch.batch_id, "labels")
    log(f"cycle: {len(batch.paths)} files, {len(usable)} usable, {len(labels)} labels ({new} new or changed)")

    # The batch as a feature version of its own (split "batch"), so that it can be monitored and compared.
    batch_fv = None
    if usable:
        members = [Member(h, labels.get(h, ""), "batch") for h in usable]
        batch_fv, _ = store.commit_version(
            members, f"cycle:{batch.batch_id}", extractor, embedder, {"batch": batch.batch_id}
        )

    # Score every file with the champion: one row per file, an outcome instead of a label when unusable.
    folder = workspace / "cycles" / batch.batch_id
    with clock.stage("score"):
        vectors = store.load_vectors(usable, embedder, extractor) if usable else np.zeros((0, 1))
        probabilities = champion_probabilities(champion, store, usable, vectors, extractor, executor)
        scored = dict(zip(usable, probabilities, strict=True))
        predictions = folder / "predictions.parquet"
        written = _write_predictions(predictions, batch, files, scored, champion)

    # Monitoring: the batch against the champion's training data.
    with clock.stage("monitor"):
        report = monitor_versions(
            store,
            champion.feature_version,
            batch_fv,
            champion,
            config.monitor,
            tracking.recorded_figures(champion_entry),
            store.outcome_counts(run_id),
            scored,
        )
        report_files = write_report(
            report, folder, batch.batch_id, workspace / "reports" / "monitoring" / "history.jsonl"
        )

    m = config.monitor
    new_labels = store.labels_outside(champion.feature_version, extractor)
    streak = store.drift_streak() + 1 if report.detected else 0
    perf = report.performance
    evidence = Evidence(report.detected, streak, len(new_labels), perf, on_demand)
    reason = retrain_reason(
        evidence, m.retrain_min_labels, m.retrain_label_count, m.retrain_f1_drop, m.retrain_drift_streak
    )
    drift = _drift_summary(report)
    result = CycleResult(
        batch.batch_id,
        batch.input,
        "no_drift",
        "no trigger fired",
        drift=drift,
        champion_version_before=str(champion_entry.version),
        champion_version_after=str(champion_entry.version),
        predictions=str(predictions),
        labels=dict(written.labels.most_common()),
        uncertain=written.uncertain,
        documents=len(batch.paths),
        outcomes=store.outcome_counts(run_id),
        new_labels=len(new_labels),
        feature_version=batch_fv,
    )
    if reason is None:
        if report.detected or streak >= m.retrain_drift_streak:
            result.decision = "drift_no_labels"
            result.reason = (
                f"drift, but {len(new_labels)} new labelled documents "
                f"(< monitor.retrain_min_labels {m.retrain_min_labels})"
            )
        elif not usable:
            result.decision = "not_judged"
            result.reason = f"no usable document in the batch (outcomes {result.outcomes}); nothing to judge"
        elif report.status != "judged":
            result.decision = "not_judged"
            result.reason = f"batch too small to judge drift ({len(usable)} usable < monitor.min_batch {m.min_batch})"
    else:
        gated = retrain(
            config, store, champion, champion_entry, new_labels, batch.batch_id, clock, workspace, reason, run_id
        )
        result.decision, result.reason = gated.decision, f"{reason}; {gated.reason}"
        result.challenger_version = gated.challenger_version
        after = tracking.champion(config.train.registry_model)
        result.champion_version_after = str(after.version) if after else None
    result.stage_seconds = dict(clock.seconds)
    _log_cycle(result, report, champion.feature_version, [*report_files, predictions])
    _export(result, report, config, workspace)
    return result


def _log_cycle(result: CycleResult, report: Any, reference_fv: str, files: list[Path]) -> None:
    """The cycle as an MLflow monitoring run, linked to the champion's version and both feature versions,
    with its decision and numbers as tags and metrics, the drift report and predictions as artifacts."""
    tags = {
        "kind": "monitoring",
        "cycle_batch": result.batch_id,
        "decision": result.decision,
        "decision_reason": result.reason[:5000],
        "champion_version_before": str(result.champion_version_before),
        "champion_version_after": str(result.champion_version_after),
        "reference_fv": reference_fv,
        "current_fv": str(result.feature_version),
    }
    with tracking.report_run(f"cycle-{result.batch_id}", tags):
        figures = {f"drift.{t.name}": t.score for t in report.embedding}
        figures |= {f"drift.{t.name}_p": t.p_value for t in report.embedding}
        figures |= {"drift.detected": float(report.detected), "documents": float(result.documents)}
        figures |= {f"outcomes.{k}": float(v) for k, v in result.outcomes.items()}
        if report.performance.get("labelled"):
            figures |= {f"labelled.{k}": v for k, v in report.performance.items() if v == v}
        tracking.log_metrics(figures)
        for path in files:
            tracking.log_artifact(path, "cycle")


def _write_predictions(
    path: Path,
    batch: Batch,
    files: dict[str, tuple[str, str, str, str]],
    probabilities: dict[str, np.ndarray],
    champion: DocumentClassifier,
) -> Written:
    """One row per file of the batch (processing.prediction_rows); `files`: FeatureStore.run_files."""
    paths = [display_path(p) for p in batch.paths]
    unread = {
        display_path(p): (h, "unreadable", "not recorded by the extraction stage", "") for p, h in batch.hashes.items()
    }
    return write_prediction_file(path, paths, unread | files, probabilities, champion.classes, with_hash=True)


def _drift_summary(report: Any) -> dict[str, Any]:
    return {
        "detected": report.detected,
        "status": report.status,
        "tests": {
            t.name: {"score": t.score, "p_value": t.p_value, "threshold": t.threshold, "fired": t.fired}
            for t in report.embedding
        },
        "prediction": {k: report.prediction.get(k) for k in ("p_value", "tvd", "fired", "threshold")}
        if report.prediction
        else {},
        "text_noise": report.quality.get("text_noise", {}),
        "novel_words": report.quality.get("novel_words", {}),
        "labelled_macro_f1": report.performance.get("macro_f1"),
        "seconds": report.seconds,
    }


def _rates(result: CycleResult) -> dict[tuple[str, ...], float]:
    seconds = result.stage_seconds
    return {
        (stage,): result.documents / seconds[stage] for stage in ("extract", "embed", "score") if seconds.get(stage)
    }


def _row(result: CycleResult) -> dict[str, Any]:
    from dataclasses import asdict

    row = asdict(result)
    tests = result.drift.get("tests", {})
    row |= {
        "drift_detected": bool(result.drift.get("detected")),
        "domain_auc": tests.get("domain_auc", {}).get("score"),
        "mmd_p": tests.get("mmd2", {}).get("p_value"),
        "labelled_macro_f1": result.drift.get("labelled_macro_f1"),
        "champion_before": result.champion_version_before,
        "champion_after": result.champion_version_after,
    }
    return row


def _export(result: CycleResult, report: Any, config: Config, workspace: Path) -> None:
    series = drift_series(report) + [
        Series("documents", "Batch documents by outcome", {(k,): v for k, v in result.outcomes.items()}, ("outcome",)),
        Series("cycle_decision", "1 for the cycle's decision", {(result.decision,): 1.0}, ("decision",)),
        Series(
            "champion_version",
            "Registry version holding the champion alias after the cycle",
            {(): float(result.champion_version_after or 0)},
        ),
        Series(
            "cycle_stage_seconds", "Seconds by stage", {(k,): v for k, v in result.stage_seconds.items()}, ("stage",)
        ),
    ]
    export(series, "cycle", {"batch": result.batch_id}, workspace, config.monitor.pushgateway)
