"""Classification quality on real documents: docscale's champion against simple baselines, same split.

The corpus is a folder with train/<class>/*.pdf and test/<class>/*.pdf, split by package so related
documents never straddle the two (../shared/corpora/texlive-dev). docscale is run as a user runs it:

    python -m processing.run --input <corpus>/train        (selects and trains on train/ only)
    python -m processing.predict --input <corpus>/test     (the champion scores test/)

and the baselines read the same extracted text: TF-IDF + logistic regression, MiniLM's first 256
tokens + logistic regression, and MiniLM over 8 windows spread through the whole document (pooled).
Every figure is macro-F1 on test/ with a 95% bootstrap interval, and the champion's lead over each
baseline with a paired one (the same resampled documents for both, so the interval is the lead's own).

    .venv/bin/python scripts/bench_real.py                 # about 6 minutes on 2 cores

`--also FOLDER` (<class>/*.pdf, e.g. from scripts/fetch_texlive_extra.py) scores more documents with the
same fitted models, in a table of their own: nothing is fitted or chosen on them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.metrics import expected_calibration_error  # noqa: E402
from ingestion.extract import ExtractConfig, extract_files  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "texlive-dev"


def labelled(folder: Path) -> tuple[list[str], list[str]]:
    paths = sorted(str(p) for p in folder.glob("*/*.pdf"))
    return paths, [Path(p).parent.name for p in paths]


def macro_f1(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> float:
    """Over the corpus's classes only: a file without a prediction counts as wrong, not as a class."""
    return float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0))


def figures(truth: list[str], predicted: list[str], rounds: int = 1000) -> dict[str, float]:
    t, p = np.asarray(truth), np.asarray(predicted)
    classes = sorted(set(truth))
    rows = np.random.default_rng(0).integers(0, len(t), (rounds, len(t)))
    low, high = np.percentile([macro_f1(t[r], p[r], classes) for r in rows], [2.5, 97.5])
    accuracy = float((t == p).mean())
    return {"macro_f1": macro_f1(t, p, classes), "macro_f1_low": low, "macro_f1_high": high, "accuracy": accuracy}


def paired_lead(truth: list[str], ours: list[str], theirs: list[str], rounds: int = 1000) -> dict[str, float]:
    """Our macro-F1 minus theirs on the same documents, with a 95% interval over paired resamples."""
    t, a, b = np.asarray(truth), np.asarray(ours), np.asarray(theirs)
    classes = sorted(set(truth))
    rows = np.random.default_rng(0).integers(0, len(t), (rounds, len(t)))
    leads = [macro_f1(t[r], a[r], classes) - macro_f1(t[r], b[r], classes) for r in rows]
    low, high = np.percentile(leads, [2.5, 97.5])
    return {"lead": macro_f1(t, a, classes) - macro_f1(t, b, classes), "low": low, "high": high}


def tfidf_baseline() -> object:
    """sklearn's defaults, as the corpus README measured its baseline (0.583 there; sublinear tf scores 0.505 here)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000))


def minilm_baseline() -> object:
    """Logistic regression on MiniLM vectors (of the first 256 tokens, or of pooled windows)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)


def baselines(corpus: Path, scored: list[Path]) -> list[dict[str, list[str]]]:
    """Per scored folder, each baseline's prediction for every file, in `labelled`'s order."""
    from processing.embed import EmbedConfig, Embedder

    train_paths, y_train = labelled(corpus / "train")
    config = ExtractConfig()

    def text_of(paths: list[str]) -> list[str]:
        return [r.extraction.text if r.extraction else "" for r in extract_files(paths, config)]

    train_text = text_of(train_paths)
    tfidf = tfidf_baseline().fit(train_text, y_train)  # type: ignore[attr-defined]
    embedder = Embedder(EmbedConfig(), device="cpu")
    minilm = minilm_baseline().fit(embedder.encode(train_text), y_train)  # type: ignore[attr-defined]
    # A view of the whole document: 8 windows spread evenly over its text, their vectors averaged.
    spread = minilm_baseline().fit(spread_vectors(embedder, train_text), y_train)  # type: ignore[attr-defined]
    out = []
    for folder in scored:
        text = text_of(labelled(folder)[0])
        out.append(
            {
                "TF-IDF + logistic regression": list(tfidf.predict(text)),
                "MiniLM first 256 tokens + logistic regression": list(minilm.predict(embedder.encode(text))),
                "MiniLM 8 windows spread over the document, pooled + logistic regression": list(
                    spread.predict(spread_vectors(embedder, text))
                ),
            }
        )
    return out


def window_vectors(embedder: object, texts: list[str], windows: int = 8, chars: int = 1500) -> list[np.ndarray]:
    """Each document's `windows` pieces of `chars` characters, spread evenly over its text, embedded:
    one (windows x dim) array per document (fewer rows for a short one)."""
    pieces, owner = [], []
    for row, text in enumerate(texts):
        flat = " ".join(text.split())
        starts = sorted({int(i * max(len(flat) - chars, 0) / (windows - 1)) for i in range(windows)})
        pieces += [flat[s : s + chars] for s in starts]
        owner += [row] * len(starts)
    vectors, owner_of = embedder.encode(pieces), np.asarray(owner)  # type: ignore[attr-defined]
    return [vectors[owner_of == row] for row in range(len(texts))]


def spread_vectors(embedder: object, texts: list[str]) -> np.ndarray:
    """The windows' vectors averaged, one unit vector per document."""
    pooled = np.stack([each.sum(axis=0) for each in window_vectors(embedder, texts)])
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def where(path: str) -> str:
    """A file's path with its folder resolved but not the file itself (a linked file keeps its own name)."""
    return str(Path(path).parent.resolve() / Path(path).name)


