"""A drift scenario anyone can run: train, then three arriving batches through the loop, then a report.

    python -m processing.scenario                          # tier 1k, CPU, about 10 minutes on 2 cores
    python -m processing.scenario --small                  # the test suite's shrunken version
    python -m processing.scenario --workspace /tmp/sc --set engine.executor=ray

1. train the first champion on the tier (logistic regression, for speed);
2. batch A from the same distribution, unlabelled            -> expected: no_drift
3. batch B: a shifted class mix in the later template generation, 80% labelled
                                                             -> expected: drift, retraining, promoted
4. batch C: the later generation again, labels mostly wrong  -> expected: retraining, rejected by the gate
5. a report: Markdown with each batch's numbers and a PNG timeline (drift scores, champion F1, decisions).

Every batch is generated deterministically from the seed (ingestion.corpus.BatchSpec) and written with
its labels CSV under <workspace>/scenario/; each cycle is exactly `python -m processing.cycle`'s.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ingestion.corpus import BatchSpec, batch_manifest, render_entry
from ingestion.sources import InputError
from processing.config import ConfigError, load_config
from processing.loop import run_cycle
from processing.pipeline import run_pipeline

FAVOURED = ("invoice", "contract", "lab_report")


def batches(small: bool) -> list[tuple[BatchSpec, str]]:
    """(the batch, the decision it should lead to)."""
    scale = 0.4 if small else 1.0

    def n(size: int) -> int:
        return int(size * scale)

    return [
        (BatchSpec("A-same", size=n(250)), "no_drift"),
        (
            BatchSpec(
                "B-shifted",
                size=n(600),
                favour=FAVOURED,
                favour_share=0.5,
                generation_2_share=1.0,
                labelled_share=0.8,
            ),
            "promoted",
        ),
        (
            BatchSpec("C-bad-labels", size=n(400), generation_2_share=0.9, label_noise=0.9, labelled_share=0.6),
            "rejected",
        ),
    ]


def write_batch(root: Path, seed: int, spec: BatchSpec) -> tuple[Path, Path | None]:
    """The batch's PDFs (written once) and its labels CSV (paths relative to the batch folder)."""
    folder = root / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for entry, labelled in batch_manifest(seed, spec):
        path = folder / f"{entry.index:06d}.pdf"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(render_entry(seed, entry))
            tmp.replace(path)
        if labelled:
            rows.append((path.name, entry.label))
    if not rows:
        return folder, None
    labels = root / f"{spec.name}.labels.csv"
    with labels.open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label"), *rows])
    return folder, labels


def report(rows: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "# docscale drift scenario",
        "",
        "| batch | expected | decision | drift | domain AUC (p) | MMD² p | labelled F1 | new labels | champion | why |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tests = r["drift"].get("tests", {})
        auc, mmd = tests.get("domain_auc", {}), tests.get("mmd2", {})
        f1 = r["drift"].get("labelled_macro_f1")
        lines.append(
            f"| {r['batch']} | {r['expected']} | **{r['decision']}** | {r['drift'].get('detected', '-')} | "
            f"{auc.get('score', float('nan')):.3f} ({auc.get('p_value', float('nan')):.2g}) | "
            f"{mmd.get('p_value', float('nan')):.2g} | {'-' if f1 is None else f'{f1:.3f}'} | {r['new_labels']} | "
            f"{r['champion_version_before']} → {r['champion_version_after']} | {r['reason']} |"
        )
    md = out / "scenario.md"
    out.mkdir(parents=True, exist_ok=True)
    md.write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = list(range(len(rows)))
    aucs = [r["drift"].get("tests", {}).get("domain_auc", {}).get("score", float("nan")) for r in rows]
    f1s = [r["drift"].get("labelled_macro_f1") or float("nan") for r in rows]
    ax.plot(xs, aucs, marker="o", label="domain AUC (drift)")
    ax.plot(xs, f1s, marker="s", label="champion macro-F1 on the batch's labels")
    ax.axhline(0.6, color="grey", linestyle="--", linewidth=0.8)
    for x, r in zip(xs, rows, strict=True):
        ax.annotate(r["decision"], (x, 0.05), ha="center", fontsize=9)
    ax.set_xticks(xs, [r["batch"] for r in rows])
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left")
    ax.set_title("docscale drift scenario: one cycle per batch")
    fig.tight_layout()
    png = out / "scenario.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return md, png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processing.scenario", description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("workspace-scenario"))
    parser.add_argument("--tier", default="1k")
    parser.add_argument("--small", action="store_true", help="a shrunken version (the test suite's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    defaults = ["engine.executor=local", "train.classifiers=logreg"]
    if args.small:
        defaults += ["corpus.train_size=300", "corpus.heldout_size=100"]
    try:
        config = load_config(args.tier, overrides=[*defaults, *args.overrides])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workspace = args.workspace.resolve()
    summary = run_pipeline(config, args.tier, workspace)
    print(
        f"champion trained on {summary['feature_version']}: held-out macro-F1 "
        f"{summary['classifiers'][summary['best_classifier']]['macro_f1']:.3f}"
    )
    rows = []
    for spec, expected in batches(args.small):
        folder, labels = write_batch(workspace / "scenario" / "batches", config.corpus.seed, spec)
        cycle_config = load_config(args.tier, overrides=[*defaults, *args.overrides])
        try:
            result = run_cycle(
                cycle_config, str(folder), workspace, str(labels) if labels else None, allow_new_classes=True
            )
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        rows.append({"batch": spec.name, "expected": expected, **asdict(result)})
        print(f"batch {spec.name}: {result.decision} (expected {expected}) - {result.reason}", flush=True)
    md, png = report(rows, workspace / "scenario" / "report")
    (workspace / "scenario" / "report" / "scenario.json").write_text(json.dumps(rows, indent=2, default=str))
    print(md.read_text())
    print(f"report: {md} and {png}")
    return 0 if all(r["decision"] == r["expected"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
