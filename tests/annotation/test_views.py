from django.urls import reverse

from annotation import services
from annotation.models import Annotation, AnnotationEvent


def _predicted(document):
    services.annotations_predict(document=document, model_version=None,
                                 spans=[services.Span(1, 3, "ORGANIZACAO", 0.91)])
    return Annotation.objects.get(document=document)


def test_the_review_page_highlights_entities_in_the_text(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert f'id="entity-{annotation.pk}"' in body and "Ministério" in body and "0.91" in body


def test_a_user_without_a_role_cannot_open_the_review_page(client, stranger, ready_document):
    client.force_login(stranger)
    assert client.get(reverse("annotation:review", args=[ready_document.pk])).status_code == 403


def test_accepting_with_htmx_returns_the_panel_and_writes_an_event(client, reviewer, ready_document,
                                                                   entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    url = reverse("annotation:action", args=[ready_document.pk, annotation.pk, "accept"])
    response = client.post(url, {"page": 1}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="review-panel"' in body and "<html" not in body
    annotation.refresh_from_db()
    assert annotation.status == "accepted" and annotation.reviewer == reviewer
    assert AnnotationEvent.objects.filter(annotation=annotation, action="accept", user=reviewer).exists()


def test_without_javascript_an_action_redirects_back_to_the_page(client, reviewer, ready_document,
                                                                 entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:action", args=[ready_document.pk, annotation.pk, "reject"]),
                           {"page": 1})
    assert response.status_code == 302 and response.url.endswith("?page=1")
    annotation.refresh_from_db()
    assert annotation.status == "rejected"


def test_relabelling_changes_the_type_and_accepts(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    client.post(reverse("annotation:action", args=[ready_document.pk, annotation.pk, "relabel"]),
                {"label": entity_types["PESSOA"].pk}, HTTP_HX_REQUEST="true")
    annotation.refresh_from_db()
    assert (annotation.label.name, annotation.status) == ("PESSOA", "accepted")
    assert AnnotationEvent.objects.get(annotation=annotation, action="relabel").before["label"] == "ORGANIZACAO"


def test_adding_an_entity_by_choosing_words(client, reviewer, ready_document, entity_types):
    client.force_login(reviewer)
    response = client.post(reverse("annotation:add", args=[ready_document.pk]),
                           {"start": 18, "end": 21, "label": entity_types["PESSOA"].pk, "page": 1},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    annotation = Annotation.objects.get(document=ready_document)
    assert (annotation.text, annotation.source, annotation.status) == ("João da Silva", "human", "accepted")


def test_adding_an_overlapping_entity_shows_the_reason_in_place(client, reviewer, ready_document,
                                                                entity_types):
    _predicted(ready_document)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:add", args=[ready_document.pk]),
                           {"start": 2, "end": 4, "label": entity_types["LOCAL"].pk, "page": 1},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and "overlap" in response.content.decode()
    assert Annotation.objects.count() == 1


def test_adding_without_choosing_words_is_a_clear_error(client, reviewer, ready_document, entity_types):
    client.force_login(reviewer)
    response = client.post(reverse("annotation:add", args=[ready_document.pk]),
                           {"start": "", "end": "", "label": entity_types["PESSOA"].pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and 'role="alert"' in response.content.decode()
    assert not Annotation.objects.exists()


def test_marking_as_reviewed_finishes_the_document(client, reviewer, ready_document, entity_types):
    _predicted(ready_document)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:finish", args=[ready_document.pk]))
    assert response.status_code == 302
    ready_document.refresh_from_db()
    assert ready_document.reviewed_by == reviewer
    assert Annotation.objects.get(document=ready_document).status == "accepted"


def test_the_review_page_varies_on_the_hx_request_header(client, reviewer, ready_document):
    client.force_login(reviewer)
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = client.get(reverse("annotation:review", args=[ready_document.pk]), **headers)
        assert response.status_code == 200 and "HX-Request" in response["Vary"]
