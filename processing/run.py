"""Run the whole chain: corpus -> extract (Ray) -> embed (Ray actors) -> DuckDB -> train -> MLflow -> summary.

    python -m processing.run --tier 50                          # laptop, CPU, ./workspace
    python -m processing.run --tier 1k --summary out/1k.json    # also write the summary as JSON
    python -m processing.run --tier 50 --set embed.batch_size=32 --set train.classifiers=logreg
    python -m processing.run --tier 50 --feature-version fv-1234abcd   # retrain on an earlier feature version
    python -m processing.run --input ~/pdfs                    # your own PDFs: ~/pdfs/<label>/*.pdf
    python -m processing.run --input s3://bucket/docs --labels s3://bucket/labels.csv
    python -m processing.run --tier 15k --device cuda --ray-address auto   # on a Ray cluster with a GPU

Reruns reuse everything already done in the workspace (generated PDFs, extractions, embeddings).
This module is the conductor: the only one that imports all four stage packages; nothing imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from processing.config import TIERS, Config, ConfigError, load_config


class Stopwatch:
    """Seconds per named stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


@dataclass
class RunState:
    """What one pipeline run has learned so far; becomes the summary."""

    run_id: str
    tier: str
    workspace: Path
    clock: Stopwatch = field(default_factory=Stopwatch)
    work: dict[str, int] = field(default_factory=lambda: {"generated": 0, "extracted": 0, "embedded": 0})
    source: str = ""
    device: str = "cpu"
    cluster: dict[str, Any] = field(default_factory=dict)
    embedder: str = ""


def run_pipeline(
    config: Config,
    tier: str,
    workspace: Path,
    ray_address: str | None = None,
    feature_version: str | None = None,
    input_dir: str | None = None,
    labels_csv: str | None = None,
) -> dict[str, Any]:
    """The whole chain for a tier of the generated corpus, or for the user's folder when input_dir is given."""
    from processing.features import FeatureStore

    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    state = RunState(run_id, tier, workspace, source=f"input:{input_dir}" if input_dir else f"tier:{tier}")
    with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
        store.begin_run(state.run_id, state.source, config.to_dict())
        try:
            if feature_version is None:
                version_id, created = build_features(config, store, state, ray_address, input_dir, labels_csv)
            else:
                version_id, created = store.version(feature_version)["version_id"], False
                state.device = _resolve_device(config.embed.device)
            summary = train_and_report(config, store, state, version_id, created)
        except BaseException:
            store.finish_run(state.run_id, "failed", None)
            raise
        store.finish_run(state.run_id, "finished", version_id)
    return summary


