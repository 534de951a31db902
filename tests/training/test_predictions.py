"""Issue 17: a document is reviewable only with its predictions. Through the pages (upload, the review page,
its finish button), a real RQ worker and Redis: while the active version's prediction is pending the page
says "Predicting…" and finishing is refused; the first finish accepted finds the predictions on the document;
a job delivered twice writes one set of predictions; predictions never land on a reviewed document; a failed
or abandoned prediction does not leave the document waiting for ever."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from transformers import AutoModelForTokenClassification, AutoTokenizer

from annotation.models import Annotation, AnnotationEvent
from documents.models import Document
from lib import jobs
from training import ingestion, predictor_cache
from training.artefacts import artefact_upload
from training.models import ModelVersion, PredictionClaim, TrainingRun
from training.services import predictions
from training.services.feedback import documents_rescore
from training.services.versions import model_version_activate

PREDICTING = "Predicting…"
STILL_ON_THEIR_WAY = "still on their way"


@pytest.fixture(autouse=True)
def fresh_predictor_cache(monkeypatch):
    """Each test stores its artefacts under its own media root: a worker's cached model is not reused."""
    monkeypatch.setattr(predictor_cache, "_predictors", {})


@pytest.fixture
def make_version(tmp_path, db):
    """A PESSOA tagger with an untrained (seeded) head: real predictions, without training for minutes."""
    folder = tmp_path / "tagger"
    labels = ["O", "B-PESSOA", "I-PESSOA"]
    torch.manual_seed(17)
    model = AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=3, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL).save_pretrained(folder)
    location = artefact_upload(local_dir=folder, location="models/token_classification/issue17")

    def make(number: int, *, active: bool = True, artefact: str | None = None) -> ModelVersion:
        run = TrainingRun.objects.create(task="token_classification", base_model="minilm",
                                         status=TrainingRun.Status.SUCCEEDED)
        version = ModelVersion.objects.create(task="token_classification", number=number, run=run,
                                              artefact=artefact or location, labels=["PESSOA"], metrics={})
        return model_version_activate(version=version) if active else version

    return make


def _upload(client, pdf: bytes, capture, name: str = "novo.pdf") -> Document:
    with capture(execute=True):
        response = client.post(reverse("documents:upload"), {"file": SimpleUploadedFile(name, pdf)})
    assert response.status_code == 302
    return Document.objects.get(original_name=name)


def _finish(client, document: Document, **headers):
    return client.post(reverse("annotation:finish", args=[document.pk]), {"accept_standing": "on"}, **headers)


def test_the_first_accepted_finish_finds_the_predictions_already_on_the_document(
        client, reviewer, make_version, pdf_bytes, queues, run_worker, monkeypatch,
        django_capture_on_commit_callbacks):
    version = make_version(1)
    client.force_login(reviewer)
    document = _upload(client, pdf_bytes, django_capture_on_commit_callbacks)
    seen = {}
    real_predict = ingestion.document_predict

    def slow_predict(*, document, version):
        """A deliberately slow prediction: the reviewer opens the page and tries to finish before it answers."""
        document.refresh_from_db()
        seen["status"] = document.status
        page = client.get(reverse("annotation:review", args=[document.pk]))
        seen["page"] = page.content.decode()
        seen["plain"] = _finish(client, document)
        seen["after_plain"] = client.get(reverse("annotation:review", args=[document.pk])).content.decode()
        seen["htmx"] = _finish(client, document, HTTP_HX_REQUEST="true")
        seen["poll"] = client.get(reverse("annotation:review", args=[document.pk]), HTTP_HX_REQUEST="true",
                                  HTTP_HX_TARGET="predicting")
        seen["reviewed_while_predicting"] = Document.objects.get(pk=document.pk).reviewed_at
        return real_predict(document=document, version=version)

    monkeypatch.setattr(ingestion, "document_predict", slow_predict)
    assert run_worker() == 1

    # While predicting: ready (its words are there) but not finishable, and the page says why.
    assert seen["status"] == Document.Status.READY
    assert PREDICTING in seen["page"] and 'id="predicting"' in seen["page"] and 'hx-trigger="every 2s"' in seen["page"]
    assert 'id="finish-review" disabled' in seen["page"]
    assert seen["plain"].status_code == 302 and STILL_ON_THEIR_WAY in seen["after_plain"]
    assert seen["htmx"].status_code == 422 and STILL_ON_THEIR_WAY in seen["htmx"].content.decode()
    assert seen["poll"].status_code == 200 and 'id="predicting"' in seen["poll"].content.decode()
    assert seen["reviewed_while_predicting"] is None

    predicted = Annotation.objects.filter(document=document, model_version=version)
    count = predicted.count()
    assert count > 0, "the seeded tagger predicts some PESSOA entities"
    claim = PredictionClaim.objects.get(document=document)
    assert claim.status == PredictionClaim.Status.DONE and claim.written == count and claim.attempts == 1

    # Once they are here the notice asks the page to reload, the button works, and the first finish
    # accepted takes them with it.
    poll = client.get(reverse("annotation:review", args=[document.pk]), HTTP_HX_REQUEST="true",
                      HTTP_HX_TARGET="predicting")
    assert poll.status_code == 200 and poll.headers.get("HX-Refresh") == "true"
    page = client.get(reverse("annotation:review", args=[document.pk])).content.decode()
    assert PREDICTING not in page and 'id="finish-review" disabled' not in page
    finished = _finish(client, document)
    assert finished.status_code == 302
    document.refresh_from_db()
    assert document.reviewed_by == reviewer
    assert predicted.filter(status=Annotation.Status.ACCEPTED, reviewer=reviewer).count() == count
    finish_events = AnnotationEvent.objects.filter(document=document, user=reviewer)
    predict_events = AnnotationEvent.objects.filter(document=document, action=AnnotationEvent.Action.PREDICT)
    assert finish_events.count() == count and predict_events.count() == count
    assert max(e.pk for e in predict_events) < min(e.pk for e in finish_events)


