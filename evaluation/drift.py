"""Drift tests between a reference batch (what the champion was trained on) and a current batch. Pure:
arrays in, scores, p-values and verdicts out; numpy, scipy and scikit-learn only.

- Embedding drift, two tests that must agree (either alone cries wolf more often):
  * a domain classifier: can a linear model tell reference from current? Out-of-fold ROC AUC, with a
    permutation null (the domain labels shuffled), so a small batch's noisy AUC is not called drift;
  * MMD² with an RBF kernel at the median-heuristic bandwidth and a permutation null.
  Both work on a bounded sample per side (monitor.sample_per_side), so their cost does not grow with
  the corpus.
- Prediction drift: the champion's predicted-class shares vs the reference's (chi-square on counts and
  total variation distance), and its mean top probability.
- Data-quality drift: outcome shares, text length (two-sample Kolmogorov-Smirnov), duplicate share, and
  text noise: the share of words that mix letters and digits ('c0ntract', 'he11o'), what OCR of a poor
  scan leaves and clean text rarely has. Embeddings barely move under such noise (README, Monitoring),
  so this test, not the embedding tests, is what finds a batch of bad scans; it counts as drift.
  And novel words: the share of each document's words that the reference's vocabulary lacks, what new
  templates, renamed fields or a new source bring. The vocabulary comes from half of the reference
  sample and the reference's own scores from the other half, so a same-distribution batch scores alike.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from evaluation.metrics import bootstrap_macro_f1, score


@dataclass
class MonitorConfig:
    """monitor.* in the config: drift tests and their thresholds (README, Monitoring: how they were chosen)."""

    sample_per_side: int = 1000  # rows per side for the embedding tests and the reference class shares
    permutations: int = 200  # permutation-null draws for both embedding tests
    alpha: float = 0.01  # an embedding test fires when its permutation p-value is below this ...
    min_auc: float = 0.6  # ... and (domain classifier) its AUC is above this: a tiny shift in a big batch is not drift
    share_alpha: float = 0.001  # predicted-class shares: chi-square p-value ...
    min_share_shift: float = 0.1  # ... and total variation distance
    noise_alpha: float = 0.01  # text noise: KS p-value below this ...
    min_noise_shift: float = 0.01  # ... and the mean share of letter-digit words up by more than this
    vocab_alpha: float = 0.01  # novel words: KS p-value below this ...
    min_vocab_shift: float = 0.03  # ... and the mean share of words new to the reference up by more than this
    text_sample: int = 1000  # documents per side read for the text tests (noise, novel words)
    pca_dims: int = 16  # the domain classifier reads this many principal components
    min_batch: int = 20  # fewer usable documents than this: drift is not judged ("too_small")
    pushgateway: str = ""  # host:port of a Prometheus Pushgateway; "" = textfile only
    # Triggers of the loop (processing.cycle): retrain on drift with at least retrain_min_labels new labels,
    # on retrain_label_count new labels alone, or on a labelled macro-F1 retrain_f1_drop below the champion's.
    retrain_min_labels: int = 20
    retrain_label_count: int = 500  # new labels that trigger retraining without drift
    retrain_f1_drop: float = 0.05  # macro-F1 on a batch's labels this far below the champion's recorded one
    retrain_drift_streak: int = 3  # drift this many batches in a row counts as drift
    seed: int = 0  # the drift tests' samples and permutations

    def validate(self) -> None:
        for key in (
            "sample_per_side", "permutations", "pca_dims", "text_sample", "min_batch", "retrain_min_labels",
            "retrain_label_count", "retrain_drift_streak",
        ):  # fmt: skip
            if getattr(self, key) < 1:
                raise ValueError(f"monitor.{key} must be >= 1; got {getattr(self, key)}")
        for key in ("alpha", "share_alpha", "noise_alpha", "vocab_alpha"):
            if not 0 < getattr(self, key) < 1:
                raise ValueError(f"monitor.{key} must be in (0, 1); got {getattr(self, key)}")
        if not 0.5 <= self.min_auc < 1:
            raise ValueError(f"monitor.min_auc must be in [0.5, 1); got {self.min_auc}")
        if not 0 <= self.retrain_f1_drop <= 1:
            raise ValueError(f"monitor.retrain_f1_drop must be in [0, 1]; got {self.retrain_f1_drop}")
        for key in ("min_share_shift", "min_noise_shift", "min_vocab_shift"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"monitor.{key} must be in [0, 1]; got {getattr(self, key)}")


@dataclass
class TestResult:
    name: str
    score: float
    p_value: float
    threshold: str  # the rule, in words, e.g. "p < 0.01 and auc > 0.6"
    fired: bool


@dataclass
class DriftReport:
    reference_size: int
    current_size: int
    embedding: list[TestResult] = field(default_factory=list)
    prediction: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    performance: dict[str, Any] = field(default_factory=dict)
    detected: bool = False
    status: str = "judged"  # judged | too_small
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def mmd_test(ref: np.ndarray, cur: np.ndarray, config: MonitorConfig, rng: np.random.Generator) -> TestResult:
    """Biased MMD² with an RBF kernel (median-heuristic bandwidth) and a permutation null.

    The pooled kernel matrix is computed once; each permutation is a ±1/n weight vector w, and
    MMD² = wᵀKw, so all permutations cost one matrix product."""
    pooled = np.vstack([ref, cur]).astype(np.float64)
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0)
    upper = d2[np.triu_indices(len(pooled), k=1)]
    bandwidth = np.median(upper[upper > 0]) if np.any(upper > 0) else 1.0
    kernel = np.exp(-d2 / bandwidth)
    n, m = len(ref), len(cur)
    labels = np.r_[np.full(n, 1.0 / n), np.full(m, -1.0 / m)]
    weights = np.column_stack([labels] + [rng.permutation(labels) for _ in range(config.permutations)])
    mmd2 = np.einsum("ij,ij->j", weights, kernel @ weights)
    observed, null = mmd2[0], mmd2[1:]
    p = (1 + np.sum(null >= observed)) / (1 + len(null))
    return TestResult("mmd2", float(observed), float(p), f"p < {config.alpha}", bool(p < config.alpha))


def domain_classifier_test(
    ref: np.ndarray, cur: np.ndarray, config: MonitorConfig, rng: np.random.Generator
) -> TestResult:
    """Out-of-fold ROC AUC of a logistic regression telling current from reference rows, on the pooled
    sample's top principal components (fitted without the domain labels, so the null stays valid)."""
    pooled = np.vstack([ref, cur])
    dims = min(config.pca_dims, pooled.shape[1], len(pooled) - 1)
    reduced = PCA(dims, random_state=config.seed).fit_transform(pooled)
    domain = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    folds = StratifiedKFold(3, shuffle=True, random_state=config.seed)

    def auc(y: np.ndarray) -> float:
        scores = np.zeros(len(y))
        for train, test in folds.split(reduced, y):
            model = LogisticRegression(max_iter=200).fit(reduced[train], y[train])
            scores[test] = model.decision_function(reduced[test])
        return float(roc_auc_score(y, scores))

    observed = auc(domain)
    # Each draw fits 3 models, so the null gets a quarter of the draws, and its tail is read from a normal
    # fitted to them: 50 draws alone could not show a p-value below 1/51.
    draws = max(20, config.permutations // 4)
    null = np.array([auc(rng.permutation(domain)) for _ in range(draws)])
    p = float(stats.norm.sf(observed, loc=null.mean(), scale=max(null.std(ddof=1), 1e-6)))
    fired = bool(p < config.alpha and observed > config.min_auc)
    return TestResult("domain_auc", observed, float(p), f"p < {config.alpha} and auc > {config.min_auc}", fired)


def class_share_test(
    ref_labels: list[str], cur_labels: list[str], classes: list[str], config: MonitorConfig
) -> dict[str, Any]:
    """Predicted-class shares, reference vs current: chi-square on the 2 x k table and total variation."""
    ref_counts = np.array([ref_labels.count(c) for c in classes], dtype=float)
    cur_counts = np.array([cur_labels.count(c) for c in classes], dtype=float)
    keep = (ref_counts + cur_counts) > 0
    if keep.sum() < 2 or not len(cur_labels) or not len(ref_labels):
        return {"chi2": 0.0, "p_value": 1.0, "tvd": 0.0, "fired": False, "shares": {}, "reference_shares": {}}
    chi2, p, _, _ = stats.chi2_contingency(np.vstack([ref_counts[keep], cur_counts[keep]]))
    ref_share, cur_share = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    tvd = float(0.5 * np.abs(ref_share - cur_share).sum())
    return {
        "chi2": float(chi2),
        "p_value": float(p),
        "tvd": tvd,
        "fired": bool(p < config.share_alpha and tvd > config.min_share_shift),
        "threshold": f"p < {config.share_alpha} and tvd > {config.min_share_shift}",
        "shares": {c: float(s) for c, s in zip(classes, cur_share, strict=True)},
        "reference_shares": {c: float(s) for c, s in zip(classes, ref_share, strict=True)},
    }


_LETTER_DIGIT = re.compile(r"[^\W\d_]\d|\d[^\W\d_]")


def text_noise(text: str, max_words: int = 400) -> float:
    """Share of a text's first words that mix letters and digits: ~1% in clean generated documents,
    ~5% after OCR of a poor scan (l->1, O->0, S->5, B->8 confusions)."""
    words = text.split()[:max_words]
    return sum(1 for w in words if _LETTER_DIGIT.search(w)) / len(words) if words else 0.0


def noise_scores(texts: list[str]) -> np.ndarray:
    return np.asarray([text_noise(t) for t in texts], dtype=float)


def text_noise_test(ref_noise: np.ndarray, cur_noise: np.ndarray, config: MonitorConfig) -> dict[str, Any]:
    """Did the batch's text get noisier? Two-sample KS on per-document noise, and a floor on the mean
    shift so that a large batch's trivial difference is not drift."""
    ks = stats.ks_2samp(ref_noise, cur_noise)
    shift = float(np.mean(cur_noise) - np.mean(ref_noise))
    return {
        "mean": float(np.mean(cur_noise)),
        "reference_mean": float(np.mean(ref_noise)),
        "ks": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "fired": bool(ks.pvalue < config.noise_alpha and shift > config.min_noise_shift),
        "threshold": f"p < {config.noise_alpha} and mean up by > {config.min_noise_shift}",
    }


_WORD = re.compile(r"[^\W\d_]{3,}")  # words of three letters or more: numbers, dates and codes say little


def _words(text: str, max_words: int = 400) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)[:max_words]}


