"""What else was tried on real documents, and why it is not the default: variants scored three ways.

For each variant on ../shared/corpora/texlive-dev (see scripts/bench_real.py for docscale itself):
- `cv`: stratified 5-fold cross-validation on train/, as docscale's model selection runs it;
- `grouped cv`: the same, but folds split by package (the file name's `<package path>__` prefix), so
  related manuals never straddle a fold, as they never straddle train/ and test/;
- `test`: fitted on all of train/, scored on test/.
Every figure is macro-F1. Selection used only the first two; test/ is shown so the reader can see how far
each estimate is from the truth, not to choose. `--also FOLDER` adds a column: the same fitted model on more
labelled documents (<class>/*.pdf, e.g. scripts/fetch_texlive_extra.py's, sharing no package with the corpus).

    .venv/bin/python scripts/bench_real_variants.py          # about 25 minutes on 2 cores
    .venv/bin/python scripts/bench_real_variants.py --only stacking --only "C 10"   # a few rows
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestion.extract import ExtractConfig, extract_files  # noqa: E402
from training.classifiers import TextAndVectors, TrainConfig, build_classifier  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from bench_real import paired_lead, window_vectors  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "texlive-dev"


def producer_words(path: str) -> str:
    """The PDF's Producer and Creator (e.g. 'LuaTeX-1.15.0', 'xdvipdfmx', 'LaTeX with hyperref') as words."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path)
    try:
        meta = document.get_metadata_dict()
    finally:
        document.close()
    found = re.findall(r"[a-z]+", (meta.get("Producer", "") + " " + meta.get("Creator", "")).lower())
    return " ".join("pdfmeta" + word for word in found)


def load(folder: Path, embedder: object) -> dict[str, list]:
    paths = sorted(str(p) for p in folder.glob("*/*.pdf"))
    texts = [r.extraction.text if r.extraction else "" for r in extract_files(paths, ExtractConfig())]
    return {
        "labels": [Path(p).parent.name for p in paths],
        "packages": [Path(p).name.rsplit("__", 1)[0] for p in paths],
        "texts": texts,
        "vectors": list(embedder.encode(texts)),
        "meta": [producer_words(p) for p in paths],
        "windows": window_vectors(embedder, texts, windows=16, chars=1200),
    }


def rows_of(data: dict[str, list], clip: int | None = None) -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """Each document as every variant may read it: text (its first `clip` characters), MiniLM vector,
    metadata words, MiniLM vectors of 16 windows spread over the document."""
    columns = data["texts"], data["vectors"], data["meta"], data["windows"]
    return [(text[:clip] if clip else text, *rest) for text, *rest in zip(*columns, strict=True)]


class Variant(ClassifierMixin, BaseEstimator):
    """A classifier over (text, vector, meta) rows: `view` picks what the inner model reads."""

    def __init__(self, make: Callable[[], object], view: Callable[[list], object]) -> None:
        self.make, self.view = make, view

    def fit(self, rows: list, y: np.ndarray) -> Variant:
        self.model_ = self.make().fit(self.view(rows), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, rows: list) -> np.ndarray:
        return self.model_.predict_proba(self.view(rows))

    def predict(self, rows: list) -> np.ndarray:
        return self.classes_[self.predict_proba(rows).argmax(axis=1)]


class SoftVote(ClassifierMixin, BaseEstimator):
    """The mean of several variants' probabilities."""

    def __init__(self, members: list[Callable[[], Variant]]) -> None:
        self.members = members

    def fit(self, rows: list, y: np.ndarray) -> SoftVote:
        self.fitted_ = [make().fit(rows, y) for make in self.members]
        self.classes_ = self.fitted_[0].classes_
        return self

    def predict(self, rows: list) -> np.ndarray:
        return self.classes_[np.mean([m.predict_proba(rows) for m in self.fitted_], axis=0).argmax(axis=1)]


SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "ARABIC", "HEBREW", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "DEVANAGARI")


