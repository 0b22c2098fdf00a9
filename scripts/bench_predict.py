"""Batch scoring against training's own feature stage, on the same files, side by side in one run.

    python scripts/bench_predict.py --tier 1k --out out/bench_predict.json

1. `processing.run --tier T` in a fresh workspace: its extract and embed stages' seconds;
2. `processing.predict` over the same files (the tier's corpus) in a second fresh workspace, with the first
   run's champion: its extract, embed and score seconds.
Both on the default engine (a local Ray) unless --set says otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tier", default="1k")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    train_ws, score_ws = base / "train", base / "score"
    summary_path = base / "summary.json"
    sets = [x for s in ["train.classifiers=logreg", *args.overrides] for x in ("--set", s)]
    run = [sys.executable, "-m", "processing.run", "--tier", args.tier, "--workspace", str(train_ws)]
    subprocess.run([*run, "--summary", str(summary_path), *sets], check=True, cwd=ROOT)
    summary = json.loads(summary_path.read_text())
    corpus = next(train_ws.glob("corpus/seed-*"))
    predict = [sys.executable, "-m", "processing.predict", "--input", str(corpus), "--workspace", str(score_ws)]
    predict += ["--tracking-uri", f"sqlite:///{train_ws / 'mlflow.db'}", "--out", str(base / "predictions.parquet")]
    scored_path = base / "scored.json"
    subprocess.run([*predict, "--summary", str(scored_path), *sets[2:]], check=True, cwd=ROOT)
    scored = json.loads(scored_path.read_text())
    wall = scored["wall_seconds"]
    run_seconds = summary["stage_seconds"]
    files = scored["files"]
    result = {
        "files": files,
        "run": {k: run_seconds.get(k, 0.0) for k in ("extract", "model_load", "embed")},
        "predict": {**scored["seconds"], "wall": round(wall, 2)},
    }
    run_docs_s = files / sum(result["run"].values())
    predict_docs_s = files / sum(
        v for k, v in scored["seconds"].items() if k in ("extract", "model_load", "embed", "score")
    )
    result |= {"run_docs_per_s": round(run_docs_s, 1), "predict_docs_per_s": round(predict_docs_s, 1)}
    result["ratio"] = round(predict_docs_s / run_docs_s, 3)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