def test_a_delivered_twice_ingestion_job_adds_no_second_set_of_predictions(
        client, reviewer, make_version, pdf_bytes, queues, run_worker, django_capture_on_commit_callbacks):
    first = make_version(1)
    client.force_login(reviewer)
    document = _upload(client, pdf_bytes, django_capture_on_commit_callbacks)
    queues["default"].enqueue(settings.DOCLOOP_INGEST_JOB, document.pk)  # a duplicate message
    assert run_worker() == 2
    written = Annotation.objects.filter(document=document).count()
    assert written > 0 and set(Annotation.objects.filter(document=document)
                               .values_list("model_version", flat=True)) == {first.pk}

    # The reviewer rejects what the model found, so nothing covers those words any more...
    for annotation in Annotation.objects.filter(document=document):
        response = client.post(reverse("annotation:action", args=[document.pk, annotation.pk, "reject"]),
                               {"revision": annotation.revision})
        assert response.status_code == 302
    assert Annotation.objects.filter(document=document, status=Annotation.Status.REJECTED).count() == written
    # ...the active version changes, and an operator requeues the job (/admin/rq/): it claims nothing and
    # writes nothing (before, it pre-annotated the document again with the new version).
    second = make_version(2)
    queues["default"].enqueue(settings.DOCLOOP_INGEST_JOB, document.pk)
    assert run_worker() == 1
    assert Annotation.objects.filter(document=document).count() == written
    assert not Annotation.objects.filter(document=document, model_version=second).exists()
    assert list(PredictionClaim.objects.filter(document=document).values_list("version", "status")) == [
        (first.pk, PredictionClaim.Status.DONE)]
    assert _finish(client, document).status_code == 302  # nothing pending: the review can be finished


def test_predictions_never_land_on_a_document_reviewed_meanwhile(reviewer, make_version, ready_document):
    version = make_version(1)
    with transaction.atomic():
        (claim_id,) = predictions.prediction_claims_rescore(version=version)
    # A reviewer finished just before the claim was created (their finish saw nothing pending).
    Document.objects.filter(pk=ready_document.pk).update(reviewed_at=timezone.now(), reviewed_by=reviewer)
    claim = predictions.prediction_claim_execute(claim=PredictionClaim.objects.get(pk=claim_id), worker="w:1")
    assert claim.status == PredictionClaim.Status.SKIPPED and "reviewed" in claim.error
    assert not Annotation.objects.filter(document=ready_document).exists()


def test_the_write_checks_the_review_under_its_lock(reviewer, make_version, ready_document, monkeypatch):
    """A finish that lands between the prediction and its write: the write sees it and adds nothing."""
    version = make_version(1)
    with transaction.atomic():
        (claim_id,) = predictions.prediction_claims_rescore(version=version)
    real_predict = ingestion.document_predict

    def predict_then_review(*, document, version):
        result = real_predict(document=document, version=version)
        Document.objects.filter(pk=document.pk).update(reviewed_at=timezone.now(), reviewed_by=reviewer)
        return result

    monkeypatch.setattr(ingestion, "document_predict", predict_then_review)
    claim = predictions.prediction_claim_execute(claim=PredictionClaim.objects.get(pk=claim_id), worker="w:1")
    assert claim.status == PredictionClaim.Status.SKIPPED
    assert not Annotation.objects.filter(document=ready_document).exists()


