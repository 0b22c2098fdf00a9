"""Load test of the HTTP service on loopback: throughput, latency percentiles, errors and memory.

    python scripts/bench_serve.py --workspace workspace                    # needs a champion (trains tier 50 if none)
    python scripts/bench_serve.py --requests 2000 --concurrency 1,4,16 --out out/bench_serve.json

After a warm-up (`--warmup` requests at each level, so thread pools and allocator arenas exist before
memory is first read), each level sends `--requests` single-PDF uploads (application/pdf) of the
generated held-out PDFs from `--concurrency` client threads, one keep-alive connection each. A last
level mixes in `--hostile-share` of the odd, broken and hostile PDFs of ../shared/corpora while a thread
polls /healthz: every valid request must still get its 200, and /healthz must keep answering.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"


def rss_mb(proc: psutil.Process) -> tuple[float, float]:
    """(server process, its extraction workers) resident memory in MiB."""
    children = proc.children(recursive=True)
    return proc.memory_info().rss / 2**20, sum(c.memory_info().rss for c in children) / 2**20


def send(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, float]:
    start = time.perf_counter()
    conn.request("POST", "/v1/classify", body=body, headers={"content-type": "application/pdf"})
    response = conn.getresponse()
    response.read()
    return response.status, time.perf_counter() - start


def level(port: int, docs: list[tuple[bytes, bool]], requests: int, concurrency: int) -> dict:
    """`requests` uploads from `concurrency` threads; docs are (bytes, is_valid)."""
    results: list[tuple[int, float, bool]] = []
    lock, counter = threading.Lock(), iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        local = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            data, valid = docs[i % len(docs)]
            try:
                status, seconds = send(conn, data)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                status, seconds = 0, float("nan")
            local.append((status, seconds, valid))
        conn.close()
        with lock:
            results.extend(local)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies = np.array([s for _, s, _ in results if s == s])
    valid = [(status, ok) for status, _, ok in results if ok]
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "requests_per_s": round(len(results) / wall, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 1),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 1),
        "valid_errors": sum(status != 200 for status, _ in valid),
        "hostile": sum(not ok for _, _, ok in results),
        "hostile_status": dict(sorted(_count(str(status) for status, _, ok in results if not ok).items())),
    }


def _count(items) -> dict[str, int]:  # noqa: ANN001
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def poll_health(port: int, stop: threading.Event, seen: dict) -> None:
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        start = time.perf_counter()
        try:
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        seen["checks"] += 1
        seen["failed"] += not ok
        seen["max_ms"] = max(seen["max_ms"], (time.perf_counter() - start) * 1000)
        conn.close()
        stop.wait(0.5)


def ensure_champion(workspace: Path) -> None:
    if (workspace / "mlflow.db").exists():
        return
    print(f"no registry in {workspace}: training tier 50 (logreg) first", flush=True)
    subprocess.run(
        [sys.executable, "-m", "processing.run", "--tier", "50", "--workspace", str(workspace)]
        + ["--set", "train.classifiers=logreg", "--set", "engine.executor=local"],
        check=True,
        cwd=ROOT,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / "workspace")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--hostile-share", type=float, default=0.05)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--warmup", type=int, default=200, help="requests per level before RSS is first read")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    workspace = args.workspace.resolve()
    ensure_champion(workspace)
    valid = [(p.read_bytes(), True) for p in sorted(workspace.glob("corpus/*/heldout/*.pdf"))]
    hostile = [(p.read_bytes(), False) for p in sorted(SHARED.glob("*/*.pdf")) if p.stat().st_size < 60 * 2**20]
    server = subprocess.Popen(
        [sys.executable, "-m", "processing.serve", "--workspace", str(workspace), "--port", str(args.port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        proc = psutil.Process(server.pid)
        levels = [int(c) for c in args.concurrency.split(",")]
        for concurrency in levels:  # warm-up: thread pools, allocator arenas and padded shapes settle
            level(args.port, valid, args.warmup, concurrency)
        rss_start = rss_mb(proc)
        rows = []
        for concurrency in levels:
            rows.append({**level(args.port, valid, args.requests, concurrency), "mix": "valid"})
            print(json.dumps(rows[-1]), flush=True)
        rss_valid = rss_mb(proc)
        rng = random.Random(0)
        n_hostile = int(len(valid) * args.hostile_share / (1 - args.hostile_share))
        mixed = valid + rng.sample(hostile, min(n_hostile, len(hostile)))
        rng.shuffle(mixed)
        stop, health = threading.Event(), {"checks": 0, "failed": 0, "max_ms": 0.0}
        poller = threading.Thread(target=poll_health, args=(args.port, stop, health))
        poller.start()
        concurrency = max(levels)
        rows.append({**level(args.port, mixed, args.requests, concurrency), "mix": f"{args.hostile_share:.0%} hostile"})
        stop.set()
        poller.join()
        print(json.dumps(rows[-1]), flush=True)
        rss_end = rss_mb(proc)
        result = {
            "rows": rows,
            "healthz_during_hostile": health,
            "rss_mb": {"start": rss_start, "after_valid": rss_valid, "end": rss_end},
            "rss_growth_valid": round(rss_valid[0] / rss_start[0] - 1, 4),
            "workers_replaced": _metric(args.port, "docscale_serve_workers_replaced"),
            "cpus": os.cpu_count(),
        }
    finally:
        server.terminate()
        server.wait(30)
    print("\n| mix | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | valid errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mix']} | {r['concurrency']} | {r['requests']} | {r['requests_per_s']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['p99_ms']} | {r['valid_errors']} |"
        )
    (start_main, start_workers), (end_main, end_workers) = result["rss_mb"]["start"], result["rss_mb"]["after_valid"]
    print(
        f"\nserver RSS {start_main:.0f} -> {end_main:.0f} MiB after the valid levels "
        f"({result['rss_growth_valid']:+.1%}); extraction workers {start_workers:.0f} -> {end_workers:.0f} MiB; "
        f"healthz during the hostile level: {health['checks']} checks, {health['failed']} failed, "
        f"slowest {health['max_ms']:.0f} ms; workers replaced {result['workers_replaced']}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


def _metric(port: int, name: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
