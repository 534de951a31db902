"""The review workspace in a real browser (Debian's chromium through Playwright, against the live server):
accept and reject predictions, add an entity by drawing on the page image, relabel by keyboard, finish and
land on the next document, meet a conflict, and restore from the history. Each test checks the database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

from django.conf import settings  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from annotation.models import Annotation, AnnotationEvent  # noqa: E402
from tests.browser.conftest import PASSWORD  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
ARTEFACTS = Path(settings.BASE_DIR) / "test-results"


def _document(make_pdf, spans, sentences=None, name="acordao.pdf"):
    from annotation.services import Span, annotations_predict
    from documents.services import document_create, document_extract

    document = document_extract(document=document_create(data=make_pdf(sentences), name=name)[0])
    annotations_predict(document=document, model_version=None, spans=[Span(*s) for s in spans])
    return document


def _expected_console(page) -> list[str]:
    """Console errors other than the deliberate 409/422 answers chromium logs."""
    return [e for e in page.console_errors if "status of 409" not in e and "status of 422" not in e]


def test_accepting_and_rejecting_predicted_entities(page, log_in, reviewer, make_pdf, entity_types):
    document = _document(make_pdf, [(1, 3, "ORGANIZACAO", 0.9), (18, 21, "PESSOA", 0.6)])
    first, second = Annotation.objects.filter(document=document).order_by("start")
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    # Predicted and verified entities look different: dashed until someone decides.
    expect(page.locator(f"#page-overlay g.box.status-predicted[data-annotation='{first.pk}']")).to_have_count(1)
    page.locator(f"#entity-list li[data-annotation='{first.pk}']").get_by_role("button", name="Accept").click()
    expect(page.locator(f"#page-overlay g.box.status-accepted[data-annotation='{first.pk}']")).to_have_count(1)
    page.locator(f"#entity-list li[data-annotation='{second.pk}']").get_by_role("button", name="Reject").click()
    expect(page.locator(f"#entity-list li[data-annotation='{second.pk}']")).to_have_class(
        re.compile(r"\bstatus-rejected\b"))
    expect(page.locator("#review-counts")).to_contain_text("0 predicted, 1 accepted, 1 rejected.")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.reviewer, second.status, second.reviewer) == ("accepted", reviewer, "rejected",
                                                                              reviewer)
    assert list(AnnotationEvent.objects.exclude(action="predict").values_list("annotation", "action",
                                                                              "base_revision")) == [
        (first.pk, "accept", 1), (second.pk, "reject", 1)]
    assert _expected_console(page) == []


def test_adding_an_entity_by_drawing_a_box_over_words_on_the_page_image(page, log_in, reviewer, make_pdf,
                                                                         entity_types):
    from annotation.selectors import page_word_boxes

    document = _document(make_pdf, [(1, 3, "ORGANIZACAO", 0.9)])
    pdf_page = document.pages.get()
    boxes = page_word_boxes(page=pdf_page, first=18, count=3)  # "João da Silva"
    log_in(reviewer)
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(f"/review/{document.pk}/")
    image = page.locator("#page-image")
    expect(image).to_be_visible()
    page.wait_for_function("document.getElementById('page-image').complete")
    overlay = page.locator("#page-overlay").bounding_box()
    scale = overlay["width"] / pdf_page.width

    def screen(x, y):
        return overlay["x"] + x * scale, overlay["y"] + y * scale

    start = screen(boxes[0][0] + 1, boxes[0][1] + 1)
    end = screen(boxes[-1][2] - 1, boxes[-1][3] - 1)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    expect(page.locator("#selection")).to_have_text("João da Silva")
    expect(page.locator("#selection-boxes rect")).to_have_count(3)
    page.select_option("#add-label", label="PESSOA")
    page.locator("#add-entity").get_by_role("button", name="Add").click()
    added = page.locator("#entity-list li.human")
    expect(added).to_contain_text("João da Silva")
    expect(page.locator(f"#page-overlay g.box[data-annotation='{Annotation.objects.latest('id').pk}']")).to_have_count(1)

    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "review-page.png"), full_page=True)
    created = Annotation.objects.get(document=document, source="human")
    assert (created.start, created.end, created.label.name, created.status) == (18, 21, "PESSOA", "accepted")
    assert AnnotationEvent.objects.filter(annotation=created, action="create", user=reviewer).exists()
    assert (ARTEFACTS / "review-page.png").stat().st_size > 10_000
    assert _expected_console(page) == []


def test_relabelling_by_keyboard(page, log_in, reviewer, make_pdf, entity_types):
    document = _document(make_pdf, [(1, 3, "ORGANIZACAO", 0.9), (18, 21, "LOCAL", 0.6)])
    second = Annotation.objects.get(document=document, start=18)
    shortcut = entity_types["PESSOA"].shortcut
    assert shortcut, "the default types come with digit shortcuts"
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    expect(page.locator("#shortcuts")).to_contain_text(f"{shortcut} PESSOA")
    expect(page.locator("#entity-list li.chosen")).to_have_count(1)
    page.keyboard.press("j")  # the first entity is chosen on load; j moves to the next one
    expect(page.locator(f"#entity-list li.chosen[data-annotation='{second.pk}']")).to_have_count(1)
    page.keyboard.press(shortcut)
    row = page.locator(f"#entity-list li[data-annotation='{second.pk}']")
    expect(row).to_have_class(re.compile(r"\bstatus-accepted\b"))
    expect(page.locator(f"#entity-list .group:has(li[data-annotation='{second.pk}']) .badge")).to_have_text("PESSOA")
    page.keyboard.press("r")  # reject the same (still chosen) entity
    expect(row).to_have_class(re.compile(r"\bstatus-rejected\b"))
    second.refresh_from_db()
    assert (second.label.name, second.status, second.revision) == ("PESSOA", "rejected", 3)
    assert list(second.events.values_list("action", flat=True)) == ["predict", "relabel", "reject"]
    assert _expected_console(page) == []


def test_marking_reviewed_lands_on_the_next_document(page, log_in, reviewer, make_pdf, entity_types):
    document = _document(make_pdf, [(1, 3, "ORGANIZACAO", 0.9)])
    following = _document(make_pdf, [(0, 1, "LOCAL", 0.5)], sentences=[["Outro", "acórdão", "aqui", "."]],
                          name="outro.pdf")
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    page.get_by_role("button", name="Mark as reviewed").click()
    # The prediction left standing is accepted only once confirmed (tests/browser/test_finish_in_browser.py).
    page.locator("#finish-accept").click()
    expect(page).to_have_url(re.compile(rf"/review/{following.pk}/$"))
    expect(page.locator("h1")).to_have_text("outro.pdf")
    expect(page.locator(".messages")).to_contain_text("“acordao.pdf” is reviewed")
    document.refresh_from_db()
    assert document.reviewed_by == reviewer
    assert Annotation.objects.get(document=document).status == "accepted"
    following.refresh_from_db()
    assert following.reviewed_at is None


def test_a_conflict_shows_when_another_session_changed_the_entity_first(page, browser, live_server, log_in,
                                                                        reviewer, admin_user, make_pdf,
                                                                        entity_types):
    document = _document(make_pdf, [(1, 3, "ORGANIZACAO", 0.9)])
    annotation = Annotation.objects.get(document=document)
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    expect(page.locator("#inspector")).to_contain_text("Ministério Público")

    other = browser.new_context(base_url=live_server.url, locale="en-US", extra_http_headers={"Accept-Language": "en"})
    try:
        ana = other.new_page()
        ana.goto("/accounts/login/")
        ana.fill("#id_username", admin_user.get_username())
        ana.fill("#id_password", PASSWORD)
        ana.click("main form button[type=submit]")
        ana.wait_for_url(lambda url: "/accounts/login/" not in url)
        ana.goto(f"/review/{document.pk}/")
        ana.locator(f"#entity-list li[data-annotation='{annotation.pk}']").get_by_role("button", name="Reject").click()
        expect(ana.locator(f"#entity-list li[data-annotation='{annotation.pk}']")).to_have_class(
            re.compile(r"\bstatus-rejected\b"))
    finally:
        other.close()

    # Rita still sees the prediction and accepts it: refused, with the fresh state in place.
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator("#inspector-accept").click()
    assert posted.value.status == 409
    expect(page.locator("#review-conflict")).to_contain_text("Someone else changed this entity")
    expect(page.locator(f"#entity-list li[data-annotation='{annotation.pk}']")).to_have_class(
        re.compile(r"\bstatus-rejected\b"))
    annotation.refresh_from_db()
    assert (annotation.status, annotation.reviewer, annotation.revision) == ("rejected", admin_user, 2)
    assert not AnnotationEvent.objects.filter(annotation=annotation, action="accept").exists()
    # With the fresh state she can decide again.
    page.locator("#inspector-accept").click()
    expect(page.locator("#review-conflict")).to_have_count(0)
    expect(page.locator(f"#entity-list li[data-annotation='{annotation.pk}']")).to_have_class(
        re.compile(r"\bstatus-accepted\b"))
    annotation.refresh_from_db()
    assert (annotation.status, annotation.reviewer, annotation.revision) == ("accepted", reviewer, 3)
    assert _expected_console(page) == []


def test_restoring_an_entity_and_the_document_from_the_history(page, log_in, reviewer, make_pdf, entity_types):
    from annotation.services import annotation_create, annotation_relabel

    document = _document(make_pdf, [(1, 3, "ORGANIZACAO", 0.9)])
    annotation = Annotation.objects.get(document=document)
    annotation_relabel(annotation=annotation, label=entity_types["PESSOA"], user=reviewer, revision=1)
    added = annotation_create(document=document, start=18, end=21, label=entity_types["PESSOA"], user=reviewer)
    predicted = annotation.events.get(action="predict")
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    page.locator("#history-link").click()
    expect(page.get_by_role("heading", name=re.compile("History"))).to_be_visible()
    row = page.locator(f"tr[data-event='{predicted.pk}']")
    expect(row).to_contain_text("predicted by model")

    row.get_by_role("button", name="Restore this entity to here").click()
    expect(page.locator(".messages")).to_contain_text("The entity was restored to that point.")
    annotation.refresh_from_db()
    assert (annotation.label.name, annotation.status, annotation.revision) == ("ORGANIZACAO", "predicted", 3)
    added.refresh_from_db()
    assert added.status == "accepted"

    page.locator(f"tr[data-event='{predicted.pk}']").get_by_role("button", name="Restore the document to here").click()
    expect(page.locator(".messages")).to_contain_text("The document was restored to that point (1 entities changed).")
    added.refresh_from_db()
    assert added.status == "deleted"
    assert list(AnnotationEvent.objects.filter(document=document).values_list("action", flat=True)) == [
        "predict", "relabel", "create", "revert", "revert"]


def test_uploading_several_pdfs_from_the_queue_shows_each_files_progress_and_errors(page, log_in, reviewer,
                                                                                    make_pdf, tmp_path, queues):
    from documents.models import Document

    good, other, bad = tmp_path / "um.pdf", tmp_path / "dois.pdf", tmp_path / "notas.pdf"
    good.write_bytes(make_pdf())
    other.write_bytes(make_pdf([["Outro", "documento", "."]]))
    bad.write_text("not a pdf")
    log_in(reviewer)
    page.goto("/documents/")
    page.set_input_files("#queue-files", [str(good), str(other), str(bad)])
    page.locator("#queue-upload").get_by_role("button", name="Upload", exact=True).click()
    items = page.locator("#upload-progress li")
    expect(items).to_have_count(3)
    expect(items.filter(has_text="um.pdf")).to_contain_text("“um.pdf” was uploaded and is being processed.")
    expect(items.filter(has_text="dois.pdf").locator("a")).to_have_count(1)
    expect(items.filter(has_text="notas.pdf")).to_contain_text("not a PDF")
    expect(page.locator("#document-table")).to_contain_text("dois.pdf")
    assert sorted(Document.objects.values_list("original_name", flat=True)) == ["dois.pdf", "um.pdf"]
    assert queues["default"].count == 2
    assert [e for e in page.console_errors if "status of 400" not in e] == []
