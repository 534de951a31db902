"""The model quality badge in a real browser (issue 21, point 6): closed on the review page, it opens on a
click, without any script of ours, to the plain sentence and the per-label table."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

from django.urls import reverse  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from tests.training.test_quality import _metrics, _version  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_the_review_pages_badge_opens_to_the_verdict_and_the_labels(page, log_in, reviewer, ready_document,
                                                                    settings):
    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_EVAL_MIN_ENTITIES = 10, 100
    _version(metrics=_metrics([40, 37], [2, 0], wrong=1), eval_documents=2)
    log_in(reviewer)
    page.goto(reverse("annotation:review", args=[ready_document.pk]))
    badge = page.locator("#model-quality-token_classification")
    expect(badge.locator("summary")).to_contain_text("Too weak to trust")
    table = badge.locator("table.quality-labels")
    expect(table).to_be_hidden()
    badge.locator("summary").click()
    expect(table).to_be_visible()
    expect(badge).to_contain_text("check every prediction (F1 0.05 on 2 documents, 77 entities)")
    expect(table.locator("tr[data-label='LOCAL'] td").nth(4)).to_have_text("38")
    assert page.console_errors == []
