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
import sys
from pathlib import Path

from evaluation.drift import MonitorConfig
from evaluation.drift_report import write_report
from processing.features import FeatureStore
from processing.metrics_export import drift_series, export
from processing.monitoring import monitor_versions
from training import tracking


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
            recorded = tracking.recorded_figures(version) if version is not None else None
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
