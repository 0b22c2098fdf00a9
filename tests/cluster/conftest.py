"""A real two-node Ray cluster on 127.0.0.1 (head + worker, token auth on), a real S3-compatible server
(moto) and a real MLflow tracking server, all on loopback, all torn down even when a test fails.

Every process we start is found again by a marker in its command line (the per-node temp dir, or the
server's port), so teardown never touches another Ray on the machine (the session's own, for one).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, free_ports, kill_matching, wait_http  # noqa: F401 - re-exported to the tests

BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    address: str  # the dashboard / job API
    env: dict[str, str]
    worker_marker: str  # kills the worker node when passed to kill_matching
    temp_root: Path


def _start_node(args: list[str], env: dict[str, str]) -> None:
    # Every port a node binds is chosen here: two nodes on one machine must not collide, nor with a
    # leftover agent of an earlier run (Ray's defaults are fixed port numbers).
    ports = [
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
        "--node-manager-port",
        "--object-manager-port",
    ]
    args = [*args, *(x for flag, port in zip(ports, free_ports(len(ports)), strict=True) for x in (flag, str(port)))]
    result = subprocess.run([str(BIN / "ray"), "start", *args], env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"ray start failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")


def _wait_for_job_agent(address: str, env: dict[str, str], seconds: float = 120) -> None:
    """The job API answers before the head's job agent is up; a trivial job tells when it is."""
    deadline = time.monotonic() + seconds
    while True:
        probe = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", address, "--", "python", "-c", "print('ready')"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the job agent never came up: {probe.stdout[-1000:]} {probe.stderr[-1000:]}")
        time.sleep(2)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "port": str(port),
        }
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", seconds=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def cluster(s3_server) -> Iterator[Cluster]:
    # Short roots: Ray's Unix socket paths must stay under ~107 characters.
    head_root = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    worker_root = Path(tempfile.mkdtemp(prefix="rw", dir="/tmp"))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        **{k: v for k, v in s3_server.items() if k != "port"},
    }
    env.pop("RAY_ADDRESS", None)
    gcs, dashboard = free_port(), free_port()
    try:
        _start_node(
            [
                "--head",
                "--node-ip-address",
                "127.0.0.1",
                "--port",
                str(gcs),
                "--dashboard-host",
                "127.0.0.1",
                "--dashboard-port",
                str(dashboard),
                "--num-cpus",
                "1",
                "--resources",
                '{"head_node": 1}',
                "--temp-dir",
                str(head_root),
                "--disable-usage-stats",
            ],
            env,
        )
        _start_node(
            [
                "--address",
                f"127.0.0.1:{gcs}",
                "--node-ip-address",
                "127.0.0.1",
                "--num-cpus",
                "1",
                "--resources",
                '{"worker_node": 1}',
                "--temp-dir",
                str(worker_root),
            ],
            env,
        )
        wait_http(f"http://127.0.0.1:{dashboard}/api/version")
        _wait_for_job_agent(f"http://127.0.0.1:{dashboard}", env)
        yield Cluster(f"http://127.0.0.1:{dashboard}", env, str(worker_root), head_root)
    finally:
        kill_matching(str(worker_root))
        kill_matching(str(head_root))
        shutil.rmtree(head_root, ignore_errors=True)
        shutil.rmtree(worker_root, ignore_errors=True)
