"""Feature store at scale: commit a version and load it into numpy, for 1k, 15k and 75k documents.

    python scripts/bench_features.py --sizes 1000,15000,75000

The vectors are SYNTHETIC (random unit vectors, 384 wide): this measures DuckDB storage, commit and
load, not the model. Each size uses a fresh database in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ingestion.extract import Extraction, FileRecord
from processing.features import FeatureStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,15000,75000")
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'docs':>7} {'insert s':>9} {'commit s':>9} {'load s':>7} {'db MiB':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        folder = Path(tempfile.mkdtemp(prefix="bench-features-"))
        hashes = [f"{i:064x}" for i in range(n)]
        labels = {f"/d/{i}.pdf": (f"class{i % 12}", "heldout" if i < 500 else "train") for i in range(n)}
        with FeatureStore(folder / "features.duckdb") as store:
            start = time.perf_counter()
            store.begin_run("r", "bench", {})
            for lo in range(0, n, 5000):
                records = [
                    FileRecord(f"/d/{i}.pdf", hashes[i], 5000, Extraction("ok", f"text {i} " * 150, 2))
                    for i in range(lo, min(n, lo + 5000))
                ]
                store.record_files("r", "ex", records, labels)
            store.register_embedder("emb", "synthetic", {}, args.dim)
            for lo in range(0, n, 5000):
                vectors = rng.normal(size=(min(n, lo + 5000) - lo, args.dim)).astype(np.float32)
                unit = vectors / np.linalg.norm(vectors, axis=1)[:, None]
                store.add_embeddings(hashes[lo : lo + 5000], unit, "emb", "ex")
            insert_s = time.perf_counter() - start
            members = store.members("r")
            start = time.perf_counter()
            version, _ = store.commit_version(members, "bench", "ex", "emb", {})
            commit_s = time.perf_counter() - start
            start = time.perf_counter()
            features = store.load_features(version)
            load_s = time.perf_counter() - start
            assert features.x_train.shape == (n - 500, args.dim)
        size = (folder / "features.duckdb").stat().st_size / 2**20
        print(f"{n:>7} {insert_s:>9.1f} {commit_s:>9.2f} {load_s:>7.2f} {size:>7.0f}")


if __name__ == "__main__":
    main()
