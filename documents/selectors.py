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


@dataclass(frozen=True)
class OcrSummary:
    pages: list[int]  # the numbers of the pages read by OCR
    confidence: float | None  # Tesseract's mean word confidence over those pages, 0-100


def document_ocr_summary(*, document: Document) -> OcrSummary | None:
    """Which pages were read by OCR, and how confidently; None for a document without scanned pages."""
    rows = list(Page.objects.filter(document=document, ocr=True).order_by("number")
                .values_list("number", "ocr_confidence"))
    if not rows:
        return None
    confidences = [c for _n, c in rows if c is not None]
    return OcrSummary([n for n, _c in rows],
                      round(sum(confidences) / len(confidences), 1) if confidences else None)


def document_list(*, status: str | None = None):
    qs = Document.objects.select_related("uploaded_by", "reviewed_by")
    if status:
        qs = qs.filter(status=status)
    return qs