def docscale(
    corpus: Path, workspace: Path, settings: list[str], scored: list[Path]
) -> tuple[list[list[str]], list[float], dict]:
    """Per scored folder, the champion's prediction for every file (in `labelled`'s order) and its expected
    calibration error there; the run's summary."""

    def conductor(module: str, *args: str) -> None:
        subprocess.run([sys.executable, "-m", module, "--workspace", str(workspace), *args], cwd=ROOT, check=True)

    summary_path = workspace / "run.json"
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    conductor("processing.run", "--input", str(corpus / "train"), "--summary", str(summary_path), *overrides)
    predictions, eces = [], []
    for number, folder in enumerate(scored):
        out = workspace / f"predictions_{number}.parquet"
        conductor("processing.predict", "--input", str(folder), "--out", str(out))
        rows = pd.read_parquet(out)
        scored_rows = zip(rows["path"], rows["label"], strict=True)
        by_path = {where(p): str(label) if label else "(none)" for p, label in scored_rows}
        paths, labels = labelled(folder)
        # A file the run never scored counts as wrong, not as missing.
        predictions.append([by_path.get(where(p), "(none)") for p in paths])
        eces.append(champion_ece(rows, dict(zip(map(where, paths), labels, strict=True))))
    return predictions, eces, json.loads(summary_path.read_text())


def champion_ece(rows: pd.DataFrame, truth_of: dict[str, str]) -> float:
    """Expected calibration error of the champion's probabilities on the files it scored: documents none of
    its training saw, unlike the held-out split's ECE in the run's summary."""
    columns = [c for c in rows.columns if c.startswith("p_")]
    scored = rows[rows["label"].notna()]
    classes = np.asarray([c[2:] for c in columns])
    truth = np.asarray([truth_of[where(p)] for p in scored["path"]])
    return expected_calibration_error(truth, scored[columns].to_numpy(dtype=float), classes)


def print_table(title: str, truth: list[str], predictions: dict[str, list[str]], ours: str, ece: float) -> dict:
    """One scored folder's table: every method's macro-F1, and the champion's paired lead over the others."""
    others = {name: theirs for name, theirs in predictions.items() if name != ours}
    leads = {name: paired_lead(truth, predictions[ours], theirs) for name, theirs in others.items()}
    results = {name: figures(truth, predicted) for name, predicted in predictions.items()}
    print(f"\n{title}\n\n| method | macro-F1 | 95% interval | accuracy | champion's lead [95%, paired] |")
    print("|---|---|---|---|---|")
    for name, f in results.items():
        interval = f"[{f['macro_f1_low']:.3f}, {f['macro_f1_high']:.3f}]"
        lead = leads.get(name)
        shown = f"{lead['lead']:+.3f} [{lead['low']:+.3f}, {lead['high']:+.3f}]" if lead else ""
        print(f"| {name} | {f['macro_f1']:.3f} | {interval} | {f['accuracy']:.3f} | {shown} |")
    classes = sorted(set(truth))
    per_class = f1_score(truth, predictions[ours], labels=classes, average=None, zero_division=0)
    counts = {label: truth.count(label) for label in classes}
    shown_per_class = [f"{c} {f:.2f} ({counts[c]})" for c, f in zip(classes, per_class, strict=True)]
    print("champion's F1 per class (documents): " + ", ".join(shown_per_class))
    print(f"champion's expected calibration error (ECE) here: {ece:.3f}")
    return {"results": results, "leads": leads, "champion_ece": ece}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--workspace", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a docscale setting for the run on train/, e.g. 'train.cv_groups=^(.*)__' (repeatable)",
    )
    parser.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="more labelled documents (<class>/*.pdf) to score with the same models, e.g. fetch_texlive_extra.py's "
        "(repeatable)",
    )
    args = parser.parse_args()
    if not (args.corpus / "train").is_dir() or not (args.corpus / "test").is_dir():
        print(f"error: --corpus {args.corpus} needs train/<class>/ and test/<class>/ folders of PDFs", file=sys.stderr)
        return 2
    for folder in args.also:
        if not labelled(folder)[0]:
            print(f"error: --also {folder} holds no <class>/*.pdf files", file=sys.stderr)
            return 2
    scored = [args.corpus / "test", *args.also]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or Path(tmp) / "ws"
        ours, eces, summary = docscale(args.corpus, workspace, args.set, scored)
        theirs = baselines(args.corpus, scored)
    best = summary["best_classifier"]
    chosen = summary["classifiers"][best]
    champion = f"docscale champion ({best}, chosen by cross-validation on train/)"
    tables = {}
    for folder, mine, ece, predictions in zip(scored, ours, eces, theirs, strict=True):
        predictions[champion] = mine
        truth = labelled(folder)[1]
        title = f"{folder} ({len(truth)} documents; models fitted on train/ only)"
        tables[str(folder)] = print_table(title, truth, predictions, champion, ece)
    print("\ndocscale's selection on train/ (cross-validated macro-F1 per classifier, best setting):")
    for name, row in summary["classifiers"].items():
        if "cv_macro_f1" in row:
            interval = f"[{row['cv_macro_f1_low']:.3f}, {row['cv_macro_f1_high']:.3f}]"
            ece = row.get("ece", float("nan"))
            split = row["macro_f1"]
            grouped = f" ({int(row['cv_groups'])} groups)" if row.get("cv_groups") else ""
            print(
                f"  {name:8s} cv {row['cv_macro_f1']:.3f} {interval}{grouped}  held-out split {split:.3f} ece {ece:.3f}"
            )
    print(f"champion: {best}, cv macro-F1 {chosen.get('cv_macro_f1', float('nan')):.3f}")
    if args.out:
        figures_out = {"scored": tables, "summary_classifiers": summary["classifiers"]}
        args.out.write_text(json.dumps(figures_out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
