"""A reviewer's day in a real browser: upload a PDF, wait for it, review its entities, finish the review.

Debian's chromium (/usr/bin/chromium) is driven through Playwright against pytest-django's live server.
The live server shares the test database (transactional, so both sides see each other's writes) and
serves static files, including htmx from node_modules.
"""

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
from documents.models import Document  # noqa: E402

# Groups "reviewers" and "admins" come from a data migration; a transactional test flushes the
# database afterwards, so restore the migrated rows for every test (serialized_rollback).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def review_document(db, pdf_bytes, entity_types):
    """A ready document (48 words on one page) whose words 1–2, "Ministério Público", the model
    predicted as ORGANIZACAO."""
    from annotation.services import Span, annotations_predict
    from documents.services import document_create, document_extract

    document, _created = document_create(data=pdf_bytes, name="acordao.pdf")
    document = document_extract(document=document)
    assert document.status == Document.Status.READY
    (predicted,) = annotations_predict(document=document, model_version=None,
                                       spans=[Span(1, 3, "ORGANIZACAO", 0.9)])
    return document, predicted


def word(page, index: int):
    return page.locator(f"#page-text .w[data-i='{index}']")


def select_words(page, first: int, last: int) -> None:
    """Click the first word, then shift-click the last one (static/review.js)."""
    word(page, first).click()
    word(page, last).click(modifiers=["Shift"])


def mark_this_page(page) -> None:
    """Leave a mark on the window: it survives HTMX swaps but not a page load."""
    page.evaluate("window.__stillThisPage = true")


def assert_still_this_page(page) -> None:
    assert page.evaluate("window.__stillThisPage === true"), "the page was reloaded or navigated away"


def assert_htmx_loaded(page) -> None:
    assert page.evaluate("typeof htmx") == "object", "htmx did not load (static files not served?)"


