"""The deploy files cannot run here (no Docker engine, no Kubernetes); check what can be checked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_rayjob_manifest_is_consistent_with_the_project():
    job = yaml.safe_load((ROOT / "deploy" / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert "processing.run --tier 75k --ray-address auto" in spec["entrypoint"]
    ray_pin = next(
        d
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("ray")
    )
    assert spec["rayClusterSpec"]["rayVersion"].startswith(re.search(r">=(\d+\.\d+)", ray_pin).group(1))
    groups = {g["groupName"]: g for g in spec["rayClusterSpec"]["workerGroupSpecs"]}
    gpu = groups["gpu-embed"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "1"
    assert spec["rayClusterSpec"]["authOptions"]["mode"] == "token"


def test_dockerfile_installs_cpu_torch_first_and_copies_every_package():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert text.index("torch==") < text.index("pip install --no-cache-dir -e .")
    for package in ("ingestion", "processing", "training", "evaluation", "configs"):
        assert f"COPY --chown=ray:users {package} {package}" in text
    # Every node extracts, so every node reads scans: the OCR packages the setup script installs.
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    ocr = re.search(r"apt_packages\+=\((tesseract[^)]*)\)", setup).group(1)
    assert f"apt-get install -y -q --no-install-recommends {ocr}" in text
    base = re.search(r"ARG BASE=rayproject/ray:(\S+)-py", text).group(1)
    assert base == yaml.safe_load((ROOT / "deploy" / "rayjob.yaml").read_text())["spec"]["rayClusterSpec"]["rayVersion"]


def test_cycle_cronjob_submits_a_cycle_and_never_overlaps():
    job = yaml.safe_load((ROOT / "deploy" / "cronjob-cycle.yaml").read_text())
    assert (job["kind"], job["spec"]["concurrencyPolicy"]) == ("CronJob", "Forbid")
    command = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "python -m processing.submit" in command and "--cycle" in command


def test_submit_builds_a_cycle_job():
    import argparse

    from processing.submit import build_command

    args = argparse.Namespace(
        cycle="s3://b/inbox", labels="s3://b/l.csv", tier="50", workspace="/ws", corpus_root=None,
        mlflow_uri="http://mlflow:5000", summary=None, submission_id=None, pip=False, address="http://h:8265",
    )  # fmt: skip
    command = build_command(args, [], {})
    entry = command[command.index("--") + 1 :]
    assert entry[:5] == ["python", "-m", "processing.cycle", "--input", "s3://b/inbox"]
    assert "--labels" in entry and entry[entry.index("--ray-address") + 1] == "auto"


def test_grafana_dashboard_reads_only_series_the_code_exports():
    import json

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "docscale.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in re.findall(r"docscale_\w+", exprs)}
    code = " ".join(p.read_text() for p in (ROOT / "processing").glob("*.py"))
    code += " ".join(p.read_text() for p in (ROOT / "evaluation").glob("*.py"))  # drift test names
    for name in used:
        short = name.removeprefix("docscale_")
        test = short.removeprefix("drift_").removesuffix("_p_value")  # drift_<test.name>[_p_value]
        assert f'"{name}"' in code or f'"{short}"' in code or f'TestResult("{test}"' in code, name
