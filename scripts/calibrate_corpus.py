"""Learning curve of the generated corpus, fast: text straight from the document plans (no PDF),
embedded with the real model, classified with logistic regression. Used to tune ingestion/compose.py
so that more data buys accuracy; the real tier runs confirm it.

    python scripts/calibrate_corpus.py --max-train 3000 --heldout 500
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from ingestion.compose import compose
from ingestion.corpus import _rng, manifest
from processing.embed import EmbedConfig, Embedder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-train", type=int, default=3000)
    parser.add_argument("--heldout", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    entries = manifest(args.seed, args.max_train, args.heldout, 0.0, 0.02)
    texts = [compose(_rng(args.seed, e.split, e.index, "body"), e.content_label).text() for e in entries]
    embedder = Embedder(EmbedConfig(device="cpu"))
    vectors = embedder.encode(texts)
    labels = np.array([e.label for e in entries])
    train = np.array([e.split == "train" for e in entries])
    x_train, y_train, x_test, y_test = vectors[train], labels[train], vectors[~train], labels[~train]
    for n in (50, 200, 1000, args.max_train):
        n = min(n, len(y_train))
        model = LogisticRegression(C=4.0, max_iter=2000).fit(x_train[:n], y_train[:n])
        f1 = f1_score(y_test, model.predict(x_test), average="macro")
        print(f"train {n:>6}: held-out macro-F1 {f1:.3f}")


if __name__ == "__main__":
    main()
