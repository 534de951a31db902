"""Self-training: documents nobody has reviewed yet, taught with the model's own confident predictions.

A weak row is a token row (`tokens`, `line_ends`, BIO `tags`) built from predictions instead of a review:
the spans predicted with at least `threshold` confidence are its entities; the words of the spans predicted
with less are left out of the loss (neither taught as that entity nor as "O"); every other word is "O".
Spans a person already accepted on a document still under review count as entities, and the words of spans
a person rejected or deleted as "O". The whole row weighs `weight` (below 1: a human label always counts
more), carried as `weak_weight`, and the words left out as `weak_ignored` ([start, end) word indexes):
`training.ml.token_classification.word_weights` turns both into per-word loss weights.

Weak rows never enter a dataset snapshot: a run adds them to its training documents only (never to the
validation documents that choose its epochs, nor to the gate's), records how many in its statistics, and
exports, dataset counts and the review queue never see them (`training.dataset_builder.weak_token_rows`).

Pure Python, like `training.ml.snapshot`: the bench (`bench/self_training.py`) builds its weak rows here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from training.ml.bio import spans_to_bio


@dataclass(frozen=True)
class WeakSpan:
    start: int
    end: int
    label: str
    score: float | None  # the model's confidence; None for a span a person accepted
    human: bool = False  # accepted by a person on a document still under review


def weak_row(*, document: str, tokens: Sequence[str], line_ends: Sequence[bool], spans: Iterable[WeakSpan],
             threshold: float, weight: float, labels: Iterable[str] | None = None) -> dict | None:
    """The weak row of one unreviewed document, or None when it holds no confident entity (a document the
    model found nothing sure in teaches mostly its own misses as "O").

    `spans` are the document's active predicted (and person-accepted) spans; `labels` limits the entities to
    those the model being trained knows (a span of another type is left out of the loss, not taught as "O").
    """
    if not 0 < weight <= 1:
        raise ValueError("the weight of weak labels must be above 0 and at most 1")
    known = set(labels) if labels is not None else None
    sure: list[tuple[int, int, str]] = []
    ignored: list[list[int]] = []
    n = len(tokens)
    # Of two spans that overlap, the one that starts first (then the longer) is kept, as for human rows.
    last_end = -1
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        start, end = max(0, span.start), min(n, span.end)
        if end <= start:
            continue
        confident = span.human or (span.score is not None and span.score >= threshold)
        if confident and (known is None or span.label in known) and start >= last_end:
            sure.append((start, end, span.label))
            last_end = end
        else:
            ignored.append([start, end])
    if not sure:
        return None
    ignored = [[s, e] for s, e in ignored if not any(ss <= s and e <= ee for ss, ee, _l in sure)]
    return {"document": document, "tokens": list(tokens), "line_ends": list(line_ends),
            "tags": spans_to_bio(sure, n), "weak_weight": float(weight), "weak_ignored": ignored}


def weak_statistics(rows: Sequence[dict]) -> dict:
    """What a run records of the weak rows it trained on."""
    entities = sum(sum(1 for tag in row["tags"] if tag.startswith("B-")) for row in rows)
    return {"documents": len(rows), "words": sum(len(row["tokens"]) for row in rows), "entities": entities,
            "documents_keys": [row["document"] for row in rows]}


def weak_rows_within(rows: Iterable[dict], *, max_words: int) -> list[dict]:
    """The rows, in the order given, while their words stay within `max_words`."""
    chosen: list[dict] = []
    words = 0
    for row in rows:
        if words + len(row["tokens"]) > max_words:
            continue  # a shorter document further on may still fit
        chosen.append(row)
        words += len(row["tokens"])
    return chosen
