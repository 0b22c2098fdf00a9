"""Drift monitoring of one feature version against another (usually the champion's training data).

    python -m processing.monitor --reference fv-aaaa --current fv-bbbb
    python -m processing.monitor --current fv-bbbb               # reference: the champion's training version

Embedding drift (domain classifier and MMD², both must fire), prediction drift (the champion's
predicted-class shares), data quality (text lengths) and, where the current version has labels, the
champion's macro-F1 with a bootstrap interval. Writes JSON, Markdown and PNGs under
workspace/reports/monitoring/<current>/, logs a monitoring run to MLflow (tagged with the champion's
version and both feature versions), and exports the figures for Prometheus (processing.metrics_export).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.drift import DriftReport, MonitorConfig, Side, monitor
from evaluation.drift_report import markdown, plot_history, plot_shares
from processing.features import FeatureStore
from processing.metrics_export import Series, export
from training import tracking


def monitor_versions(
    store: FeatureStore,
    reference_fv: str,
    current_fv: str,
    champion: Any | None,
    config: MonitorConfig,
    champion_macro_f1: float | None = None,
) -> DriftReport:
    """Every drift test between two stored feature versions; the champion (a DocumentClassifier) adds
    prediction drift and labelled performance."""
    ref, cur = store.version_rows(reference_fv, splits=("train",)), store.version_rows(current_fv)
    ref_side = Side(ref.vectors, lengths=ref.lengths)
    cur_side = Side(cur.vectors, lengths=cur.lengths)
    classes: list[str] = []
    labelled = None
    if champion is not None and not champion.reads_text:
        classes = champion.classes
        ref_side.probabilities = champion.classifier.predict_proba(ref.vectors)
        cur_side.probabilities = champion.classifier.predict_proba(cur.vectors)
        known = np.asarray([bool(label) for label in cur.labels])
        if known.any():
            predicted = np.asarray(classes)[cur_side.probabilities[known].argmax(axis=1)]
            labelled = (np.asarray(cur.labels)[known], predicted)
    return monitor(ref_side, cur_side, classes, config, labelled, champion_macro_f1)


def write_report(report: DriftReport, folder: Path, title: str, history_file: Path) -> list[Path]:
    """JSON, Markdown and the PNGs; appends this batch to the drift history the timeline plot reads."""
    folder.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    (folder / "drift.json").write_text(json.dumps(data, indent=2))
    (folder / "drift.md").write_text(markdown(data, title))
    history = [json.loads(line) for line in history_file.read_text().splitlines()] if history_file.exists() else []
    if report.embedding:
        auc, mmd = report.embedding
        history.append({"batch": title, "domain_auc": auc.score, "mmd_p": mmd.p_value, "detected": report.detected})
        history_file.parent.mkdir(parents=True, exist_ok=True)
        with history_file.open("a") as handle:
            handle.write(json.dumps(history[-1]) + "\n")
    paths = [folder / "drift.json", folder / "drift.md"]
    paths += [p for p in (plot_shares(data["prediction"], folder / "class_shares.png"),) if p]
    paths += [p for p in (plot_history(history, folder / "drift_history.png"),) if p]
    return paths


def drift_series(report: DriftReport) -> list[Series]:
    series = [Series("drift_detected", "1 when both embedding tests fired", {(): float(report.detected)})]
    for test in report.embedding:
        series.append(Series(f"drift_{test.name}", f"{test.name} score", {(): test.score}))
        series.append(Series(f"drift_{test.name}_p_value", f"{test.name} permutation p-value", {(): test.p_value}))
    shares = report.prediction.get("shares", {})
    if shares:
        values = {(c,): v for c, v in shares.items()}
        series.append(Series("predicted_class_share", "Share of predictions per class", values, ("class",)))
    if report.performance.get("labelled"):
        series.append(
            Series("labelled_macro_f1", "Champion macro-F1 on labelled documents", {(): report.performance["macro_f1"]})
        )
    return series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processing.monitor", description=__doc__.split("\n")[0])
    parser.add_argument("--current", required=True, help="the feature version to judge")
    parser.add_argument("--reference", help="default: the feature version the champion was trained on")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--model", default="models:/docscale-classifier@champion")
    parser.add_argument("--tracking-uri", help="default: sqlite:///<workspace>/mlflow.db")
    parser.add_argument("--pushgateway", default="", help="host:port of a Prometheus Pushgateway")
    args = parser.parse_args(argv)
    workspace = args.workspace.resolve()
    if not (workspace / "features.duckdb").exists():
        print(f"error: no feature store in {workspace}; pass --workspace", file=sys.stderr)
        return 2
    uri = args.tracking_uri or tracking.default_tracking_uri(workspace)
    champion, version = None, None
    try:
        tracking.check_reachable(uri)
        tracking.setup(uri, "docscale", workspace / "mlartifacts")
        version = tracking.model_version(args.model)
        champion = tracking.load_document_model(f"models:/{version.name}/{version.version}")
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - no champion yet: embedding drift alone still means something
        if args.reference is None:
            print(f"error: {args.model}: {' '.join(str(exc).split())[:200]}; pass --reference", file=sys.stderr)
            return 2
    reference = args.reference or champion.feature_version
    config = MonitorConfig(pushgateway=args.pushgateway)
    try:
        with FeatureStore(workspace / "features.duckdb", read_only=True) as store:
            recorded = float(version.tags.get("heldout_macro_f1", "nan")) if version is not None else None
            report = monitor_versions(store, reference, args.current, champion, config, recorded)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = workspace / "reports" / "monitoring" / args.current
    paths = write_report(
        report, folder, f"{args.current} vs {reference}", workspace / "reports" / "monitoring" / "history.jsonl"
    )
    tags = {"kind": "monitoring", "reference_fv": reference, "current_fv": args.current}
    if version is not None:
        tags["champion_version"] = str(version.version)
    with tracking.report_run(f"monitor-{args.current}", tags):
        tracking.log_metrics({f"drift.{t.name}": t.score for t in report.embedding})
        tracking.log_metrics({f"drift.{t.name}_p": t.p_value for t in report.embedding})
        tracking.log_metrics({"drift.detected": float(report.detected)})
        for path in paths:
            tracking.log_artifact(path, "monitoring")
    export(drift_series(report), "monitor", {"current": args.current}, workspace, config.pushgateway)
    print((folder / "drift.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
