"""Undoing one's own last change (issue 19): annotation.services.annotation_undo_last and its view."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotation import chain, services
from annotation.models import Annotation, AnnotationEvent


def _predicted(document, *spans):
    services.annotations_predict(document=document, model_version=None,
                                 spans=[services.Span(*span) for span in spans])
    return list(Annotation.objects.filter(document=document).order_by("start"))


def test_undo_brings_the_entity_back_to_its_state_before_the_change_with_a_revert_event(ready_document, entity_types,
                                                                                        reviewer):
    (annotation,) = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    services.annotation_relabel(annotation=annotation, label=entity_types["LOCAL"], user=reviewer)
    relabel = AnnotationEvent.objects.get(action="relabel")

    undone, event = services.annotation_undo_last(document=ready_document, user=reviewer)

    annotation.refresh_from_db()
    assert event == relabel and undone.pk == annotation.pk
    assert (annotation.label.name, annotation.status, annotation.revision) == ("ORGANIZACAO", "predicted", 3)
    revert = AnnotationEvent.objects.latest("id")
    assert (revert.action, revert.user, revert.base_revision) == ("revert", reviewer, 2)
    assert revert.before["label"] == "LOCAL" and revert.after["label"] == "ORGANIZACAO"
    assert revert.after[services.UNDOES] == relabel.pk
    assert chain.events_verify(document_ids=[ready_document.pk]).ok


def test_undoing_again_goes_one_change_further_back_until_nothing_is_left(ready_document, entity_types, reviewer):
    first, second = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9), (18, 21, "PESSOA", 0.6))
    services.annotation_accept(annotation=first, user=reviewer)
    added = services.annotation_create(document=ready_document, start=7, end=9, label=entity_types["LOCAL"],
                                       user=reviewer)
    services.annotation_reject(annotation=second, user=reviewer)

    order = [services.annotation_undo_last(document=ready_document, user=reviewer)[1].action for _ in range(3)]

    assert order == ["reject", "create", "accept"]
    states = dict(Annotation.objects.values_list("pk", "status"))
    assert states == {first.pk: "predicted", second.pk: "predicted", added.pk: "deleted"}
    with pytest.raises(ValidationError, match="no change to this document left to undo"):
        services.annotation_undo_last(document=ready_document, user=reviewer)
    assert AnnotationEvent.objects.filter(action="revert").count() == 3


def test_a_change_made_after_an_undo_is_the_next_one_undone(ready_document, entity_types, reviewer):
    first, second = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9), (18, 21, "PESSOA", 0.6))
    services.annotation_accept(annotation=first, user=reviewer)
    services.annotation_undo_last(document=ready_document, user=reviewer)
    services.annotation_reject(annotation=second, user=reviewer)
    assert services.annotation_undo_last(document=ready_document, user=reviewer)[1].action == "reject"
    # The accept was undone already: nothing of the reviewer's is left standing.
    with pytest.raises(ValidationError):
        services.annotation_undo_last(document=ready_document, user=reviewer)


def test_undo_leaves_other_reviewers_changes_to_other_entities_alone(ready_document, entity_types, reviewer,
                                                                   admin_user):
    first, second = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9), (18, 21, "PESSOA", 0.6))
    services.annotation_accept(annotation=first, user=reviewer)
    services.annotation_reject(annotation=second, user=admin_user)  # newer, but someone else's

    _undone, event = services.annotation_undo_last(document=ready_document, user=reviewer)

    first.refresh_from_db()
    second.refresh_from_db()
    assert event.action == "accept" and event.annotation_id == first.pk
    assert (first.status, second.status) == ("predicted", "rejected")


def test_undo_is_a_conflict_naming_who_changed_the_entity_since_and_writes_nothing(ready_document, entity_types,
                                                                                 reviewer, admin_user):
    (annotation,) = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    services.annotation_accept(annotation=annotation, user=reviewer)
    services.annotation_relabel(annotation=annotation, label=entity_types["LOCAL"], user=admin_user)
    events = AnnotationEvent.objects.count()

    with pytest.raises(services.AnnotationConflict, match=f"{admin_user.get_username()} changed the entity") as exc:
        services.annotation_undo_last(document=ready_document, user=reviewer)

    annotation.refresh_from_db()
    assert exc.value.annotation.pk == annotation.pk and exc.value.based_on == 2
    assert (annotation.label.name, annotation.status, annotation.revision) == ("LOCAL", "accepted", 3)
    assert AnnotationEvent.objects.count() == events


def test_undoing_a_delete_whose_words_were_taken_since_is_refused(ready_document, entity_types, reviewer,
                                                                  admin_user):
    added = services.annotation_create(document=ready_document, start=1, end=3, label=entity_types["ORGANIZACAO"],
                                       user=reviewer)
    services.annotation_delete(annotation=added, user=reviewer)
    services.annotation_create(document=ready_document, start=2, end=4, label=entity_types["LOCAL"],
                               user=admin_user)
    events = AnnotationEvent.objects.count()

    with pytest.raises(ValidationError, match="overlap"):
        services.annotation_undo_last(document=ready_document, user=reviewer)

    added.refresh_from_db()
    assert added.status == "deleted" and AnnotationEvent.objects.count() == events


def test_finishing_accepts_are_not_undone_one_by_one(ready_document, entity_types, reviewer):
    first, _second = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9), (18, 21, "PESSOA", 0.6))
    services.annotation_reject(annotation=first, user=reviewer)
    services.document_review_finish(document=ready_document, user=reviewer, accept_standing=True)
    assert services.annotation_undo_last(document=ready_document, user=reviewer)[1].action == "reject"


# The view ---------------------------------------------------------------------------------------------------

def test_undo_with_htmx_returns_the_panel_saying_what_was_undone(client, reviewer, ready_document, entity_types):
    (annotation,) = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    services.annotation_accept(annotation=annotation, user=reviewer)
    client.force_login(reviewer)

    response = client.post(reverse("annotation:undo", args=[ready_document.pk]), {"page": 1},
                           HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200 and 'id="review-panel"' in body and "<html" not in body
    assert 'id="review-notice"' in body and "Undone: accepted “Ministério Público” (ORGANIZACAO)." in body
    annotation.refresh_from_db()
    assert annotation.status == "predicted"
    assert AnnotationEvent.objects.filter(annotation=annotation, action="revert", user=reviewer).count() == 1


def test_undo_with_nothing_to_undo_is_a_422_with_the_reason(client, reviewer, ready_document, entity_types):
    _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    client.force_login(reviewer)
    response = client.post(reverse("annotation:undo", args=[ready_document.pk]), {"page": 1},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "You have no change to this document left to undo." in response.content.decode()
    assert not AnnotationEvent.objects.exclude(action="predict").exists()


def test_undo_after_someone_elses_change_is_a_409_with_the_reason(client, reviewer, admin_user, ready_document,
                                                                  entity_types):
    (annotation,) = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    services.annotation_accept(annotation=annotation, user=reviewer)
    services.annotation_reject(annotation=annotation, user=admin_user)
    client.force_login(reviewer)

    htmx = client.post(reverse("annotation:undo", args=[ready_document.pk]), {"page": 1}, HTTP_HX_REQUEST="true")
    as_json = client.post(reverse("annotation:undo", args=[ready_document.pk]), HTTP_ACCEPT="application/json")

    assert htmx.status_code == 409 and 'id="review-conflict"' in htmx.content.decode()
    assert "ana changed the entity “Ministério Público” after your change (accepted)" in htmx.content.decode()
    assert as_json.status_code == 409 and as_json.json()["conflict"] is True
    assert as_json.json()["annotation"]["status"] == "rejected"
    annotation.refresh_from_db()
    assert annotation.status == "rejected" and not AnnotationEvent.objects.filter(action="revert").exists()


def test_undo_without_javascript_redirects_back_with_a_message(client, reviewer, ready_document, entity_types):
    (annotation,) = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    services.annotation_reject(annotation=annotation, user=reviewer)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:undo", args=[ready_document.pk]), {"page": 1}, follow=True)
    assert response.redirect_chain[0][1] == 302
    assert "Undone: rejected “Ministério Público” (ORGANIZACAO)." in response.content.decode()
    annotation.refresh_from_db()
    assert annotation.status == "predicted"


def test_undo_needs_a_reviewer_and_a_post(client, stranger, reviewer, ready_document, entity_types):
    (annotation,) = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    services.annotation_accept(annotation=annotation, user=reviewer)
    url = reverse("annotation:undo", args=[ready_document.pk])
    assert client.post(url).status_code == 302 and "/accounts/login/" in client.post(url).url
    client.force_login(stranger)
    assert client.post(url).status_code == 403
    client.force_login(reviewer)
    assert client.get(url).status_code == 405
    annotation.refresh_from_db()
    assert annotation.status == "accepted"


def test_the_review_page_offers_undo_and_lists_its_keys(client, reviewer, ready_document, entity_types):
    _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    client.force_login(reviewer)
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert f'action="{reverse("annotation:undo", args=[ready_document.pk])}"' in body
    assert "<dt>z / Ctrl+Z</dt>" in body


def test_undo_speaks_portuguese(client, reviewer, ready_document, entity_types, portuguese):
    (annotation,) = _predicted(ready_document, (1, 3, "ORGANIZACAO", 0.9))
    services.annotation_accept(annotation=annotation, user=reviewer)
    client.force_login(reviewer)
    url = reverse("annotation:undo", args=[ready_document.pk])
    page = client.get(reverse("annotation:review", args=[ready_document.pk]), HTTP_ACCEPT_LANGUAGE="pt-br")
    done = client.post(url, {"page": 1}, HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="pt-br")
    nothing = client.post(url, {"page": 1}, HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="pt-br")
    assert "Desfazer minha última alteração" in page.content.decode()
    assert "Desfeita a alteração “aceita” de “Ministério Público” (ORGANIZACAO)." in done.content.decode()
    assert "Você não tem mais nenhuma alteração neste documento para desfazer." in nothing.content.decode()
