"""Texts to token ids, compact and picklable: the CPU half of embedding. Free of Ray and torch.

On a GPU the model is cheap and tokenising is what bounds the embedding stage (README, "Embedding on a
GPU"), so this module does the least tokenizer work that gives the exact same ids:

- Texts are clipped by characters first (`embed.max_chars`), sparing the tokenizer text the model would
  truncate anyway.
- Plain text (ASCII without control characters: almost every English document) takes a shortcut that is
  exact for BERT WordPiece tokenizers: BERT's normalizer only lowercases such text, so a `Lowercase`
  normalizer gives the same ids at a fraction of the cost; and each whitespace-separated word of such
  text gives at least one token, so the first `max_length` words hold every token truncation keeps.
  Other text goes through the model's own tokenizer unchanged. Tests compare both on real documents.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

# Control characters BERT's normalizer (clean_text) drops or maps; a text with any takes the full path.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clip_texts(texts: list[str], max_chars: int) -> list[str]:
    """Cutting by characters first spares the tokenizer megabytes the model would truncate anyway."""
    return [" ".join(t[:max_chars].split()) for t in texts]


def chunk_token_ids(ids: list[int], window: int) -> list[list[int]]:
    """Consecutive windows of at most `window` token ids (the last may be shorter; none empty)."""
    return [ids[i : i + window] for i in range(0, len(ids), window)] or [[]]


def is_plain(text: str) -> bool:
    return text.isascii() and not _CONTROL.search(text)


class TextTokenizer:
    """The model's `tokenizers.Tokenizer` plus, for BERT WordPiece tokenizers, the exact shortcut for
    plain text described above. Picklable: it travels to CPU tasks once and is reused."""

    def __init__(self, tokenizer: Any, shortcut: bool = True) -> None:
        self.full = copy.deepcopy(tokenizer)  # ours to set truncation on
        self.full.no_padding()
        self.plain = _plain_variant(self.full) if shortcut else None

    def encode(self, texts: list[str], max_length: int, special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text, truncated to `max_length` (counting [CLS] and [SEP] when added)."""
        ids: list[list[int]] = [[] for _ in texts]
        plain, rest = [], []
        for i, text in enumerate(texts):
            (plain if self.plain is not None and is_plain(text) else rest).append(i)
        if plain:
            # Every word of plain text gives >= 1 token: the first max_length words hold all that is kept.
            # Truncated here rather than by the tokenizer, whose truncation costs 15% of the call.
            batch = [" ".join(texts[i].split(" ", max_length)[:max_length]) for i in plain]
            keep = max_length - 1 if special_tokens else max_length  # room for the closing [SEP]
            for i, encoding in zip(plain, _encode_batch(self.plain, batch, special_tokens), strict=True):
                found = encoding.ids
                ids[i] = found if len(found) <= max_length else found[:keep] + found[-1:] * special_tokens
        if rest:
            self.full.enable_truncation(max_length=max_length)
            for i, encoding in zip(
                rest, _encode_batch(self.full, [texts[i] for i in rest], special_tokens), strict=True
            ):
                ids[i] = encoding.ids
        return ids


def _encode_batch(tokenizer: Any, texts: list[str], special_tokens: bool) -> list[Any]:
    # encode_batch_fast skips character offsets we never use (25% faster); older tokenizers lack it.
    encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    return encode_batch(texts, add_special_tokens=special_tokens)


def _plain_variant(tokenizer: Any) -> Any | None:
    """The same tokenizer with BERT's normalizer replaced by what it does to plain text, or None where
    the shortcut would not be exact (another normalizer, pre-tokenizer or model)."""
    from tokenizers import normalizers

    spec = json.loads(tokenizer.to_str())
    parts = ("normalizer", "pre_tokenizer", "model", "post_processor")
    normalizer, pre, model, post = (spec.get(part) or {} for part in parts)
    if (normalizer.get("type"), pre.get("type"), model.get("type")) != (
        "BertNormalizer",
        "BertPreTokenizer",
        "WordPiece",
    ):
        return None
    shape = [next(iter(piece)) for piece in post.get("single", [])]
    if post.get("type") != "BertProcessing" and shape != ["SpecialToken", "Sequence", "SpecialToken"]:
        return None  # not [CLS] ... [SEP], which encode cuts by hand
    # ASCII has no accents or CJK to strip or space out; clean_text only touches control characters.
    variant = copy.deepcopy(tokenizer)
    variant.no_truncation()
    variant.normalizer = normalizers.Lowercase() if normalizer.get("lowercase", True) else None
    return variant


@dataclass(frozen=True)
class Tokens:
    """Token ids of a list of texts, compact enough to travel between processes: every window's ids
    (with [CLS] and [SEP]) end to end, each window's length, and the text each window belongs to
    (None when every text is one window)."""

    ids: np.ndarray  # int32, all windows concatenated
    lengths: np.ndarray  # int32, one per window
    owner: np.ndarray | None
    documents: int

    @staticmethod
    def concat(parts: list[Tokens]) -> Tokens:
        """One Tokens for texts tokenised in parts (in order), e.g. by several CPU workers."""
        if len(parts) == 1:
            return parts[0]
        owners, offset = [], 0
        for part in parts:
            owner = part.owner if part.owner is not None else np.arange(part.documents)
            owners.append(owner + offset)
            offset += part.documents
        chunked = any(p.owner is not None for p in parts)
        return Tokens(
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.lengths for p in parts]),
            np.concatenate(owners) if chunked else None,
            offset,
        )


def tokenize_texts(
    tokenizer: TextTokenizer, texts: list[str], max_chars: int, seq_len: int, token_budget: int
) -> Tokens:
    """Texts in, Tokens out; runs in any process. One batched call per path: the Rust tokenizer uses
    its own threads."""
    clipped = clip_texts(texts, max_chars)
    if token_budget <= seq_len:  # one window per text: plain truncation
        windows = tokenizer.encode(clipped, seq_len)
        owner = None
    else:
        first, *last = tokenizer.full.encode("").ids  # the special tokens around a window: [CLS] ... [SEP]
        windows, owners = [], []
        for doc, ids in enumerate(tokenizer.encode(clipped, token_budget, special_tokens=False)):
            for window in chunk_token_ids(ids, seq_len - 2):
                windows.append([first, *window, *last])
                owners.append(doc)
        owner = np.asarray(owners, dtype=np.int64)
    lengths = np.fromiter(map(len, windows), dtype=np.int32, count=len(windows))
    ids = np.fromiter(chain.from_iterable(windows), dtype=np.int32, count=int(lengths.sum()))
    return Tokens(ids, lengths, owner, len(texts))
