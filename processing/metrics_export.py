"""Run and cycle figures for Prometheus: always a textfile-collector file under workspace/metrics/
(written to a temporary name, then renamed), and a push to a Pushgateway when monitor.pushgateway is set.

A Pushgateway that does not answer is a warning: monitoring must never fail a batch.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

PREFIX = "docscale_"


@dataclass
class Series:
    name: str  # without the docscale_ prefix
    help: str
    values: dict[tuple[str, ...], float]  # label values -> value
    labels: tuple[str, ...] = field(default=())


def export(series: list[Series], job: str, grouping: dict[str, str], workspace: Path, pushgateway: str = "") -> Path:
    """Write every series (plus docscale_last_success_timestamp_seconds) to workspace/metrics/<job>.prom
    and push them when a gateway is configured; returns the file's path."""
    registry = CollectorRegistry()
    const = tuple(grouping)
    for s in [*series, Series("last_success_timestamp_seconds", "When this job last finished", {(): time.time()})]:
        gauge = Gauge(PREFIX + s.name, s.help, [*const, *s.labels], registry=registry)
        for label_values, value in s.values.items():
            gauge.labels(*grouping.values(), *label_values).set(value)
    path = Path(workspace) / "metrics" / f"{job}.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # writes a temporary file, then renames it over the old one
    if pushgateway:
        try:
            push_to_gateway(pushgateway, job=job, registry=registry, grouping_key=grouping, timeout=5)
        except OSError as exc:
            reason = " ".join(str(exc).split())[:200]
            print(f"[docscale] warning: Pushgateway {pushgateway} did not take the metrics ({reason})", file=sys.stderr)
    return path


def drift_series(report: Any) -> list[Series]:
    """An evaluation.drift.DriftReport as series."""
    series = [
        Series(
            "drift_detected",
            "1 when both embedding tests, the text-noise or the novel-words test fired",
            {(): float(report.detected)},
        )
    ]
    for test in report.embedding:
        series.append(Series(f"drift_{test.name}", f"{test.name} score", {(): test.score}))
        series.append(Series(f"drift_{test.name}_p_value", f"{test.name} permutation p-value", {(): test.p_value}))
    noise = report.quality.get("text_noise")
    if noise:
        series.append(Series("drift_text_noise", "Mean share of letter-digit words in the batch", {(): noise["mean"]}))
    novel = report.quality.get("novel_words")
    if novel:
        series.append(
            Series("drift_novel_words", "Mean share of words new to the reference, per document", {(): novel["mean"]})
        )
    shares = report.prediction.get("shares", {})
    if shares:
        values = {(c,): v for c, v in shares.items()}
        series.append(Series("predicted_class_share", "Share of predictions per class", values, ("class",)))
    if report.performance.get("labelled"):
        series.append(
            Series("labelled_macro_f1", "Champion macro-F1 on labelled documents", {(): report.performance["macro_f1"]})
        )
    return series
