"""Reads for documents: the word sequence that entity spans index."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import connection
from django.db.models import Expression, Q
from django.db.models.expressions import Col

from documents.models import Document, Page

PAGE_TEXT_SEARCH_CHARS = 100_000  # training migration 0012 writes the same number into the stored vector


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


# The pages' stored search vector: a column PostgreSQL generates from each page's first
# PAGE_TEXT_SEARCH_CHARS characters (training migration 0012: a tsvector holds at most 1 MB), with a GIN
# index. The Page model does not declare it (SQLite has no such column); queries name it through this field.
_TEXT_VECTOR = SearchVectorField()
_TEXT_VECTOR.set_attributes_from_name("text_vector")


class PageTextVector(Expression):
    """Page.text_vector in a query on pages, under whatever alias the query gives the pages' table."""

    output_field = SearchVectorField()

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        return Col(query.get_initial_alias(), _TEXT_VECTOR, output_field=SearchVectorField())


def document_search_filter(*, search: str) -> Q:
    """A filter on documents: the name contains `search`, or one page's text has its words.

    Names match any substring (a trigram index on PostgreSQL). Text matches word by word: every word of the
    search must begin a word of one page, in any order, case-insensitively (PostgreSQL full-text search with
    the `simple` configuration: no stemming, no stop words; the GIN index of migration 0006). A substring
    test of the text read every page that held the string: on 10,000 documents a common word took 350 ms,
    the index under 25 ms (docs/performance.md). Only a page's first PAGE_TEXT_SEARCH_CHARS characters are
    searched there. The vector is stored (training migration 0012): a common word, for which PostgreSQL
    scans the pages instead of the index, no longer re-tokenises each page's text (5.5 s → ms on 4,000
    pages). SQLite: each word a substring test of one page's text.

    One OR of the name test and `id IN (pages)`: PostgreSQL hashes the matching pages' documents once and
    tests each document against the hash (24 ms for a word in 9,883 of 10,000 documents); a UNION of two id
    sets was joined back one index probe per match (37 ms)."""
    names = Q(original_name__icontains=search)
    if connection.vendor != "postgresql":
        words = [Q(text__icontains=word) for word in search.split()]
        return names | Q(pk__in=Page.objects.filter(*words).values("document_id")) if words else names
    with connection.cursor() as cursor:  # the search's words as PostgreSQL's parser cuts the pages' text
        cursor.execute("SELECT tsvector_to_array(to_tsvector('simple', %s))", [search])
        lexemes = cursor.fetchone()[0]
    if not lexemes:
        return names
    query = " & ".join("'{}':*".format(lexeme.replace("\\", "\\\\").replace("'", "''")) for lexeme in lexemes)
    pages = (Page.objects.annotate(vector=PageTextVector())
             .filter(vector=SearchQuery(query, config="simple", search_type="raw")))
    return names | Q(pk__in=pages.values("document_id"))
