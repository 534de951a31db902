"""Reads for annotations: what the review page shows and what training learns from."""

from __future__ import annotations

from dataclasses import dataclass, field

from annotation.models import Annotation, EntityType
from documents.models import Document, Page


def document_annotations(*, document: Document, include_rejected: bool = True):
    qs = Annotation.objects.filter(document=document).select_related("label", "model_version")
    if not include_rejected:
        qs = qs.exclude(status=Annotation.Status.REJECTED)
    return qs.order_by("start", "id")


def accepted_spans(*, document: Document) -> list[tuple[int, int, str]]:
    """The latest accepted entities of a document as (start, end, label), non-overlapping, in order."""
    spans: list[tuple[int, int, str]] = []
    last_end = -1
    for start, end, label in (
        Annotation.objects.filter(document=document, status=Annotation.Status.ACCEPTED)
        .order_by("start", "-end", "id")
        .values_list("start", "end", "label__name")
    ):
        if start >= last_end:
            spans.append((start, end, label))
            last_end = end
    return spans


def entity_types():
    return EntityType.objects.all()


@dataclass
class Segment:
    """A run of words on a review page: plain text, or one entity's words."""

    words: list[tuple[int, str, bool]] = field(default_factory=list)  # (index, text, line_end)
    annotation: Annotation | None = None


def review_segments(*, page: Page, annotations: list[Annotation]) -> list[Segment]:
    """Cut a page's words into plain runs and entity runs (rejected entities are shown as plain text)."""
    by_start = {a.start: a for a in annotations if a.status != Annotation.Status.REJECTED}
    segments: list[Segment] = []
    raw = page.words
    line_ends = page.line_ends
    i = 0
    while i < len(raw):
        index = page.word_start + i
        annotation = by_start.get(index)
        if annotation is None:
            # an entity that began on the previous page continues here
            annotation = next((a for a in by_start.values() if a.start < index < a.end and i == 0), None)
        if annotation is not None:
            stop = min(annotation.end - page.word_start, len(raw))
            segment = Segment(annotation=annotation)
        else:
            stop = i + 1
            if segments and segments[-1].annotation is None:
                segment = segments.pop()
            else:
                segment = Segment()
        for j in range(i, stop):
            segment.words.append((page.word_start + j, raw[j], line_ends[j]))
        segments.append(segment)
        i = stop
    return segments
