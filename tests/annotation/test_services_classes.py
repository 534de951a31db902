"""Document classes: predicted, chosen, accepted and rejected like an entity, every change an event."""

import pytest
from django.core.exceptions import ValidationError

from annotation import services
from annotation import services_classes as classes
from annotation.models import DocumentClassEvent, DocumentClassification
from training.models import ModelVersion, TrainingRun


@pytest.fixture
def version(db):
    run = TrainingRun.objects.create(task="text_classification", base_model="m", status="succeeded")
    return ModelVersion.objects.create(task="text_classification", number=1, run=run, artefact="models/x")


def test_a_prediction_is_stored_for_review_with_score_version_and_an_event(ready_document, version):
    row = classes.document_class_predict(document=ready_document, label="Acórdão", score=0.83, model_version=version)
    assert (row.label.name, row.status, row.source, row.score, row.model_version, row.revision) == (
        "Acórdão", "predicted", "model", 0.83, version, 1)
    event = DocumentClassEvent.objects.get()
    assert (event.action, event.before, event.model_version) == ("predict", None, version)
    assert event.after == {"label": "Acórdão", "status": "predicted", "source": "model", "score": 0.83, "revision": 1}


def test_the_same_version_predicting_again_changes_nothing(ready_document, version):
    classes.document_class_predict(document=ready_document, label="A", score=0.6, model_version=version)
    assert classes.document_class_predict(document=ready_document, label="B", score=0.9, model_version=version) is None
    assert DocumentClassification.objects.get().label.name == "A" and DocumentClassEvent.objects.count() == 1


def test_a_reviewers_decision_is_never_overwritten_by_a_prediction(ready_document, version, reviewer):
    classes.document_class_predict(document=ready_document, label="A", score=0.6, model_version=version)
    classes.document_class_reject(document=ready_document, user=reviewer)
    run = TrainingRun.objects.create(task="text_classification", base_model="m", status="succeeded")
    newer = ModelVersion.objects.create(task="text_classification", number=2, run=run, artefact="models/y")
    assert classes.document_class_predict(document=ready_document, label="B", score=0.9, model_version=newer) is None
    assert DocumentClassification.objects.get().status == "rejected"


def test_review_actions_write_events_with_before_after_and_reviewer(ready_document, version, reviewer):
    classes.document_class_predict(document=ready_document, label="A", score=0.6, model_version=version)
    classes.document_class_reject(document=ready_document, user=reviewer)
    other = classes.document_class_get_or_create(name="B")
    row = classes.document_class_set(document=ready_document, label=other, user=reviewer, expected_revision=2)
    assert (row.label.name, row.status, row.source, row.reviewer, row.revision) == ("B", "accepted", "human", reviewer, 3)
    events = list(DocumentClassEvent.objects.order_by("id"))
    assert [e.action for e in events] == ["predict", "reject", "set"]
    assert events[1].before["status"] == "predicted" and events[1].after["status"] == "rejected"
    assert events[2].before["label"] == "A" and events[2].after["label"] == "B" and events[2].user == reviewer


def test_a_stale_revision_is_refused_and_nothing_changes(ready_document, version, reviewer):
    classes.document_class_predict(document=ready_document, label="A", score=0.6, model_version=version)
    with pytest.raises(ValidationError, match="changed meanwhile"):
        classes.document_class_accept(document=ready_document, user=reviewer, expected_revision=7)
    assert DocumentClassification.objects.get().status == "predicted" and DocumentClassEvent.objects.count() == 1


def test_accepting_without_a_class_is_a_clear_error(ready_document, reviewer):
    with pytest.raises(ValidationError, match="no class yet"):
        classes.document_class_accept(document=ready_document, user=reviewer)


def test_finishing_the_review_accepts_the_predicted_class(ready_document, version, reviewer):
    classes.document_class_predict(document=ready_document, label="A", score=0.6, model_version=version)
    services.document_review_finish(document=ready_document, user=reviewer, accept_standing=True)
    row = DocumentClassification.objects.get()
    assert (row.status, row.reviewer) == ("accepted", reviewer)
    assert DocumentClassEvent.objects.order_by("id").last().action == "finish_accept"