def novel_word_scores(vocabulary: set[str], texts: list[str]) -> np.ndarray:
    """Per document, the share of its distinct words that are not in `vocabulary`."""
    return np.asarray([len(ws - vocabulary) / len(ws) if ws else 0.0 for ws in map(_words, texts)], dtype=float)


def novel_words_test(ref_texts: list[str], cur_texts: list[str], config: MonitorConfig) -> dict[str, Any]:
    """Did the batch bring words the reference never used (new templates, fields, sources)? The reference
    sample's even documents give the vocabulary and its odd ones the reference scores: both sides are
    then scored against a vocabulary neither helped to build. KS test and a floor on the mean shift."""
    vocabulary = set().union(*map(_words, ref_texts[0::2]))
    ref_scores, cur_scores = novel_word_scores(vocabulary, ref_texts[1::2]), novel_word_scores(vocabulary, cur_texts)
    ks = stats.ks_2samp(ref_scores, cur_scores)
    shift = float(np.mean(cur_scores) - np.mean(ref_scores))
    return {
        "mean": float(np.mean(cur_scores)),
        "reference_mean": float(np.mean(ref_scores)),
        "vocabulary": len(vocabulary),
        "ks": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "fired": bool(ks.pvalue < config.vocab_alpha and shift > config.min_vocab_shift),
        "threshold": f"p < {config.vocab_alpha} and mean up by > {config.min_vocab_shift}",
    }


