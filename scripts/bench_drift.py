"""Calibrate the embedding drift tests on real embeddings: false alarms and detections by batch size.

    python scripts/bench_drift.py --workspace workspace                      # the largest feature version
    python scripts/bench_drift.py --workspace workspace --sizes 25,50,100,200 --batches 20

From one feature version's vectors (a generated tier: train + held-out), a reference sample plays the
champion's training data and batches are drawn from the rest:
- same: batches of the same distribution (every alarm is a false alarm);
- mix: a shifted class mix (three classes make 70% of the batch);
- new_class: a class the reference never saw makes 30% of the batch.
Drift is detected when both embedding tests fire (monitor.* thresholds as configured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from evaluation.drift import MonitorConfig, embedding_drift
from processing.features import FeatureStore


def draw(rng: np.random.Generator, y: np.ndarray, size: int, kind: str, favoured: list[str], new: str) -> np.ndarray:
    """Row indices of one batch of `kind` from the candidate pool with labels y."""
    if kind == "same":
        return rng.choice(len(y), size, replace=False)
    if kind == "mix":
        mask = np.isin(y, favoured)
        n_fav = int(round(0.7 * size))
    else:  # new_class
        mask = y == new
        n_fav = int(round(0.3 * size))
    fav = rng.choice(np.flatnonzero(mask), n_fav, replace=n_fav > mask.sum())
    rest = rng.choice(np.flatnonzero(~mask), size - n_fav, replace=False)
    return np.r_[fav, rest]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--feature-version")
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--reference", type=int, default=500, help="reference rows (the champion's training set)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with FeatureStore(args.workspace / "features.duckdb", read_only=True) as store:
        versions = store.versions()
        chosen = args.feature_version or max(versions, key=lambda v: v["n_train"] + v["n_heldout"])["version_id"]
        features = store.load_features(chosen)
    x = np.vstack([features.x_train, features.x_heldout])
    y = np.r_[features.y_train, features.y_heldout]
    rng = np.random.default_rng(0)
    classes = sorted(set(y))
    new = classes[-1]  # the class the reference never sees
    favoured = classes[:3]
    order = rng.permutation(len(y))
    ref_rows = [i for i in order if y[i] != new][: args.reference]
    pool = np.setdiff1d(np.arange(len(y)), ref_rows)
    ref = x[ref_rows]
    config = MonitorConfig()
    print(f"{chosen}: {len(y)} vectors, reference {len(ref)} (no {new!r}), pool {len(pool)}", flush=True)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for kind in ("same", "mix", "new_class"):
            fired = domain = mmd = 0
            seconds = []
            for b in range(args.batches):
                batch_rng = np.random.default_rng(1000 * size + b)
                pool_y = y[pool] if kind != "same" else np.where(y[pool] == new, "", y[pool])
                candidates = pool if kind != "same" else pool[pool_y != ""]
                picked = candidates[draw(batch_rng, y[candidates], size, kind, favoured, new)]
                start = time.perf_counter()
                tests, detected = embedding_drift(ref, x[picked], MonitorConfig(seed=b))
                seconds.append(time.perf_counter() - start)
                fired += detected
                domain += tests[0].fired
                mmd += tests[1].fired
            row = {
                "batch_size": size,
                "kind": kind,
                "batches": args.batches,
                "detected": fired,
                "domain_fired": domain,
                "mmd_fired": mmd,
                "seconds_per_batch": round(float(np.mean(seconds)), 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nthresholds: alpha {config.alpha}, min_auc {config.min_auc}, {config.permutations} permutations")
    print("| batch size | same distribution (false alarms) | shifted class mix | new class (30%) | s per batch |")
    print("|---|---|---|---|---|")
    for size in sorted({r["batch_size"] for r in rows}):
        by = {r["kind"]: r for r in rows if r["batch_size"] == size}
        cells = [f"{by[k]['detected']}/{by[k]['batches']}" for k in ("same", "mix", "new_class")]
        print(f"| {size} | {' | '.join(cells)} | {by['same']['seconds_per_batch']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
