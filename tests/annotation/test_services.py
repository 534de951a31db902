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
    document = services.document_review_finish(document=ready_document, user=reviewer, accept_standing=True)
    assert document.reviewed_by == reviewer and document.reviewed_at is not None
    assert accepted_spans(document=document) == [(1, 3, "ORGANIZACAO")]
    assert AnnotationEvent.objects.filter(action="finish_accept", user=reviewer).count() == 1
    assert not AnnotationEvent.objects.filter(action="accept").exists()


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


def test_a_change_based_on_an_old_revision_is_a_conflict_and_writes_nothing(ready_document, entity_types,
                                                                             reviewer):
    annotation = services.annotation_create(document=ready_document, start=1, end=3,
                                            label=entity_types["ORGANIZACAO"], user=reviewer)
    services.annotation_reject(annotation=annotation, user=reviewer, revision=1)
    with pytest.raises(services.AnnotationConflict) as caught:
        services.annotation_relabel(annotation=annotation, label=entity_types["PESSOA"], user=reviewer, revision=1)
    assert (caught.value.annotation.status, caught.value.annotation.revision) == ("rejected", 2)
    assert AnnotationEvent.objects.filter(annotation=annotation).count() == 2
    assert list(AnnotationEvent.objects.filter(annotation=annotation).values_list("base_revision", flat=True)) == [
        0, 1]


def _project_all(document):
    """Every annotation's row agrees with its events: each event starts where the previous ended, and the
    last one's `after` is the row (the current state is the projection of the events)."""
    for annotation in Annotation.objects.filter(document=document).select_related("label"):
        events = list(annotation.events.order_by("id"))
        for previous, current in zip(events, events[1:], strict=False):
            assert current.before == previous.after and current.base_revision == previous.base_revision + 1
        state = events[-1].after
        assert (state["start"], state["end"], state["label_id"], state["status"]) == (
            annotation.start, annotation.end, annotation.label_id, annotation.status)
        assert annotation.revision == len(events)


def test_reverting_the_whole_document_restores_an_earlier_point_with_new_events(ready_document, entity_types,
                                                                                 reviewer):
    services.annotations_predict(document=ready_document, model_version=None, spans=[
        services.Span(1, 3, "ORGANIZACAO", 0.9), services.Span(7, 9, "LOCAL", 0.4)])
    point = AnnotationEvent.objects.latest("id")
    first, second = Annotation.objects.order_by("start")
    services.annotation_relabel(annotation=first, label=entity_types["PESSOA"], user=reviewer, revision=1)
    services.annotation_delete(annotation=second, user=reviewer, revision=1)
    added = services.annotation_create(document=ready_document, start=20, end=21, label=entity_types["TEMPO"],
                                       user=reviewer)
    services.annotation_resize(annotation=first, start=1, end=4, user=reviewer, revision=2)
    _project_all(ready_document)
    before = AnnotationEvent.objects.count()

    head = AnnotationEvent.objects.latest("id").pk
    changed = services.document_revert(document=ready_document, event_id=point.pk, user=reviewer, head=head)

    assert changed == 3
    state = {a.pk: (a.start, a.end, a.label.name, a.status) for a in Annotation.objects.select_related("label")}
    assert state == {first.pk: (1, 3, "ORGANIZACAO", "predicted"), second.pk: (7, 9, "LOCAL", "predicted"),
                     added.pk: (20, 21, "TEMPO", "deleted")}
    assert AnnotationEvent.objects.count() == before + 3
    assert set(AnnotationEvent.objects.filter(pk__gt=head).values_list("action", flat=True)) == {"revert"}
    _project_all(ready_document)
    # A revert based on a history that grew since is refused.
    with pytest.raises(services.DocumentConflict):
        services.document_revert(document=ready_document, event_id=point.pk, user=reviewer, head=head)


def test_the_review_summary_follows_every_change(ready_document, entity_types, reviewer):
    from annotation.models import DocumentReview

    services.annotations_predict(document=ready_document, model_version=None, spans=[
        services.Span(1, 3, "ORGANIZACAO", 0.9), services.Span(7, 9, "LOCAL", 0.4)])
    review = DocumentReview.objects.select_related("document").get(document=ready_document)
    assert (review.entity_count, review.verified_count, review.document.least_confidence) == (2, 0, 0.4)
    services.annotation_reject(annotation=Annotation.objects.get(start=7), user=reviewer, revision=1)
    services.annotation_delete(annotation=Annotation.objects.get(start=1), user=reviewer, revision=1)
    review = DocumentReview.objects.select_related("document").get(document=ready_document)
    assert (review.entity_count, review.verified_count, review.document.least_confidence) == (1, 1, 0.4)


def test_a_deleted_entity_frees_its_words_and_takes_no_more_changes(ready_document, entity_types, reviewer):
    annotation = services.annotation_create(document=ready_document, start=1, end=3,
                                            label=entity_types["ORGANIZACAO"], user=reviewer)
    services.annotation_delete(annotation=annotation, user=reviewer, revision=1)
    services.annotation_create(document=ready_document, start=2, end=4, label=entity_types["LOCAL"], user=reviewer)
    with pytest.raises(ValidationError, match="deleted"):
        services.annotation_accept(annotation=annotation, user=reviewer, revision=2)
