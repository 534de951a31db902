"""Which documents a search finds: names by any substring, text by the beginnings of its words."""
import pytest
from django.db import connection

from documents.models import Document
from documents.selectors import document_search_filter

pytestmark = pytest.mark.django_db


def _found(search: str) -> set[int]:
    return set(Document.objects.filter(document_search_filter(search=search)).values_list("pk", flat=True))


def test_a_search_finds_a_document_by_any_part_of_its_name(ready_document):
    assert _found("cordã") == set() and _found("CORDAO") == {ready_document.pk}
    assert _found("rdao.p") == {ready_document.pk}


def test_a_search_finds_a_document_by_the_beginnings_of_its_words_in_any_order_and_case(ready_document, make_pdf):
    from documents.services import document_create, document_extract

    other = document_extract(document=document_create(data=make_pdf([["Outro", "despacho", "."]]), name="b.pdf")[0])
    assert _found("ministério") == {ready_document.pk}
    assert _found("Minist") == {ready_document.pk}
    assert _found("tribunal superior") == {ready_document.pk}
    assert _found("8.666") == {ready_document.pk}
    assert _found("despacho") == {other.pk}
    assert _found("despacho ministério") == set()
    assert _found("inexistente") == set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="full-text search is PostgreSQL's")
def test_on_postgresql_quotes_and_operators_in_a_search_are_words_not_syntax(ready_document):
    for search in ("Ministério' | 'x", "tribunal & !justiça", "(São", "\\' :*", "!!!", ""):
        _found(search)  # no syntax error reaches the user
    assert _found("(São") == {ready_document.pk}


def test_a_page_of_100000_distinct_words_is_stored_and_found_by_its_first_words(ready_document):
    """PostgreSQL's tsvector holds at most 1 MB: the index covers a page's first 100,000 characters, so a
    page of any size is still written (an index on the whole text refused this row)."""
    from documents.models import Page

    text = " ".join(f"termo{i:06d}x" for i in range(100_000))  # 1.3 MB of distinct words
    Page.objects.create(document=ready_document, number=99, width=600, height=800, text=text, word_start=10**6)
    assert _found("termo000001x") == {ready_document.pk}
