"""Page images render under a time budget (DOCLOOP_PAGE_IMAGE_SECONDS): a page of many vector operations is
refused with the reason instead of holding a web worker, and the refusal is remembered for that page and
width, so the next request does not render it again."""

from __future__ import annotations

import time

import pymupdf
import pytest
from django.urls import reverse

from documents.services import document_create, document_extract


def heavy_pdf(lines: int) -> bytes:
    """One page with a line of text and `lines` stroked lines drawn over it (slow to rasterise, quick to read)."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_text((72, 72), "Acórdão do tribunal sobre o recurso de apelação", fontsize=11)
    page.clean_contents()
    xref = page.get_contents()[0]
    drawing = "".join(f"{i % 595} {i % 842} m {(i * 7) % 595} {(i * 13) % 842} l S\n" for i in range(lines))
    doc.update_stream(xref, doc.xref_stream(xref) + b"\n0.1 w\n" + drawing.encode())
    return doc.tobytes(deflate=True)


@pytest.fixture
def heavy_document(db):
    document, _created = document_create(data=heavy_pdf(3000), name="pesado.pdf")
    document = document_extract(document=document)
    assert document.status == "ready" and document.word_count == 8, document.error
    return document


def test_a_page_over_the_budget_is_refused_with_the_reason_and_not_rendered_again(
        client, reviewer, heavy_document, media_root, settings):
    settings.DOCLOOP_PAGE_IMAGE_SECONDS = 0.5
    client.force_login(reviewer)
    url = reverse("documents:page-image", args=[heavy_document.pk, 1])
    started = time.monotonic()
    response = client.get(url, {"w": 1200})
    took = time.monotonic() - started
    assert response.status_code == 422 and response["Content-Type"].startswith("image/svg+xml")
    assert "too complex to show as an image within 0.5 seconds" in response["X-Docloop-Refused"]
    assert "too complex to show as an image" in response.content.decode()  # shown where the page would be
    assert took < 3, f"the refused render held the request {took:.1f} s"
    assert not list(media_root.rglob("renders/**/*.jpg"))
    assert [p.name for p in media_root.rglob("renders/**/*.refused.json")] == ["1-1200.refused.json"]

    started = time.monotonic()
    again = client.get(url, {"w": 1200})
    assert again.status_code == 422 and again["X-Docloop-Refused"] == response["X-Docloop-Refused"]
    assert time.monotonic() - started < 0.4  # remembered: no render this time

    # The review page still opens, with the words to review beside the refused image.
    body = client.get(reverse("annotation:review", args=[heavy_document.pk])).content.decode()
    assert "recurso" in body and 'id="page-image"' in body


def test_a_larger_budget_renders_the_page_a_smaller_one_refused(client, reviewer, settings, media_root, db):
    document, _created = document_create(data=heavy_pdf(1500), name="menos-pesado.pdf")
    document = document_extract(document=document)
    client.force_login(reviewer)
    url = reverse("documents:page-image", args=[document.pk, 1])
    settings.DOCLOOP_PAGE_IMAGE_SECONDS = 0.1
    assert client.get(url, {"w": 800}).status_code == 422
    settings.DOCLOOP_PAGE_IMAGE_SECONDS = 60
    response = client.get(url, {"w": 800})
    assert response.status_code == 200 and b"".join(response.streaming_content)[:2] == b"\xff\xd8"
    assert not list(media_root.rglob("renders/**/*.refused.json"))
