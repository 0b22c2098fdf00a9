"""Corpus generation benchmark: render a tier's missing PDFs on Ray and report throughput and size.

    python scripts/bench_corpus.py --tier 75k --workspace workspace     # generates what is missing
    python scripts/bench_corpus.py --tier 75k --workspace workspace     # again: costs about nothing

Prints PDFs/s, PDFs/s per core, wall time, the tier's disk size and page count estimate, and the
driver's peak RSS (memory must stay flat as the tier grows).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from functools import partial
from pathlib import Path

from ingestion.corpus import corpus_dir, manifest, missing_entries, write_entries
from processing import engine
from processing.config import load_config


def _write(root: str, seed: int, entries: list) -> list[int]:
    return [write_entries(root, seed, entries)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tier", default="1k")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    args = parser.parse_args()
    c = load_config(args.tier).corpus
    cores = os.cpu_count() or 1
    engine.start_ray(None, cores)
    start = time.perf_counter()
    entries = manifest(c.seed, c.train_size, c.heldout_size, c.bad_file_rate, c.label_noise)
    root = corpus_dir(args.workspace, c.seed, c.root)
    missing = missing_entries(root, entries)
    plan_s = time.perf_counter() - start
    written = sum(
        n
        for batch in engine.map_batches(partial(_write, root, c.seed), missing, 64, desc="generate", total=len(missing))
        for n in batch
    )
    seconds = time.perf_counter() - start
    wanted = {e.relpath for e in entries}
    size = sum(p.stat().st_size for p in Path(root).rglob("*.pdf") if p.relative_to(root).as_posix() in wanted)
    print(
        f"tier {args.tier}: {len(entries)} files ({c.train_size} train + {c.heldout_size} held-out), "
        f"{written} written now, manifest+listing {plan_s:.1f}s, total {seconds:.1f}s"
    )
    if written:
        print(
            f"throughput: {written / seconds:.0f} PDFs/s, {written / seconds / cores:.0f} PDFs/s/core on {cores} cores"
        )
    print(f"disk: {size / 2**20:.0f} MiB ({size / len(entries) / 1024:.1f} KiB per PDF)")
    print(f"driver peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
