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
    for page in Page.objects.filter(document=document).order_by("number").only("number", "words", "boxes",
                                                                                    "lines"):
        for text, box, line_end in zip(page.words, page.word_boxes, page.line_ends, strict=True):
            words.append(Word(len(words), text, page.number, box, line_end))
    return words


def document_list(*, status: str | None = None):
    qs = Document.objects.select_related("uploaded_by", "reviewed_by")
    if status:
        qs = qs.filter(status=status)
    return qs
