"""The self-contained document classifier: PDFs in, an outcome, a label and class probabilities out.

It carries everything its inputs were made with at training time — the extractor settings and limits,
the embedder's settings and identity — beside the fitted classifier, so that it predicts the same way
on any machine with the project installed: no workspace, no feature store, no default config. The
registry holds it as an MLflow pyfunc (training.tracking wraps it); the service, batch prediction and
the cycle all call `classify`.

Untrusted bytes are extracted in isolated worker processes (processing.isolation); the embedding model
loads from the installed package or folder named in the settings, never from a hub.
"""

from __future__ import annotations

import base64
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingestion.extract import USABLE, ExtractConfig, Extraction, file_size
from ingestion.sources import read_bytes
from processing.embed import EmbedConfig, Embedder, embedder_id

# What a classifier reads: embedding vectors, extracted text (no embedder), or both side by side.
VIEWS = ("vectors", "text", "both")


@dataclass
class Document:
    """One input: a name (its path or URI, or the upload's file name) and its bytes, or why there are none."""

    name: str
    data: bytes | None = None
    failure: Extraction | None = None


def read_document(path: str, config: ExtractConfig) -> Document:
    """A file's bytes, with the same size guard as extraction: an oversized file is never read."""
    try:
        size = file_size(path)
        if size > config.max_bytes:
            return Document(path, failure=Extraction("too_large", message=f"{size} bytes > extract.max_bytes"))
        return Document(path, read_bytes(path))
    except OSError as exc:
        return Document(path, failure=Extraction("unreadable", message=" ".join(str(exc).split())[:300]))


