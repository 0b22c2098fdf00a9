"""One turn of the MLOps loop per arriving batch of PDFs.

    python -m processing.cycle --input batches/2026-11-27                      # score, monitor, decide
    python -m processing.cycle --input batches/2026-11-28 --labels labels.csv  # labels for some files, any batch
    python -m processing.cycle --input batches/x --retrain                     # retrain on demand
    python -m processing.cycle --watch batches/ --interval 300                 # every new sub-folder, forever

Each cycle: extraction and embedding of the batch on the engine (cached, with the champion's own
extractor and embedder settings), a predictions file with one row per file, drift monitoring against the
champion's training data, the retraining decision, and when a trigger fires a challenger trained on the
champion's data plus the new labels, which takes the champion alias only if it wins (training.gate).
The decision is recorded in DuckDB (decisions), in MLflow and in Prometheus' textfile/Pushgateway.
A first cycle with no champion trains one on the (labelled) batch. A batch already decided is not scored,
decided or promoted again: the recorded decision is printed.

From cron: `0 * * * * cd /srv/docscale && .venv/bin/python -m processing.cycle --input /data/inbox/$(date
+\\%F) --summary /var/log/docscale/cycle.json`; on a Ray cluster, `python -m processing.submit --address
http://HEAD:8265 --cycle s3://bucket/inbox/...`, which deploy/cronjob-cycle.yaml runs as a Kubernetes
CronJob (README, The loop).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from processing.config import ConfigError, load_config
from processing.out_of_space import out_of_space_error, out_of_space_message
from processing.prediction_rows import labels_line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.cycle", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="the batch: a folder of PDFs (local or s3://...)")
    source.add_argument("--watch", help="a folder whose new sub-folders (batches) are cycled as they appear")
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between looks with --watch")
    parser.add_argument("--labels", help="CSV of path,label rows for files of this batch or of earlier ones")
    parser.add_argument("--allow-new-classes", action="store_true", help="accept labels the champion never saw")
    parser.add_argument("--retrain", action="store_true", help="retrain now, whatever the triggers say")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--config", type=Path, help="YAML file of overrides")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ray-address", help="join this Ray cluster ('auto' inside a job); default: engine.executor")
    parser.add_argument("--mlflow-uri", help="MLflow tracking server (http://...); default: sqlite in the workspace")
    parser.add_argument("--summary", type=Path, help="write the cycle as JSON here")
    return parser.parse_args(argv)


class _Stop:
    """SIGTERM or Ctrl-C while watching: finish the batch in hand, then stop."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        self.requested = True
        print("[docscale] stopping after the batch in hand (signal again to stop now)", file=sys.stderr, flush=True)


def one_cycle(args: argparse.Namespace, input_dir: str, labels: str | None) -> int:
    from ingestion.sources import InputError
    from processing.features import UnknownVersionError, WorkspaceDamagedError, WorkspaceLockedError
    from processing.loop import run_cycle

    try:
        config = load_config("50", args.config, args.overrides)
        if args.mlflow_uri:
            config.mlflow.tracking_uri = args.mlflow_uri
        result = run_cycle(
            config, input_dir, args.workspace, labels, args.retrain, args.allow_new_classes, args.ray_address
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (InputError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (WorkspaceLockedError, WorkspaceDamagedError, UnknownVersionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"interrupted: the batch's extractions and embeddings so far are saved in {args.workspace}; nothing "
            "was decided; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if (full := out_of_space_error(exc)) is None:
            raise
        print(f"error: {out_of_space_message(full, args.workspace)}", file=sys.stderr)
        return 1
    data = asdict(result)
    drift = result.drift
    note = " (already decided: recorded result)" if result.already_decided else ""
    print(
        f"cycle {result.batch_id}{note}: {result.decision} - {result.reason}\n"
        + _drift_line(drift)
        + f"\n  champion {result.champion_version_before} -> {result.champion_version_after}"
        + f"   predictions: {result.predictions}"
        + (f"\n{labels_line(result.labels, result.uncertain)}" if result.labels else "")
    )
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.summary.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str))
        tmp.replace(args.summary)
    return 0


def _drift_line(drift: dict) -> str:
    """Whether the batch drifted, with each embedding test; or why that was not judged."""
    if not drift:
        return "  drift: not judged (no champion before this batch)"
    if drift.get("status", "judged") != "judged":
        return f"  drift: not judged ({drift['status']})"
    tests = "  ".join(f"{k} {v['score']:.3f} (p {v['p_value']:.2g})" for k, v in drift.get("tests", {}).items())
    return f"  drift detected: {drift.get('detected')}  {tests}"


def watch(args: argparse.Namespace) -> int:
    """Cycle every sub-folder of --watch not seen yet, in name order (labels for batch X in X.labels.csv
    beside it); look again every interval. A batch decided before is only reported again; one whose cycle
    failed for a passing reason is tried again at the next look."""
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    root = Path(args.watch)
    if not root.is_dir():
        print(f"error: --watch {root}: not a folder", file=sys.stderr)
        return 2
    seen: set[str] = set()
    while not stop.requested:
        for batch in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if stop.requested:
                break
            if str(batch) in seen:
                continue
            labels = batch.with_name(batch.name + ".labels.csv")  # beside the folder, not a file of the batch
            code = one_cycle(args, str(batch), str(labels) if labels.exists() else None)
            if code == 130:
                return code
            if code == 1:  # a passing cause (a full disk, a run holding the workspace): at the next look, this
                # batch again before any later one, since each cycle starts from the champion the last one left
                print(f"[docscale] {batch.name}: tried again in {args.interval:g} s", file=sys.stderr, flush=True)
                break
            seen.add(str(batch))  # decided, or a mistake of its own (exit 2) that waits for a restart
        if not stop.requested:
            deadline = time.monotonic() + args.interval
            while time.monotonic() < deadline and not stop.requested:
                time.sleep(min(1.0, args.interval))
    print("[docscale] watch stopped between batches", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.watch:
        return watch(args)
    return one_cycle(args, args.input, args.labels)


if __name__ == "__main__":
    sys.exit(main())
