"""Finishing a review says what it will accept (predictions still standing, the page parts the reviewer never
opened, the least confidence among them) and accepts only once the reviewer confirms it (issue 17)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotation import selectors, services, services_classes
from annotation.models import (
    Annotation,
    AnnotationEvent,
    DocumentClassEvent,
    DocumentClassification,
    ReviewOpening,
)
from documents.models import Document

PIECE = 100  # words per page part in these tests: pages 1-3 (140 words) come in two parts


@pytest.fixture
def version(db):
    from training.models import ModelVersion, TrainingRun

    run = TrainingRun.objects.create(task="text_classification", base_model="m", status="succeeded")
    return ModelVersion.objects.create(task="text_classification", number=1, run=run, artefact="models/x")


@pytest.fixture
def four_pages(db, make_pdf, settings, entity_types):
    """A 4-page document (140 words on pages 1-3, 100 on page 4), with predictions on page 1 (both parts), 2 and 4."""
    from documents.services import document_create, document_extract

    settings.DOCLOOP_REVIEW_PIECE_WORDS = PIECE
    lines = [[f"linha{i}", "do", "texto", "."] for i in range(130)]
    document = document_extract(document=document_create(data=make_pdf(lines), name="quatro.pdf")[0])
    starts = dict(document.pages.values_list("number", "word_start"))
    assert document.page_count == 4 and starts[2] > PIECE + 10, starts
    spans = [services.Span(0, 1, "ORGANIZACAO", 0.9), services.Span(PIECE + 4, PIECE + 5, "LOCAL", 0.6),
             services.Span(starts[2] + 4, starts[2] + 5, "LEGISLACAO", 0.25),
             services.Span(starts[4] + 8, starts[4] + 9, "TEMPO", 0.7)]
    services.annotations_predict(document=document, model_version=None, spans=spans)
    return document


def _open(client, document, page: int = 1, piece: int = 1, **headers):
    response = client.get(reverse("annotation:review", args=[document.pk]), {"page": page, "piece": piece},
                          **headers)
    assert response.status_code == 200
    return response


def _state(document) -> tuple:
    document.refresh_from_db()
    return (document.reviewed_at, sorted(Annotation.objects.filter(document=document).values_list("status", flat=True)),
            AnnotationEvent.objects.filter(document=document).count())


# What the review page records as opened ------------------------------------------------------------------

def test_the_review_page_records_the_part_it_shows_to_that_reviewer(client, reviewer, four_pages):
    client.force_login(reviewer)
    _open(client, four_pages)
    _open(client, four_pages, page=1, piece=2, HTTP_HX_REQUEST="true")  # the pager's HTMX request counts too
    _open(client, four_pages, page=1, piece=2)  # again: the same row, its time refreshed
    rows = list(ReviewOpening.objects.filter(document=four_pages).order_by("word_start")
                .values_list("user", "page_number", "word_start", "word_end"))
    assert rows == [(reviewer.pk, 1, 0, PIECE), (reviewer.pk, 1, PIECE, 140)]


def test_a_part_whose_entity_list_was_cut_short_counts_only_up_to_the_last_entity_listed(
        client, reviewer, four_pages, settings):
    settings.DOCLOOP_REVIEW_MAX_ENTITIES = 1
    services.annotation_create(document=four_pages, start=10, end=11, label=services.entity_type_get_or_create(
        name="PESSOA"), user=reviewer)
    client.force_login(reviewer)
    _open(client, four_pages)  # lists the entity at word 0 only; the one at word 10 is not listed
    assert list(ReviewOpening.objects.values_list("word_start", "word_end")) == [(0, 0)]
    summary = selectors.review_finish_summary(document=four_pages, user=reviewer)
    assert summary.unseen == summary.standing == 4  # the listed prediction too: nothing after word 0 counted
    assert selectors.PagePart(1, 1, 2) in summary.unopened


# The summary ------------------------------------------------------------------------------------------------

def test_the_summary_says_what_stands_where_the_reviewer_never_looked_and_the_least_confidence(
        client, reviewer, four_pages):
    client.force_login(reviewer)
    _open(client, four_pages)  # only the first part of page 1
    summary = selectors.review_finish_summary(document=four_pages, user=reviewer)
    assert (summary.standing, summary.unseen, summary.page_count) == (4, 3, 4)
    assert (summary.lowest.text, summary.lowest.label.name, summary.lowest.score) == (
        summary.lowest_unseen.text, "LEGISLACAO", 0.25)
    assert summary.unopened == [selectors.PagePart(1, 2, 2), selectors.PagePart(2, 1, 2),
                                selectors.PagePart(2, 2, 2), selectors.PagePart(3, 1, 2),
                                selectors.PagePart(3, 2, 2), selectors.PagePart(4, 1, 1)]
    assert summary.unopened_text == "page 1 (words part 2 of 2); pages 2–4"
    assert summary.accepts_anything and summary.standing_class is None


def test_another_reviewers_openings_do_not_count(client, reviewer, admin_user, four_pages):
    client.force_login(admin_user)
    for page, piece in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1)):
        _open(client, four_pages, page, piece)
    assert selectors.review_finish_summary(document=four_pages, user=admin_user).unopened == []
    assert selectors.review_finish_summary(document=four_pages, user=reviewer).unseen == 4


def test_a_part_opened_before_its_prediction_changed_does_not_count_as_seen(client, reviewer, four_pages):
    client.force_login(reviewer)
    _open(client, four_pages)
    assert selectors.review_finish_summary(document=four_pages, user=reviewer).unseen == 3
    earlier = Annotation.objects.get(document=four_pages, start=0).updated_at - timedelta(seconds=1)
    ReviewOpening.objects.update(opened_at=earlier)  # as if the model predicted after the part was shown
    summary = selectors.review_finish_summary(document=four_pages, user=reviewer)
    assert summary.unseen == 4 and selectors.PagePart(1, 1, 2) not in summary.unopened


def test_the_summary_covers_the_document_class_left_standing(ready_document, reviewer, version):
    services_classes.document_class_predict(document=ready_document, label="Acórdão", score=0.41,
                                            model_version=version)
    summary = selectors.review_finish_summary(document=ready_document, user=reviewer)
    assert summary.standing == 0 and summary.standing_class.label.name == "Acórdão"
    assert summary.accepts_anything
    with pytest.raises(services.FinishNotConfirmed):
        services.document_review_finish(document=ready_document, user=reviewer)
    assert DocumentClassification.objects.get().status == "predicted"


# The service: confirm first ---------------------------------------------------------------------------------

def test_finishing_without_confirmation_writes_nothing_and_says_what_it_would_accept(four_pages, reviewer):
    before = _state(four_pages)
    with pytest.raises(services.FinishNotConfirmed) as raised:
        services.document_review_finish(document=four_pages, user=reviewer)
    assert raised.value.summary.standing == 4 and not raised.value.changed
    assert _state(four_pages) == before and before[0] is None


def test_a_confirmation_for_an_older_state_of_the_document_is_refused(four_pages, reviewer):
    token = selectors.review_finish_summary(document=four_pages, user=reviewer).token
    services.annotation_reject(annotation=Annotation.objects.get(document=four_pages, start=0), user=reviewer)
    before = _state(four_pages)
    with pytest.raises(services.FinishNotConfirmed) as raised:
        services.document_review_finish(document=four_pages, user=reviewer, accept_standing=True, based_on=token)
    assert raised.value.changed and raised.value.summary.standing == 3
    assert _state(four_pages) == before


def test_confirmed_finishing_accepts_with_its_own_event_action(four_pages, reviewer, version):
    services_classes.document_class_predict(document=four_pages, label="Acórdão", score=0.41, model_version=version)
    token = selectors.review_finish_summary(document=four_pages, user=reviewer).token
    services.document_review_finish(document=four_pages, user=reviewer, accept_standing=True, based_on=token)
    four_pages.refresh_from_db()
    assert four_pages.reviewed_by == reviewer
    assert set(Annotation.objects.filter(document=four_pages).values_list("status", flat=True)) == {"accepted"}
    events = AnnotationEvent.objects.filter(document=four_pages).exclude(action="predict")
    assert sorted(events.values_list("action", "user")) == [("finish_accept", reviewer.pk)] * 4
    assert DocumentClassEvent.objects.order_by("id").last().action == "finish_accept"
    assert str(AnnotationEvent.Action("finish_accept").label) == "accepted on finishing the review"


def test_nothing_left_standing_needs_no_confirmation(four_pages, reviewer):
    for annotation in Annotation.objects.filter(document=four_pages):
        services.annotation_accept(annotation=annotation, user=reviewer)
    services.document_review_finish(document=four_pages, user=reviewer)
    four_pages.refresh_from_db()
    assert four_pages.reviewed_by == reviewer
    assert not AnnotationEvent.objects.filter(action="finish_accept").exists()


def test_the_setting_requires_every_part_of_every_page_to_be_opened_first(client, reviewer, four_pages, settings):
    settings.DOCLOOP_FINISH_REQUIRES_ALL_PAGES = True
    client.force_login(reviewer)
    for page, piece in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 1)):
        _open(client, four_pages, page, piece)
    with pytest.raises(ValidationError, match=r"not opened yet: page 3 \(words part 2 of 2\); page 4"):
        services.document_review_finish(document=four_pages, user=reviewer, accept_standing=True)
    assert _state(four_pages)[0] is None
    _open(client, four_pages, 3, 2)
    _open(client, four_pages, 4, 1)
    services.document_review_finish(document=four_pages, user=reviewer, accept_standing=True)
    assert _state(four_pages)[0] is not None


# Through the pages --------------------------------------------------------------------------------------------

def test_marking_reviewed_with_htmx_answers_the_summary_and_writes_nothing(client, reviewer, four_pages):
    client.force_login(reviewer)
    _open(client, four_pages)
    before = _state(four_pages)
    response = client.post(reverse("annotation:finish", args=[four_pages.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body and 'id="finish-confirm"' in body
    assert "4 predicted entities still standing" in body and "“linha" in body and "(LEGISLACAO) at 0.25" in body
    assert "3 of them you have not seen" in body
    assert "Parts of the document you never opened: page 1 (words part 2 of 2); pages 2–4." in body
    token = selectors.review_finish_summary(document=four_pages, user=reviewer).token
    assert f'name="based_on" value="{token}"' in body
    assert _state(four_pages) == before


def test_confirming_with_htmx_accepts_and_sends_the_browser_on(client, reviewer, four_pages):
    client.force_login(reviewer)
    token = selectors.review_finish_summary(document=four_pages, user=reviewer).token
    response = client.post(reverse("annotation:finish", args=[four_pages.pk]),
                           {"accept_standing": "on", "based_on": token}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == reverse("queue")
    assert AnnotationEvent.objects.filter(action="finish_accept", user=reviewer).count() == 4


def test_without_javascript_the_finish_asks_on_a_page_then_accepts(client, reviewer, four_pages):
    client.force_login(reviewer)
    page = client.get(reverse("annotation:finish", args=[four_pages.pk]))
    assert page.status_code == 200 and "<html" in page.content.decode() and b'id="finish-accept"' in page.content
    asked = client.post(reverse("annotation:finish", args=[four_pages.pk]))
    assert asked.status_code == 200 and b"4 predicted entities still standing" in asked.content
    assert _state(four_pages)[0] is None
    done = client.post(reverse("annotation:finish", args=[four_pages.pk]),
                       {"accept_standing": "on", "based_on": asked.context["summary"].token})
    assert done.status_code == 302 and done.url == reverse("queue")
    assert _state(four_pages)[0] is not None


FINISHED = []


def note_finished(*, document, user) -> str:
    """A DOCLOOP_REVIEW_FINISHED_HOOK for the test below: remembers its call, says something."""
    FINISHED.append((document.pk, user.username))
    return "noted by the hook"


def test_the_review_finished_hook_named_in_the_settings_is_called_once_the_review_is_finished(
        client, reviewer, four_pages, settings):
    """`annotation` calls what comes after a finished review (training sends it to the model) by a dotted path
    in the settings, never importing it; what the hook returns is shown to the reviewer."""
    settings.DOCLOOP_REVIEW_FINISHED_HOOK = f"{__name__}.note_finished"
    FINISHED.clear()
    client.force_login(reviewer)
    asked = client.post(reverse("annotation:finish", args=[four_pages.pk]))
    assert FINISHED == []  # not finished yet: only asked to confirm
    done = client.post(reverse("annotation:finish", args=[four_pages.pk]),
                       {"accept_standing": "on", "based_on": asked.context["summary"].token}, follow=True)
    assert FINISHED == [(four_pages.pk, reviewer.username)]
    assert "noted by the hook" in [str(m) for m in done.context["messages"]]


def test_a_stale_confirmation_answers_409_with_the_fresh_summary(client, reviewer, four_pages):
    client.force_login(reviewer)
    token = selectors.review_finish_summary(document=four_pages, user=reviewer).token
    services.annotation_reject(annotation=Annotation.objects.get(document=four_pages, start=0), user=reviewer)
    response = client.post(reverse("annotation:finish", args=[four_pages.pk]),
                           {"accept_standing": "on", "based_on": token}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and b'id="finish-changed"' in response.content
    assert b"3 predicted entities still standing" in response.content
    assert _state(four_pages)[0] is None


def test_a_malformed_confirmation_is_a_422_not_an_acceptance(client, reviewer, four_pages):
    client.force_login(reviewer)
    response = client.post(reverse("annotation:finish", args=[four_pages.pk]),
                           {"accept_standing": "on", "based_on": "x'; drop"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and b'id="finish-error"' in response.content
    assert _state(four_pages)[0] is None


def test_with_the_setting_the_page_refuses_until_every_part_is_opened(client, reviewer, four_pages, settings):
    settings.DOCLOOP_FINISH_REQUIRES_ALL_PAGES = True
    client.force_login(reviewer)
    _open(client, four_pages)
    asked = client.get(reverse("annotation:finish", args=[four_pages.pk]), HTTP_HX_REQUEST="true")
    assert b'id="finish-requires"' in asked.content and b'id="finish-accept"' not in asked.content
    assert b"?page=1&amp;piece=2" in asked.content  # a link to the first part not yet opened
    refused = client.post(reverse("annotation:finish", args=[four_pages.pk]),
                          {"accept_standing": "on"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and b"Open every page before" in refused.content
    assert _state(four_pages)[0] is None


def test_finishing_needs_the_reviewer_role(client, stranger, four_pages):
    client.force_login(stranger)
    assert client.get(reverse("annotation:finish", args=[four_pages.pk])).status_code == 403
    assert client.post(reverse("annotation:finish", args=[four_pages.pk]), {"accept_standing": "on"}).status_code == 403
    assert Document.objects.get(pk=four_pages.pk).reviewed_at is None


def test_the_summary_reads_in_portuguese(portuguese, client, reviewer, four_pages):
    client.force_login(reviewer)
    _open(client, four_pages, HTTP_ACCEPT_LANGUAGE="pt-br")
    body = client.post(reverse("annotation:finish", args=[four_pages.pk]), HTTP_HX_REQUEST="true",
                       HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    assert "Marcar como revisado?" in body and "4 entidades previstas ainda pendentes" in body
    assert "(LEGISLACAO), com 0,25" in body and "3 delas você não viu" in body
    assert "Partes do documento que você nunca abriu: página 1 (parte 2 de 2 das palavras); páginas 2–4." in body
    assert "Aceitar e marcar como revisado" in body and "Abrir a primeira parte ainda não aberta" in body
