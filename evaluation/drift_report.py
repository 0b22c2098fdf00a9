"""A drift report for people: Markdown, class shares (reference vs current) and drift scores over the
batches seen so far, as PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from evaluation.drift import DriftReport  # noqa: E402


def markdown(report: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", "", f"reference {report['reference_size']} documents, current {report['current_size']}", ""]
    verdict = "DRIFT DETECTED" if report["detected"] else "no drift"
    if report["status"] != "judged":
        verdict = f"not judged ({report['status']})"
    lines += [f"**Embedding drift: {verdict}** (both tests must fire)", "", "| test | score | p-value | rule | fired |"]
    lines.append("|---|---|---|---|---|")
    for t in report["embedding"]:
        lines.append(f"| {t['name']} | {t['score']:.4f} | {t['p_value']:.2g} | {t['threshold']} | {t['fired']} |")
    prediction = report.get("prediction") or {}
    if prediction:
        lines += [
            "",
            f"**Predicted-class shares**: chi-square p {prediction['p_value']:.2g}, total variation "
            f"{prediction['tvd']:.3f} ({prediction.get('threshold', '')}): {'fired' if prediction['fired'] else 'ok'}; "
            f"mean top probability {prediction.get('mean_top_probability', float('nan')):.3f} "
            f"(reference {prediction.get('reference_mean_top_probability', float('nan')):.3f})",
        ]
    quality = report.get("quality") or {}
    if quality:
        lines += [
            "",
            f"**Data quality**: unusable share {_share(quality['unusable_share'])}, duplicate share "
            f"{_share(quality['duplicate_share'])}, median characters {quality['median_chars']:.0f} (reference "
            f"{quality['reference_median_chars']:.0f}, KS {quality['text_length_ks']:.3f}, p "
            f"{quality['text_length_p']:.2g})",
        ]
        noise = quality.get("text_noise")
        if noise:
            lines += [
                "",
                f"**Text noise** (share of letter-digit words): mean {noise['mean']:.3f} (reference "
                f"{noise['reference_mean']:.3f}), KS {noise['ks']:.3f}, p {noise['p_value']:.2g} "
                f"({noise['threshold']}): {'fired' if noise['fired'] else 'ok'}",
            ]
        novel = quality.get("novel_words")
        if novel:
            lines += [
                "",
                f"**Novel words** (share of a document's words not in the reference's vocabulary of "
                f"{novel['vocabulary']:,}): mean {novel['mean']:.3f} (reference {novel['reference_mean']:.3f}), "
                f"KS {novel['ks']:.3f}, p {novel['p_value']:.2g} ({novel['threshold']}): "
                f"{'fired' if novel['fired'] else 'ok'}",
            ]
    performance = report.get("performance") or {}
    if performance.get("labelled"):
        lines += [
            "",
            f"**Labelled performance** on {performance['labelled']} documents: macro-F1 "
            f"{performance['macro_f1']:.3f} [{performance['macro_f1_low']:.3f}, {performance['macro_f1_high']:.3f}] "
            f"vs the champion's recorded {performance.get('champion_macro_f1', float('nan')):.3f}",
        ]
    lines += ["", f"Monitoring took {report['seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


def plot_shares(prediction: dict[str, Any], path: Path) -> Path | None:
    if not prediction.get("shares"):
        return None
    classes = list(prediction["shares"])
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(classes)), 4))
    xs = range(len(classes))
    ax.bar([x - 0.2 for x in xs], [prediction["reference_shares"][c] for c in classes], 0.4, label="reference")
    ax.bar([x + 0.2 for x in xs], [prediction["shares"][c] for c in classes], 0.4, label="current")
    ax.set_xticks(list(xs), classes, rotation=45, ha="right")
    ax.set_ylabel("share of predictions")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_history(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Domain AUC and MMD p-value of every batch monitored so far, alarms marked."""
    if not history:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    xs = list(range(1, len(history) + 1))
    top.plot(xs, [h["domain_auc"] for h in history], marker="o")
    top.axhline(history[-1].get("min_auc", 0.6), color="grey", linestyle="--")
    top.set_ylabel("domain AUC")
    bottom.semilogy(xs, [max(h["mmd_p"], 1e-4) for h in history], marker="o")
    bottom.axhline(history[-1].get("alpha", 0.01), color="grey", linestyle="--")
    bottom.set_ylabel("MMD p-value")
    bottom.set_xlabel("batch")
    for x, h in zip(xs, history, strict=True):
        if h["detected"]:
            top.axvline(x, color="red", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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


def _share(value: float | None) -> str:
    return "unknown (no run of these files recorded)" if value is None else f"{value:.3f}"