def text_statistics(text: str, sample: int = 200_000) -> list[float]:
    """What a bag of words does not see: each writing system's share of the non-ASCII letters' names,
    the shares of non-ASCII, digits, punctuation and capitals, the length (log) and the mean word length."""
    part = text[:sample]
    size = max(len(part), 1)
    scripts = dict.fromkeys(SCRIPTS, 0)
    for char in part:
        if ord(char) >= 128:
            name = unicodedata.name(char, "")
            script = next((s for s in SCRIPTS if name.startswith(s)), None)
            if script:
                scripts[script] += 1
    words = part.split()
    return [scripts[s] / size for s in SCRIPTS] + [
        sum(ord(c) >= 128 for c in part) / size,
        sum(c.isdigit() for c in part) / size,
        sum(unicodedata.category(c).startswith("P") for c in part) / size,
        sum(c.isupper() for c in part) / size,
        float(np.log1p(len(text))),
        float(np.mean([len(w) for w in words])) if words else 0.0,
    ]


def texts(rows: list) -> list[str]:
    return [r[0] for r in rows]


def vectors(rows: list) -> np.ndarray:
    return np.stack([r[1] for r in rows])


def pooled_windows(rows: list) -> np.ndarray:
    """The mean of each document's window vectors (16 spread over its text), unit length."""
    pooled = np.stack([r[3].sum(axis=0) for r in rows])
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def fused(rows: list) -> list:
    return [(r[0], r[1]) for r in rows]


def with_meta(rows: list) -> list:
    return [(r[0] + " " + r[2], r[1]) for r in rows]


def docscale_model(name: str, **params: float) -> Callable[[], Variant]:
    config = TrainConfig(**params)  # type: ignore[arg-type]
    view = {"tfidf": texts, "svm": texts, "logreg": vectors, "fusion": fused}[name]
    return lambda: Variant(lambda: build_classifier(name, config), view)


def fusion_meta(meta_weight: float) -> Callable[[], Variant]:
    """Fusion with the metadata words as their own TF-IDF block, `meta_weight` times unit length."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    class MetaBlock(BaseEstimator):
        def fit(self, rows: list, y: object = None) -> MetaBlock:
            self.fusion_ = TextAndVectors().fit(fused(rows))
            self.meta_ = TfidfVectorizer(min_df=2).fit([r[2] for r in rows])
            return self

        def transform(self, rows: list) -> object:
            meta = self.meta_.transform([r[2] for r in rows]) * meta_weight
            return sparse.hstack([self.fusion_.transform(fused(rows)), meta]).tocsr()

    return lambda: Variant(lambda: make_pipeline(MetaBlock(), LogisticRegression(C=10, max_iter=3000)), list)


class Fusion(ClassifierMixin, BaseEstimator):
    """docscale's fusion with the word block's vocabulary limits and an optional first-pages block: the
    first `head` characters (title page, abstract, contents) as their own TF-IDF block, `head_weight` x;
    optional text statistics as a block, and another linear learner on the same features."""

    learners: ClassVar[dict[str, Callable[[], object]]] = {
        "logreg": lambda: LogisticRegression(C=10, max_iter=3000),
        "ridge": lambda: RidgeClassifier(alpha=1.0),
        "svm": lambda: LinearSVC(C=1.0),
    }

    def __init__(
        self,
        min_df: int = 2,
        max_df: float = 1.0,
        head: int = 0,
        head_weight: float = 1.0,
        sublinear: bool = True,
        longest: int = 2,
        characters: bool = False,
        spread: bool = False,
        statistics: bool = False,
        learner: str = "logreg",
    ) -> None:
        self.min_df, self.max_df, self.head, self.head_weight = min_df, max_df, head, head_weight
        self.sublinear, self.longest, self.characters, self.spread = sublinear, longest, characters, spread
        self.statistics, self.learner = statistics, learner

    def features(self, rows: list) -> object:
        from scipy import sparse

        meaning = pooled_windows(rows) if self.spread else vectors(rows)
        blocks = [self.words_.transform(texts(rows)), sparse.csr_matrix(meaning * 0.5)]
        if self.characters:
            blocks.append(self.characters_.transform(texts(rows)))
        if self.head:
            blocks.append(self.first_.transform([r[0][: self.head] for r in rows]) * self.head_weight)
        if self.statistics:  # standardised, clipped, and as heavy in all as the MiniLM block
            shares = np.clip(self.scale_.transform([text_statistics(text) for text in texts(rows)]), -5, 5)
            blocks.append(sparse.csr_matrix(shares * 0.5 / np.sqrt(shares.shape[1])))
        return sparse.hstack(blocks).tocsr()

    def fit(self, rows: list, y: np.ndarray) -> Fusion:
        from sklearn.feature_extraction.text import TfidfVectorizer

        limits = {"min_df": self.min_df, "max_df": self.max_df, "max_features": 50000}
        self.words_ = TfidfVectorizer(sublinear_tf=self.sublinear, ngram_range=(1, self.longest), **limits)
        self.words_.fit(texts(rows))
        if self.characters:  # as docscale's svm reads them
            self.characters_ = TfidfVectorizer(
                sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5), min_df=2, max_features=50000
            ).fit(texts(rows))
        if self.head:
            self.first_ = TfidfVectorizer(sublinear_tf=True, min_df=2).fit([r[0][: self.head] for r in rows])
        if self.statistics:
            from sklearn.preprocessing import StandardScaler

            self.scale_ = StandardScaler().fit([text_statistics(text) for text in texts(rows)])
        self.model_ = self.learners[self.learner]().fit(self.features(rows), y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, rows: list) -> np.ndarray:
        return self.model_.predict(self.features(rows))


class Stacked(ClassifierMixin, BaseEstimator):
    """Stacking: docscale's tfidf (words) and logreg (MiniLM) each predict every training document from
    inner folds it was not fitted on; a logistic regression learns how far to trust each from those
    out-of-fold log-probabilities. The late-fusion counterpart of docscale's fusion (one model, both views)."""

    members = ("tfidf", "logreg")

    def fit(self, rows: list, y: np.ndarray) -> Stacked:
        y = np.asarray(y)
        inner = StratifiedKFold(5, shuffle=True, random_state=1)
        out_of_fold = []
        for name in self.members:
            make = docscale_model(name)
            probabilities = np.zeros((len(y), len(np.unique(y))))
            for fit_on, held in inner.split(np.zeros(len(y)), y):
                member = make().fit([rows[i] for i in fit_on], y[fit_on])
                probabilities[held] = member.predict_proba([rows[i] for i in held])
            out_of_fold.append(probabilities)
        self.fitted_ = [docscale_model(name)().fit(rows, y) for name in self.members]
        self.model_ = LogisticRegression(max_iter=3000).fit(self.stacked(out_of_fold), y)
        self.classes_ = self.model_.classes_
        return self

    @staticmethod
    def stacked(probabilities: list[np.ndarray]) -> np.ndarray:
        return np.hstack([np.log(np.clip(p, 1e-6, 1.0)) for p in probabilities])

    def predict(self, rows: list) -> np.ndarray:
        return self.model_.predict(self.stacked([m.predict_proba(rows) for m in self.fitted_]))