def quality_drift(
    ref_outcomes: dict[str, int], cur_outcomes: dict[str, int], ref_lengths: np.ndarray, cur_lengths: np.ndarray
) -> dict[str, Any]:
    """Outcome shares side by side, and whether the text lengths of usable documents moved (KS test)."""

    def shares(counts: dict[str, int]) -> dict[str, float]:
        total = sum(counts.values()) or 1
        return {k: v / total for k, v in sorted(counts.items())}

    ks = stats.ks_2samp(ref_lengths, cur_lengths) if len(ref_lengths) and len(cur_lengths) else None
    cur, ref = shares(cur_outcomes), shares(ref_outcomes)
    return {
        "outcome_shares": cur,
        "reference_outcome_shares": ref,
        # None: not known (a feature version alone holds only usable documents)
        "unusable_share": 1 - cur.get("ok", 0) - cur.get("fallback_ok", 0) if cur_outcomes else None,
        "duplicate_share": cur.get("duplicate", 0.0) if cur_outcomes else None,
        "text_length_ks": float(ks.statistic) if ks else 0.0,
        "text_length_p": float(ks.pvalue) if ks else 1.0,
        "median_chars": float(np.median(cur_lengths)) if len(cur_lengths) else 0.0,
        "reference_median_chars": float(np.median(ref_lengths)) if len(ref_lengths) else 0.0,
    }


