"""Pages in Brazilian Portuguese in a real browser, under the Content-Security-Policy: the queue's page
counts, the 404 page and a visit to a POST-only address (the catalogue compiled for the session)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

from django.conf import settings  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def portuguese_page(portuguese, page, live_server):
    """The browser asks for English (conftest's page); the language cookie, as the menu sets it, wins."""
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "pt-br", "url": live_server.url}])
    return page


def test_the_queue_counts_a_documents_pages_in_portuguese(portuguese_page, log_in, reviewer):
    from documents.pdf import pdf_render_lines
    from documents.services import document_create, document_extract

    lines = [["Primeira", "página", "."]] * 60 + [["Segunda", "."]]
    document = document_extract(document=document_create(data=pdf_render_lines(lines), name="duas.pdf")[0])
    assert document.page_count == 2
    page = portuguese_page
    log_in(reviewer)
    response = page.goto("/documents/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    row = page.locator(f"tr[data-document='{document.pk}']")
    expect(row).to_contain_text("2 páginas")
    expect(row).not_to_contain_text("próxima página")
    assert page.console_errors == []


def test_an_unknown_address_shows_the_apps_404_page_in_portuguese(portuguese_page, log_in, reviewer):
    page = portuguese_page
    log_in(reviewer)
    response = page.goto("/documents/999999/nothing-here/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Página não encontrada")).to_be_visible()
    expect(page.locator("header.top .brand")).to_be_visible()
    page.get_by_role("link", name="Ir para os documentos").click()
    page.wait_for_url("**/documents/")
    assert [e for e in page.console_errors if "404" not in e] == []


def test_opening_the_training_start_address_explains_it_in_portuguese(portuguese_page, log_in, reviewer,
                                                                       live_server):
    page = portuguese_page
    log_in(reviewer)
    # As a link from the training page would open it (typing the address sends no Referer).
    response = page.goto("/training/start/", referer=f"{live_server.url}/training/")
    assert response.status == 405
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", name="Este endereço recebe um formulário, não uma visita")).to_be_visible()
    page.get_by_role("link", name="Voltar").click()
    page.wait_for_url("**/training/")
    assert [e for e in page.console_errors if "405" not in e] == []
