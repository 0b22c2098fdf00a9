"""Model selection's wall time in this process against worker processes, side by side in one run.

    python scripts/bench_select.py --workspace W --workers 1,2

Cross-validates every classifier of `train.classifiers` (their grids, `train.cv_folds` folds, on the
stratified sample of at most `train.cv_max_documents` training documents) as `processing.run` does,
once per worker count, and checks that every count chooses the same settings with the same scores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts; 1 = in this process")
    parser.add_argument("--max-documents", type=int, default=3000, help="train.cv_max_documents")
    args = parser.parse_args()
    if not (args.workspace / "features.duckdb").is_file():
        print(f"error: --workspace {args.workspace} has no features.duckdb; run processing.run first", file=sys.stderr)
        return 2
    counts = [int(w) for w in args.workers.split(",")]

    import numpy as np

    from evaluation.selection import select_settings
    from processing.features.store import FeatureStore
    from training.classifiers import FUSED_INPUT, TEXT_INPUT, TrainConfig, fused_rows

    with FeatureStore(args.workspace / "features.duckdb", read_only=True) as store:
        version = store.versions()[-1]["version_id"]
        rows = store.version_rows(version, splits=("train",))
        texts, _ = store.load_texts(version)
    x, y = rows.vectors, np.asarray(rows.labels)
    texts = np.asarray(texts, dtype=object)
    config = TrainConfig(cv_max_documents=args.max_documents)

    def x_for(name: str) -> object:
        if name in FUSED_INPUT:
            return fused_rows(texts, x)
        return texts if name in TEXT_INPUT else x

    print(f"selection of {', '.join(config.classifiers)} on {len(y):,} training documents of {version}")
    results, seconds = {}, {}
    for workers in counts:
        start = time.perf_counter()
        results[workers] = select_settings(config.classifiers, x_for, y, config, workers=workers)
        seconds[workers] = time.perf_counter() - start
        print(f"  workers {workers}: {seconds[workers]:7.1f} s  ({seconds[counts[0]] / seconds[workers]:.2f}x)")
    chosen = {w: {n: (s.__dict__, c) for n, (s, c) in r.items()} for w, r in results.items()}
    same = all(chosen[w] == chosen[counts[0]] for w in counts)
    print(f"  same settings and scores for every worker count: {same}")
    for name, (_, cv) in results[counts[0]].items():
        print(f"    {name:7s} cv macro-F1 {cv.macro_f1:.3f}" if cv else f"    {name:7s} not cross-validated")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
