"""processing.monitor on a workspace whose champion reads text (tfidf): prediction drift and labelled
performance are judged for it too, not only for a champion that reads embeddings."""

from __future__ import annotations

import contextlib

from processing.features import FeatureStore, Member
from processing.monitor import main as monitor_main
from processing.run import main as run_main


def test_monitor_judges_a_text_champions_predictions_and_labelled_performance(tmp_path, capsys):
    workspace = tmp_path / "ws"
    settings = [
        "engine.executor=local",
        "train.classifiers=tfidf",
        "corpus.heldout_size=40",
        "corpus.bad_file_rate=0.2",
    ]
    with contextlib.redirect_stdout(None):
        assert (
            run_main(["--tier", "50", "--workspace", str(workspace), *(x for s in settings for x in ("--set", s))]) == 0
        )
    capsys.readouterr()
    with FeatureStore(workspace / "features.duckdb") as store:  # the held-out documents, as an arriving batch
        (trained,) = store.versions()
        rows = store.version_rows(trained["version_id"], splits=("heldout",))
        batch = [Member(h, label, "batch") for h, label in zip(rows.hashes, rows.labels, strict=True)]
        current, _ = store.commit_version(batch, "cycle:test", trained["extractor"], trained["embedder"], {})
    assert monitor_main(["--current", current, "--workspace", str(workspace)]) == 0
    report = capsys.readouterr().out
    assert f"# {current} vs {trained['version_id']}" in report
    assert "**Predicted-class shares**: chi-square p" in report
    assert f"**Labelled performance** on {len(batch)} documents: macro-F1" in report
    assert (workspace / "reports" / "monitoring" / current / "drift.json").exists()
    # No run recorded these files, so what else arrived with them is not known; not "0.000".
    assert "**Data quality**: unusable share unknown (no run of these files recorded)" in report
    # A version a run produced: that run's files say how many were unusable.
    with FeatureStore(workspace / "features.duckdb", read_only=True) as store:
        outcomes = store.version_outcomes(trained["version_id"])
    assert sum(outcomes.values()) == 50 + 40 and outcomes.get("ok", 0) < 90  # tier 50's bad files among them
    unusable = 1 - (outcomes.get("ok", 0) + outcomes.get("fallback_ok", 0)) / 90
    assert monitor_main(["--current", trained["version_id"], "--workspace", str(workspace)]) == 0
    assert f"**Data quality**: unusable share {unusable:.3f}, duplicate share" in capsys.readouterr().out


def test_the_reference_is_scored_on_a_fixed_sample_once_it_outgrows_the_per_side_budget():
    from processing.monitoring import _sample_rows

    assert list(_sample_rows(5, 10, seed=0)) == [0, 1, 2, 3, 4]
    picked = _sample_rows(75_000, 1_000, seed=0)
    assert len(set(picked)) == 1_000 and list(picked) == sorted(picked) and picked.max() < 75_000
    assert list(picked) == list(_sample_rows(75_000, 1_000, seed=0))  # the same documents at every batch