class _Coalescer:
    """Runs `fn` over lists of texts in one background thread, merging whatever calls queued while the
    previous pass ran into one pass: concurrent requests share forward passes instead of queueing for
    one each (processing.serve)."""

    def __init__(self, fn: Any, max_texts: int = 64) -> None:
        self.fn, self.max_texts = fn, max_texts
        self.queue: queue.Queue[tuple[list[str], Future]] = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="docscale-coalescer").start()

    def __call__(self, texts: list[str]) -> np.ndarray:
        future: Future = Future()
        self.queue.put((texts, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            size = len(batch[0][0])
            while size < self.max_texts:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
                size += len(batch[-1][0])
            try:
                out = self.fn([t for texts, _ in batch for t in texts])
            except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the error
                for _, future in batch:
                    future.set_exception(exc)
                continue
            start = 0
            for texts, future in batch:
                future.set_result(out[start : start + len(texts)])
                start += len(texts)


class DocumentClassifier:
    """A fitted classifier and the extractor and embedder settings its training inputs were made with."""

    def __init__(
        self,
        classifier: Any,
        name: str,
        extract: ExtractConfig,
        embed: EmbedConfig,
        embedder: str,
        feature_version: str,
        view: str = "vectors",
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {view!r}")
        self.classifier, self.name, self.view = classifier, name, view
        self.extract, self.embed = extract, embed
        self.embedder, self.feature_version = embedder, feature_version
        self._runtime: dict[str, Any] = {}  # the embedding model and extraction workers, made on first use

    def __getstate__(self) -> dict[str, Any]:  # the runtime (a model, processes) is never pickled
        return {k: v for k, v in self.__dict__.items() if k != "_runtime"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "view" not in state:  # registered before fused models: a reads_text flag
            state = {**state, "view": "text" if state.pop("reads_text", False) else "vectors"}
        self.__dict__.update(state)
        self._runtime = {}

    @property
    def reads_text(self) -> bool:
        """Extracted text in, no embeddings at all."""
        return self.view == "text"

    @property
    def needs_text(self) -> bool:
        return self.view in ("text", "both")

    def features(self, texts: list[str] | None, vectors: np.ndarray | None) -> Any:
        """The classifier's input from documents' texts and/or embeddings (whichever its view reads)."""
        if self.view == "text":
            return np.asarray(texts, dtype=object)  # not fixed-width: as wide as the longest text
        if self.view == "vectors":
            return vectors
        # training.classifiers.FUSED_INPUT's format (processing does not import training)
        return list(zip(texts or [], np.asarray(vectors, dtype=np.float32), strict=True))

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]

    def settings(self) -> dict[str, Any]:
        return {
            "classifier": self.name,
            "view": self.view,
            "classes": self.classes,
            "embedder": self.embedder,
            "feature_version": self.feature_version,
            "extract": asdict(self.extract),
            "embed": asdict(self.embed),
        }

    def check(self) -> None:
        """Raise RuntimeError when this machine's embedding model is not the one the classifier was trained
        on (another package version, a different folder): its vectors would be silently different."""
        if self.reads_text:
            return
        here = embedder_id(self.embed)
        if here != self.embedder:
            raise RuntimeError(
                f"the installed embedding model gives embedder {here}, but this classifier was trained on "
                f"{self.embedder}: install the model it names ({self.embed.model}) or retrain"
            )

    # -- runtime -----------------------------------------------------------------------------------

    def start(
        self, extract_workers: int | None = None, device: str = "auto", coalesce: bool = False
    ) -> DocumentClassifier:
        """Load the embedding model and start the extraction workers now rather than on the first call;
        `coalesce` merges concurrent callers' texts into shared forward passes (a service's setting)."""
        if "pool" not in self._runtime:
            from processing.isolation import ExtractorPool

            workers = extract_workers or max(2, min(4, os.cpu_count() or 1))
            self._runtime["pool"] = ExtractorPool(self.extract, workers)
            self._runtime["workers"] = workers
        if not self.reads_text and "embedder" not in self._runtime:
            self.check()
            # The device changes speed, not the vectors; the ONNX int8 path is CPU only.
            device = "cpu" if self.embed.backend == "onnx-int8" else device
            cache = Path(os.environ.get("DOCSCALE_CACHE", Path.home() / ".cache" / "docscale"))
            self._runtime["embedder"] = Embedder(self.embed, device=device, cache_dir=cache)
        if coalesce and "coalescer" not in self._runtime and not self.reads_text:
            self._runtime["coalescer"] = _Coalescer(self._runtime["embedder"].encode)
        return self

    def close(self) -> None:
        pool = self._runtime.pop("pool", None)
        if pool is not None:
            pool.close()
        self._runtime.pop("embedder", None)

    @property
    def workers_replaced(self) -> int:
        pool = self._runtime.get("pool")
        return pool.replaced if pool is not None else 0

    # -- prediction --------------------------------------------------------------------------------

    def extract_all(self, documents: list[Document]) -> list[Extraction]:
        """Each document's extraction, in isolated workers, as many at once as there are workers."""
        self.start()
        pool = self._runtime["pool"]

        def one(doc: Document) -> Extraction:
            return doc.failure if doc.data is None else pool.extract(doc.data)

        if len(documents) == 1:
            return [one(documents[0])]
        with ThreadPoolExecutor(self._runtime["workers"]) as threads:
            return list(threads.map(one, documents))

    def classify(self, documents: list[Document]) -> list[dict[str, Any]]:
        """One row per document: name, outcome, message, backend, quality flags; and for usable text the
        label, its probability and one p_<class> per class."""
        extractions = self.extract_all(documents)
        usable = [i for i, e in enumerate(extractions) if e.outcome in USABLE]
        probabilities = self.probabilities([extractions[i].text for i in usable])
        by_index = dict(zip(usable, probabilities, strict=True))
        classes = self.classes
        rows = []
        for i, (doc, extraction) in enumerate(zip(documents, extractions, strict=True)):
            row: dict[str, Any] = {
                "path": doc.name,
                "outcome": extraction.outcome,
                "message": extraction.message,
                "backend": extraction.backend,
                "flags": ",".join(extraction.flags),
                "label": None,
                "probability": None,
            }
            if i in by_index:
                p = by_index[i]
                row |= {"label": classes[int(p.argmax())], "probability": float(p.max())}
                row |= {f"p_{c}": float(v) for c, v in zip(classes, p, strict=True)}
            rows.append(row)
        return rows

    def probabilities(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.classes)))
        if self.reads_text:
            return self.classifier.predict_proba(self.features(texts, None))
        self.start()
        encode = self._runtime.get("coalescer") or self._runtime["embedder"].encode
        return self.classifier.predict_proba(self.features(texts, encode(texts)))

    def classify_paths(self, paths: list[str]) -> list[dict[str, Any]]:
        return self.classify([read_document(p, self.extract) for p in paths])

    def classify_frame(self, frame: Any) -> Any:
        """The pyfunc interface: a DataFrame with a `path` column (paths or URIs) or a `content` column
        (PDF bytes, or base64 text as JSON carries them); returns a DataFrame, one row per input row."""
        import pandas as pd

        if "content" in frame.columns:
            names = frame["path"].astype(str) if "path" in frame.columns else [f"row-{i}" for i in range(len(frame))]
            documents = [Document(str(n), _as_bytes(c)) for n, c in zip(names, frame["content"], strict=True)]
        elif "path" in frame.columns:
            documents = [read_document(str(p), self.extract) for p in frame["path"]]
        else:
            raise ValueError(f"input needs a 'path' or a 'content' column; got {list(frame.columns)}")
        return pd.DataFrame(self.classify(documents))


def score_documents(
    model: DocumentClassifier, batch: list[tuple[str, str | None, np.ndarray | None]]
) -> list[tuple[str, np.ndarray]]:
    """(key, class probabilities) for each (key, text, embedding) of a batch: one engine task's share of a
    batch score (processing.scoring). The text or the embedding is None where the model does not read it."""
    texts = [text or "" for _, text, _ in batch] if model.needs_text else None
    vectors = np.stack([vector for _, _, vector in batch]) if not model.reads_text else None
    probabilities = model.classifier.predict_proba(model.features(texts, vectors))
    return [(key, row) for (key, _, _), row in zip(batch, probabilities, strict=True)]


def _as_bytes(content: Any) -> bytes:
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    if isinstance(content, str):
        return base64.b64decode(content, validate=False)
    raise ValueError(f"content must be bytes or base64 text; got {type(content).__name__}")
