"""Peak memory of training one classifier on a feature version's texts, and of its feature steps alone.

    python scripts/bench_train_memory.py --workspace W --classifier svm --documents 14000

Each measurement runs in a fresh process (so each peak is its own), side by side in one run: the
process' base after loading the texts, the peak of the classifier's feature steps (fit_transform of all
but the last pipeline step), and the peak of the whole fit, beside what docscale estimates that fit adds
before it starts (training/memory.py: its features counted on a sample of 1,000 documents; the fit reads
fewer documents when the estimate is over its budget). Text classifiers only (tfidf, svm). Then the
character 2-5-grams alone (svm's larger half), counted as svm counts them and hashed in chunks of 1,000
documents (no vocabulary), to see whether hashing would lower the peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PARTS = ("estimate", "features", "fit", "chars-counted", "chars-hashed")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def character_ngrams(texts: list[str], hashed: bool) -> Any:
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer

    if not hashed:
        return CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, max_features=50000).fit_transform(
            texts
        )
    hasher = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), alternate_sign=False, norm=None)
    return sparse.vstack([hasher.transform(texts[i : i + 1000]) for i in range(0, len(texts), 1000)]).tocsr()


def measure(workspace: Path, classifier: str, documents: int, part: str) -> dict[str, float]:
    import numpy as np

    from processing.features.store import FeatureStore
    from training.classifiers import TrainConfig, build_classifier

    with FeatureStore(workspace / "features.duckdb", read_only=True) as store:
        version = store.versions()[-1]["version_id"]
        texts, _ = store.load_texts(version)
        labels = store.version_rows(version, splits=("train",)).labels  # same order as the texts
    texts, y = texts[:documents], np.asarray(labels[:documents])
    base, start = peak_mib(), time.monotonic()
    model = build_classifier(classifier, TrainConfig())
    nonzeros = 0
    if part == "estimate":
        from training.memory import FIXED_BYTES, SAMPLE_DOCUMENTS, bytes_per_document, stratified_rows, take_rows

        sample = take_rows(np.asarray(texts, dtype=object), stratified_rows(y, SAMPLE_DOCUMENTS, 0))
        estimate = FIXED_BYTES[classifier] + len(y) * bytes_per_document(classifier, sample, TrainConfig())
        return {"estimate_mib": estimate / 2**20, "seconds": time.monotonic() - start}
    if part == "features":
        nonzeros = model[:-1].fit_transform(texts, y).nnz
    elif part == "fit":
        model.fit(texts, y)
    else:
        nonzeros = character_ngrams(texts, hashed=part == "chars-hashed").nnz
    seconds = time.monotonic() - start
    return {"base_mib": base, "peak_mib": peak_mib(), "seconds": seconds, "nonzeros": nonzeros}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--classifier", default="svm", choices=("tfidf", "svm"))
    parser.add_argument("--documents", type=int, default=14000)
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # one child's share
    args = parser.parse_args()
    if args.part:
        print(json.dumps(measure(args.workspace, args.classifier, args.documents, args.part)))
        return 0
    if not (args.workspace / "features.duckdb").is_file():
        print(f"error: --workspace {args.workspace} has no features.duckdb; run processing.run first", file=sys.stderr)
        return 2
    print(f"{args.classifier} on {args.documents} texts of {args.workspace}")
    for part in PARTS:
        child = [sys.executable, __file__, "--workspace", str(args.workspace), "--classifier", args.classifier]
        child += ["--documents", str(args.documents), "--part", part]
        out = subprocess.run(child, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr.strip().splitlines()[-1], file=sys.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if part == "estimate":
            print(f"  {part:13s} {r['seconds']:6.0f} s  the fit adds ~{r['estimate_mib']:.0f} MiB (training/memory.py)")
            continue
        extra = f", {r['nonzeros'] / 1e6:.1f}M non-zeros" if r["nonzeros"] else ""
        print(
            f"  {part:13s} {r['seconds']:6.0f} s  base {r['base_mib']:6.0f} MiB  peak {r['peak_mib']:6.0f} MiB"
            f"  (+{r['peak_mib'] - r['base_mib']:.0f}){extra}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