def embedding_drift(ref: np.ndarray, cur: np.ndarray, config: MonitorConfig) -> tuple[list[TestResult], bool]:
    """Both embedding tests on bounded samples; drift is detected when both fire."""
    rng = np.random.default_rng(config.seed)
    a, b = _sample(ref, config.sample_per_side, rng), _sample(cur, config.sample_per_side, rng)
    tests = [domain_classifier_test(a, b, config, rng), mmd_test(a, b, config, rng)]
    return tests, all(t.fired for t in tests)


@dataclass
class Side:
    """One side of a comparison: its vectors, the champion's probabilities on them (or on a sample of
    them: the class shares need no more), outcome counts, text lengths, and a sample of its texts (for
    the text-noise and novel-words tests)."""

    vectors: np.ndarray
    probabilities: np.ndarray | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0))
    texts: list[str] = field(default_factory=list)  # at most monitor.text_sample of its documents' texts


def monitor(
    reference: Side,
    current: Side,
    classes: list[str],
    config: MonitorConfig,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    champion: dict[str, float] | None = None,
) -> DriftReport:
    """Every drift test for one batch. `labelled` = (true labels, predicted labels) of the batch's
    labelled documents, if any."""
    start = time.perf_counter()
    report = DriftReport(len(reference.vectors), len(current.vectors))
    if len(current.vectors) < config.min_batch or len(reference.vectors) < config.min_batch:
        report.status = "too_small"
    else:
        report.embedding, report.detected = embedding_drift(reference.vectors, current.vectors, config)
    if reference.probabilities is not None and current.probabilities is not None and len(current.vectors):
        names = np.asarray(classes)
        ref_pred = list(names[reference.probabilities.argmax(axis=1)])
        cur_pred = list(names[current.probabilities.argmax(axis=1)])
        report.prediction = class_share_test(ref_pred, cur_pred, classes, config)
        report.prediction["mean_top_probability"] = float(current.probabilities.max(axis=1).mean())
        report.prediction["reference_mean_top_probability"] = float(reference.probabilities.max(axis=1).mean())
    report.quality = quality_drift(reference.outcomes, current.outcomes, reference.lengths, current.lengths)
    if report.status == "judged" and len(reference.texts) >= 2 * config.min_batch and current.texts:
        noise = text_noise_test(noise_scores(reference.texts), noise_scores(current.texts), config)
        novel = novel_words_test(reference.texts, current.texts, config)
        report.quality["text_noise"], report.quality["novel_words"] = noise, novel
        report.detected = report.detected or noise["fired"] or novel["fired"]
    if labelled is not None and len(labelled[0]):
        y_true, y_pred = labelled
        low, high = bootstrap_macro_f1(y_true, y_pred, seed=config.seed)
        correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
        draws = np.random.default_rng(config.seed).integers(0, len(correct), (1000, len(correct)))
        recorded = champion or {}
        report.performance = {
            "labelled": int(len(y_true)),
            "macro_f1": score(y_true, y_pred)["macro_f1"],
            "macro_f1_low": low,
            "macro_f1_high": high,
            "accuracy": float(correct.mean()),
            "accuracy_high": float(np.percentile(correct[draws].mean(axis=1), 97.5)),
            "champion_macro_f1": recorded.get("macro_f1", float("nan")),
            "champion_accuracy": recorded.get("accuracy", float("nan")),
        }
    report.seconds = round(time.perf_counter() - start, 3)
    return report
