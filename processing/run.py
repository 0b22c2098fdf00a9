"""Run the whole chain: corpus -> extract -> embed (on Ray, or in-process) -> DuckDB -> train -> MLflow -> summary.

    python -m processing.run --tier 50                          # laptop, CPU, ./workspace
    python -m processing.run --tier 1k --summary out/1k.json    # also write the summary as JSON
    python -m processing.run --tier 50 --set embed.batch_size=32 --set train.classifiers=logreg
    python -m processing.run --tier 50 --feature-version fv-1234abcd   # retrain on an earlier feature version
    python -m processing.run --tier ladder --ladder-tiers 50,1k,15k    # each tier in turn, then the comparison
    python -m processing.run --input ~/pdfs                    # your own PDFs: ~/pdfs/<label>/*.pdf
    python -m processing.run --input s3://bucket/docs --labels s3://bucket/labels.csv
    python -m processing.run --tier 15k --device cuda --ray-address auto   # on a Ray cluster with a GPU

Reruns reuse everything already done in the workspace (generated PDFs, extractions, embeddings).
A conductor: it wires typed stage functions (processing/build.py, processing/run_training.py) and holds
no stage logic; nothing imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from processing.config import TIERS, Config, ConfigError, load_config
from processing.embed import DEVICES


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
    from processing.embed import resolve_device
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
                version_id, created = store.version(feature_version)["version_id"], False
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

        return LocalExecutor()
    from processing.engine import RayExecutor

    return RayExecutor(config.engine, ray_address)


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


def _workspace_problem(workspace: Path) -> str | None:
    """Why the workspace cannot be used, before anything starts (None when it can)."""
    if workspace.exists() and not workspace.is_dir():
        return "is a file, not a folder; pass a folder (it is created if missing)"
    existing = next((p for p in (workspace, *workspace.resolve().parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK):
        return f"cannot be written ({existing} is read-only); pass a writable folder"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tier",
        default="50",
        help=f"corpus tier: {', '.join(TIERS)}, or 'ladder' for all of --ladder-tiers (default 50)",
    )
    parser.add_argument("--ladder-tiers", default=",".join(TIERS), help="tiers run by --tier ladder, in order")
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
    parser.add_argument("--device", choices=DEVICES, help="embedding/training device (embed.device)")
    parser.add_argument("--ray-address", help="join this Ray cluster ('auto' inside a job); default: start locally")
    parser.add_argument("--feature-version", help="train and evaluate on this stored version (skips extraction)")
    parser.add_argument("--input", help="your own folder of PDFs (local or s3://...); labels = sub-folder names")
    parser.add_argument("--labels", help="with --input: a CSV of path,label rows instead of sub-folder names")
    parser.add_argument("--mlflow-uri", help="MLflow tracking server (http://...); default: sqlite in the workspace")
    parser.add_argument("--summary", type=Path, help="also write the run summary as JSON to this path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tiers = args.ladder_tiers.split(",") if args.tier == "ladder" else [args.tier]
    try:
        configs = {tier: load_config(tier, args.config, args.overrides) for tier in tiers}
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for config in configs.values():  # the flags are settings of their own: applied as values, not re-parsed
        config.embed.device = args.device or config.embed.device
        config.mlflow.tracking_uri = args.mlflow_uri or config.mlflow.tracking_uri
    if args.labels and not args.input:
        print("error: --labels needs --input DIR", file=sys.stderr)
        return 2
    if args.tier == "ladder" and (args.input or args.feature_version):
        print(
            "error: --tier ladder runs the generated tiers; it takes neither --input nor --feature-version",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from training.tracking import check_reachable

    try:  # before the first stage, not after the pipeline ran
        for config in configs.values():
            check_reachable(config.mlflow.uri(Path(args.workspace).resolve()))
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from evaluation.report import format_summary, write_summary
    from ingestion.sources import InputError
    from processing.embed import ModelNotFoundError
    from processing.engine import EmbeddingLost
    from processing.features import UnknownVersionError, WorkspaceDamagedError, WorkspaceLockedError

    problem = _workspace_problem(Path(args.workspace))
    if not problem and args.feature_version and not (Path(args.workspace) / "features.duckdb").exists():
        problem = f"holds no feature store, so no {args.feature_version}; run without --feature-version first"
    if problem:
        print(f"error: --workspace {args.workspace}: {problem}", file=sys.stderr)
        return 2

    summaries = []
    for tier, config in configs.items():
        try:
            summary = run_pipeline(
                config, tier, args.workspace, args.ray_address, args.feature_version, args.input, args.labels
            )
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (
            WorkspaceLockedError,
            WorkspaceDamagedError,
            ModelNotFoundError,
            UnknownVersionError,
            EmbeddingLost,
        ) as exc:
            print(f"error: {exc}", file=sys.stderr)  # one line each
            return 1
        except KeyboardInterrupt:
            print(
                f"interrupted: every batch extracted and embedded so far is saved in {args.workspace}; "
                "run the same command again to resume",
                file=sys.stderr,
            )
            return 130
        print(format_summary(summary) + "\n")
        summaries.append(summary)
        export_run_metrics(summary, config, Path(args.workspace).resolve())
    if args.summary:
        write_summary(summaries[0] if len(summaries) == 1 else {"ladder": summaries}, args.summary)
        print(f"summary written to {args.summary}")
    if args.tier == "ladder":
        from evaluation.compare import compare, format_table

        config = configs[tiers[-1]]
        uri = config.mlflow.uri(Path(args.workspace).resolve())
        out = Path(args.workspace) / "reports" / "compare"
        print(format_table(compare(uri, config.mlflow.experiment, out)))
        print(f"\nreport: {out / 'compare.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
