"""Batch scoring: the class of every PDF of a folder with a registered model, on the engine.

    python -m processing.predict --input ~/new-pdfs                          # champion -> predictions.parquet
    python -m processing.predict --input s3://bucket/inbox --out preds.csv --set engine.executor=local
    python -m processing.predict --input ~/new-pdfs --model models:/docscale-classifier/3

Files are extracted and embedded by the training stages themselves (processing.build: the engine's
tasks and embedding actors), with the extractor and embedder settings the model carries
(processing.classify.DocumentClassifier), never a default config; a model that reads text is scored on
the engine's workers too (its TF-IDF is most of the time). Extractions and vectors are cached in
the workspace, so a killed run resumes where it stopped. Results stream to Parquet in chunks (or CSV), one
row per file: a file that cannot be read or extracted gets its outcome, a message saying why and no label;
a usable one its label and probabilities, and its quality flags (`ocr`: pages read by OCR, `truncated`:
only the first extract.max_pages pages read). The file appears whole when done (written under a temporary
name, then renamed).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from ingestion.extract import USABLE, extractor_version
from ingestion.sources import InputError, display_path, list_files
from processing.build import embed_stage, extract_stage
from processing.config import ConfigError, load_config
from processing.embed import embedder_id
from processing.features import FeatureStore, WorkspaceDamagedError, WorkspaceLockedError
from processing.out_of_space import out_of_space_error, out_of_space_message
from processing.pipeline import start_executor
from processing.prediction_rows import labels_line, write_prediction_file
from processing.progress import Stopwatch, log
from processing.scoring import file_probabilities
from training import tracking


def predict_folder(
    input_dir: str,
    workspace: Path,
    model_uri: str,
    out: Path,
    overrides: list[str] | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Score every file under input_dir; returns counts and seconds per stage."""
    config = load_config("50", overrides=overrides)  # the engine and store settings; extract/embed: the model's
    uri = tracking_uri or config.mlflow.uri(workspace)
    tracking.check_reachable(uri)  # seconds, not MLflow's minutes of retries
    tracking.use_registry(uri)
    version = tracking.model_version(model_uri)
    try:
        model = tracking.load_document_model(f"models:/{version.name}/{version.version}")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    # The device is where it runs, not what it computes: this machine's setting (default auto) stands.
    config.extract, config.embed = model.extract, replace(model.embed, device=config.embed.device)
    settings = (config.extract, config.embed)
    extractor, embedder = extractor_version(model.extract), embedder_id(model.embed)
    paths = list_files(input_dir)
    if not paths:
        raise InputError(f"--input {input_dir}: the folder holds no files")
    clock, work = Stopwatch(), {}
    run_id = time.strftime("predict-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    workspace.mkdir(parents=True, exist_ok=True)
    with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
        store.begin_run(run_id, f"predict:{input_dir}", {"model": model_uri})
        executor = start_executor(config, None)
        pool = extract_stage(
            executor, store, run_id, settings, {p: (None, "predict") for p in paths}, clock, workspace / "models", work
        )
        files = store.run_files(run_id, extractor)  # keyed by each path as stored (valid UTF-8)
        shown = [display_path(p) for p in paths]
        usable = sorted({files[p][0] for p in shown if files[p][1] in USABLE})
        if model.reads_text:
            if pool:
                pool.close()
        else:
            embed_stage(executor, store, settings, usable, pool, clock, workspace / "models", work)
        with clock.stage("score"):
            scored = file_probabilities(model, store, shown, files, embedder, extractor, executor)
            written = write_prediction_file(out, shown, files, scored, model.classes)
        store.finish_run(run_id, "finished", None)
    scored_by = f"models:/{version.name}/{version.version} ({model.name})"
    outcomes = Counter(outcome for _, outcome, _, _ in files.values())
    flags = Counter(f for _, outcome, _, fs in files.values() if outcome in USABLE for f in fs.split(",") if f)
    return {
        "files": len(paths),
        "predicted": written.predicted,
        "labels": dict(written.labels.most_common()),
        "uncertain": written.uncertain,  # labels given at a probability under 0.5
        "without_prediction": dict(written.without),  # by outcome; a copy of an unreadable file is one of them
        "model": scored_by,
        "outcomes": dict(outcomes),
        "flags": dict(flags),  # of the usable files: what their predictions rest on
        "seconds": clock.seconds,
        "work": work,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processing.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="folder of PDFs (local or s3://...)")
    parser.add_argument("--model", default="models:/docscale-classifier@champion")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--tracking-uri", help="default: sqlite:///<workspace>/mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("predictions.parquet"), help=".parquet or .csv")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--summary", type=Path, help="also write counts and seconds per stage as JSON here")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in (".parquet", ".csv"):  # before any work, not a Parquet file named .json
        print(f"error: --out {args.out}: name a .parquet or .csv file", file=sys.stderr)
        return 2
    workspace = args.workspace.resolve()
    if problem := tracking.missing_registry(args.tracking_uri or tracking.default_tracking_uri(workspace)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        result = predict_folder(args.input, workspace, args.model, args.out, args.overrides, args.tracking_uri)
    except (InputError, ConfigError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (WorkspaceLockedError, WorkspaceDamagedError) as exc:  # e.g. a run holds the workspace
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: extractions and embeddings so far are saved; run it again to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if (full := out_of_space_error(exc)) is not None:  # before MLflow's own: SQLite's "disk is full" is one
            print(f"error: {out_of_space_message(full, workspace, {'--out': args.out.parent})}", file=sys.stderr)
            return 1
        if type(exc).__name__ == "MlflowException":  # no such model, alias or registry
            print(f"error: {args.model}: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        raise
    wall = time.perf_counter() - start
    if args.summary:
        import json

        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps({**result, "wall_seconds": round(wall, 2)}, indent=2))
    files, predicted = result["files"], result["predicted"]
    log(f"stages: {result['seconds']}")
    print(
        f"{files} files, {predicted} predicted, {files - predicted} without a prediction -> {args.out} "
        f"({files / wall:.1f} files/s; model {result['model']})"
    )
    print(_breakdown(result["without_prediction"], result["flags"]))
    if result["labels"]:
        print(labels_line(result["labels"], result["uncertain"]))
    return 0


def _breakdown(without_prediction: dict[str, int], flags: dict[str, int]) -> str:
    """Why files have no prediction, and how many predictions rest on OCR'd pages or a truncated text."""
    ranked = sorted(without_prediction.items(), key=lambda kv: (-kv[1], kv[0]))
    without = ", ".join(f"{k} {v}" for k, v in ranked)
    resting = f"pages read by OCR {flags.get('ocr', 0)}, truncated {flags.get('truncated', 0)}"
    return f"  without a prediction: {without or 'none'}; predictions resting on {resting} (column flags)"


if __name__ == "__main__":
    sys.exit(main())
