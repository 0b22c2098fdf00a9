"""Which tier buys how much accuracy, at what cost: a comparison of the pipeline runs in MLflow.

    python -m evaluation.compare                              # ./workspace's MLflow, experiment docscale
    python -m evaluation.compare --workspace /data/ws --out reports/compare
    python -m evaluation.compare --tracking-uri http://127.0.0.1:5000

For each tier it takes the newest finished pipeline run and prints tier x classifier -> accuracy,
macro-F1 with its bootstrap 95% interval, and the cost of building that tier's features (documents/s of
extraction and embedding, wall time) from the newest run of the tier that did the work. It writes compare.md
and compare.png (learning curve with intervals; throughput and wall time by tier) and logs them to
MLflow as a run of their own (tag kind=comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from training import tracking

TIER_ORDER = {"50": 0, "1k": 1, "15k": 2, "75k": 3}


def latest_per_tier(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest run of each tier (runs come newest first), ordered by tier size."""
    chosen: dict[str, dict[str, Any]] = {}
    for run in runs:
        chosen.setdefault(run["tags"]["tier"], run)
    return sorted(chosen.values(), key=lambda r: (TIER_ORDER.get(r["tags"]["tier"], 99), r["tags"]["tier"]))


def build_cost(run: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, float]:
    """Throughput and wall time of the newest run of the tier that actually built features (a rerun or a
    retrain on a stored version does no extraction or embedding, so its cost says nothing)."""
    tier = run["tags"]["tier"]
    build = next((r for r in runs if r["tags"]["tier"] == tier and r["metrics"].get("work.embedded", 0) > 0), run)
    m = build["metrics"]
    seconds = {k.removeprefix("seconds."): v for k, v in m.items() if k.startswith("seconds.")}
    nan = float("nan")
    return {
        "extract_docs_s": m["work.extracted"] / seconds["extract"]
        if m.get("work.extracted") and seconds.get("extract")
        else nan,
        "embed_docs_s": m["work.embedded"] / seconds["embed"]
        if m.get("work.embedded") and seconds.get("embed")
        else nan,
        "wall_seconds": sum(seconds.values()) if seconds else nan,
    }


def comparison_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for run in latest_per_tier(runs):
        m = run["metrics"]
        cost = build_cost(run, runs)
        for name, c in sorted(run["classifiers"].items()):
            rows.append(
                {
                    "tier": run["tags"]["tier"],
                    "train_documents": int(m.get("train_documents", 0)),
                    "classifier": name,
                    "accuracy": c.get("accuracy", float("nan")),
                    "macro_f1": c.get("macro_f1", float("nan")),
                    "macro_f1_low": c.get("macro_f1_low", float("nan")),
                    "macro_f1_high": c.get("macro_f1_high", float("nan")),
                    **cost,
                    "run_id": run["run_id"],
                }
            )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| tier | train docs | classifier | accuracy | macro-F1 [95% CI] | extract docs/s | embed docs/s | wall s |",
        "|---|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tier']} | {r['train_documents']} | {r['classifier']} | {r['accuracy']:.3f} | "
            f"{r['macro_f1']:.3f} [{r['macro_f1_low']:.3f}, {r['macro_f1_high']:.3f}] | "
            f"{_num(r['extract_docs_s'])} | {_num(r['embed_docs_s'])} | {_num(r['wall_seconds'])} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curve, cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in sorted({r["classifier"] for r in rows}):
        mine = sorted((r for r in rows if r["classifier"] == name), key=lambda r: r["train_documents"])
        x = [r["train_documents"] for r in mine]
        y = [r["macro_f1"] for r in mine]
        err = [[r["macro_f1"] - r["macro_f1_low"] for r in mine], [r["macro_f1_high"] - r["macro_f1"] for r in mine]]
        curve.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
    curve.set_xscale("log")
    curve.set_xlabel("training documents (log)")
    curve.set_ylabel("held-out macro-F1 (95% CI)")
    curve.set_title("Learning curve")
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8)
    tiers = {}
    for r in rows:
        tiers.setdefault(r["tier"], r)
    names = list(tiers)
    wall = [tiers[t]["wall_seconds"] for t in names]
    cost.bar(names, wall, color="#8fb3d9", label="wall seconds")
    cost.set_ylabel("wall seconds")
    cost.set_title("Cost by tier")
    twin = cost.twinx()
    twin.plot(names, [tiers[t]["embed_docs_s"] for t in names], "o-", color="#c0504d", label="embed docs/s")
    twin.plot(names, [tiers[t]["extract_docs_s"] for t in names], "s--", color="#4f8f4f", label="extract docs/s")
    twin.set_ylabel("documents / second")
    twin.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare(tracking_uri: str, experiment: str, out: Path, log: bool = True) -> list[dict[str, Any]]:
    tracking.setup(tracking_uri, experiment, None)
    rows = comparison_rows(tracking.pipeline_runs(experiment))
    if not rows:
        return rows
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(rows)
    (out / "compare.md").write_text(
        "# docscale: accuracy and cost by tier\n\n" + table + "\n\n![learning curve and cost](compare.png)\n"
    )
    plot(rows, out / "compare.png")
    if log:
        with tracking.report_run("compare", {"kind": "comparison"}):
            tracking.log_artifact(out / "compare.md")
            tracking.log_artifact(out / "compare.png")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--tracking-uri", help="default: sqlite:///<workspace>/mlflow.db")
    parser.add_argument("--experiment", default="docscale")
    parser.add_argument("--out", type=Path, help="default: <workspace>/reports/compare")
    args = parser.parse_args(argv)
    if not args.tracking_uri and not (args.workspace / "mlflow.db").exists():
        print(
            f"error: no MLflow database at {args.workspace / 'mlflow.db'}; run python -m processing.run first "
            "or pass --tracking-uri",
            file=sys.stderr,
        )
        return 2  # the user's mistake, as everywhere: exit status 2
    uri = args.tracking_uri or tracking.default_tracking_uri(args.workspace)
    out = args.out or args.workspace / "reports" / "compare"
    rows = compare(uri, args.experiment, out)
    if not rows:
        print(f"error: no finished pipeline runs in experiment {args.experiment!r}", file=sys.stderr)
        return 1
    print(format_table(rows))
    print(f"\nreport: {out / 'compare.md'}, {out / 'compare.png'}")
    return 0


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"  # NaN: the stage did no work in that run (cached)


if __name__ == "__main__":
    sys.exit(main())