def test_a_reviewer_uploads_a_pdf_and_sees_it_ready(page, log_in, reviewer, make_pdf, tmp_path, run_worker):
    pdf = tmp_path / "acordao.pdf"
    pdf.write_bytes(make_pdf())

    log_in(reviewer)
    page.get_by_role("link", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", name="Upload a PDF")).to_be_visible()
    page.set_input_files("#id_file", str(pdf))
    page.get_by_role("button", name="Upload").click()

    page.wait_for_url(re.compile(r"/documents/\d+/$"))
    document = Document.objects.get()
    expect(page).to_have_url(re.compile(rf"/documents/{document.pk}/$"))
    expect(page.locator("h1")).to_have_text("acordao.pdf")
    expect(page.locator(".messages")).to_contain_text("“acordao.pdf” was uploaded and is being processed.")
    status = page.locator("#document-status .status")
    expect(status).to_have_attribute("data-status", "uploaded")
    assert_htmx_loaded(page)
    mark_this_page(page)

    assert run_worker() == 1

    # The status section polls every second and swaps itself in place.
    expect(status).to_have_text("ready")
    expect(page.locator("#word-count")).to_have_text("48")
    expect(page.get_by_role("link", name="Review", exact=True)).to_be_visible()
    assert_still_this_page(page)
    assert page.console_errors == []


def test_a_non_pdf_upload_shows_a_form_error(page, log_in, reviewer, tmp_path, queues):
    fake = tmp_path / "notes.pdf"
    fake.write_text("These are meeting notes, not a PDF.\n")

    log_in(reviewer)
    page.goto("/documents/upload/")
    page.set_input_files("#id_file", str(fake))
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Upload").click()

    assert posted.value.status == 400
    expect(page.locator("#file-errors")).to_contain_text("not a PDF")
    expect(page.get_by_role("heading", name="Upload a PDF")).to_be_visible()
    assert not Document.objects.exists()
    assert queues["default"].count == 0


def test_a_reviewer_adds_accepts_and_rejects_entities_then_marks_the_document_reviewed(
        page, log_in, reviewer, review_document):
    document, predicted = review_document
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    assert_htmx_loaded(page)
    expect(page.locator(f"#entity-{predicted.pk}")).to_contain_text("Ministério Público")
    entity_list = page.locator("#entity-list")
    expect(entity_list.locator("li")).to_have_count(1)
    expect(page.locator("#review-panel")).to_contain_text("1 predicted, 0 accepted, 0 rejected.")
    mark_this_page(page)

    # Add: choose words 13–15, a type, and Add; HTMX swaps the panel in place.
    select_words(page, 13, 15)
    expect(page.locator("#selection")).to_have_text("Justiça . A")
    page.select_option("#add-label", label="PESSOA")
    page.locator("#add-entity").get_by_role("button", name="Add").click()

    added = entity_list.locator(".group", has=page.locator(".badge", has_text="PESSOA")).locator("li")
    expect(added).to_contain_text("Justiça . A")
    expect(added).to_contain_text("accepted")
    expect(page.locator("#review-panel")).to_contain_text("1 predicted, 1 accepted, 0 rejected.")
    expect(page.locator("#page-text mark.entity", has_text="PESSOA")).to_contain_text("Justiça")
    expect(page.get_by_role("alert")).to_have_count(0)

    # Accept, then reject, the model's entity.
    mine = entity_list.locator(f"li[data-annotation='{predicted.pk}']")
    expect(mine).to_contain_text("predicted · 0.90")
    mine.get_by_role("button", name="Accept").click()
    expect(mine).to_have_class(re.compile(r"\bstatus-accepted\b"))
    expect(mine.get_by_role("button", name="Accept")).to_have_count(0)
    expect(page.locator("#review-panel")).to_contain_text("0 predicted, 2 accepted, 0 rejected.")

    mine.get_by_role("button", name="Reject").click()
    expect(mine).to_have_class(re.compile(r"\bstatus-rejected\b"))
    expect(mine).to_contain_text("rejected")
    expect(page.locator("#review-panel")).to_contain_text("0 predicted, 1 accepted, 1 rejected.")
    # A rejected entity is shown as plain text.
    expect(page.locator(f"#entity-{predicted.pk}")).to_have_count(0)
    assert_still_this_page(page)

    created = Annotation.objects.get(document=document, source="human")
    assert (created.start, created.end, created.label.name, created.text) == (13, 16, "PESSOA", "Justiça . A")
    events = list(AnnotationEvent.objects.filter(document=document).exclude(action="predict")
                  .values_list("annotation_id", "action", "user"))
    assert events == [(created.pk, "create", reviewer.pk), (predicted.pk, "accept", reviewer.pk),
                      (predicted.pk, "reject", reviewer.pk)]

    # Finish the review: a normal form post; with no other document waiting it lands on the queue.
    page.get_by_role("button", name="Mark as reviewed").click()
    expect(page).to_have_url(re.compile(r"/documents/$"))
    expect(page.locator(".messages")).to_contain_text("“acordao.pdf” is reviewed and will be used for training.")
    expect(page.locator(f"tr[data-document='{document.pk}'] .status")).to_have_text("reviewed")
    document.refresh_from_db()
    assert document.reviewed_at is not None and document.reviewed_by == reviewer
    assert page.console_errors == []


def test_adding_overlapping_words_shows_an_error_in_place(page, log_in, reviewer, review_document):
    document, predicted = review_document
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    url = page.url
    mark_this_page(page)

    select_words(page, 2, 4)  # "Público do Estado": its first word belongs to "Ministério Público"
    page.select_option("#add-label", label="ORGANIZACAO")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator("#add-entity").get_by_role("button", name="Add").click()

    assert posted.value.status == 422
    alert = page.locator("#review-panel").get_by_role("alert")
    expect(alert).to_contain_text("overlap")
    expect(alert).to_contain_text("Ministério Público")
    assert page.url == url
    assert_still_this_page(page)
    expect(page.locator("#entity-list li")).to_have_count(1)
    assert Annotation.objects.filter(document=document).count() == 1
    assert not AnnotationEvent.objects.filter(document=document, action="create").exists()


def test_a_stranger_is_forbidden_from_the_review_page(page, log_in, stranger, review_document):
    document, _predicted = review_document
    log_in(stranger)
    response = page.goto(f"/review/{document.pk}/")
    assert response.status == 403
    expect(page.locator("#forbidden")).to_contain_text("has no role in docloop yet")
    expect(page.locator("#review-panel")).to_have_count(0)


def test_an_admin_finds_the_training_form_and_a_clear_error_without_reviewed_documents(page, log_in,
                                                                                      admin_user):
    log_in(admin_user)
    page.get_by_role("link", name="Training", exact=True).click()
    expect(page.get_by_role("heading", name="Start a training run")).to_be_visible()
    expect(page.locator("#id_max_length")).to_have_value("64")
    # the learning rate's default depends on the task: the field starts empty and says each task's default
    expect(page.locator("#id_learning_rate")).to_have_value("")
    expect(page.locator("#id_learning_rate_helptext")).to_contain_text("token classification (entities): 0.0003")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.locator("#train-form")).to_contain_text("at least 2 reviewed documents")
    # The refused form is a deliberate 400, which chromium logs; anything else would be a script error.
    assert [e for e in page.console_errors if "status of 400" not in e] == []