def test_a_failed_prediction_ends_the_wait_and_the_page_says_why(
        client, reviewer, make_version, pdf_bytes, queues, run_worker, django_capture_on_commit_callbacks):
    make_version(1, artefact="models/token_classification/missing")
    client.force_login(reviewer)
    document = _upload(client, pdf_bytes, django_capture_on_commit_callbacks)
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == Document.Status.READY and document.error.startswith("Pre-annotation failed")
    claim = PredictionClaim.objects.get(document=document)
    assert claim.status == PredictionClaim.Status.FAILED and claim.error
    page = client.get(reverse("annotation:review", args=[document.pk])).content.decode()
    assert "could not pre-annotate" in page and PREDICTING not in page
    assert _finish(client, document).status_code == 302
    document.refresh_from_db()
    assert document.reviewed_at is not None


def test_an_abandoned_prediction_is_reaped_and_run_by_its_own_job(make_version, ready_document, queues,
                                                                   run_worker, django_capture_on_commit_callbacks):
    version = make_version(1)
    with transaction.atomic():
        (claim_id,) = predictions.prediction_claims_ingest(document=ready_document)
    # The worker that claimed it died mid-prediction: running, its heartbeat long gone.
    long_ago = timezone.now() - timedelta(seconds=settings.DOCLOOP_JOB_STALE_SECONDS + 60)
    PredictionClaim.objects.filter(pk=claim_id).update(status=PredictionClaim.Status.RUNNING, worker="gone:1",
                                                       heartbeat_at=long_ago, attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        reaped = jobs.jobs_reap()
    assert [(r.lifecycle, r.pk, r.action) for r in reaped] == [("prediction", claim_id, "requeued")]
    assert run_worker() == 1
    claim = PredictionClaim.objects.get(pk=claim_id)
    assert claim.status == PredictionClaim.Status.DONE and claim.attempts == 2
    assert Annotation.objects.filter(document=ready_document, model_version=version).count() == claim.written > 0


def test_re_scoring_makes_documents_wait_and_runs_each_claim_once(client, reviewer, make_version, ready_document,
                                                                 queues, run_worker):
    first = make_version(1)
    ingestion.document_preannotate(document=ready_document)
    before = Annotation.objects.filter(document=ready_document, model_version=first).count()
    second = make_version(2)
    with transaction.atomic():  # as the feedback update's activation does
        claims = predictions.prediction_claims_rescore(version=second)
    assert len(claims) == 1
    client.force_login(reviewer)
    assert PREDICTING in client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert _finish(client, ready_document).status_code == 302
    ready_document.refresh_from_db()
    assert ready_document.reviewed_at is None

    for _delivery in range(2):  # the same re-scoring job, delivered twice
        queues["default"].enqueue("training.jobs.documents_rescore", second.pk)
    assert run_worker() == 2
    assert PredictionClaim.objects.get(pk=claims[0]).status == PredictionClaim.Status.DONE
    live = Annotation.objects.filter(document=ready_document, status=Annotation.Status.PREDICTED)
    assert set(live.values_list("model_version", flat=True)) == {second.pk}
    assert Annotation.objects.filter(document=ready_document, model_version=second).count() == \
        PredictionClaim.objects.get(pk=claims[0]).written
    assert Annotation.objects.filter(document=ready_document, model_version=first,
                                     status=Annotation.Status.DELETED).count() == before
    assert documents_rescore(version=second) == 0


def test_a_superseded_re_scoring_stops_making_documents_wait(make_version, ready_document):
    second = make_version(2)
    with transaction.atomic():
        (claim_id,) = predictions.prediction_claims_rescore(version=second)
    make_version(3)  # a newer version took over before the job ran
    assert documents_rescore(version=second) == 0
    claim = PredictionClaim.objects.get(pk=claim_id)
    assert claim.status == PredictionClaim.Status.SKIPPED and "no longer the active one" in claim.error
    from annotation.selectors import document_predictions_pending

    assert document_predictions_pending(document=ready_document) is False


def test_manage_ingest_sync_pre_annotates_without_a_queue(make_version, pdf_bytes, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    version = make_version(1)
    path = tmp_path / "sync.pdf"
    path.write_bytes(pdf_bytes)
    out = StringIO()
    call_command("ingest", str(path), "--sync", "--processes", "1", stdout=out)
    document = Document.objects.get(original_name="sync.pdf")
    assert out.getvalue() == f"{document.pk}\tready\n"
    claim = PredictionClaim.objects.get(document=document)
    assert claim.status == PredictionClaim.Status.DONE and claim.job_id == ""
    assert Annotation.objects.filter(document=document, model_version=version).count() == claim.written > 0
