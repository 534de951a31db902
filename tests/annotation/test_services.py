import pytest
from django.core.exceptions import ValidationError

from annotation import services
from annotation.models import Annotation, AnnotationEvent
from annotation.selectors import accepted_spans


def test_adding_an_entity_stores_its_words_and_a_create_event(ready_document, entity_types, reviewer):
    annotation = services.annotation_create(document=ready_document, start=1, end=3,
                                            label=entity_types["ORGANIZACAO"], user=reviewer)
    assert annotation.text == "Ministério Público"
    assert (annotation.status, annotation.source, annotation.reviewer) == ("accepted", "human", reviewer)
    event = AnnotationEvent.objects.get(annotation=annotation)
    assert (event.action, event.before, event.user) == ("create", None, reviewer)
    assert event.after["label"] == "ORGANIZACAO"


def test_every_change_is_an_event_with_before_and_after(ready_document, entity_types, reviewer):
    annotation = services.annotation_create(document=ready_document, start=1, end=3,
                                            label=entity_types["ORGANIZACAO"], user=reviewer)
    annotation = services.annotation_reject(annotation=annotation, user=reviewer)
    annotation = services.annotation_relabel(annotation=annotation, label=entity_types["PESSOA"], user=reviewer)
    events = list(AnnotationEvent.objects.filter(annotation=annotation).order_by("id"))
    assert [e.action for e in events] == ["create", "reject", "relabel"]
    assert events[1].before["status"] == "accepted" and events[1].after["status"] == "rejected"
    assert events[2].before["label"] == "ORGANIZACAO" and events[2].after["label"] == "PESSOA"
    assert annotation.status == "accepted" and annotation.revision == 3


def test_it_refuses_an_entity_that_overlaps_another(ready_document, entity_types, reviewer):
    services.annotation_create(document=ready_document, start=1, end=3, label=entity_types["ORGANIZACAO"],
                               user=reviewer)
    with pytest.raises(ValidationError, match="overlap"):
        services.annotation_create(document=ready_document, start=2, end=5, label=entity_types["LOCAL"],
                                   user=reviewer)
    assert Annotation.objects.count() == 1


def test_it_refuses_a_span_outside_the_document(ready_document, entity_types, reviewer):
    with pytest.raises(ValidationError, match="outside"):
        services.annotation_create(document=ready_document, start=5, end=10_000,
                                   label=entity_types["LOCAL"], user=reviewer)
    assert not AnnotationEvent.objects.exists()


def test_finishing_a_review_accepts_the_predictions_left_standing(ready_document, entity_types, reviewer):
    services.annotations_predict(document=ready_document, model_version=None, spans=[
        services.Span(1, 3, "ORGANIZACAO", 0.9), services.Span(7, 9, "LOCAL", 0.4)])
    wrong = Annotation.objects.get(start=7)
    services.annotation_reject(annotation=wrong, user=reviewer)
    document = services.document_review_finish(document=ready_document, user=reviewer)
    assert document.reviewed_by == reviewer and document.reviewed_at is not None
    assert accepted_spans(document=document) == [(1, 3, "ORGANIZACAO")]
    assert AnnotationEvent.objects.filter(action="accept", user=reviewer).count() == 1


def test_the_latest_accepted_values_are_the_training_spans(ready_document, entity_types, reviewer):
    a = services.annotation_create(document=ready_document, start=1, end=3, label=entity_types["ORGANIZACAO"],
                                   user=reviewer)
    services.annotation_create(document=ready_document, start=9, end=10, label=entity_types["LOCAL"],
                               user=reviewer)
    services.annotation_relabel(annotation=a, label=entity_types["PESSOA"], user=reviewer)
    assert accepted_spans(document=ready_document) == [(1, 3, "PESSOA"), (9, 10, "LOCAL")]


def test_accepting_a_rejected_entity_again_refuses_an_overlap(ready_document, entity_types, reviewer):
    first = services.annotation_create(document=ready_document, start=1, end=3,
                                       label=entity_types["ORGANIZACAO"], user=reviewer)
    services.annotation_reject(annotation=first, user=reviewer)
    services.annotation_create(document=ready_document, start=2, end=4, label=entity_types["LOCAL"],
                               user=reviewer)
    with pytest.raises(ValidationError, match="overlap"):
        services.annotation_accept(annotation=first, user=reviewer)
    first.refresh_from_db()
    assert first.status == "rejected"


def test_new_entity_types_get_distinct_colours(db):
    colours = {services.entity_type_get_or_create(name=n).color for n in ("PESSOA", "PROCESSO", "VALOR")}
    assert len(colours) == 3


def test_a_fresh_install_has_the_legal_entity_types_ready(db):
    from annotation.models import EntityType

    assert set(EntityType.objects.values_list("name", flat=True)) >= {
        "PESSOA", "ORGANIZACAO", "LOCAL", "TEMPO", "LEGISLACAO", "JURISPRUDENCIA"}
