"""Issue 6's acceptance, through the JSON endpoint, a real RQ worker and Redis: feedback teaches the active
version an entity it missed; the guardrail keeps the old version when the update is worse; feedback that
arrives during a running update is batched into exactly one follow-up; 401/403/404/409."""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from annotation.models import Annotation
from documents.models import Document
from training.artefacts import artefact_local_dir, artefact_upload
from training.ml import token_classification
from training.models import FeedbackRequest, FeedbackUpdate, ModelVersion, TrainingRun
from training.services.feedback import (
    FeedbackRefused,
    documents_rescore,
    feedback_request_create,
    feedback_update_execute,
)
from training.services.tokens import api_token_create

pytestmark = pytest.mark.slow

# A court (ORGANIZACAO) the base model has never seen: it cannot predict the type at all.
COURT = ("O Tribunal Regional Federal julgou o recurso de João Silva em Recife .\n"
         "O Tribunal Regional Federal negou o pedido .")
COURT_TAGS = ["O", "B-ORGANIZACAO", "I-ORGANIZACAO", "I-ORGANIZACAO", "O", "O", "O", "O", "B-PESSOA",
              "I-PESSOA", "O", "B-LOCAL", "O",
              "O", "B-ORGANIZACAO", "I-ORGANIZACAO", "I-ORGANIZACAO", "O", "O", "O", "O"]


@pytest.fixture
def fast_feedback(settings):
    settings.DOCLOOP_FEEDBACK_STEPS = 12
    settings.DOCLOOP_FEEDBACK_BATCH_SIZE = 4
    settings.DOCLOOP_FEEDBACK_LEARNING_RATE = 2e-4
    # The validation set here is three tiny documents with about six entities: one entity more or less
    # moves F1 by ~0.17, so the tolerance allows one (the destructive update below falls far further).
    settings.DOCLOOP_GATE_TOLERANCE = 0.2
    return settings


@pytest.fixture
def corpus(import_corpus):
    """Ten reviewed documents; the last three are the held-out documents of the base version's full run."""
    return import_corpus(10)


@pytest.fixture
def base_version(corpus, base_model_dir, admin_user):
    """The active version 1: the session's trained model, published as a full run's result would be."""
    run = TrainingRun.objects.create(
        task="token_classification", base_model="minilm", status=TrainingRun.Status.SUCCEEDED, created_by=admin_user,
        dataset_stats={"train_documents": [d.pk for d in corpus[:7]], "eval_documents": [d.pk for d in corpus[7:]]})
    location = artefact_upload(local_dir=base_model_dir, location="models/token_classification/base")
    return ModelVersion.objects.create(task="token_classification", number=1, run=run, artefact=location,
                                       labels=["LOCAL", "PESSOA"], metrics={"f1": 0.9}, is_active=True)


def _import(tmp_path, name: str, text: str, tags: list[str]) -> Document:
    folder = tmp_path / f"import-{name}"
    folder.mkdir()
    words = text.split()
    assert len(words) == len(tags)
    (folder / f"{name}.conll").write_text(
        "\n".join("" if word == "\\n" else f"{word} {tag}" for word, tag in zip(words, tags, strict=True)) + "\n",
        encoding="utf-8")
    call_command("import_conll", str(folder), stdout=io.StringIO())  # accepted entities, not marked reviewed
    return Document.objects.get(original_name=f"{name}.pdf")


@pytest.fixture
def court_document(tmp_path, db):
    return _import(tmp_path, "tribunal", COURT.replace("\n", " "), COURT_TAGS)