def chunks_of(text: str, words: int = 300, most: int = 40) -> list[str]:
    """The text cut into `words`-word pieces, at most `most` of them spread evenly over the document."""
    tokens = text.split()
    pieces = [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)] or [""]
    keep = np.linspace(0, len(pieces) - 1, min(most, len(pieces))).round().astype(int)
    return [pieces[i] for i in keep]


def fit_on_pieces(features: object, per_document: list[int], y: np.ndarray, c: float) -> LogisticRegression:
    """Logistic regression on documents' pieces, each labelled as its document; a document's pieces weigh
    one document together, so a long manual does not outvote short ones."""
    weights = np.concatenate([np.full(n, 1.0 / n) for n in per_document])
    labels = np.repeat(np.asarray(y), per_document)
    return LogisticRegression(C=c, max_iter=3000).fit(features, labels, sample_weight=weights)


def vote(model: LogisticRegression, pieces_of_each: list[object]) -> np.ndarray:
    """Each document's class: the one its pieces' mean log-probability favours."""
    scores = [np.log(model.predict_proba(pieces) + 1e-9).mean(axis=0) for pieces in pieces_of_each]
    return model.classes_[np.argmax(scores, axis=1)]


class Chunked(ClassifierMixin, BaseEstimator):
    """Many short examples instead of a few long ones: TF-IDF + logistic regression fitted on 300-word
    pieces, the pieces voting for their document's class."""

    def fit(self, rows: list, y: np.ndarray) -> Chunked:
        from sklearn.feature_extraction.text import TfidfVectorizer

        pieces = [chunks_of(text) for text in texts(rows)]
        flat = [piece for each in pieces for piece in each]
        self.words_ = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=100000).fit(flat)
        self.model_ = fit_on_pieces(self.words_.transform(flat), [len(each) for each in pieces], y, c=10)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, rows: list) -> np.ndarray:
        return vote(self.model_, [self.words_.transform(chunks_of(text)) for text in texts(rows)])


