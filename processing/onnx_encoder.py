"""The fast CPU path: the sentence-transformers model exported to ONNX once, weights quantized to int8
(dynamic quantization), run with onnxruntime. Ray-free, like processing/embed.py.

Why not sentence-transformers' own `backend="onnx"`: it needs optimum-onnx, which (at the time of
writing) pins transformers < 5 while sentence-transformers 6 needs transformers >= 5. Exporting with
torch.onnx and quantizing with onnxruntime needs neither. The model is MiniLM's recipe: transformer,
mean pooling over the attention mask, L2 normalisation.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np


def export_int8(model_path: str, out_dir: Path) -> Path:
    """Export the transformer to ONNX and quantize it; cached: a second call returns the file at once.

    The intermediate graphs are written to a folder of this process' own and only the finished int8
    file is renamed into place, so processes exporting at once (a Ray actor, a serving worker) never
    read each other's half-written files."""
    out_dir = Path(out_dir)
    quantized = out_dir / f"model-int8-{GRAPH_VERSION}.onnx"
    if quantized.exists():
        return quantized
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(model_path, out_dir / f"export-{os.getpid()}", quantized)
    return quantized


def _export(model_path: str, work: Path, quantized: Path) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    work.mkdir(parents=True, exist_ok=True)
    # The exporter's tracer warnings and the quantizer's advice (on the root logger) are about their own
    # internals, not the user's documents: a run's log should not fill with them the first time it embeds.
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)
    try:
        # Eager attention exports the pattern ONNX Runtime fuses into one Attention op (SDPA exports do not).
        model = AutoModel.from_pretrained(model_path, attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        sample = tokenizer(["an example sentence", "another"], return_tensors="pt", padding=True)
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
        fp32 = work / "model-fp32.onnx"

        class ByName(torch.nn.Module):  # forward()'s positional order differs across transformers versions
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, tensors, strict=True))).last_hidden_state

        with torch.no_grad():
            torch.onnx.export(
                ByName(),
                tuple(sample[n] for n in names),
                str(fp32),
                input_names=names,
                output_names=["hidden"],
                dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names}, "hidden": {0: "batch", 1: "seq"}},
                opset_version=17,
                dynamo=False,
            )
        # First ONNX Runtime's transformer optimizer: attention, LayerNorm and GELU become fused kernels, so
        # the int8 MatMuls are not surrounded by dozens of small fp32 ops (quantising the plain graph
        # measured 0.97x fp32 here). Then per-channel weights, MatMuls only: per-tensor quantization of
        # every op cost 8% cosine similarity to the fp32 vectors on our documents.
        optimized = work / "model-fp32-optimized.onnx"
        _optimize(fp32, optimized, model.config)
        tmp = work / quantized.name
        quantize_dynamic(
            str(optimized),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=_kept_in_fp32(onnx.load(str(optimized)).graph),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops leave some types uninferred
        )
        tmp.replace(quantized)  # atomic: a concurrent reader never sees half a model
    finally:
        root.setLevel(level)
        shutil.rmtree(work, ignore_errors=True)


GRAPH_VERSION = "opt3"  # in the file name: a new recipe never reuses an old export


def _kept_in_fp32(graph: object) -> list[str]:
    """The first layer's feed-forward output MatMul (the one after GELU): quantised, it alone cost half of
    int8's loss (mean cosine to fp32 0.9915 -> 0.9932, held-out macro-F1 0.850 -> 0.856 vs fp32's 0.863
    in scripts/bench_embed.py's setting), at no measurable speed; keeping more layers bought nothing
    beyond the noise of 500 held-out documents (README, Embedding)."""
    return [n.name for n in graph.node if n.op_type == "MatMul" and "layer.0/output/dense" in n.name]


def _optimize(source: Path, target: Path, config: object) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(str(target))


class OnnxEncoder:
    """The int8 graph behind `Embedder.encode_windows`: the same token-id windows in (tokenised by the
    Embedder, so both backends read exactly the same ids), the same mean-pooled, normalised vectors out.

    One window per forward pass, never a padded batch. Dynamic quantization scales each activation tensor
    by its own range: in a batch, a document's vector would depend on the documents beside it (12 of 500
    held-out predictions changed between a run and serving the same files). Alone, every window gets the
    same vector wherever it is embedded, and it is faster on CPU: no padding, and `threads` windows run at
    once on one-thread sessions (1.24x the padded batches on 2 cores; README, Embedding)."""

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallel across windows instead (see above)
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.threads = threads or os.cpu_count() or 1

    def encode_windows(self, flat_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        windows = [flat_ids[s : s + n].astype(np.int64)[None, :] for s, n in zip(starts, lengths, strict=True)]
        with ThreadPoolExecutor(self.threads) as pool:  # onnxruntime releases the GIL while it computes
            return np.stack(list(pool.map(self._one, windows)))

    def _one(self, ids: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0][0]
        pooled = hidden.mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
