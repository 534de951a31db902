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


def test_the_models_page_counts_a_few_long_documents_in_passages(page, log_in, reviewer, settings, tmp_path):
    """Three 1,000-word documents meet the default floor (10 units, 100 entities) as 12 passages of 250
    words: the evaluation set's card says so, and the badge trusts a good score measured on them."""
    import io

    from django.core.management import call_command

    from tests.training.conftest import conll_text
    from tests.training.test_quality import _spans
    from training.ml.metrics import span_counts_per_document, span_scores
    from training.services.gates import evaluation_set_sample, version_score_store

    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_EVAL_MIN_ENTITIES = 10, 100
    settings.DOCLOOP_EVAL_FRACTION = 0.2
    for i in range(10):
        (tmp_path / f"doc{i:03d}.conll").write_text(conll_text(i, 100), encoding="utf-8")
    call_command("import_conll", str(tmp_path), "--reviewed", stdout=io.StringIO())
    evaluation_set = evaluation_set_sample(task="token_classification")
    version = _version(metrics={}, eval_documents=0)
    gold, predicted = _spans([200, 200, 200], [190, 185, 195])
    version_score_store(version=version, evaluation_set=evaluation_set,
                        scores={**span_scores(gold, predicted), "words": 3000,
                                "per_document": span_counts_per_document(gold, predicted)})
    log_in(reviewer)
    page.goto(reverse("training:models"))
    card = page.locator("#evaluation-set-token_classification")
    expect(card).to_contain_text("3 documents, 600 entities.")
    expect(card.locator("[data-units]")).to_contain_text("12 passages of 250 words")
    expect(card.locator("[data-floor='met']")).to_be_visible()
    badge = page.locator("#model-quality-token_classification")
    expect(badge.locator("summary")).to_contain_text("Good")
    badge.locator("summary").click()
    expect(badge).to_contain_text("on 3 documents (12 passages of 250 words), 600 entities")
    assert page.console_errors == []