class WindowVote(ClassifierMixin, BaseEstimator):
    """MiniLM on 16 windows spread over each document, each window classified, the windows voting: the
    document's parts vote instead of being averaged into one vector first."""

    def fit(self, rows: list, y: np.ndarray) -> WindowVote:
        windows = [r[3] for r in rows]
        self.model_ = fit_on_pieces(np.vstack(windows), [len(each) for each in windows], y, c=4)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, rows: list) -> np.ndarray:
        return vote(self.model_, [r[3] for r in rows])


class NaiveBayesWeighted(ClassifierMixin, BaseEstimator):
    """NBSVM-style (Wang & Manning 2012): binary word and bigram counts scaled by each class's naive Bayes
    log-count ratio, one logistic regression per class, the highest margin wins."""

    def fit(self, rows: list, y: np.ndarray) -> NaiveBayesWeighted:
        from sklearn.feature_extraction.text import CountVectorizer

        y = np.asarray(y)
        self.words_ = CountVectorizer(binary=True, ngram_range=(1, 2), min_df=2, max_features=100000).fit(texts(rows))
        counts = self.words_.transform(texts(rows))
        self.classes_, self.ratios_, self.models_ = np.unique(y), [], []
        for label in self.classes_:
            inside, outside = 1 + counts[y == label].sum(axis=0), 1 + counts[y != label].sum(axis=0)
            ratio = np.asarray(np.log(inside / inside.sum()) - np.log(outside / outside.sum())).ravel()
            self.ratios_.append(ratio)
            self.models_.append(
                LogisticRegression(C=0.1, max_iter=3000).fit(counts.multiply(ratio).tocsr(), y == label)
            )
        return self

    def predict(self, rows: list) -> np.ndarray:
        counts = self.words_.transform(texts(rows))
        margins = [
            m.decision_function(counts.multiply(r).tocsr()) for m, r in zip(self.models_, self.ratios_, strict=True)
        ]
        return self.classes_[np.argmax(np.column_stack(margins), axis=1)]


VARIANTS: dict[str, tuple[Callable[[], object], int | None]] = {
    "tfidf (docscale)": (docscale_model("tfidf"), None),
    "svm (docscale)": (docscale_model("svm"), None),
    "fusion (docscale, C 10)": (docscale_model("fusion"), None),
    "fusion, C 3": (docscale_model("fusion", fusion_c=3.0), None),
    "fusion, C 30": (docscale_model("fusion", fusion_c=30.0), None),
    "fusion, C 100 (what docscale's selection chose on train/)": (docscale_model("fusion", fusion_c=100.0), None),
    "fusion, MiniLM weight 1.0": (docscale_model("fusion", fusion_weight=1.0), None),
    "fusion, first 20,000 characters only": (docscale_model("fusion"), 20000),
    "fusion + PDF producer/creator words (block weight 0.5)": (fusion_meta(0.5), None),
    "fusion + PDF producer/creator words (block weight 1.0)": (fusion_meta(1.0), None),
    "soft vote: svm + logreg (MiniLM)": (lambda: SoftVote([docscale_model("svm"), docscale_model("logreg")]), None),
    "fusion, words in >= 5 documents and <= half of them": (lambda: Fusion(min_df=5, max_df=0.5), None),
    "fusion + the first 2,000 characters as their own block": (lambda: Fusion(head=2000), None),
    "fusion, raw term counts (not sublinear)": (lambda: Fusion(sublinear=False), None),
    "fusion, single words only (no bigrams)": (lambda: Fusion(longest=1), None),
    "fusion + character n-grams as docscale's svm reads them": (lambda: Fusion(characters=True), None),
    "fusion, MiniLM of 16 windows spread over the document, pooled (not its first 256 tokens)": (
        lambda: Fusion(spread=True),
        None,
    ),
    "fusion + text statistics (writing systems, digits, punctuation, length) as a block": (
        lambda: Fusion(statistics=True),
        None,
    ),
    "fusion's features, ridge classifier (least squares, alpha 1)": (lambda: Fusion(learner="ridge"), None),
    "fusion's features, linear SVM (C 1, uncalibrated)": (lambda: Fusion(learner="svm"), None),
    "stacking: tfidf and logreg (MiniLM) out-of-fold log-probabilities, logistic regression": (Stacked, None),
    "TF-IDF on 300-word pieces, pieces' log-probabilities averaged": (Chunked, None),
    "naive-Bayes-weighted logistic regression (NBSVM-style)": (NaiveBayesWeighted, None),
    "MiniLM, 16 windows each classified, their log-probabilities averaged": (WindowVote, None),
}


