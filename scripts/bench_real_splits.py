"""How lucky is one split? docscale's fusion against the two baselines on many package-disjoint splits.

texlive-dev's fixed split holds out 72 manuals. This pools train/ and test/ (252 manuals), then draws
`--splits` other splits of the same shape: for each class, whole packages are held out until it has as
many documents as test/ gives it (12), so related manuals never straddle the two sides. On each split the
same models are fitted on the rest and scored on the held-out part. The output is the distribution of
the champion's lead over each baseline, and where the fixed split's lead falls in it.

Nothing here selects a model: the models are fixed in advance (docscale's fusion at the C its selection
chose on train/, 100, and at its default, 10; the baselines as scripts/bench_real.py fits them).

    .venv/bin/python scripts/bench_real_splits.py                # 100 splits, about 20 minutes on 2 cores
    .venv/bin/python scripts/bench_real_splits.py --splits 20    # a quicker look
    .venv/bin/python scripts/bench_real_splits.py --plot leads.png   # also the leads' histograms
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestion.extract import ExtractConfig, extract_files  # noqa: E402
from training.classifiers import TrainConfig, build_classifier, fused_rows  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from bench_real import minilm_baseline, tfidf_baseline  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "texlive-dev"
MODELS = ("fusion C 100", "fusion C 10", "TF-IDF", "MiniLM 256")
BASELINES = ("TF-IDF", "MiniLM 256")


def package_disjoint_split(
    labels: np.ndarray, packages: np.ndarray, per_class: dict[str, int], rng: np.random.Generator
) -> np.ndarray:
    """A held-out mask: for each class, its packages in random order, whole, until the class has at least
    `per_class[label]` held-out documents. A package never straddles the two sides."""
    held = np.zeros(len(labels), dtype=bool)
    for label, wanted in sorted(per_class.items()):
        mine = labels == label
        names = np.unique(packages[mine])
        rng.shuffle(names)
        for name in names:
            if held[mine].sum() >= wanted:
                break
            held |= mine & (packages == name)
    return held


def predictions(texts: list[str], vectors: np.ndarray, labels: np.ndarray, held: np.ndarray) -> dict[str, np.ndarray]:
    fit_on, scored = np.where(~held)[0], np.where(held)[0]
    text_fit, text_scored = [texts[i] for i in fit_on], [texts[i] for i in scored]
    out = {}
    for name, c in (("fusion C 100", 100.0), ("fusion C 10", 10.0)):
        model = build_classifier("fusion", TrainConfig(fusion_c=c))
        model.fit(fused_rows(text_fit, vectors[fit_on]), labels[fit_on])
        out[name] = model.predict(fused_rows(text_scored, vectors[scored]))
    out["TF-IDF"] = tfidf_baseline().fit(text_fit, labels[fit_on]).predict(text_scored)  # type: ignore[attr-defined]
    minilm = minilm_baseline().fit(vectors[fit_on], labels[fit_on])  # type: ignore[attr-defined]
    out["MiniLM 256"] = minilm.predict(vectors[scored])
    return out


def scores(labels: np.ndarray, held: np.ndarray, predicted: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(f1_score(labels[held], p, average="macro")) for name, p in predicted.items()}


def lead_summary(split_scores: list[dict[str, float]], fixed: dict[str, float], champion: str, baseline: str) -> str:
    leads = np.array([s[champion] - s[baseline] for s in split_scores])
    low, high = np.percentile(leads, [2.5, 97.5])
    fixed_lead = fixed[champion] - fixed[baseline]
    return (
        f"| {champion} over {baseline} | {leads.mean():+.3f} | {np.median(leads):+.3f} | [{low:+.3f}, {high:+.3f}] |"
        f" {np.mean(leads >= 0.05):.0%} | {fixed_lead:+.3f} | {np.mean(leads < fixed_lead):.0%} |"
    )


def plot_leads(split_scores: list[dict[str, float]], fixed: dict[str, float], champion: str, path: Path) -> None:
    """One histogram per baseline: the champion's lead on each split, the goal (5 points) and test/'s lead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(BASELINES), figsize=(5 * len(BASELINES), 3.6), sharey=True)
    for axis, baseline in zip(axes, BASELINES, strict=True):
        leads = [s[champion] - s[baseline] for s in split_scores]
        axis.hist(leads, bins=20, color="#8da0cb")
        axis.axvline(0.05, color="black", linestyle="--", label="the goal: +0.05")
        axis.axvline(fixed[champion] - fixed[baseline], color="#d95f02", linewidth=2, label="test/ (the fixed split)")
        axis.set_title(f"{champion} over {baseline}, {len(leads)} splits")
        axis.set_xlabel("lead in macro-F1")
    axes[0].set_ylabel("splits")
    axes[0].legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def load(folder: Path, embedder: object) -> tuple[list[str], np.ndarray, list[str], list[str]]:
    paths = sorted(str(p) for p in folder.glob("*/*.pdf"))
    texts = [r.extraction.text if r.extraction else "" for r in extract_files(paths, ExtractConfig())]
    vectors = np.asarray(embedder.encode(texts), dtype=np.float32)  # type: ignore[attr-defined]
    return texts, vectors, [Path(p).parent.name for p in paths], [Path(p).name.rsplit("__", 1)[0] for p in paths]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also draw the leads' histograms here")
    args = parser.parse_args()
    if args.splits < 1:
        print(f"error: --splits must be >= 1; got {args.splits}", file=sys.stderr)
        return 2
    if args.plot and not args.plot.parent.is_dir():
        print(f"error: --plot {args.plot}: no folder {args.plot.parent}", file=sys.stderr)
        return 2
    if not (args.corpus / "train").is_dir() or not (args.corpus / "test").is_dir():
        print(f"error: --corpus {args.corpus} needs train/<class>/ and test/<class>/ folders of PDFs", file=sys.stderr)
        return 2
    from processing.embed import EmbedConfig, Embedder

    warnings.filterwarnings("ignore")  # convergence chatter on small sets; the scores say what it costs
    embedder = Embedder(EmbedConfig(), device="cpu")
    train, test = load(args.corpus / "train", embedder), load(args.corpus / "test", embedder)
    texts = train[0] + test[0]
    vectors = np.concatenate([train[1], test[1]])
    labels, packages = np.asarray(train[2] + test[2]), np.asarray(train[3] + test[3])
    fixed_held = np.arange(len(labels)) >= len(train[0])
    fixed = scores(labels, fixed_held, predictions(texts, vectors, labels, fixed_held))
    per_class = dict(Counter(test[2]))
    rng = np.random.default_rng(args.seed)
    split_scores, started = [], time.monotonic()
    for n in range(1, args.splits + 1):
        held = package_disjoint_split(labels, packages, per_class, rng)
        split_scores.append(scores(labels, held, predictions(texts, vectors, labels, held)))
        if n % 10 == 0 or n == args.splits:
            print(f"[splits] {n}/{args.splits} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(f"\nmacro-F1 on the fixed split (test/, {int(fixed_held.sum())} documents) and on {args.splits} others:\n")
    print("| model | fixed split | mean over splits | [2.5%, 97.5%] |\n|---|---:|---:|---:|")
    for name in MODELS:
        values = [s[name] for s in split_scores]
        low, high = np.percentile(values, [2.5, 97.5])
        print(f"| {name} | {fixed[name]:.3f} | {np.mean(values):.3f} | [{low:.3f}, {high:.3f}] |")
    print(
        "\n| lead | mean | median | [2.5%, 97.5%] of splits | splits with ≥ 5 points | fixed split |"
        " splits below the fixed one |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for champion in MODELS[:2]:
        for baseline in BASELINES:
            print(lead_summary(split_scores, fixed, champion, baseline))
    for champion in MODELS[:2]:
        both = np.mean([min(s[champion] - s[b] for b in BASELINES) >= 0.05 for s in split_scores])
        print(f"\n{champion}: ≥ 5 points over both baselines on {both:.0%} of the splits", end="")
    print()
    if args.plot:
        plot_leads(split_scores, fixed, MODELS[0], args.plot)
        print(f"histograms of the leads: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