def build_features(
    config: Config,
    store: Any,
    state: RunState,
    ray_address: str | None,
    input_dir: str | None = None,
    labels_csv: str | None = None,
) -> tuple[str, bool]:
    """Inputs -> extraction -> embeddings -> an immutable feature version. Returns (version id, created)."""
    from ingestion.extract import EXTRACTOR_VERSION, extract_files
    from processing import engine
    from processing.embed import embedder_id

    clock, work = state.clock, state.work
    with clock.stage("ray_start"):
        cluster = engine.start_ray(ray_address, config.ray.num_cpus)
        state.cluster = asdict(cluster)
    _log(f"Ray: {cluster.nodes} node(s), {cluster.cpus} CPU, {cluster.gpus} GPU ({cluster.address})")

    # 1. Inputs: the user's folder, or the generated corpus (rendering only what the workspace lacks).
    with clock.stage("corpus"):
        if input_dir:
            from ingestion.sources import list_input

            inputs = list_input(input_dir, labels_csv, config.corpus.heldout_fraction)
            labels = {f.uri: (f.label, f.split) for f in inputs}
            _log(f"input: {len(labels)} files in {input_dir}, {sum(f.split == 'predict' for f in inputs)} unlabelled")
        else:
            labels = generate_corpus(config, state, engine)
    # 2. Extraction on Ray; cached by content hash, committed batch by batch.
    with clock.stage("extract"):
        limits = {
            "max_pages": config.extract.max_pages,
            "max_bytes": config.extract.max_bytes,
            "min_chars": config.extract.min_chars,
        }
        extract = partial(extract_files, skip_hashes=store.extracted_hashes(EXTRACTOR_VERSION), **limits)
        batches = engine.map_batches(
            extract, list(labels), config.extract.files_per_task, desc="extract", total=len(labels)
        )
        for records in batches:
            store.record_files(state.run_id, EXTRACTOR_VERSION, records, labels)
            work["extracted"] += sum(r.extraction is not None for r in records)
        work["duplicates"] = store.mark_duplicates(state.run_id)
    _log(f"extract: {work['extracted']} extracted, outcomes {store.outcome_counts(state.run_id)}")

    # 3. Embedding on a Ray actor pool; cached by (content hash, embedder). Unlabelled documents too:
    #    they get predictions at the end.
    members = store.members(state.run_id)
    embedder = state.embedder = embedder_id(config.embed.model, config.embed.max_chars)
    wanted = [m.content_hash for m in members] + [h for _, h in store.unlabelled(state.run_id)]
    todo = store.missing_embeddings(wanted, embedder)
    state.device = _resolve_device(config.embed.device)
    if todo:
        with clock.stage("model_load"):
            pool = engine.EmbedPool(
                config.embed.model, config.embed.device, config.embed.batch_size, config.embed.max_chars
            )
            state.device = pool.device
            store.register_embedder(embedder, config.embed.model, {"max_chars": config.embed.max_chars}, pool.dim)
        with clock.stage("embed"):
            texts = store.iter_texts(todo, EXTRACTOR_VERSION)
            for keys, vectors in pool.embed(texts, config.embed.texts_per_call, total=len(todo)):
                store.add_embeddings(keys, vectors, embedder)
                work["embedded"] += len(keys)
            pool.close()
    _log(f"embed: {work['embedded']} embedded on {state.device} ({len(set(wanted)) - len(todo)} cached)")

    # 4. An immutable, content-addressed feature version.
    with clock.stage("commit"):
        c = config.corpus
        params = {"max_chars": config.embed.max_chars}
        if not input_dir:  # what made the generated corpus is part of the features' identity
            params |= {"seed": c.seed, "bad_file_rate": c.bad_file_rate, "label_noise": c.label_noise}
        version_id, created = store.commit_version(members, state.source, EXTRACTOR_VERSION, embedder, params)
    _log(f"features: {version_id} ({'new' if created else 'reused'})")
    return version_id, created


def generate_corpus(config: Config, state: RunState, engine: Any) -> dict[str, tuple[str | None, str]]:
    """Render the tier's missing PDFs on Ray; returns path -> (label, split) for every file of the tier."""
    from ingestion.corpus import corpus_dir, manifest, write_entries

    c = config.corpus
    root = corpus_dir(state.workspace, c.seed)
    entries = manifest(c.seed, c.train_size, c.heldout_size, c.bad_file_rate, c.label_noise)
    missing = [e for e in entries if not (root / e.relpath).exists()]
    generate = partial(_write_batch, write_entries, root, c.seed)
    for counts in engine.map_batches(generate, missing, batch_size=64, desc="generate", total=len(missing)):
        state.work["generated"] += sum(counts)
    _log(f"corpus: {len(entries)} files ({state.work['generated']} generated) in {root}")
    return {str(root / e.relpath): (e.label, e.split) for e in entries}


