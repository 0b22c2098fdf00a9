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
    base = re.search(r"ARG BASE=rayproject/ray:(\S+)-py", text).group(1)
    assert base == yaml.safe_load((ROOT / "deploy" / "rayjob.yaml").read_text())["spec"]["rayClusterSpec"]["rayVersion"]
