"""The pipeline as one call: corpus or the user's folder -> features -> training -> registry gate.

Wiring shared by the conductors (processing/run.py for a tier or a folder, processing/cycle.py for the
first batch of the loop): it may import every stage package; only conductors import it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from processing.config import Config, ConfigError


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
    from processing.build import build_features, generate_corpus
    from processing.embed import concrete_backend, resolve_device
    from processing.features import FeatureStore
    from processing.progress import log
    from processing.run_training import RunContext, train_and_report

    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    run = RunContext(
        run_id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
        tier="input" if input_dir else tier,
        source=f"input:{input_dir}" if input_dir else f"tier:{tier}",
        workspace=workspace,
    )
    run.train_device = resolve_device("cpu" if config.embed.device == "cpu" else "auto")
    if warning := config.extract.ocr_warning():
        log(f"warning: {warning}")
    with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
        store.begin_run(run.run_id, run.source, config.to_dict())
        try:
            if feature_version is None:
                # The user's folder is listed and checked before the engine starts: a bad --input costs
                # a second, not a Ray start-up.
                listed = list_user_input(config, input_dir, labels_csv) if input_dir else None
                with run.clock.stage("ray_start"):
                    executor = start_executor(config, ray_address)
                cluster = executor.cluster
                config.embed = concrete_backend(config.embed, cluster.gpus)
                log(
                    f"engine: {config.engine.executor}, {cluster.nodes} node(s), {cluster.cpus} CPU, {cluster.gpus} GPU"
                )
                with run.clock.stage("corpus"):
                    labels, generated = listed or generate_corpus(executor, config.corpus, workspace)
                corpus = None if input_dir else config.corpus
                settings = (config.extract, config.embed, corpus)
                features = build_features(
                    executor, store, run.run_id, run.source, settings, labels, run.clock, workspace / "models"
                )
                version_id, created = features.version_id, features.created
                run.work = {"generated": generated, **features.work}
                run.device, run.embedder, run.extractor = (
                    features.device or run.train_device,
                    features.embedder,
                    features.extractor,
                )
                run.cluster, run.tasks_per_node = asdict(cluster), dict(executor.stats.tasks_per_node)
            else:
                version = store.version(feature_version)
                version_id, created = version["version_id"], False
                # The model must name the backend that made these vectors, not this machine's default.
                made_by = (store.embedder_info(version["embedder"]) or {}).get("params", {})
                config.embed = replace(config.embed, backend=made_by.get("backend", "torch"))
                run.device = run.train_device
            summary = train_and_report(config, store, run, version_id, created)
        except BaseException:
            store.finish_run(run.run_id, "failed", None)
            raise
        store.finish_run(run.run_id, "finished", version_id)
    return summary


def start_executor(config: Config, ray_address: str | None) -> Any:
    """Ray (local or a cluster), or this process (engine.executor=local)."""
    if config.engine.executor == "local" and not ray_address:
        from processing.local import LocalExecutor

        local = LocalExecutor()
        _check_gpu_asked(config, local.cluster.gpus)
        return local
    from processing.engine import RayExecutor

    executor = RayExecutor(config.engine, ray_address)
    _check_gpu_asked(config, executor.cluster.gpus)
    return executor


def _check_gpu_asked(config: Config, gpus: int) -> None:
    """embed.device=cuda where the engine has no GPU would wait forever for an actor Ray cannot place."""
    if config.embed.device == "cuda" and gpus == 0:
        raise ConfigError(
            "embed.device=cuda (--device cuda), but the engine sees no GPU: use --device auto (CUDA where there"
            " is one) or --device cpu"
        )


def list_user_input(
    config: Config, input_dir: str, labels_csv: str | None
) -> tuple[dict[str, tuple[str | None, str]], int]:
    """path -> (label, split) for every file of the user's folder (and 0 files generated)."""
    from ingestion.sources import list_input
    from processing.progress import log

    files = list_input(input_dir, labels_csv, config.corpus.heldout_fraction)
    log(f"input: {len(files)} files in {input_dir}, {sum(f.split == 'predict' for f in files)} unlabelled")
    return {f.uri: (f.label, f.split) for f in files}, 0


def export_run_metrics(summary: dict[str, Any], config: Config, workspace: Path) -> Path:
    """The run's figures for Prometheus: a textfile under workspace/metrics/, and a push when configured."""
    from processing.metrics_export import Series, export

    registry = summary["registry"]
    best = summary["classifiers"][summary["best_classifier"]]
    series = [
        Series(
            "documents", "Input documents by outcome", {(k,): v for k, v in summary["outcomes"].items()}, ("outcome",)
        ),
        Series(
            "docs_per_second",
            "Documents per second by stage",
            {(k,): v for k, v in summary["docs_per_second"].items()},
            ("stage",),
        ),
        Series("stage_seconds", "Seconds by stage", {(k,): v for k, v in summary["stage_seconds"].items()}, ("stage",)),
        Series("heldout_macro_f1", "Best classifier's held-out macro-F1", {(): best["macro_f1"]}),
        Series(
            "champion_version",
            "Registry version holding the champion alias after the run",
            {
                (): float(
                    registry.get("challenger_version")
                    if registry["decision"] == "promoted"
                    else registry.get("champion_version", 0)
                )
            },
        ),
        Series("registry_decision", "1 for the gate's decision", {(registry["decision"],): 1.0}, ("decision",)),
    ]
    return export(series, "run", {"tier": summary["tier"]}, workspace, config.monitor.pushgateway)
