"""Predict the class of new PDFs with a registered model, reusing the workspace's cached work.

    python -m processing.predict --input ~/new-pdfs                         # champion -> predictions.csv
    python -m processing.predict --input ~/new-pdfs --out preds.parquet
    python -m processing.predict --input ~/new-pdfs --model models:/docscale-classifier/3

Files are extracted and embedded exactly as in training: the extractor and embedder settings come
from the model itself (processing.classify.DocumentClassifier), never from a default config. It runs in
this process: prediction sets are small, and this keeps the command free of Ray.
Every file gets one row; a file that cannot be read or extracted gets its outcome and no prediction.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ingestion.extract import USABLE, extract_files, extractor_version
from ingestion.sources import InputError, display_path, list_files
from processing.config import Config, load_config
from processing.embed import Embedder
from processing.features import FeatureStore, WorkspaceDamagedError, WorkspaceLockedError
from training import tracking


def predict_folder(
    input_dir: str, workspace: Path, model_uri: str, experiment: str = "docscale", tracking_uri: str | None = None
) -> list[dict[str, Any]]:
    tracking.setup(tracking_uri or tracking.default_tracking_uri(workspace), experiment, None)
    version = tracking.model_version(model_uri)
    try:  # the model carries the settings its inputs were made with; never a default config
        document_model = tracking.load_document_model(f"models:/{version.name}/{version.version}")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    config = load_config("50")  # only for the store's lock settings
    model, embedder = document_model.classifier, document_model.embedder
    config.extract, config.embed = document_model.extract, document_model.embed
    extractor = extractor_version(config.extract)
    paths = list_files(input_dir)
    if not paths:
        raise InputError(f"--input {input_dir}: the folder holds no files")
    run_id = time.strftime("predict-%Y%m%d-%H%M%S")
    with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
        store.begin_run(run_id, f"predict:{input_dir}", {"model": model_uri})
        records = extract_files(paths, config.extract, store.extracted_hashes(extractor))
        store.record_files(run_id, extractor, records, {p: (None, "predict") for p in paths})
        store.mark_duplicates(run_id)
        stored = store.run_outcomes(run_id)  # keyed by each path as stored (valid UTF-8)
        outcomes = {p: stored[display_path(p)] for p in paths}
        hashes = {r.path: r.content_hash for r in records}
        usable = [p for p in paths if outcomes[p] in USABLE or outcomes[p] == "duplicate"]
        usable = [p for p in usable if hashes[p]]
        if document_model.reads_text:
            texts = dict(store.iter_texts(sorted({hashes[p] for p in usable}), extractor))
            features = np.asarray([texts[hashes[p]] for p in usable])
        else:
            features = _vectors(store, config, embedder, extractor, [hashes[p] for p in usable])
        store.finish_run(run_id, "finished", None)
    rows = []
    probabilities = model.predict_proba(features) if usable else np.zeros((0, len(model.classes_)))
    by_path = dict(zip(usable, probabilities, strict=True))
    classes = [str(c) for c in model.classes_]
    for path in paths:
        row: dict[str, Any] = {
            "path": display_path(path),
            "outcome": outcomes[path],
            "predicted": None,
            "probability": None,
        }
        if path in by_path:
            p = by_path[path]
            row |= {"predicted": classes[int(p.argmax())], "probability": float(p.max())}
            row |= {f"p_{c}": float(v) for c, v in zip(classes, p, strict=True)}
        rows.append(row)
    return rows


def _vectors(store: FeatureStore, config: Config, embedder: str, extractor: str, hashes: list[str]) -> np.ndarray:
    missing = store.missing_embeddings(hashes, embedder, extractor)
    if missing:
        model = Embedder(config.embed, cache_dir=store.path.parent / "models")
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
    parser = argparse.ArgumentParser(prog="python -m processing.predict", description=__doc__.split("\n")[0])
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
    except (WorkspaceLockedError, WorkspaceDamagedError) as exc:  # e.g. a run holds the workspace
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
