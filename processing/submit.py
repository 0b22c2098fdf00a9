"""Submit the pipeline to a Ray cluster with `ray job submit`; logs stream back, the exit status is the job's.

    python -m processing.submit --address http://HEAD:8265 --tier 15k --workspace /data/ws \\
        --corpus-root s3://bucket/corpus --mlflow-uri http://mlflow:5000
    python -m processing.submit --address http://127.0.0.1:8265 --tier 50 -- --set train.classifiers=logreg
    python -m processing.submit --address http://HEAD:8265 --cycle s3://bucket/inbox/2026-11-28 \
        --labels s3://bucket/labels/2026-11-28.csv --workspace /data/ws --mlflow-uri http://mlflow:5000

What travels: this project as the job's working directory (without .venv, workspace, caches, .git);
the cluster's Python environment must already have docscale's dependencies (the Docker image in deploy/
does), or pass --pip to have Ray install them per job. The job's driver runs on the head node: the
DuckDB workspace lives there (--workspace, a path on the head node). Workers read inputs and the
generated corpus from shared storage (--corpus-root, --input s3://...), never from the driver's disk.

Token authentication (Ray >= 2.52): with RAY_AUTH_MODE=token, `ray job submit` sends the token from
RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (see `ray get-auth-token`); this command passes
your environment through unchanged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
EXCLUDES = [".venv", "workspace", ".git", "**/__pycache__", ".pytest_cache", ".ruff_cache", "*.duckdb*", "mlruns"]
# Forwarded to the job when set here, so workers reach the same object store (e.g. a local S3).
FORWARDED_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "HF_HUB_OFFLINE",
    "DOCSCALE_PROGRESS_SECONDS",
)


def build_command(args: argparse.Namespace, run_args: list[str], environ: dict[str, str]) -> list[str]:
    runtime_env: dict = {
        "working_dir": str(PROJECT),
        "excludes": EXCLUDES,
        "env_vars": {k: environ[k] for k in FORWARDED_ENV if k in environ},
    }
    if args.pip:
        import tomllib

        deps = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
        runtime_env["pip"] = [d for d in deps if not d.startswith("ray")]
    if args.cycle:  # one turn of the loop (processing.cycle) on the batch at this URI
        entry = ["python", "-m", "processing.cycle", "--input", args.cycle]
        entry += ["--labels", args.labels] if args.labels else []
    else:
        entry = ["python", "-m", "processing.run", "--tier", args.tier]
    entry += ["--ray-address", "auto", "--workspace", args.workspace]
    if args.corpus_root:
        entry += ["--set", f"corpus.root={args.corpus_root}"]
    if args.mlflow_uri:
        entry += ["--mlflow-uri", args.mlflow_uri]
    if args.summary:
        entry += ["--summary", args.summary]
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    submit = [ray, "job", "submit", "--address", args.address, "--runtime-env-json", json.dumps(runtime_env)]
    if args.submission_id:
        submit += ["--submission-id", args.submission_id]
    return [*submit, "--", *entry, *run_args]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    run_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m processing.submit", description=__doc__.split("\n")[0])
    parser.add_argument("--address", required=True, help="the head's dashboard, e.g. http://127.0.0.1:8265")
    parser.add_argument("--tier", default="50")
    parser.add_argument("--cycle", metavar="INPUT", help="run one cycle of the loop on this batch instead of a tier")
    parser.add_argument("--labels", help="with --cycle: a labels CSV every node can read")
    parser.add_argument("--workspace", default="/tmp/docscale-workspace", help="a path on the head node")
    parser.add_argument("--corpus-root", help="shared storage for generated PDFs, e.g. s3://bucket/corpus")
    parser.add_argument("--mlflow-uri", help="tracking server every node can reach, e.g. http://mlflow:5000")
    parser.add_argument("--summary", help="summary JSON path on the head node")
    parser.add_argument("--submission-id", help="a job id of your choosing (to find its logs later)")
    parser.add_argument("--pip", action="store_true", help="let Ray install the dependencies for this job")
    args = parser.parse_args(argv)
    import os

    command = build_command(args, run_args, dict(os.environ))
    print("+ " + " ".join(command[:3]) + " ... -- " + " ".join(command[command.index("--") + 1 :]), flush=True)
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