def _token(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {api_token_create(user=user)[1]}"}


def _send(client, document, auth, capture):
    with capture(execute=True):
        response = client.post(reverse("feedback", args=[document.pk]), content_type="application/json", **auth)
    return response


def _predicted_spans(version: ModelVersion, document: Document) -> set:
    predictor = token_classification.TokenPredictor(artefact_local_dir(location=version.artefact))
    from documents.selectors import document_words

    words = document_words(document=document)
    return {(s, e, label) for s, e, label, _score in predictor.spans([w.text for w in words],
                                                                     [w.line_end for w in words])}


def test_feedback_teaches_the_active_version_an_entity_it_missed(client, admin_user, base_version, court_document,
                                                                  run_worker, fast_feedback,
                                                                  django_capture_on_commit_callbacks):
    fast_feedback.DOCLOOP_FEEDBACK_STEPS = 20
    fast_feedback.DOCLOOP_FEEDBACK_HEAD_LR_MULTIPLIER = 5.0
    court = (1, 4, "ORGANIZACAO")
    assert court not in _predicted_spans(base_version, court_document)

    response = _send(client, court_document, _token(admin_user), django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and set(body) == {"job_id", "status", "status_url"}

    with django_capture_on_commit_callbacks(execute=True):
        assert run_worker() >= 1
    status = client.get(body["status_url"], **_token(admin_user)).json()
    assert status["status"] == "published", status
    assert status["documents"] == [court_document.pk]
    version = ModelVersion.objects.get(task="token_classification", is_active=True)
    assert version.pk == status["model_version"]["id"] and version.number == 2
    assert version.kind == "feedback" and version.parent == base_version
    assert "ORGANIZACAO" in version.labels
    assert court in _predicted_spans(version, court_document)
    update = FeedbackUpdate.objects.get()
    assert update.learnt_from["documents"] == [court_document.pk]
    assert update.learnt_from["events"][str(court_document.pk)] > 0
    # The version names the events it learnt from (provenance), as its update recorded them.
    assert version.learnt_from["heads"] == update.learnt_from["events"]
    assert version.learnt_from["feedback_update"] == update.pk
    assert version.events_through == update.learnt_from["events"][str(court_document.pk)]
    assert update.metrics["after"]["f1"] >= update.metrics["before"]["f1"] - fast_feedback.DOCLOOP_GATE_TOLERANCE
    assert version.run.kind == "feedback" and version.run.dataset_stats["train_documents"] == [court_document.pk]
    # The recipe it trained with is the settings', kept with the update and inside the artefact.
    assert update.metrics["hyperparameters"]["head_lr_multiplier"] == 5.0
    meta = json.loads((artefact_local_dir(location=version.artefact) / token_classification.META_FILE).read_text())
    assert meta["feedback"]["head_lr_multiplier"] == 5.0 and meta["feedback"]["steps"] == 20


def test_a_guardrail_rejection_keeps_the_old_version_active(client, admin_user, base_version, court_document,
                                                            run_worker, fast_feedback,
                                                            django_capture_on_commit_callbacks):
    fast_feedback.DOCLOOP_FEEDBACK_LEARNING_RATE = 0.05  # wrecks the encoder: validation F1 collapses
    response = _send(client, court_document, _token(admin_user), django_capture_on_commit_callbacks)
    assert response.status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    status = client.get(response.json()["status_url"], **_token(admin_user)).json()
    assert status["status"] == "rejected", status
    assert "Validation F1 fell" in status["reason"]
    assert status["validation_f1"]["after"] < status["validation_f1"]["before"] - 0.05
    assert status["model_version"] == {"id": status["model_version"]["id"], "number": 2, "is_active": False,
                                       "parent": 1}
    base_version.refresh_from_db()
    assert base_version.is_active
    assert ModelVersion.objects.filter(is_active=True).get() == base_version


def test_feedback_during_a_running_update_is_batched_into_exactly_one_follow_up(
        client, admin_user, base_version, corpus, court_document, run_worker, fast_feedback, monkeypatch,
        django_capture_on_commit_callbacks):
    from training.ml import feedback as ml_feedback

    fast_feedback.DOCLOOP_FEEDBACK_STEPS = 4
    fast_feedback.DOCLOOP_GATE_TOLERANCE = 1.0  # coalescing is under test here, not the guardrail
    auth = _token(admin_user)
    later = corpus[:3]
    original = ml_feedback.update_token_classifier
    seen = []

    def while_running(**kwargs):
        if not seen:  # the first update is running: three documents arrive now
            first = FeedbackUpdate.objects.get()
            assert first.status == "running"
            seen.extend(_send(client, document, auth, django_capture_on_commit_callbacks).status_code
                        for document in later)
        return original(**kwargs)

    monkeypatch.setattr(ml_feedback, "update_token_classifier", while_running)
    assert _send(client, court_document, auth, django_capture_on_commit_callbacks).status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    assert seen == [202, 202, 202]
    first, follow_up = FeedbackUpdate.objects.order_by("id")
    assert first.status == "published" and first.learnt_from["documents"] == [court_document.pk]
    assert sorted(follow_up.requests.values_list("document_id", flat=True)) == sorted(d.pk for d in later)

    with django_capture_on_commit_callbacks(execute=True):
        run_worker()  # whatever was queued again (the running update re-queues the one that waited)
    assert FeedbackUpdate.objects.count() == 2  # exactly one follow-up, however many jobs ran
    follow_up.refresh_from_db()
    assert follow_up.status in {"published", "rejected"}, follow_up.error
    assert follow_up.learnt_from["documents"] == sorted(d.pk for d in later)
    assert follow_up.parent_version == first.model_version  # built on the first update's result
    assert ModelVersion.objects.filter(kind="feedback").count() == 2


def test_an_update_superseded_by_a_full_runs_version_is_learnt_again_on_that_version(
        client, admin_user, base_version, corpus, court_document, run_worker, fast_feedback, monkeypatch,
        django_capture_on_commit_callbacks):
    """A consolidation run that snapshotted the documents before the court document was reviewed becomes
    active while the update learns it: the update is kept inactive (superseded), and the court document is
    sent again, to the run's version, by itself."""
    from training.ml import feedback as ml_feedback
    from training.models import Gate
    from training.services.versions import model_version_activate

    fast_feedback.DOCLOOP_FEEDBACK_STEPS = 4
    fast_feedback.DOCLOOP_GATE_TOLERANCE = 1.0  # what happens to the documents is under test, not the gate
    original = ml_feedback.update_token_classifier
    consolidated = []

    def while_running(**kwargs):
        if not consolidated:  # the run, queued before the update started, publishes its version now
            run = TrainingRun.objects.create(
                task="token_classification", base_model="minilm", status=TrainingRun.Status.SUCCEEDED,
                trigger=TrainingRun.Trigger.GROWTH, reviewed_documents=len(corpus),
                dataset_stats={"train_documents": [d.pk for d in corpus[:9]], "eval_documents": [corpus[9].pk]})
            TrainingRun.objects.filter(pk=run.pk).update(created_at=FeedbackUpdate.objects.get().created_at)
            version = ModelVersion.objects.create(task="token_classification", number=2, run=run,
                                                  artefact=base_version.artefact, labels=base_version.labels,
                                                  metrics={"f1": 0.9})
            consolidated.append(model_version_activate(version=version))
        return original(**kwargs)

    monkeypatch.setattr(ml_feedback, "update_token_classifier", while_running)
    assert _send(client, court_document, _token(admin_user), django_capture_on_commit_callbacks).status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    first, again = FeedbackUpdate.objects.order_by("id")
    assert first.status == "rejected" and first.model_version.gate_status == Gate.SUPERSEDED
    assert again.status == "queued" and list(again.requests.values_list("document_id", flat=True)) == [
        court_document.pk]
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    again.refresh_from_db()
    assert again.status == "published", again.error
    assert again.parent_version == consolidated[0] and again.model_version.is_active
    assert again.learnt_from["documents"] == [court_document.pk]


def test_an_update_waits_while_another_update_of_the_task_runs(admin_user, base_version, court_document, corpus,
                                                               fast_feedback, django_capture_on_commit_callbacks):
    from lib import jobs
    from training.services.feedback import feedback_lifecycle

    with django_capture_on_commit_callbacks(execute=False):
        first = feedback_request_create(document=court_document, user=admin_user).update
        assert jobs.job_claim(feedback_lifecycle(), first.pk, worker="elsewhere:1")
        second = feedback_request_create(document=corpus[0], user=admin_user).update
    assert second.pk != first.pk
    second = feedback_update_execute(update=second, worker="here:2")
    assert second.status == "queued" and second.job_id == ""  # left for the running one to queue again
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_share_one_queued_update(admin_user, base_version, corpus):
    if connection.vendor != "postgresql":
        pytest.skip("the concurrency guarantee is PostgreSQL's")
    from django.db import connections

    errors, barrier = [], threading.Barrier(len(corpus))

    def send(document):
        try:
            barrier.wait()
            feedback_request_create(document=document, user=admin_user)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(d,)) for d in corpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert FeedbackUpdate.objects.count() == 1
    assert FeedbackRequest.objects.filter(update=FeedbackUpdate.objects.get()).count() == len(corpus)


def test_a_user_without_the_permission_gets_403(client, reviewer, stranger, base_version, court_document):
    url = reverse("feedback", args=[court_document.pk])
    assert client.post(url, **_token(reviewer)).status_code == 403
    assert client.post(url, **_token(stranger)).status_code == 403
    assert client.post(url).status_code == 401
    client.force_login(reviewer)
    assert client.post(url, HTTP_X_CSRFTOKEN="x").status_code == 403
    assert not FeedbackRequest.objects.exists()


def test_an_unknown_document_is_404(client, admin_user, base_version):
    response = client.post(reverse("feedback", args=[999999]), **_token(admin_user))
    assert response.status_code == 404 and "999999" in response.json()["error"]


def test_a_document_without_reviewed_annotations_is_409(client, admin_user, base_version, import_corpus):
    document = import_corpus(1, reviewed=False, start=50)[0]
    Annotation.objects.filter(document=document).delete()
    response = client.post(reverse("feedback", args=[document.pk]), **_token(admin_user))
    assert response.status_code == 409
    assert "no reviewed annotations" in response.json()["error"]
    assert not FeedbackUpdate.objects.exists()


def test_without_an_active_version_it_is_409(client, admin_user, court_document):
    response = client.post(reverse("feedback", args=[court_document.pk]), **_token(admin_user))
    assert response.status_code == 409
    assert "no active model version" in response.json()["error"]
    with pytest.raises(FeedbackRefused):
        feedback_request_create(document=court_document, user=admin_user)


def test_rescoring_replaces_old_predictions_and_keeps_human_decisions(admin_user, base_version, import_corpus,
                                                                      court_document):
    from annotation.services import annotation_accept
    from training.ingestion import document_preannotate

    pending = import_corpus(1, reviewed=False, start=60)[0]
    Annotation.objects.filter(document=pending).delete()
    document_preannotate(document=pending)
    predicted = list(Annotation.objects.filter(document=pending, status="predicted"))
    assert predicted
    kept = annotation_accept(annotation=predicted[0], user=admin_user)
    # Version 2: the same weights published again (a stand-in for a feedback result), now active.
    run = TrainingRun.objects.create(task="token_classification", base_model="minilm", kind="feedback",
                                     status=TrainingRun.Status.SUCCEEDED)
    base_version.is_active = False
    base_version.save()
    newer = ModelVersion.objects.create(task="token_classification", number=2, run=run, kind="feedback",
                                        artefact=base_version.artefact, labels=base_version.labels, is_active=True,
                                        parent=base_version)
    assert documents_rescore(version=newer) >= 1
    kept.refresh_from_db()
    assert kept.status == "accepted" and kept.model_version == base_version
    live = Annotation.objects.filter(document=pending, status="predicted")
    assert live.exists() and set(live.values_list("model_version", flat=True)) == {newer.pk}
    assert Annotation.objects.filter(document=pending, status="deleted", model_version=base_version).count() == \
        len(predicted) - 1
    assert documents_rescore(version=newer) == 0  # idempotent


def test_the_review_page_panel_and_the_model_history_page(client, admin_user, reviewer, base_version,
                                                          court_document, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    panel = client.get(reverse("feedback-panel", args=[court_document.pk]))
    assert panel.status_code == 200 and b"send-feedback" in panel.content
    with django_capture_on_commit_callbacks(execute=False):
        sent = client.post(reverse("feedback", args=[court_document.pk]), HTTP_HX_REQUEST="true")
    assert sent.status_code == 202 and b'hx-trigger="every 2s"' in sent.content
    Annotation.objects.filter(document=court_document).delete()
    refused = client.post(reverse("feedback", args=[court_document.pk]), HTTP_HX_REQUEST="true")
    assert refused.status_code == 200 and b"no reviewed annotations" in refused.content
    client.force_login(reviewer)  # admin_user's request is theirs to follow (test_feedback_panel.py)
    panel = client.get(reverse("feedback-panel", args=[court_document.pk]))
    assert b"send-feedback" not in panel.content and b"feedback-status" not in panel.content
    history = client.get(reverse("training:models"))
    assert history.status_code == 200 and b"version-1" in history.content


def test_mark_reviewed_sends_the_document_when_the_setting_says_so(client, admin_user, reviewer, base_version,
                                                                   court_document, settings,
                                                                   django_capture_on_commit_callbacks):
    settings.DOCLOOP_FEEDBACK_ON_REVIEW = True
    client.force_login(reviewer)  # no permission: reviewed, not sent
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("annotation:finish", args=[court_document.pk]))
    assert not FeedbackRequest.objects.exists()
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("annotation:finish", args=[court_document.pk]))
    assert FeedbackRequest.objects.get().document == court_document
    settings.DOCLOOP_FEEDBACK_ON_REVIEW = False
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("annotation:finish", args=[court_document.pk]))
    assert FeedbackRequest.objects.count() == 1