def train_and_report(config: Config, store: Any, state: RunState, version_id: str, created: bool) -> dict[str, Any]:
    """Load a feature version, train each classifier, score it on the held-out set, log it all to MLflow."""
    import numpy as np

    from evaluation.metrics import plot_confusion, score
    from evaluation.report import write_predictions
    from training import tracking
    from training.classifiers import TrainParams, train_classifier

    clock = state.clock
    with clock.stage("load_features"):
        features = store.load_features(version_id)
    n_train, n_heldout = len(features.y_train), len(features.y_heldout)
    with clock.stage("mlflow_setup"):
        tracking_uri = config.mlflow.tracking_uri or tracking.default_tracking_uri(state.workspace)
        tracking.setup(tracking_uri, config.mlflow.experiment, state.workspace / "mlartifacts")
    t = config.train
    params = TrainParams(
        seed=t.seed,
        logreg_c=t.logreg_c,
        mlp_hidden=t.mlp_hidden,
        mlp_epochs=t.mlp_epochs,
        mlp_lr=t.mlp_lr,
        device=_resolve_device(config.embed.device),
    )
    results: dict[str, dict[str, float]] = {}
    models: dict[str, Any] = {}
    tags = {"tier": state.tier, "feature_version": version_id, "device": state.device, "docscale_run": state.run_id}
    with tracking.pipeline_run(f"tier-{state.tier}", config.flat(), tags) as mlflow_run_id:
        tracking.log_feature_version(version_id, features.x_train, features.y_train, store.path)
        for name in t.classifiers:
            with clock.stage("train"):
                start = time.perf_counter()
                model = train_classifier(name, features.x_train, features.y_train, params)
                train_seconds = time.perf_counter() - start
            with clock.stage("evaluate"):
                predicted = model.predict(features.x_heldout)
                results[name] = {**score(features.y_heldout, predicted), "train_seconds": train_seconds}
                png = plot_confusion(
                    features.y_heldout,
                    predicted,
                    f"{name} - tier {state.tier}",
                    state.workspace / "reports" / state.run_id / f"confusion_{name}.png",
                )
            with clock.stage("log_models"):
                tracking.log_artifact(png, "confusion")
                tracking.log_metrics({f"{name}.{k}": v for k, v in results[name].items()})
                tracking.log_model(name, model, features.x_train[:5].astype(np.float32))
            models[name] = model
        predictions = None
        unlabelled = store.unlabelled(state.run_id) if state.embedder else []
        if unlabelled:  # documents without a label get the best classifier's prediction
            with clock.stage("predict"):
                best = max(results, key=lambda n: results[n]["macro_f1"])
                vectors = store.load_vectors([h for _, h in unlabelled], state.embedder)
                predictions = state.workspace / "reports" / state.run_id / "predictions.csv"
                write_predictions(predictions, [p for p, _ in unlabelled], models[best], vectors)
                tracking.log_artifact(predictions)
        outcomes = store.outcome_counts(state.run_id)
        summary = {
            "run_id": state.run_id,
            "tier": state.tier,
            "documents": sum(outcomes.values()),
            "outcomes": outcomes,
            "failed": {k: v for k, v in outcomes.items() if k != "ok"},
            "train_documents": n_train,
            "heldout_documents": n_heldout,
            "feature_version": version_id,
            "feature_version_created": created,
            "mlflow_run_id": mlflow_run_id,
            "classifiers": results,
            "stage_seconds": clock.seconds,
            "device": state.device,
            "work": state.work,
            "cluster": state.cluster,
            "workspace": str(state.workspace),
            "source": state.source,
            "predictions": str(predictions) if predictions else None,
        }
        tracking.log_metrics({f"seconds.{k}": v for k, v in clock.seconds.items()})
        counts = {"documents": summary["documents"], "train_documents": n_train, "heldout_documents": n_heldout}
        tracking.log_metrics({**counts, **{f"work.{k}": v for k, v in state.work.items()}})
        tracking.log_json(summary, "summary.json")
    return summary


def _write_batch(write_entries: Any, root: Path, seed: int, entries: list[Any]) -> list[int]:
    return [write_entries(root, seed, entries)]


def _resolve_device(device: str) -> str:
    from processing.embed import resolve_device

    return resolve_device(device)


def _log(message: str) -> None:
    print(f"[docscale] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.run", description=__doc__.split("\n")[0])
    parser.add_argument("--tier", default="50", help=f"corpus tier: {', '.join(TIERS)} (default 50)")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=Path("workspace"),
        help="where corpus, features.duckdb and mlflow.db live (default ./workspace)",
    )
    parser.add_argument("--config", type=Path, help="YAML file of overrides (same keys as configs/base.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set embed.batch_size=32 (repeatable)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="embedding/training device")
    parser.add_argument("--ray-address", help="join this Ray cluster ('auto' inside a job); default: start locally")
    parser.add_argument("--feature-version", help="train and evaluate on this stored version (skips extraction)")
    parser.add_argument("--input", help="your own folder of PDFs (local or s3://...); labels = sub-folder names")
    parser.add_argument("--labels", help="with --input: a CSV of path,label rows instead of sub-folder names")
    parser.add_argument("--summary", type=Path, help="also write the run summary as JSON to this path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"embed.device={args.device}"] if args.device else [])
    try:
        config = load_config(args.tier, args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.labels and not args.input:
        print("error: --labels needs --input DIR", file=sys.stderr)
        return 2
    from ingestion.sources import InputError
    from processing.embed import ModelNotFoundError
    from processing.features import UnknownVersionError, WorkspaceLockedError

    try:
        summary = run_pipeline(
            config, args.tier, args.workspace, args.ray_address, args.feature_version, args.input, args.labels
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (WorkspaceLockedError, ModelNotFoundError, UnknownVersionError) as exc:  # user-fixable: one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from evaluation.report import format_summary, write_summary

    print(format_summary(summary))
    if args.summary:
        write_summary(summary, args.summary)
        print(f"summary written to {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
