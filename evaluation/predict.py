"""Predict the class of new PDFs with a registered model, reusing the workspace's cached work.

    python -m evaluation.predict --input ~/new-pdfs                         # champion -> predictions.csv
    python -m evaluation.predict --input ~/new-pdfs --out preds.parquet
    python -m evaluation.predict --input ~/new-pdfs --model models:/docscale-classifier/3

Files are extracted and embedded exactly as in training (same extractor and embedder, looked up from
the model's registry tags), in this process: prediction sets are small, and this keeps the command
free of Ray. Every file gets one row; a file that cannot be read or extracted gets its outcome and no
prediction.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ingestion.extract import USABLE, Limits, extract_files, extractor_version
from ingestion.sources import InputError, list_files
from processing.config import load_config
from processing.embed import Embedder
from processing.features import FeatureStore
from training import tracking
from training.classifiers import TEXT_INPUT


def predict_folder(
    input_dir: str, workspace: Path, model_uri: str, experiment: str = "docscale", tracking_uri: str | None = None
) -> list[dict[str, Any]]:
    config = load_config("50")
    tracking.setup(tracking_uri or tracking.default_tracking_uri(workspace), experiment, None)
    version = tracking.model_version(model_uri)
    model = tracking.load_model(f"models:/{version.name}/{version.version}")
    classifier, embedder = version.tags.get("classifier", ""), version.tags.get("embedder", "")
    x = config.extract
    limits = Limits(x.max_pages, x.max_bytes, x.min_chars, x.timeout_s, x.fallback_on_empty)
    extractor = extractor_version(x.backend, x.fallback or None, limits)
    paths = list_files(input_dir)
    if not paths:
        raise InputError(f"--input {input_dir}: the folder holds no files")
    run_id = time.strftime("predict-%Y%m%d-%H%M%S")
    with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
        store.begin_run(run_id, f"predict:{input_dir}", {"model": model_uri})
        records = extract_files(paths, store.extracted_hashes(extractor), x.backend, x.fallback or None, limits)
        store.record_files(run_id, extractor, records, {p: (None, "predict") for p in paths})
        store.mark_duplicates(run_id)
        outcomes = store.run_outcomes(run_id)
        hashes = {r.path: r.content_hash for r in records}
        usable = [p for p in paths if outcomes[p] in USABLE or outcomes[p] == "duplicate"]
        usable = [p for p in usable if hashes[p]]
        if classifier in TEXT_INPUT:
            texts = dict(store.iter_texts(sorted({hashes[p] for p in usable}), extractor))
            features = np.asarray([texts[hashes[p]] for p in usable])
        else:
            features = _vectors(store, embedder, extractor, [hashes[p] for p in usable])
        store.finish_run(run_id, "finished", None)
    rows = []
    probabilities = model.predict_proba(features) if usable else np.zeros((0, len(model.classes_)))
    by_path = dict(zip(usable, probabilities, strict=True))
    classes = [str(c) for c in model.classes_]
    for path in paths:
        row: dict[str, Any] = {"path": path, "outcome": outcomes[path], "predicted": None, "probability": None}
        if path in by_path:
            p = by_path[path]
            row |= {"predicted": classes[int(p.argmax())], "probability": float(p.max())}
            row |= {f"p_{c}": float(v) for c, v in zip(classes, p, strict=True)}
        rows.append(row)
    return rows


def _vectors(store: FeatureStore, embedder: str, extractor: str, hashes: list[str]) -> np.ndarray:
    info = store.embedder_info(embedder)
    if info is None:
        raise InputError(f"the model's embedder {embedder!r} is unknown to this workspace's feature store")
    missing = store.missing_embeddings(hashes, embedder, extractor)
    if missing:
        params = info["params"]
        model = Embedder(
            info["model"],
            "auto",
            max_chars=params["max_chars"],
            backend=params.get("backend", "torch"),
            token_budget=params.get("token_budget", 256),
            cache_dir=store.path.parent / "models",
        )
        pairs = list(store.iter_texts(missing, extractor))
        store.add_embeddings([h for h, _ in pairs], model.encode([t for _, t in pairs]), embedder, extractor)
    return store.load_vectors(hashes, embedder, extractor)


def write_rows(rows: list[dict[str, Any]], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = pa.table({c: [row.get(c) for row in rows] for c in columns})
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        pq.write_table(table, out)
    else:
        pacsv.write_csv(table, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="folder of PDFs (local or s3://...)")
    parser.add_argument("--model", default="models:/docscale-classifier@champion")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--tracking-uri", help="default: sqlite:///<workspace>/mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help=".csv or .parquet")
    args = parser.parse_args(argv)
    try:
        rows = predict_folder(args.input, args.workspace.resolve(), args.model, tracking_uri=args.tracking_uri)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__name__ == "MlflowException":  # no such model, alias or registry
            print(f"error: {args.model}: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        raise
    write_rows(rows, args.out)
    predicted = sum(r["predicted"] is not None for r in rows)
    print(f"{len(rows)} files, {predicted} predicted, {len(rows) - predicted} without a prediction -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
