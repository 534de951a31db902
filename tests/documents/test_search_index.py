"""The queue's text search on PostgreSQL reads the pages' stored search vector and its GIN index; it never
re-tokenises the pages' text, whichever plan PostgreSQL picks (a word on most pages got a sequential scan
that ran to_tsvector on every page: 500 ms on 2,945 pages)."""

from __future__ import annotations

import pytest
from django.db import connection

from annotation.selectors import review_queue
from documents.models import Document, Page

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql",
                                reason="full-text search and its index are PostgreSQL's; SQLite tests substrings")


@pytest.fixture
def many_pages(db):
    documents = Document.objects.bulk_create(
        Document(original_name=f"acordao-{i}.pdf", sha256=f"{i:064x}", size=1, status=Document.Status.READY)
        for i in range(300))
    Page.objects.bulk_create(
        (Page(document=document, number=1, width=600, height=800, word_start=0,
              text=f"O tribunal negou provimento ao recurso {document.pk} do réu Souza")
         for document in documents), batch_size=300)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_page")
    return documents


def _plan(queryset, *, seqscan: bool = True) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL enable_seqscan = {'on' if seqscan else 'off'}")
    try:
        return queryset.explain()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = on")


def test_a_search_can_be_answered_from_the_gin_index_of_the_stored_vector(many_pages):
    plan = _plan(review_queue(search="souza"), seqscan=False)
    assert "Bitmap Index Scan on documents_page_text_vector" in plan, plan
    assert "text_vector @@" in plan


def test_a_common_word_never_re_tokenises_the_pages(many_pages):
    queryset = review_queue(search="tribunal")  # on every page: PostgreSQL may well scan them all
    plan = _plan(queryset)
    assert "to_tsvector" not in plan and "text_vector @@" in plan, plan
    assert queryset.count() == len(many_pages)


def test_the_stored_vector_follows_the_page_text(many_pages):
    page = Page.objects.filter(document=many_pages[0]).get()
    page.text = "Embargos de declaração rejeitados"
    page.save(update_fields=["text"])
    assert set(review_queue(search="embargos").values_list("pk", flat=True)) == {many_pages[0].pk}
    assert many_pages[0].pk not in set(review_queue(search="tribunal").values_list("pk", flat=True))
