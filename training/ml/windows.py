"""Cutting a document's words into windows that fit the model, labels on each word's first sub-token.

Needs a tokenizer object but imports no ML library itself.
"""

from __future__ import annotations

from collections.abc import Sequence

IGNORE = -100  # label of sub-tokens that are not a word's first, and of special tokens
SENTENCE_ENDS = (".", "!", "?", ";")


def split_windows(words: Sequence[str], line_ends: Sequence[bool], lengths: Sequence[int],
                  budget: int) -> list[tuple[int, int]]:
    """Cut a word sequence into [start, end) windows of at most `budget` sub-tokens.

    Cuts at the last sentence end that keeps the window at least half full, else at the last line end,
    else before the word that does not fit. No word is dropped; a single word longer than the budget
    gets a window of its own (and is truncated by the tokenizer).
    """
    windows: list[tuple[int, int]] = []
    n = len(words)
    start = 0
    while start < n:
        used = 0
        last_sentence = last_line = None
        i = start
        while i < n:
            cost = min(lengths[i], budget)
            if used + cost > budget and i > start:
                break
            used += cost
            if words[i].endswith(SENTENCE_ENDS):
                last_sentence = i + 1
            if line_ends[i]:
                last_line = i + 1
            i += 1
        if i >= n:
            windows.append((start, n))
            break
        half = start + (i - start) // 2
        if last_sentence and last_sentence >= half:
            cut = last_sentence
        elif last_line and last_line >= half:
            cut = last_line
        else:
            cut = i
        windows.append((start, cut))
        start = cut
    return windows


def word_lengths(tokenizer, words: Sequence[str]) -> list[int]:
    """Sub-tokens per word (at least 1)."""
    if not words:
        return []
    ids = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    return [max(1, len(x)) for x in ids]


def encode_windows(tokenizer, words: Sequence[str], line_ends: Sequence[bool], *, max_length: int,
                   tags: Sequence[str] | None = None,
                   label2id: dict[str, int] | None = None) -> list[dict]:
    """Encode a document as windows; each carries the document word index of every first sub-token
    (-1 elsewhere) and, when tags and label2id are given, the labels."""
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    windows = split_windows(words, line_ends, word_lengths(tokenizer, words), budget)
    if not windows:
        return []
    encoded = tokenizer([list(words[s:e]) for s, e in windows], is_split_into_words=True,
                        truncation=True, max_length=max_length)
    items = []
    for k, (s, _e) in enumerate(windows):
        first_of_word = []  # document word index at each position, or -1
        previous = None
        for wid in encoded.word_ids(k):
            first_of_word.append(s + wid if wid is not None and wid != previous else -1)
            previous = wid
        item = {"input_ids": encoded["input_ids"][k], "attention_mask": encoded["attention_mask"][k],
                "word_index": first_of_word}
        if "token_type_ids" in encoded:
            item["token_type_ids"] = encoded["token_type_ids"][k]
        if label2id is not None and tags is not None:
            item["labels"] = [label2id.get(tags[w], 0) if w >= 0 else IGNORE for w in first_of_word]
        items.append(item)
    return items
