"""Extraction benchmark: one process vs multiprocessing.Pool vs the Ray stage, per backend, same files.

    python scripts/bench_extract.py --dir ../shared/corpora/pdfjs
    python scripts/bench_extract.py --dir workspace/corpus/seed-1234/train --limit 1000 --backends pypdfium2
    python scripts/bench_extract.py --dir workspace/corpus/seed-1234/train --limit 15000 --modes ray

Each mode runs --repeats times, interleaved (single, pool, ray, single, ...), and the table shows medians:
one run of the 1k tier lasts about a second, and single runs vary by +-5%. Pool and Ray get the same
task sizes as the pipeline (extract.files_per_task shrinking to extract.min_files_per_task).

Prints files/s, pages/s and parallel efficiency (Ray throughput / (cores x single-process throughput)),
outcome counts per backend and with fallback, how much the backends' texts agree, and the peak RSS of
the driver and of the Ray workers during the Ray stage.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil

from ingestion.extract import ExtractConfig, extract_files, lost_record
from processing import engine
from processing.scheduling import plan_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True, help="folder of PDFs (searched recursively)")
    parser.add_argument("--limit", type=int, default=0, help="first N files only (sorted by path)")
    parser.add_argument(
        "--backends",
        default="pypdf,pypdfium2",
        help="comma-separated; a+b = backend a with fallback b, e.g. pypdfium2+pypdf",
    )
    parser.add_argument("--modes", default="single,pool,ray")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--fallback-on-empty", action="store_true", help="extract.fallback_on_empty")
    parser.add_argument("--files-per-task", type=int, default=ExtractConfig.files_per_task, help="largest task")
    parser.add_argument("--min-files-per-task", type=int, default=ExtractConfig.min_files_per_task)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    files = sorted(str(p) for p in Path(args.dir).rglob("*") if p.is_file())
    files = files[: args.limit] if args.limit else files
    cores = os.cpu_count() or 1
    modes = args.modes.split(",")
    print(f"{len(files)} files from {args.dir}, {cores} cores, timeout {args.timeout:g}s\n")
    if "ray" in modes:
        engine.start_ray(None, cores)

    texts: dict[str, dict[str, str]] = {}
    rows = []
    # The tasks the Ray stage makes of these files, for the Pool to get the same.
    chunks = list(plan_batches(files, args.files_per_task, args.min_files_per_task, len(files), cores))
    sizes = [len(chunk) for chunk in chunks]
    print(f"{len(chunks)} tasks per run, {max(sizes)} files in the largest, {min(sizes)} in the smallest\n")

    def ray_stage(run: Callable[[list[str]], list], files: list[str], desc: str, keep: bool = True) -> list:
        batches = engine.map_batches(
            run,
            files,
            args.files_per_task,
            min_batch_size=args.min_files_per_task,
            desc=desc,
            total=len(files),
            item_timeout_s=args.timeout,
            on_lost=lost_record,
        )
        if not keep:  # stream the results away, as the pipeline does (into DuckDB)
            return [sum(len(batch) for batch in batches)]
        return [r for batch in batches for r in batch]

    for backend in args.backends.split(","):
        first, _, fallback = backend.partition("+")
        config = ExtractConfig(first, fallback, timeout_s=args.timeout, fallback_on_empty=args.fallback_on_empty)
        run = partial(extract_files, config=config)
        timings: dict[str, list[float]] = {mode: [] for mode in modes}
        records: list = []
        pool = multiprocessing.get_context("spawn").Pool(cores) if "pool" in modes else None
        warm = files[: 4 * cores * args.min_files_per_task]  # start-up is not throughput: warm each pool first
        if pool:
            list(pool.imap_unordered(run, [warm[i::cores] for i in range(cores)]))
        if "ray" in modes:
            list(engine.map_batches(run, warm, args.min_files_per_task, desc="warm-up"))
            # Memory first, untimed (the sampler takes CPU), before this process holds the timed runs'
            # records, which would count as the driver's.
            sampler = RssSampler()
            ray_stage(run, files, f"ray {backend} (RSS)", keep=False)
            sampler.stop()
            peaks = sampler.peaks()
            print(
                f"[{backend}] peak RSS in the Ray stage: driver {peaks['driver'] / 2**20:.0f} MiB, largest Ray "
                f"worker {peaks['worker'] / 2**20:.0f} MiB, all Ray workers {peaks['workers'] / 2**20:.0f} MiB"
            )
        for _ in range(args.repeats):
            if "single" in modes:
                start = time.perf_counter()
                records = run(files)
                timings["single"].append(time.perf_counter() - start)
            if pool:
                start = time.perf_counter()
                pooled = [r for chunk in pool.imap_unordered(run, chunks) for r in chunk]
                timings["pool"].append(time.perf_counter() - start)
                records = records or pooled
            if "ray" in modes:
                start = time.perf_counter()
                rayed = ray_stage(run, files, f"ray {backend}")
                timings["ray"].append(time.perf_counter() - start)
                records = records or rayed
        if pool:
            pool.close()
        for mode, runs in timings.items():
            print(f"[{backend}] {mode} seconds: {', '.join(f'{t:.2f}' for t in runs)}")
        seconds = {mode: statistics.median(runs) for mode, runs in timings.items()}
        outcomes = Counter(r.extraction.outcome for r in records)
        pages = sum(r.extraction.pages for r in records if r.extraction.outcome in ("ok", "empty_text"))
        if not fallback:
            texts[backend] = {r.path: r.extraction.text for r in records if r.extraction.outcome == "ok"}
        slowest = sorted((r.extraction.seconds for r in records), reverse=True)
        tail = sum(slowest[: max(1, len(slowest) // 100)]) / max(sum(slowest), 1e-9)
        rows.append((backend, seconds, len(files), pages, outcomes, slowest[0] if slowest else 0.0, tail))

    print(f"\nmedians of {args.repeats} runs")
    print(f"{'backend':<15} {'mode':<7} {'seconds':>8} {'files/s':>8} {'pages/s':>8} {'efficiency':>10}")
    for backend, seconds, n_files, pages, _, _, _ in rows:
        single = seconds.get("single")
        for mode, secs in seconds.items():
            eff = f"{(n_files / secs) / (cores * n_files / single):.2f}" if single and mode != "single" else "-"
            print(f"{backend:<15} {mode:<7} {secs:>8.1f} {n_files / secs:>8.1f} {pages / secs:>8.1f} {eff:>10}")
    print()
    for backend, _, _, pages, outcomes, worst, tail in rows:
        print(
            f"{backend:<15} pages {pages}, worst document {worst:.1f}s, slowest 1% = {tail:.0%} of time, "
            f"outcomes {dict(sorted(outcomes.items()))}"
        )
    if len(texts) == 2:
        (a, ta), (b, tb) = texts.items()
        both = sorted(set(ta) & set(tb))
        agreement = [_jaccard(ta[p], tb[p]) for p in both]
        if agreement:
            print(
                f"\ntext agreement {a} vs {b} on {len(both)} files both read: median word-set Jaccard "
                f"{statistics.median(agreement):.3f}, >=0.9 on {sum(x >= 0.9 for x in agreement) / len(both):.0%}"
            )
        only_a, only_b = set(ta) - set(tb), set(tb) - set(ta)
        print(
            f"ok with {a} only: {len(only_a)}, with {b} only: {len(only_b)}; "
            f"with fallback either way: {len(set(ta) | set(tb))} ok of {len(files)}"
        )


def _jaccard(a: str, b: str) -> float:
    wa, wb = set(a.split()), set(b.split())
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


class RssSampler:
    """Samples the RSS of this process and of its Ray worker processes (names starting 'ray::')."""

    def __init__(self, interval: float = 0.25) -> None:
        self.driver_peak = self.worker_peak = self.workers_total_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.driver_peak = max(self.driver_peak, me.memory_info().rss)
            total = 0
            for proc in psutil.process_iter(["name", "memory_info"]):
                if (proc.info["name"] or "").startswith("ray::") and proc.info["memory_info"]:
                    rss = proc.info["memory_info"].rss
                    self.worker_peak = max(self.worker_peak, rss)
                    total += rss
            self.workers_total_peak = max(self.workers_total_peak, total)
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peaks(self) -> dict[str, int]:
        return {"driver": self.driver_peak, "worker": self.worker_peak, "workers": self.workers_total_peak}


if __name__ == "__main__":
    main()
