"""Calibrate the drift tests on real embeddings: false alarms and detections by batch size.

    python scripts/bench_drift.py --workspace workspace                      # the largest feature version
    python scripts/bench_drift.py --workspace workspace --sizes 25,50,100,200 --batches 20
    python scripts/bench_drift.py --knobs --workspace workspace              # generated batches, each knob alone

--knobs: batches generated with each drift knob of the corpus generator alone (ingestion.corpus.BatchSpec),
extracted and embedded with the champion's settings, judged by every test of a cycle (embedding drift,
predicted-class shares, labelled macro-F1 against the champion's); 20 same-distribution batches count
the false alarms. Each batch is also judged on its first half, for the smallest size that still detects.

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


KNOBS = {  # each knob alone, at a strength a real change of sources might have
    "same": {},
    "class_mix": {"favour": ("invoice", "contract", "lab_report"), "favour_share": 0.7},
    "generation_2": {"generation_2_share": 0.5},
    "ocr_noise": {"ocr_share": 0.6},
    "new_class": {"new_class": "warranty_claim", "new_class_share": 0.3},
    "label_noise": {"label_noise": 0.4},
}


def knobs(workspace: Path, batches: int, size: int, out: Path | None) -> int:
    from evaluation.drift import Side, monitor
    from evaluation.triggers import performance_dropped
    from ingestion.corpus import BatchSpec, batch_manifest, render_entry
    from ingestion.extract import USABLE, extract_text
    from processing.embed import Embedder
    from training import tracking

    tracking.use_registry(tracking.default_tracking_uri(workspace))
    entry = tracking.model_version("models:/docscale-classifier@champion")
    champion = tracking.load_document_model(f"models:/{entry.name}/{entry.version}")
    recorded = tracking.recorded_figures(entry)
    with FeatureStore(workspace / "features.duckdb", read_only=True) as store:
        ref = store.version_rows(champion.feature_version, splits=("train",))
        ref_texts = store.sample_texts(champion.feature_version, 1000, splits=("train",))
    embedder = Embedder(champion.embed, device="cpu")
    classes = champion.classes
    reference = Side(ref.vectors, champion.classifier.predict_proba(ref.vectors), lengths=ref.lengths, texts=ref_texts)
    rows = []
    for kind, knob in KNOBS.items():
        n_batches = max(batches, 20) if kind == "same" else batches
        counts = {
            s: {"embedding": 0, "text_noise": 0, "novel_words": 0, "prediction": 0, "performance": 0, "any": 0}
            for s in (size // 2, size)
        }
        start = time.perf_counter()
        for b in range(n_batches):
            spec = BatchSpec(f"bench-{kind}-{b}", size=size, labelled_share=1.0, **knob)
            texts, labels = [], []
            for e, _ in batch_manifest(777, spec):
                x = extract_text(render_entry(777, e), champion.extract)
                if x.outcome in USABLE:
                    texts.append(x.text)
                    labels.append(e.label)
            vectors = embedder.encode(texts)
            proba = champion.classifier.predict_proba(vectors)
            for n in counts:
                predicted = np.asarray(classes)[proba[:n].argmax(axis=1)]
                lengths = np.asarray([len(t) for t in texts[:n]], dtype=float)
                current = Side(vectors[:n], proba[:n], lengths=lengths, texts=texts[:n])
                config = MonitorConfig(seed=b)
                report = monitor(reference, current, classes, config, (np.asarray(labels[:n]), predicted), recorded)
                fired = {
                    "embedding": bool(report.embedding) and all(t.fired for t in report.embedding),
                    "text_noise": bool(report.quality.get("text_noise", {}).get("fired")),
                    "novel_words": bool(report.quality.get("novel_words", {}).get("fired")),
                    "prediction": bool(report.prediction.get("fired")),
                    "performance": performance_dropped(report.performance, config.retrain_f1_drop),
                }
                for key, value in fired.items():
                    counts[n][key] += value
                counts[n]["any"] += any(fired.values())
        for n, c in counts.items():
            rows.append({"knob": kind, "batch_size": n, "batches": n_batches, **c})
            print(json.dumps(rows[-1]), flush=True)
        print(f"  {kind}: {time.perf_counter() - start:.0f} s", flush=True)
    print(
        "\n| knob (alone) | batch size | batches | embedding drift | text noise | novel words | class shares "
        "| labelled F1 drop | any alarm |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['knob']} | {r['batch_size']} | {r['batches']} | {r['embedding']} | {r['text_noise']} | "
            f"{r['novel_words']} | {r['prediction']} | {r['performance']} | {r['any']} |"
        )
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=2))
    return 0


def cost(workspace: Path, n: int) -> int:
    """Seconds of a cycle's monitoring (the champion's probabilities on both sides and every drift test)
    with n reference and n current vectors, against the per-document cost of the cycles recorded in the
    workspace."""
    from evaluation.drift import Side, monitor
    from training import tracking

    tracking.use_registry(tracking.default_tracking_uri(workspace))
    entry = tracking.model_version("models:/docscale-classifier@champion")
    champion = tracking.load_document_model(f"models:/{entry.name}/{entry.version}")
    with FeatureStore(workspace / "features.duckdb", read_only=True) as store:
        start = time.perf_counter()
        rows = store.version_rows(champion.feature_version, splits=("train",))
        load_seconds = (time.perf_counter() - start) * n / len(rows.hashes)  # loading is linear in rows
        start = time.perf_counter()
        texts = store.sample_texts(champion.feature_version, MonitorConfig().text_sample, splits=("train",))
        text_seconds = time.perf_counter() - start  # a bounded sample: once per side
        decided = store.decisions()
    rng = np.random.default_rng(0)

    def side(seed_shift: float) -> np.ndarray:
        x = rows.vectors[rng.integers(0, len(rows.vectors), n)] + rng.normal(
            0, 0.01 + seed_shift, (n, rows.vectors.shape[1])
        )
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    ref, cur = side(0.0), side(0.01)
    start = time.perf_counter()
    report = monitor(
        Side(ref, champion.classifier.predict_proba(ref), lengths=np.ones(n), texts=texts),
        Side(cur, champion.classifier.predict_proba(cur), lengths=np.ones(n), texts=texts[::-1]),
        champion.classes,
        MonitorConfig(),
    )
    seconds = time.perf_counter() - start + 2 * (load_seconds + text_seconds)
    per_doc = [sum(d["stage_seconds"].values()) / d["documents"] for d in decided if d.get("documents")]
    cycle = float(np.median(per_doc)) * n if per_doc else float("nan")
    print(json.dumps({"n": n, "monitor_seconds": round(seconds, 2), "tests_seconds": report.seconds,
                      "cycle_seconds_per_document": round(cycle / n, 4), "cycle_seconds": round(cycle, 1),
                      "share": round(seconds / cycle, 4)}))  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--knobs", action="store_true", help="generated batches, one drift knob at a time")
    parser.add_argument("--cost", type=int, default=0, help="time monitoring N vs N documents instead")
    parser.add_argument("--size", type=int, default=100, help="--knobs: documents per batch")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--feature-version")
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument(
        "--batches", type=int, default=20, help="per cell (--knobs: per knob; same-distribution: >= 20)"
    )
    parser.add_argument("--reference", type=int, default=500, help="reference rows (the champion's training set)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.cost:
        return cost(args.workspace.resolve(), args.cost)
    if args.knobs:
        return knobs(args.workspace.resolve(), args.batches, args.size, args.out)
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