REFERENCE = "fusion (docscale, C 10)"


def score(make: Callable[[], object], rows: list, y: np.ndarray, folds: object, groups: list[str]) -> float:
    predicted = np.empty(len(y), dtype=object)
    for fit_on, held in folds.split(np.zeros(len(y)), y, groups):  # type: ignore[attr-defined]
        model = make().fit([rows[i] for i in fit_on], y[fit_on])  # type: ignore[attr-defined]
        predicted[held] = model.predict([rows[i] for i in held])  # type: ignore[attr-defined]
    return float(f1_score(y, predicted.astype(str), average="macro"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--only", action="append", default=[], help="run only the variants whose name contains this text (repeatable)"
    )
    parser.add_argument("--also", type=Path, default=None, metavar="FOLDER", help="more labelled documents to score")
    args = parser.parse_args()
    if args.also and not list(args.also.glob("*/*.pdf")):
        print(f"error: --also {args.also} holds no <class>/*.pdf files", file=sys.stderr)
        return 2
    if not (args.corpus / "train").is_dir() or not (args.corpus / "test").is_dir():
        print(f"error: --corpus {args.corpus} needs train/<class>/ and test/<class>/ folders of PDFs", file=sys.stderr)
        return 2
    chosen = [name for name in VARIANTS if not args.only or any(text in name for text in args.only)]
    for text in args.only:
        if not any(text in name for name in VARIANTS):
            print(f"error: --only {text!r} matches no variant; names: {'; '.join(VARIANTS)}", file=sys.stderr)
            return 2
    from processing.embed import EmbedConfig, Embedder

    warnings.filterwarnings("ignore")  # convergence chatter from small folds; the scores say what it costs
    embedder = Embedder(EmbedConfig(), device="cpu")
    train, test = load(args.corpus / "train", embedder), load(args.corpus / "test", embedder)
    y = np.asarray(train["labels"])
    stratified = StratifiedKFold(5, shuffle=True, random_state=0)
    grouped = StratifiedGroupKFold(5, shuffle=True, random_state=0)
    also = load(args.also, embedder) if args.also else None
    extra_column, reference, fusion = ("", ""), [], None
    if also:
        # The paired lead is over docscale's fusion (C 10) on the same --also documents.
        fusion = VARIANTS[REFERENCE][0]().fit(rows_of(train), y)  # type: ignore[attr-defined]
        reference = list(fusion.predict(rows_of(also)))
        heading = f" --also ({len(also['labels'])}) | lead over fusion C 10 there [95%, paired] |"
        extra_column = (heading, "---:|---|")
    print(f"| variant | cv | grouped cv | test |{extra_column[0]}\n|---|---:|---:|---:|{extra_column[1]}")
    for name in chosen:
        make, clip = VARIANTS[name]
        rows, test_rows = rows_of(train, clip), rows_of(test, clip)
        cv = score(make, rows, y, stratified, train["packages"])
        by_package = score(make, rows, y, grouped, train["packages"])
        # The reference row reuses its fitted model (fitting is deterministic) and shows no lead over itself.
        model = fusion if name == REFERENCE and fusion is not None else make().fit(rows, y)  # type: ignore[attr-defined]
        on_test = f1_score(test["labels"], model.predict(test_rows), average="macro")
        on_also = ""
        if also:
            predicted = list(model.predict(rows_of(also, clip)))
            lead = paired_lead(also["labels"], predicted, reference)
            shown = "" if name == REFERENCE else f"{lead['lead']:+.3f} [{lead['low']:+.3f}, {lead['high']:+.3f}]"
            on_also = f" {f1_score(also['labels'], predicted, average='macro'):.3f} | {shown} |"
        print(f"| {name} | {cv:.3f} | {by_package:.3f} | {on_test:.3f} |{on_also}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
