"""The review page keeps its place (issue 19) in Debian's chromium under the Content-Security-Policy: the side
panel's inspector stays on screen while `j` walks a long list, the text pane keeps its scroll across actions,
and `z` / Ctrl+Z undo the reviewer's own last change. Each test checks the database too."""

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
from tests.conftest import SENTENCES  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WIDTH, HEIGHT = 1280, 800
NAMES = [("Ministério Público", "ORGANIZACAO"), ("São Paulo", "LOCAL"), ("Superior Tribunal de Justiça", "ORGANIZACAO"),
         ("João da Silva", "PESSOA"), ("Brasília", "LOCAL"), ("Constituição Federal", "ORGANIZACAO")]


def _long_document(make_pdf, repeat: int = 10):
    """One page of `repeat` × the three sentences, every name in them predicted (6 × repeat entities)."""
    from annotation.services import Span, annotations_predict
    from documents.services import document_create, document_extract

    document = document_extract(document=document_create(data=make_pdf(repeat=repeat), name="longo.pdf")[0])
    tokens = [token for sentence in SENTENCES * repeat for token in sentence]
    spans = [Span(i, i + len(name.split()), label, 0.8) for i in range(len(tokens)) for name, label in NAMES
             if tokens[i:i + len(name.split())] == name.split()]
    annotations_predict(document=document, model_version=None, spans=spans)
    assert document.pages.count() == 1 and len(spans) == 6 * repeat
    return document, list(Annotation.objects.filter(document=document).order_by("start"))


def _console(page) -> list[str]:
    """Console errors other than the deliberate 409/422 answers chromium logs."""
    return [e for e in page.console_errors if "status of 409" not in e and "status of 422" not in e]


def _in_window(page, selector: str) -> dict:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert 0 <= box["y"] and box["y"] + box["height"] <= HEIGHT, f"{selector} is off screen: {box}"
    return box


def test_the_inspector_stays_on_screen_after_25_presses_of_j(page, log_in, reviewer, make_pdf, entity_types):
    document, ordered = _long_document(make_pdf)
    log_in(reviewer)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.goto(f"/review/{document.pk}/")
    expect(page.locator(f"#entity-list li.chosen[data-annotation='{ordered[0].pk}']")).to_have_count(1)
    for _ in range(25):
        page.keyboard.press("j")
    target = ordered[25]
    expect(page.locator(f"#entity-list li.chosen[data-annotation='{target.pk}']")).to_have_count(1)
    expect(page.locator("#inspector-text")).to_have_text(target.text)
    _in_window(page, "#inspector")
    _in_window(page, f"#entity-list li.chosen[data-annotation='{target.pk}']")
    _in_window(page, f"#entity-{target.pk}")  # its words in the text pane too
    assert page.evaluate("window.scrollY") < 400  # the panes scrolled, not the page
    # The inspector acts on the entity it shows.
    page.keyboard.press("a")
    expect(page.locator(f"#entity-list li[data-annotation='{target.pk}']")).to_have_class(
        re.compile(r"\bstatus-accepted\b"))
    _in_window(page, "#inspector")
    target.refresh_from_db()
    assert target.status == "accepted"
    assert list(AnnotationEvent.objects.exclude(action="predict").values_list("annotation", "action")) == [
        (target.pk, "accept")]
    assert _console(page) == []


def test_the_text_pane_keeps_its_scroll_after_accept_and_reject(page, log_in, reviewer, make_pdf, entity_types):
    document, ordered = _long_document(make_pdf)
    first = ordered[0]
    log_in(reviewer)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.goto(f"/review/{document.pk}/")
    expect(page.locator(f"#entity-list li.chosen[data-annotation='{first.pk}']")).to_have_count(1)
    text = page.locator("#page-text")
    text.evaluate("pane => { pane.scrollTop = 600; }")
    scrolled = text.evaluate("pane => pane.scrollTop")
    assert scrolled == 600, "the text pane should be long enough to scroll 600 px"
    row = page.locator(f"#entity-list li[data-annotation='{first.pk}']")
    for key, status in (("a", "accepted"), ("r", "rejected")):
        page.keyboard.press(key)
        expect(row).to_have_class(re.compile(rf"\bstatus-{status}\b"))
        assert text.evaluate("pane => pane.scrollTop") == scrolled
        first.refresh_from_db()
        assert first.status == status
    assert _console(page) == []


def test_z_and_ctrl_z_undo_the_reviewers_own_last_changes(page, log_in, reviewer, make_pdf, entity_types):
    document, ordered = _long_document(make_pdf, repeat=1)
    first, second = ordered[0], ordered[1]
    log_in(reviewer)
    page.goto(f"/review/{document.pk}/")
    expect(page.locator("#shortcuts")).to_contain_text("z / Ctrl+Z")
    expect(page.locator(f"#entity-list li.chosen[data-annotation='{first.pk}']")).to_have_count(1)
    page.keyboard.press("a")
    expect(page.locator(f"#entity-list li[data-annotation='{first.pk}']")).to_have_class(
        re.compile(r"\bstatus-accepted\b"))
    page.keyboard.press("j")
    page.keyboard.press("r")
    expect(page.locator(f"#entity-list li[data-annotation='{second.pk}']")).to_have_class(
        re.compile(r"\bstatus-rejected\b"))

    page.keyboard.press("z")
    expect(page.locator("#review-notice")).to_have_text(f"Undone: rejected “{second.text}” ({second.label.name}).")
    expect(page.locator(f"#entity-list li[data-annotation='{second.pk}']")).to_have_class(
        re.compile(r"\bstatus-predicted\b"))
    page.keyboard.press("Control+z")
    expect(page.locator("#review-notice")).to_have_text(f"Undone: accepted “{first.text}” ({first.label.name}).")
    expect(page.locator(f"#entity-list li[data-annotation='{first.pk}']")).to_have_class(
        re.compile(r"\bstatus-predicted\b"))
    page.keyboard.press("z")
    expect(page.locator("#review-error")).to_have_text("You have no change to this document left to undo.")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("predicted", "predicted")
    reverts = AnnotationEvent.objects.filter(action="revert", user=reviewer).order_by("id")
    assert [(e.annotation_id, e.after["status"]) for e in reverts] == [(second.pk, "predicted"),
                                                                      (first.pk, "predicted")]
    assert _console(page) == []