def test_a_reviewer_sees_no_training_form_and_can_switch_to_portuguese(page, log_in, reviewer):
    log_in(reviewer)
    page.goto("/training/")
    expect(page.get_by_role("heading", name="Training", exact=True)).to_be_visible()
    expect(page.locator("#train-form")).to_have_count(0)
    page.select_option("select[name=language]", "pt-br")
    expect(page.get_by_role("heading", name="Treinamento", exact=True)).to_be_visible()


def test_a_refused_update_tells_the_reviewer_which_full_run_learns_the_corrections(page, log_in, admin_user,
                                                                                    review_document):
    from django.utils import timezone

    from training.models import FeedbackRequest, FeedbackUpdate, TrainingRun

    document, _predicted = review_document
    Document.objects.filter(pk=document.pk).update(reviewed_at=timezone.now())
    update = FeedbackUpdate.objects.create(task="token_classification", status=FeedbackUpdate.Status.REJECTED,
                                           error="Validation F1 fell from 0.950 (version 3) to 0.850.",
                                           metrics={"before": {"f1": 0.95}, "after": {"f1": 0.85}})
    FeedbackRequest.objects.create(document=document, task="token_classification", update=update,
                                   requested_by=admin_user)
    run = TrainingRun.objects.create(task="token_classification", status=TrainingRun.Status.QUEUED)
    log_in(admin_user)
    page.goto(f"/review/{document.pk}/")
    expect(page.locator("#feedback-reason")).to_contain_text("Validation F1 fell")
    not_lost = page.locator("#feedback-not-lost")
    expect(not_lost).to_contain_text(f"Nothing is lost: this document's corrections are training data, and "
                                     f"full run #{run.pk}, queued or under way, learns them.")
    not_lost.get_by_role("link", name=f"full run #{run.pk}").click()
    page.wait_for_url(re.compile(rf"/training/runs?/{run.pk}/"))


def test_an_update_that_forgot_what_the_run_had_memorised_says_what_it_was_compared_with(page, log_in, admin_user,
                                                                                       review_document):
    from training.models import FeedbackRequest, FeedbackUpdate

    document, _predicted = review_document
    # Published although its validation F1 fell: the parent had memorised the validation document in its
    # full run's refit, and the update stayed above that run's score there before the refit.
    update = FeedbackUpdate.objects.create(
        task="token_classification", status=FeedbackUpdate.Status.PUBLISHED,
        metrics={"before": {"f1": 0.95}, "after": {"f1": 0.81},
                 "reference": {"f1": 0.434, "held_out_documents": [document.pk]}})
    FeedbackRequest.objects.create(document=document, task="token_classification", update=update,
                                   requested_by=admin_user)
    log_in(admin_user)
    page.goto(f"/review/{document.pk}/")
    expect(page.locator("#feedback-result summary")).to_contain_text("Validation F1: 0.950 → 0.810")
    expect(page.locator("#feedback-reference")).to_have_text(
        "The guardrail compared it with 0.434: the full run's F1 before its refit learnt 1 of the validation "
        "documents. The previous version had memorised that document, so forgetting part of it is not a "
        "regression; falling below the run is.")
