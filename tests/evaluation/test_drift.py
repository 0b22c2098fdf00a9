"""Drift tests on controlled data: quiet on the same distribution, loud on a shift, honest on a batch
too small to judge; and their figures reach Prometheus (a textfile, and a real Pushgateway)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import numpy as np
import pytest

from evaluation.drift import (
    MonitorConfig,
    Side,
    class_share_test,
    embedding_drift,
    monitor,
    novel_word_scores,
    text_noise,
)
from processing.metrics_export import Series, export
from tests.servers import free_port, wait_http


def _cloud(rng: np.random.Generator, n: int, shift: float = 0.0, dim: int = 32) -> np.ndarray:
    x = rng.normal(size=(n, dim))
    x[:, 0] += shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_same_distribution_batches_rarely_alarm_and_shifted_ones_always_do():
    rng = np.random.default_rng(0)
    ref = _cloud(rng, 400)
    config = MonitorConfig(permutations=100)
    false_alarms = sum(
        embedding_drift(ref, _cloud(rng, 100), MonitorConfig(seed=s, permutations=100))[1] for s in range(10)
    )
    detections = sum(
        embedding_drift(ref, _cloud(rng, 100, shift=1.5), MonitorConfig(seed=s, permutations=100))[1] for s in range(5)
    )
    assert false_alarms <= 1 and detections == 5
    tests, _ = embedding_drift(ref, _cloud(rng, 100, shift=1.5), config)
    assert [t.name for t in tests] == ["domain_auc", "mmd2"] and tests[0].score > config.min_auc


def _generated_texts(start: int, n: int, generation: int = 1) -> list[str]:
    from ingestion.compose import compose
    from ingestion.corpus import _rng, make_entry

    entries = [make_entry(99, "train", i, 0.0) for i in range(start, start + n)]
    return [compose(_rng(99, e.split, e.index, "body"), e.content_label, generation).text() for e in entries]


def test_text_noise_finds_a_batch_of_bad_scans_that_the_embeddings_miss():
    """The generator's own OCR noise on 60% of a batch: the text-noise test fires and drift is detected;
    a clean batch from the same generator does not fire it."""
    import random

    from ingestion.compose import add_ocr_noise

    rng = np.random.default_rng(2)
    reference = Side(_cloud(rng, 300), texts=_generated_texts(0, 300))
    clean_texts = _generated_texts(300, 100)
    noisy_rng = random.Random(3)
    noisy_texts = [
        add_ocr_noise(t, noisy_rng.uniform(0.04, 0.08), noisy_rng) if i % 5 < 3 else t
        for i, t in enumerate(clean_texts)
    ]
    config = MonitorConfig(permutations=50)
    clean = monitor(reference, Side(_cloud(rng, 100), texts=clean_texts), [], config)
    noisy = monitor(reference, Side(_cloud(rng, 100), texts=noisy_texts), [], config)
    assert not clean.quality["text_noise"]["fired"] and not clean.detected
    assert noisy.quality["text_noise"]["fired"] and noisy.detected
    assert not any(t.fired for t in noisy.embedding)  # the vectors are the same cloud: only the text moved
    assert text_noise("he11o w0rld, the c0ntract") == pytest.approx(3 / 4) and text_noise("") == 0.0


def test_novel_words_find_a_new_template_generation_that_the_embeddings_miss():
    """Half of a 50-document batch in the generator's second template generation (other wording and fields):
    the novel-words test fires; a same-distribution batch of 50 fires nothing."""
    rng = np.random.default_rng(4)
    reference = Side(_cloud(rng, 400), texts=_generated_texts(0, 400))
    config = MonitorConfig(permutations=50)
    same = monitor(reference, Side(_cloud(rng, 50), texts=_generated_texts(1000, 50)), [], config)
    mixed = _generated_texts(2000, 25) + _generated_texts(2025, 25, generation=2)
    newer = monitor(reference, Side(_cloud(rng, 50), texts=mixed), [], config)
    assert not same.quality["novel_words"]["fired"] and not same.detected
    assert newer.quality["novel_words"]["fired"] and newer.detected
    assert not newer.quality["text_noise"]["fired"] and not any(t.fired for t in newer.embedding)
    assert newer.quality["novel_words"]["mean"] > newer.quality["novel_words"]["reference_mean"] + 0.03
    assert list(novel_word_scores({"the", "invoice"}, ["The invoice, the TOTAL 42", ""])) == pytest.approx([1 / 3, 0])


def test_a_batch_below_min_batch_is_not_judged():
    rng = np.random.default_rng(1)
    report = monitor(Side(_cloud(rng, 100)), Side(_cloud(rng, 5, shift=3)), [], MonitorConfig(min_batch=20))
    assert report.status == "too_small" and not report.detected and report.embedding == []


def test_prediction_shares_fire_only_on_a_real_shift():
    classes = ["a", "b", "c"]
    reference = ["a"] * 100 + ["b"] * 100 + ["c"] * 100
    assert not class_share_test(reference, ["a"] * 33 + ["b"] * 33 + ["c"] * 34, classes, MonitorConfig())["fired"]
    shifted = class_share_test(reference, ["a"] * 80 + ["b"] * 10 + ["c"] * 10, classes, MonitorConfig())
    assert shifted["fired"] and shifted["tvd"] > 0.4 and shifted["shares"]["a"] == pytest.approx(0.8)


def test_metrics_go_to_a_textfile_and_an_unreachable_gateway_is_only_a_warning(tmp_path, capsys):
    series = [
        Series("drift_detected", "drift", {(): 1.0}),
        Series("predicted_class_share", "s", {("x",): 0.25}, ("class",)),
    ]
    path = export(series, "monitor", {"current": "fv-1"}, tmp_path, pushgateway=f"127.0.0.1:{free_port()}")
    text = path.read_text()
    assert 'docscale_drift_detected{current="fv-1"} 1.0' in text
    assert 'docscale_predicted_class_share{class="x",current="fv-1"} 0.25' in text
    assert "docscale_last_success_timestamp_seconds" in text
    assert not list(tmp_path.glob("metrics/*.tmp*"))  # renamed into place, no leftovers
    assert "did not take the metrics" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("prometheus-pushgateway") is None, reason="Debian's prometheus-pushgateway missing")
def test_metrics_are_pushed_to_a_real_pushgateway(tmp_path):
    port = free_port()
    gateway = subprocess.Popen(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", seconds=30)
        export([Series("drift_mmd2", "mmd", {(): 0.125})], "cycle", {"tier": "50"}, tmp_path, f"127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            pushed = response.read().decode()
        assert 'docscale_drift_mmd2{instance="",job="cycle",tier="50"} 0.125' in pushed
    finally:
        gateway.terminate()
        gateway.wait(10)
