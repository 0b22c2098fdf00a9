"""The real-document variants script: its stacking must learn from out-of-fold predictions only, and a
mistyped --only must end in one line before any document is read."""

import subprocess
import sys

import numpy as np

from tests.scripts import SCRIPTS, load_script

SCRIPT = SCRIPTS / "bench_real_variants.py"


def rows_for(labels: list[str], seed: int) -> list[tuple]:
    """Each class has its own words; the vectors are noise, so only the text view can tell classes apart."""
    rng = np.random.default_rng(seed)
    words = {"alpha": "lua callback node", "beta": "font unicode glyph", "gamma": "plain macro register"}
    rows = []
    for n, label in enumerate(labels):
        text = f"{words[label]} {words[label]} manual page {n}"
        vector = rng.normal(size=8).astype(np.float32)
        rows.append((text, vector / np.linalg.norm(vector), "", np.zeros((1, 8), np.float32)))
    return rows


def test_stacking_trusts_the_view_that_predicts_out_of_fold():
    variants = load_script("bench_real_variants")
    labels = ["alpha", "beta", "gamma"] * 10
    stacked = variants.Stacked().fit(rows_for(labels, 0), np.asarray(labels))
    # The meta-model reads one log-probability per class from each of the two members.
    assert stacked.model_.coef_.shape == (3, 6)
    unseen = ["gamma", "alpha", "beta"] * 3
    assert list(stacked.predict(rows_for(unseen, 1))) == unseen
    # Out of fold, the noise vectors predict nothing, so the text member's columns carry the weight.
    text_weight, vector_weight = np.abs(stacked.model_.coef_[:, :3]).sum(), np.abs(stacked.model_.coef_[:, 3:]).sum()
    assert text_weight > vector_weight


def test_fusion_with_character_ngrams_adds_their_block():
    variants = load_script("bench_real_variants")
    labels = ["alpha", "beta", "gamma"] * 4
    rows = rows_for(labels, 0)
    plain = variants.Fusion().fit(rows, np.asarray(labels))
    with_characters = variants.Fusion(characters=True).fit(rows, np.asarray(labels))
    assert with_characters.features(rows).shape[1] > plain.features(rows).shape[1] + 8
    assert variants.Fusion(sublinear=False, longest=1).fit(rows, np.asarray(labels)).words_.ngram_range == (1, 1)


def test_an_unknown_only_is_one_line_and_exit_2():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "C 10", "--only", "no such variant"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "'no such variant' matches no variant" in done.stderr


def test_fusion_can_read_the_pooled_windows_instead_of_the_first_tokens():
    variants = load_script("bench_real_variants")
    labels = ["alpha", "beta", "gamma"] * 4
    rows = [(text, first, meta, np.stack([first, -first])) for text, first, meta, _ in rows_for(labels, 0)]
    # Two windows pointing opposite ways pool to nothing: the embedding block is all zeros, the words remain.
    spread = variants.Fusion(spread=True).fit(rows, np.asarray(labels)).features(rows)
    first = variants.Fusion().fit(rows, np.asarray(labels)).features(rows)
    assert abs(spread[:, -8:]).sum() == 0 and abs(first[:, -8:]).sum() > 0
    assert (spread[:, :-8] != first[:, :-8]).nnz == 0


def test_text_statistics_see_writing_systems_digits_and_length():
    variants = load_script("bench_real_variants")
    latin = variants.text_statistics("plain text 2024")
    hebrew = variants.text_statistics("שלום עולם plain")
    column = {name: i for i, name in enumerate(variants.SCRIPTS)}
    assert latin[column["HEBREW"]] == 0 and hebrew[column["HEBREW"]] > 0.5
    digits = len(variants.SCRIPTS) + 1
    assert latin[digits] == 4 / 15 and hebrew[digits] == 0
    assert variants.text_statistics("a" * 1000)[-2] > latin[-2]  # the log length


def test_fusion_features_take_other_learners_and_a_statistics_block():
    variants = load_script("bench_real_variants")
    labels = ["alpha", "beta", "gamma"] * 4
    rows, y = rows_for(labels, 0), np.asarray(labels)
    plain = variants.Fusion().fit(rows, y)
    with_statistics = variants.Fusion(statistics=True).fit(rows, y)
    assert with_statistics.features(rows).shape[1] == plain.features(rows).shape[1] + len(variants.text_statistics(""))
    for learner in ("ridge", "svm"):
        fitted = variants.Fusion(learner=learner).fit(rows, y)
        assert type(fitted.model_).__name__ == {"ridge": "RidgeClassifier", "svm": "LinearSVC"}[learner]
        assert list(fitted.predict(rows_for(["gamma", "alpha"], 1))) == ["gamma", "alpha"]
