"""BIO tags <-> entity spans [start, end) over a document's words."""

from __future__ import annotations

SpanTuple = tuple[int, int, str]


def bio_to_spans(tags: list[str]) -> list[SpanTuple]:
    """Decode BIO tags into [start, end) spans. An I- that does not continue an entity starts one."""
    spans: list[SpanTuple] = []
    start, label = None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and label == name
        if start is not None and not continues:
            spans.append((start, i, label))
            start, label = None, None
        if prefix in {"B", "I"} and not continues:
            start, label = i, name
    return spans


def spans_to_bio(spans: list[SpanTuple], length: int) -> list[str]:
    tags = ["O"] * length
    for start, end, label in spans:
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return tags
