"""Run the whole chain: corpus -> extract (Ray) -> embed (Ray actors) -> DuckDB -> train -> MLflow -> summary.

    python -m processing.run --tier 50                          # laptop, CPU, ./workspace
    python -m processing.run --tier 1k --summary out/1k.json    # also write the summary as JSON
    python -m processing.run --tier 50 --set embed.batch_size=32 --set train.classifiers=logreg
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
from dataclasses import asdict
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


def run_pipeline(config: Config, tier: str, workspace: Path, ray_address: str | None = None) -> dict[str, Any]:
    # Heavy imports live here so `--help` and config errors answer instantly.
    import numpy as np

    from evaluation.metrics import plot_confusion, score
    from ingestion.corpus import corpus_dir, manifest, write_entries
    from ingestion.extract import EXTRACTOR_VERSION, extract_files
    from processing import engine
    from processing.embed import embedder_id
    from processing.features import FeatureStore
    from training import tracking
    from training.classifiers import TrainParams, train_classifier

    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    work = {"generated": 0, "extracted": 0, "embedded": 0}

    with FeatureStore(workspace / "features.duckdb") as store:
        store.begin_run(run_id, f"tier:{tier}", config.to_dict())
        try:
            with clock.stage("ray_start"):
                cluster = engine.start_ray(ray_address, config.ray.num_cpus)
            _log(f"Ray: {cluster.nodes} node(s), {cluster.cpus} CPU, {cluster.gpus} GPU ({cluster.address})")

            # 1. Corpus: render only the files this workspace does not have yet.
            with clock.stage("corpus"):
                c = config.corpus
                root = corpus_dir(workspace, c.seed)
                entries = manifest(c.seed, c.train_size, c.heldout_size, c.bad_file_rate)
                missing = [e for e in entries if not (root / e.relpath).exists()]
                for counts in engine.map_batches(
                    partial(_write_batch, write_entries, root, c.seed),
                    missing,
                    batch_size=32,
                    desc="generate",
                    total=len(missing),
                ):
                    work["generated"] += sum(counts)
                labels = {str(root / e.relpath): (e.label, e.split) for e in entries}
            _log(f"corpus: {len(entries)} files ({work['generated']} generated) in {root}")

            # 2. Extraction on Ray; cached by content hash, committed batch by batch.
            with clock.stage("extract"):
                done = store.extracted_hashes(EXTRACTOR_VERSION)
                extract = partial(
                    extract_files,
                    skip_hashes=done,
                    max_pages=config.extract.max_pages,
                    max_bytes=config.extract.max_bytes,
                    min_chars=config.extract.min_chars,
                )
                for records in engine.map_batches(
                    extract, list(labels), config.extract.files_per_task, desc="extract", total=len(labels)
                ):
                    store.record_files(run_id, EXTRACTOR_VERSION, records, labels)
                    work["extracted"] += sum(r.extraction is not None for r in records)
            outcomes = store.outcome_counts(run_id)
            _log(f"extract: {work['extracted']} extracted, outcomes {outcomes}")

            # 3. Embedding on a Ray actor pool; cached by (content hash, embedder).
            members = store.members(run_id)
            embedder = embedder_id(config.embed.model, config.embed.max_chars)
            todo = store.missing_embeddings([m.content_hash for m in members], embedder)
            device = "cpu"
            if todo:
                with clock.stage("model_load"):
                    pool = engine.EmbedPool(
                        config.embed.model, config.embed.device, config.embed.batch_size, config.embed.max_chars
                    )
                    device = pool.device
                with clock.stage("embed"):
                    texts = store.iter_texts(todo, EXTRACTOR_VERSION)
                    for keys, vectors in pool.embed(texts, config.embed.texts_per_call, total=len(todo)):
                        store.add_embeddings(keys, vectors, embedder)
                        work["embedded"] += len(keys)
                    pool.close()
            else:
                device = _train_device(config.embed.device)
            _log(f"embed: {work['embedded']} embedded on {device} ({len(members) - len(todo)} cached)")

            # 4. An immutable feature version, then its arrays.
            with clock.stage("features"):
                params = {"max_chars": config.embed.max_chars, "seed": c.seed, "bad_file_rate": c.bad_file_rate}
                version_id, created = store.commit_version(members, f"tier:{tier}", EXTRACTOR_VERSION, embedder, params)
                features = store.load_features(version_id)
            n_train, n_heldout = len(features.y_train), len(features.y_heldout)
            _log(f"features: {version_id} ({'new' if created else 'reused'}), {n_train} train, {n_heldout} held-out")

            # 5. Train, evaluate on the fixed held-out set, log to MLflow.
            with clock.stage("mlflow_setup"):
                tracking_uri = config.mlflow.tracking_uri or tracking.default_tracking_uri(workspace)
                tracking.setup(tracking_uri, config.mlflow.experiment, workspace / "mlartifacts")
            train_params = TrainParams(
                seed=config.train.seed,
                logreg_c=config.train.logreg_c,
                mlp_hidden=config.train.mlp_hidden,
                mlp_epochs=config.train.mlp_epochs,
                mlp_lr=config.train.mlp_lr,
                device=_train_device(config.embed.device),
            )
            results: dict[str, dict[str, float]] = {}
            tags = {"tier": tier, "feature_version": version_id, "device": device, "docscale_run": run_id}
            with tracking.pipeline_run(f"tier-{tier}", config.flat(), tags) as mlflow_run_id:
                for name in config.train.classifiers:
                    with clock.stage("train"):
                        start = time.perf_counter()
                        model = train_classifier(name, features.x_train, features.y_train, train_params)
                        train_seconds = time.perf_counter() - start
                    with clock.stage("evaluate"):
                        predicted = model.predict(features.x_heldout)
                        results[name] = {**score(features.y_heldout, predicted), "train_seconds": train_seconds}
                        png = plot_confusion(
                            features.y_heldout,
                            predicted,
                            f"{name} - tier {tier}",
                            workspace / "reports" / run_id / f"confusion_{name}.png",
                        )
                    with clock.stage("log_models"):
                        tracking.log_artifact(png, "confusion")
                        tracking.log_metrics({f"{name}.{k}": v for k, v in results[name].items()})
                        tracking.log_model(name, model, features.x_train[:5].astype(np.float32))
                outcomes = store.outcome_counts(run_id)
                summary = {
                    "run_id": run_id,
                    "tier": tier,
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
                    "device": device,
                    "work": work,
                    "cluster": asdict(cluster),
                    "workspace": str(workspace),
                }
                tracking.log_metrics({f"seconds.{k}": v for k, v in clock.seconds.items()})
                tracking.log_metrics(
                    {
                        "documents": summary["documents"],
                        "train_documents": n_train,
                        "heldout_documents": n_heldout,
                        **{f"work.{k}": v for k, v in work.items()},
                    }
                )
                tracking.log_json(summary, "summary.json")
            store.finish_run(run_id, "finished", version_id)
            return summary
        except BaseException:
            store.finish_run(run_id, "failed", None)
            raise


def _write_batch(write_entries: Any, root: Path, seed: int, entries: list[Any]) -> list[int]:
    return [write_entries(root, seed, entries)]


def _train_device(device: str) -> str:
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
    try:
        summary = run_pipeline(config, args.tier, args.workspace, args.ray_address)
    except Exception as exc:  # a known failure gets one clear line; the traceback is for --debug users
        from processing.embed import ModelNotFoundError
        from processing.features import WorkspaceLockedError

        if isinstance(exc, (WorkspaceLockedError, ModelNotFoundError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    from evaluation.report import format_summary, write_summary

    print(format_summary(summary))
    if args.summary:
        write_summary(summary, args.summary)
        print(f"summary written to {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
