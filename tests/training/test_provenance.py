"""Provenance: a database snapshot records the events it read, and a model version names the dataset
SHA-256 and the events it learnt from (full runs and feedback updates), on its page and in the admin."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from annotation import services
from annotation.models import Annotation, AnnotationEvent, DocumentClassEvent
from annotation.selectors import accepted_spans_by_document
from lib import jobs
from training import dataset_builder
from training.models import FeedbackUpdate, ModelVersion, TrainingRun
from training.services import model_version_publish, runs_lifecycle
from training.services.datasets import dataset_build
from training.services.provenance import version_provenance_of_feedback

migration = importlib.import_module("training.migrations.0009_version_provenance")


def _heads(model) -> dict[str, int]:
    return {str(pk): newest for pk, newest in model.objects.values("document_id").annotate(newest=Max("id"))
            .values_list("document_id", "newest")}


def test_a_snapshot_records_each_documents_newest_event_and_the_highest(import_corpus, reviewer):
    documents = import_corpus(3)
    annotation = Annotation.objects.filter(document=documents[1]).order_by("start").first()
    services.annotation_reject(annotation=annotation, user=reviewer)
    dataset, created = dataset_build(task="token_classification")
    assert created and dataset.event_heads == _heads(AnnotationEvent)
    assert dataset.events_through == AnnotationEvent.objects.aggregate(m=Max("id"))["m"]
    assert dataset.event_heads[str(documents[1].pk)] == AnnotationEvent.objects.filter(annotation=annotation,
                                                                                       action="reject").get().pk


def test_a_change_that_lands_while_the_state_is_read_makes_the_builder_read_again(import_corpus, reviewer):
    """The heads read before and after the state differ when a change landed in between: the state and
    heads are read again, so the snapshot never names an event its rows do not reflect (or the reverse)."""
    documents = import_corpus(2)
    annotation = Annotation.objects.filter(document=documents[0]).order_by("start").first()
    reads = []

    def read(ids):
        state = accepted_spans_by_document(document_ids=ids)
        if not reads:  # a reviewer's change commits right after the first read
            services.annotation_reject(annotation=annotation, user=reviewer)
        reads.append(state)
        return state

    state, heads = dataset_builder.read_with_heads(AnnotationEvent, [d.pk for d in documents], read)
    assert len(reads) == 2 and state is reads[1]
    assert (annotation.start, annotation.end, annotation.label.name) not in state[documents[0].pk]
    assert heads[documents[0].pk] == AnnotationEvent.objects.filter(action="reject").get().pk


def test_a_snapshot_as_of_a_date_names_only_the_events_before_it(import_corpus, reviewer):
    documents = import_corpus(2)
    before = dict(_heads(AnnotationEvent))
    moment = timezone.now()
    annotation = Annotation.objects.filter(document=documents[0]).order_by("start").first()
    services.annotation_reject(annotation=annotation, user=reviewer)
    dataset, _created = dataset_build(task="token_classification",
                                      filters=dataset_builder.DatasetFilters(reviewed_before=moment))
    assert dataset.event_heads == before and dataset.events_through == max(before.values())


def test_a_text_classification_snapshot_names_the_class_events(classified_corpus):
    classified_corpus(4)
    dataset, _created = dataset_build(task="text_classification")
    assert dataset.event_heads == _heads(DocumentClassEvent) and len(dataset.event_heads) == 4
    assert dataset.events_through == DocumentClassEvent.objects.aggregate(m=Max("id"))["m"]


@pytest.fixture
def artefact(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_a_full_runs_version_names_its_dataset_and_events_on_its_page_and_in_the_admin(
        import_corpus, artefact, admin_user, client):
    import_corpus(3)
    dataset, _created = dataset_build(task="token_classification")
    run = TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={},
                                     dataset=dataset, dataset_hash=dataset.sha256)
    assert jobs.job_claim(runs_lifecycle(), run.pk, worker="me:1")
    version = model_version_publish(run=run, worker="me:1", local_dir=artefact, labels=["PESSOA"],
                                    metrics={"f1": 0.5}, lifecycle=runs_lifecycle())
    assert version.dataset_sha256 == dataset.sha256
    assert version.events_through == dataset.events_through == AnnotationEvent.objects.aggregate(m=Max("id"))["m"]
    assert version.learnt_from == {"event_kind": "annotation", "dataset": dataset.pk, "heads": dataset.event_heads}

    client.force_login(admin_user)
    card = client.get(reverse("training:version", args=[version.pk])).content.decode()
    assert f'<code id="version-dataset-sha256">{dataset.sha256}</code>' in card
    assert (f"Annotation events up to #{version.events_through}: the newest event of each of 3 documents."
            in card)
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    page = client.get(reverse("admin:training_modelversion_change", args=[version.pk])).content.decode()
    assert dataset.sha256 in page and str(version.events_through) in page


def test_a_feedback_version_surfaces_its_updates_record(db):
    update = FeedbackUpdate(pk=7, task="token_classification", learnt_from={
        "documents": [3, 5], "events": {"3": 40, "5": 52}, "requests": [1, 2], "replay_documents": [1],
        "validation_documents": [2, 4]})
    assert version_provenance_of_feedback(update=update) == {
        "events_through": 52, "learnt_from": {"event_kind": "annotation", "heads": {"3": 40, "5": 52},
                                              "feedback_update": 7, "replay_documents": [1],
                                              "validation_documents": [2, 4]}}


def test_the_migration_gives_earlier_versions_what_is_still_known(db, client, admin_user):
    full_run = TrainingRun.objects.create(task="token_classification", base_model="m", dataset_hash="a" * 64)
    full = ModelVersion.objects.create(task="token_classification", number=1, run=full_run, artefact="x")
    feedback_run = TrainingRun.objects.create(task="token_classification", base_model="m", kind="feedback")
    feedback = ModelVersion.objects.create(task="token_classification", number=2, run=feedback_run, artefact="y",
                                           kind="feedback", parent=full)
    update = FeedbackUpdate.objects.create(task="token_classification", status="published", model_version=feedback,
                                           learnt_from={"documents": [3], "events": {"3": 40},
                                                        "replay_documents": [], "validation_documents": [2]})
    migration.backfill(apps, None)
    full.refresh_from_db()
    feedback.refresh_from_db()
    assert (full.dataset_sha256, full.events_through, full.learnt_from) == ("a" * 64, None, {})
    assert feedback.events_through == 40 and feedback.learnt_from == {
        "event_kind": "annotation", "heads": {"3": 40}, "feedback_update": update.pk, "replay_documents": [],
        "validation_documents": [2]}
    client.force_login(admin_user)
    card = client.get(reverse("training:version", args=[feedback.pk])).content.decode()
    assert f"#{update.pk} · 0 replay documents, 1 validation documents" in card
    assert "Annotation events up to #40: the newest event of each of 1 documents." in card
    assert "Not recorded" in client.get(reverse("training:version", args=[full.pk])).content.decode()
