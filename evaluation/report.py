"""The end-of-run summary: a table for people, a JSON file for machines."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Below this many held-out documents one document moves accuracy by over 3 points, and a macro-F1 of 1.000
# on three documents (a small user folder's 20% split) says nothing; the summary says so.
SMALL_HELDOUT = 30


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"docscale run {summary['run_id']}  tier={summary['tier']}  device={summary['device']}",
        f"documents {summary['documents']}  usable train/held-out {summary['train_documents']}/"
        f"{summary['heldout_documents']}  failed {sum(summary['failed'].values())} {dict(summary['failed'])}",
        "work done: " + ", ".join(f"{k} {v}" for k, v in summary["work"].items()),
        f"feature version {summary['feature_version']}"
        f" ({'new' if summary['feature_version_created'] else 'reused'})   mlflow run {summary['mlflow_run_id']}",
        "",
        f"{'classifier':<12} {'accuracy':>9} {'macro-F1':>9} {'ECE':>6} {'cv macro-F1 [95%]':>22} {'train s':>8}",
    ]
    for name, m in summary["classifiers"].items():
        cv = "-"
        if "cv_macro_f1" in m:
            cv = f"{m['cv_macro_f1']:.3f} [{m['cv_macro_f1_low']:.2f}, {m['cv_macro_f1_high']:.2f}]"
        best = " <- best" if name == summary.get("best_classifier") else ""
        lines.append(
            f"{name:<12} {m['accuracy']:>9.3f} {m['macro_f1']:>9.3f} {m.get('ece', float('nan')):>6.3f} {cv:>22}"
            f" {m['train_seconds']:>8.1f}{best}"
        )
    cross_validated = any("cv_macro_f1" in m for m in summary["classifiers"].values())
    if cross_validated:
        lines.append("best: by cross-validated macro-F1 on the training documents; macro-F1 and ECE: held-out")
    if weakest := weakest_classes(summary.get("best_per_class_f1") or {}):
        lines.append(f"weakest classes on the held-out set ({summary['best_classifier']}, F1): {weakest}")
    if 0 < summary["heldout_documents"] < SMALL_HELDOUT:
        lines.append(
            f"held-out: only {summary['heldout_documents']} documents, too few for its figures to say much"
            + ("; the cv column is the better guide" if cross_validated else "")
        )
    if summary.get("registry"):
        lines.append(registry_line(summary["registry"]))
    if summary.get("workspace"):  # where a person looks next
        workspace = Path(summary["workspace"])
        lines.append(f"reports {workspace / 'reports' / summary['run_id']}/ (confusion_*.png, heldout_predictions.csv)")
        if unlabelled := summary.get("unlabelled"):
            lines.append(unlabelled_line(unlabelled, summary["predictions"]))
        uri = summary.get("tracking_uri", "")
        lines.append(f"browse  mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else f"browse  {uri}")
    lines += ["", f"{'stage':<12} {'seconds':>8}"]
    for stage, seconds in summary["stage_seconds"].items():
        lines.append(f"{stage:<12} {seconds:>8.1f}")
    lines.append(f"{'total':<12} {sum(summary['stage_seconds'].values()):>8.1f}")
    return "\n".join(lines)


def weakest_classes(per_class_f1: dict[str, float], shown: int = 3) -> str:
    """The classes with the lowest held-out F1, weakest first (where a person looks at the confusion plot
    and at the labels first), or "" when there are too few classes for a ranking to say anything."""
    if len(per_class_f1) <= shown:
        return ""
    ranked = sorted(per_class_f1.items(), key=lambda kv: (kv[1], kv[0]))[:shown]
    return ", ".join(f"{label} {f1:.2f}" for label, f1 in ranked)


def unlabelled_line(unlabelled: dict[str, Any], path: str) -> str:
    """Where the files without a label went: how many got a prediction, and why the others did not."""
    without = ", ".join(f"{k} {v}" for k, v in sorted(unlabelled["without_prediction"].items()))
    return (
        f"predictions: {unlabelled['files']} files without a label, {unlabelled['predicted']} predicted -> {path}"
        + (f" (without a prediction: {without})" if without else "")
    )


def registry_line(decision: dict[str, Any]) -> str:
    """What the gate did with this run's best model, in one line: which version is the champion now."""
    d = decision
    head = f"registry {d['registry_model']}: {d['challenger']} registered as version {d['challenger_version']}"
    if "champion_version" not in d:  # no champion to weigh against
        return f"{head}, {d['decision'].replace('_', ' ')} ({d['reason']})"
    weighed = (
        f"macro-F1 {d['challenger_macro_f1']:.3f} against version {d['champion_version']}'s "
        f"{d['champion_macro_f1']:.3f} ({d.get('champion_scored', 'as recorded')}; {d['reason']})"
    )
    if d["decision"] == "promoted":
        return f"{head}, now the champion: {weighed}"
    return f"{head}; version {d['champion_version']} stays the champion: {weighed}"


def write_heldout_predictions(
    path: Path, model: Any, x: Any, documents: Iterable[tuple[str, str]], truth: Sequence[str]
) -> None:
    """One row per held-out document: its content hash, a file it was read from, its label, the model's
    prediction, whether that is right, its probability, then every class's. `documents`: (content hash,
    path) in the order of `x`'s rows and `truth`. The content hash is what serving must reproduce; the
    path and the label are what a person needs to look at a mistake."""
    classes = [str(c) for c in model.classes_]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["content_hash", "path", "label", "predicted", "correct", "probability"] + [f"p_{c}" for c in classes]
        )
        rows = zip(documents, truth, model.predict_proba(x), strict=True)
        for (digest, source), label, row in rows:
            best = int(row.argmax())
            right = str(classes[best] == str(label)).lower()
            writer.writerow(
                [digest, source, label, classes[best], right, f"{row[best]:.4f}", *(f"{p:.4f}" for p in row)]
            )


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False, default=str))
    tmp.replace(path)
