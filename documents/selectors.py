"""Reads for documents: the word sequence that entity spans index."""

from __future__ import annotations

from dataclasses import dataclass

from documents.models import Document, Page


@dataclass(frozen=True)
class Word:
    index: int
    text: str
    page: int
    box: tuple[float, float, float, float]
    line_end: bool  # the last word of a PDF line


def document_words(*, document: Document) -> list[Word]:
    """The document's words in reading order, numbered across pages."""
    words: list[Word] = []
    for page in Page.objects.filter(document=document).order_by("number").only("number", "words"):
        raw = page.words
        for i, w in enumerate(raw):
            nxt = raw[i + 1] if i + 1 < len(raw) else None
            line_end = nxt is None or (nxt[5], nxt[6]) != (w[5], w[6])
            words.append(Word(len(words), w[0], page.number, (w[1], w[2], w[3], w[4]), line_end))
    return words


def document_list(*, status: str | None = None):
    qs = Document.objects.select_related("uploaded_by", "reviewed_by")
    if status:
        qs = qs.filter(status=status)
    return qs
