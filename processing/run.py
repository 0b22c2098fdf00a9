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
from pathlib import Path

from processing.config import TIERS, ConfigError, load_config
from processing.embed import DEVICES
from processing.out_of_space import out_of_space_error, out_of_space_message
from processing.pipeline import export_run_metrics, run_pipeline


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
    try:
        return _run(args)
    except Exception as exc:
        if (full := out_of_space_error(exc)) is None:
            raise
        print(f"error: {out_of_space_message(full, args.workspace)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
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
    problem = _workspace_problem(Path(args.workspace))
    if not problem and args.feature_version and not (Path(args.workspace) / "features.duckdb").exists():
        problem = f"holds no feature store, so no {args.feature_version}; run without --feature-version first"
    if problem:
        print(f"error: --workspace {args.workspace}: {problem}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from training.tracking import check_reachable

    try:  # before the first stage, not after the pipeline ran (a new SQLite database is created here)
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

    summaries = []
    for tier, config in configs.items():
        try:
            summary = run_pipeline(
                config, tier, args.workspace, args.ray_address, args.feature_version, args.input, args.labels
            )
        except (InputError, ConfigError) as exc:
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
