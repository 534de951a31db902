"""Finishing a review in a real browser (Debian's chromium through Playwright): "Mark as reviewed" first says
what it would accept (the predictions still standing, the pages never opened, the least confidence) and
accepts only once confirmed; without JavaScript the same happens on a page of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from annotation.models import Annotation, AnnotationEvent  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _three_pages(make_pdf, settings):
    """A 3-page document with a prediction on each page; the one on page 3 is the least confident."""
    from annotation.services import Span, annotations_predict
    from documents.services import document_create, document_extract

    settings.DOCLOOP_REVIEW_PIECE_WORDS = 600
    lines = [[f"linha{i}", "do", "texto", "."] for i in range(90)]
    document = document_extract(document=document_create(data=make_pdf(lines), name="tres.pdf")[0])
    starts = dict(document.pages.values_list("number", "word_start"))
    assert document.page_count == 3, starts
    annotations_predict(document=document, model_version=None, spans=[
        Span(0, 1, "ORGANIZACAO", 0.9), Span(starts[2] + 4, starts[2] + 5, "LOCAL", 0.6),
        Span(starts[3] + 8, starts[3] + 9, "LEGISLACAO", 0.25)])
    return document


def test_marking_reviewed_asks_to_confirm_what_it_accepts_and_then_accepts_it(page, log_in, reviewer, make_pdf,
                                                                              settings):
    document = _three_pages(make_pdf, settings)
    lowest = Annotation.objects.get(document=document, score=0.25)
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    page.get_by_role("button", name="Mark as reviewed").click()

    confirm = page.locator("#finish-confirm")
    expect(confirm).to_contain_text("Mark as reviewed?")
    expect(page.locator("#finish-standing")).to_contain_text("3 predicted entities still standing")
    expect(page.locator("#finish-standing")).to_contain_text(f"“{lowest.text}” (LEGISLACAO) at 0.25")
    expect(page.locator("#finish-unseen")).to_contain_text("2 of them you have not seen")
    expect(page.locator("#finish-unopened")).to_contain_text("Parts of the document you never opened: pages 2–3.")
    expect(page).to_have_url(re.compile(rf"/review/{document.pk}/$"))  # still the review page: a fragment
    document.refresh_from_db()
    assert document.reviewed_at is None and not AnnotationEvent.objects.filter(action="finish_accept").exists()

    # Keep reviewing: open page 2 (the summary then names page 3 only), and ask again.
    page.locator("#next-page").click()
    expect(page.locator("#review-panel")).to_contain_text("page 2 of 3")
    page.get_by_role("button", name="Mark as reviewed", exact=True).click()
    expect(page.locator("#finish-unopened")).to_contain_text("never opened: page 3.")
    expect(page.locator("#finish-unseen")).to_contain_text("1 of them you have not seen")

    page.get_by_role("button", name="Accept them and mark as reviewed").click()
    expect(page).to_have_url(re.compile(r"/documents/$"))
    expect(page.locator(".messages")).to_contain_text("“tres.pdf” is reviewed")
    document.refresh_from_db()
    assert document.reviewed_by == reviewer
    assert sorted(AnnotationEvent.objects.exclude(action="predict").values_list("action", "user")) == [
        ("finish_accept", reviewer.pk)] * 3
    assert page.console_errors == []


def test_without_javascript_the_confirmation_is_a_page(browser, live_server, reviewer, make_pdf, settings):
    from tests.browser.conftest import PASSWORD

    document = _three_pages(make_pdf, settings)
    context = browser.new_context(base_url=live_server.url, locale="en-US", java_script_enabled=False,
                                  extra_http_headers={"Accept-Language": "en"})
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.fill("#id_username", reviewer.get_username())
        page.fill("#id_password", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        page.goto(f"/review/{document.pk}/")
        page.get_by_role("button", name="Mark as reviewed").click()
        expect(page).to_have_url(re.compile(rf"/review/{document.pk}/finish/$"))
        expect(page.locator("#finish-standing")).to_contain_text("3 predicted entities still standing")
        document.refresh_from_db()
        assert document.reviewed_at is None
        page.get_by_role("button", name="Accept them and mark as reviewed").click()
        expect(page).to_have_url(re.compile(r"/documents/$"))
        document.refresh_from_db()
        assert document.reviewed_by == reviewer
    finally:
        context.close()
