"""Issue 17 (points 3-5) and issue 21's guardrail, through the pages, the API, the commands and a real RQ
worker: one frozen evaluation set per task that training never sees; full runs pass the same gate as
feedback updates; gated versions are marked everywhere and activate only with a confirmation."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from documents.models import Document
from tests.training import test_feedback
from tests.training.test_feedback import _import, _send, _token
from training.models import (
    EvaluationSet,
    FeedbackUpdate,
    ModelVersion,
    ModelVersionEvent,
    TrainingRun,
    VersionScore,
)
from training.services.feedback import feedback_request_create
from training.services.gates import evaluation_set_freeze, evaluation_set_sample

# The feedback tests' fixtures: a trained PESSOA/LOCAL tagger as the active version, ten reviewed documents.
# (base_model_dir, the trained tagger, is tests/training/conftest.py's: one training for both modules.)
base_version = test_feedback.base_version
corpus, fast_feedback = test_feedback.corpus, test_feedback.fast_feedback

FAST = ["--batch-size", "8", "--max-length", "32", "--seed", "5"]


@pytest.fixture
def small_floor(settings):
    """Floors the tiny corpora can meet: a set is sampled from 4 reviewed documents on."""
    settings.DOCLOOP_EVAL_MIN_DOCUMENTS = 2
    settings.DOCLOOP_EVAL_MIN_ENTITIES = 10
    settings.DOCLOOP_EVAL_FRACTION = 0.3
    return settings


def _train(*args) -> str:
    out = io.StringIO()
    call_command("train", "--task", "token_classification", "--sync", *args, stdout=out)
    return out.getvalue()


def test_sampling_freezes_a_set_that_training_leaves_out(import_corpus, small_floor, admin_user, capsys):
    documents = import_corpus(10)
    evaluation_set = evaluation_set_sample(task="token_classification", user=admin_user)
    assert evaluation_set.number == 1 and evaluation_set.method == "sampled"
    assert len(evaluation_set.documents) == 3  # 30 % of 10, above the floor of 2 documents and 10 entities
    stats = evaluation_set.statistics
    assert stats["entities"] == 18 and stats["meets_floor"] and stats["floor"] == {"documents": 2, "entities": 10}
    assert evaluation_set.dataset.statistics["documents"] == 3
    # A new sample keeps the documents of the current set and grows; the first set stays as it was.
    bigger = evaluation_set_sample(task="token_classification", size=5)
    assert bigger.number == 2 and set(evaluation_set.documents) < set(bigger.documents)
    # Choosing too many, or documents that are not reviewed, is refused with the reason.
    with pytest.raises(Exception, match="at least 2 must remain"):
        evaluation_set_freeze(task="token_classification", document_ids=[d.pk for d in documents[:9]])
    unreviewed = import_corpus(1, reviewed=False, start=40)[0]
    with pytest.raises(Exception, match="not reviewed documents"):
        evaluation_set_freeze(task="token_classification", document_ids=[unreviewed.pk])
    call_command("evaluation_set", "--task", "token_classification")
    out = capsys.readouterr().out
    assert out.startswith("set\t2\tsampled\tdocuments=5\tentities=30") and out.count("document\t") == 5
    with pytest.raises(CommandError, match="not possible"):
        call_command("evaluation_set", "--sample", "99")


def test_a_few_long_documents_meet_the_floor_without_holding_out_ten(import_corpus, settings, client, reviewer):
    """The default floor (10 documents or 250-word passages, 100 entities): three 1,000-word documents hold
    12 passages and 600 entities, so the sample stops there rather than taking half of the ten reviewed."""
    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_EVAL_MIN_ENTITIES = 10, 100
    settings.DOCLOOP_EVAL_FRACTION = 0.2
    import_corpus(10, sentences=100)
    evaluation_set = evaluation_set_sample(task="token_classification")
    stats = evaluation_set.statistics
    assert (stats["documents"], stats["words"], stats["units"], stats["entities"]) == (3, 3000, 12, 600)
    assert stats["meets_floor"]
    client.force_login(reviewer)
    page = client.get(reverse("training:models")).content.decode()
    assert 'data-floor="met"' in page and 'data-units="12"' in page and "12 passages of 250 words" in page


def test_short_documents_still_need_the_floors_documents(import_corpus, settings):
    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_EVAL_MIN_ENTITIES = 10, 100
    settings.DOCLOOP_EVAL_FRACTION = 0.2
    import_corpus(24)  # 30 words and 6 entities each: 20 % is 5 documents, the floor asks for 10 and 100
    evaluation_set = evaluation_set_sample(task="token_classification")
    stats = evaluation_set.statistics
    assert (stats["documents"], stats["units"], stats["entities"]) == (12, 12, 72)  # at most half
    assert not stats["meets_floor"]


@pytest.mark.slow
def test_a_run_that_cannot_have_learnt_leaves_the_active_version_active_and_says_why(
        client, admin_user, reviewer, import_corpus, small_floor, queues):
    import_corpus(10, sentences=4)
    first = _train("--epochs", "4", "--learning-rate", "3e-4", "--no-refit", *FAST)
    assert "version\t1\tactive" in first and "gate\tpassed\tevaluation_set=1\tdocuments=3" in first
    evaluation_set = EvaluationSet.objects.get()  # sampled by the first run, then frozen
    v1 = ModelVersion.objects.get(number=1)
    held = set(Document.objects.filter(sha256__in=evaluation_set.documents).values_list("pk", flat=True))
    stats = v1.run.dataset_stats
    assert len(held) == 3 and not held & set(stats["train_documents"] + stats["eval_documents"])
    assert v1.gate_status == "passed" and v1.gate["first"] and v1.gate["candidate_f1"] > 0

    out = _train("--epochs", "1", "--learning-rate", "1e-7", "--no-refit")  # the command, as it is
    v2 = ModelVersion.objects.get(number=2)
    assert "version\t2\tinactive" in out and "gate\trejected\tevaluation_set=1\tdocuments=3" in out
    assert "reason\tValidation F1 fell from" in out and "Version 1 stays active." in out and "active\t1" in out
    assert v2.run.status == "succeeded" and not v2.is_active and v2.gate_status == "rejected"
    assert v2.gate["reference_version"] == 1 and v2.gate["worse"] and v2.gate["high"] < 0
    assert ModelVersion.objects.get(is_active=True) == v1
    assert set(VersionScore.objects.values_list("version__number", flat=True)) == {1, 2}  # same documents

    # Marked everywhere: run page, version page, models page and curves, run list, API.
    client.force_login(reviewer)
    run_page = client.get(reverse("training:run", args=[v2.run_id])).content.decode()
    assert 'data-gate="rejected"' in run_page and 'id="run-gate-reason"' in run_page and "Not activated." in run_page
    card = client.get(reverse("training:version", args=[v2.pk])).content.decode()
    assert 'id="gate-reason"' in card and "Validation F1 fell" in card and "F1 on the current evaluation set #1" in card
    assert 'id="activate-version"' not in card  # reviewers cannot activate
    models = client.get(reverse("training:models")).content.decode()
    assert 'data-gate="rejected"' in models and 'id="curves-gated"' in models and 'data-floor="met"' in models
    assert 'class="freeze-set' not in models
    assert 'data-gate="rejected"' in client.get(reverse("training:index")).content.decode()
    token = {"HTTP_AUTHORIZATION": f"Token {_token(admin_user)['HTTP_AUTHORIZATION'].split()[1]}"}
    api = client.get(reverse("training:api-version", args=[v2.pk]), **token).json()
    assert api["gate"]["status"] == "rejected" and api["gate"]["gated"] and api["gate"]["evaluation_set"] == 1

    # An admin may still activate it: only with a confirmation, recorded as such.
    client.force_login(admin_user)
    card = client.get(reverse("training:version", args=[v2.pk])).content.decode()
    assert 'id="gate-warning"' in card and 'name="confirm"' in card
    refused = client.post(reverse("training:version-activate", args=[v2.pk]))
    assert refused.status_code == 400 and b'id="activate-error"' in refused.content
    conflict = client.post(reverse("training:api-version-activate", args=[v2.pk]), **token)
    assert conflict.status_code == 409 and conflict.json()["gate"] == "rejected"
    with pytest.raises(CommandError, match="--confirm"):
        call_command("activate_model", "2")
    v2.refresh_from_db()
    assert not v2.is_active and not ModelVersionEvent.objects.filter(version=v2).exists()
    response = client.post(reverse("training:version-activate", args=[v2.pk]), {"confirm": "1"})
    assert response.status_code == 302
    v2.refresh_from_db()
    event = ModelVersionEvent.objects.filter(version=v2).get()
    assert v2.is_active and v2.gate_status == "overridden"
    assert (event.action, event.previous, event.user) == ("activated_despite_gate", v1, admin_user)


@pytest.mark.slow
def test_a_first_version_below_the_floor_is_published_inactive(import_corpus, small_floor, client, admin_user):
    small_floor.DOCLOOP_GATE_FIRST_MIN_F1 = 0.5
    import_corpus(8)
    out = _train("--epochs", "1", "--learning-rate", "1e-7", "--no-refit", *FAST)
    version = ModelVersion.objects.get()
    assert "version\t1\tinactive" in out and "gate\tbelow_floor" in out and "active\t-" in out
    assert "As the task's first version it must reach an F1 above 0.500" in version.gate_reason
    assert not ModelVersion.objects.filter(is_active=True).exists()
    client.force_login(admin_user)
    card = client.get(reverse("training:version", args=[version.pk])).content.decode()
    assert 'data-gate="below_floor"' in card and 'id="gate-warning"' in card


@pytest.mark.slow
def test_without_an_evaluation_set_a_run_is_gated_on_its_own_validation_documents(import_corpus, settings):
    import_corpus(8, sentences=4)  # fewer than twice the floor's 10 documents: no set is sampled
    out = _train("--epochs", "4", "--learning-rate", "3e-4", "--no-refit", *FAST)
    assert "gate\tpassed\tevaluation_set=none(run validation documents)" in out
    assert not EvaluationSet.objects.exists() and ModelVersion.objects.get().is_active


def test_the_models_page_freezes_a_set_for_admins_only(client, admin_user, reviewer, import_corpus, small_floor,
                                                       django_capture_on_commit_callbacks):
    documents = import_corpus(6)
    url = reverse("training:evaluation-set-create")
    client.force_login(reviewer)
    assert client.post(url, {"task": "token_classification"}).status_code == 403
    client.force_login(admin_user)
    page = client.get(reverse("training:models")).content.decode()
    assert 'data-floor="none"' in page and 'class="inline freeze-set"' in page
    bad = client.post(url, {"task": "token_classification", "documents": "1,x"})
    assert bad.status_code == 400 and b"whole numbers" in bad.content and not EvaluationSet.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {"task": "token_classification",
                                     "documents": f"{documents[0].pk}, {documents[1].pk}"})
    assert response.status_code == 302
    chosen = EvaluationSet.objects.get()
    assert chosen.method == "chosen" and chosen.created_by == admin_user and len(chosen.documents) == 2
    page = client.get(reverse("training:models")).content.decode()
    assert 'data-floor="met"' in page and documents[0].original_name in page


def test_a_document_of_the_evaluation_set_is_never_sent_to_the_model(import_corpus, small_floor, admin_user,
                                                                     base_version):
    evaluation_set = evaluation_set_sample(task="token_classification")
    held = Document.objects.filter(sha256__in=evaluation_set.documents).first()
    with pytest.raises(Exception, match="evaluation set"):
        feedback_request_create(document=held, user=admin_user)


def _send_shuffled_labels(client, auth, tmp_path, fast_feedback, run_worker, capture) -> FeedbackUpdate:
    """A destructive update: every person tagged a place and every place a person, learnt hard, sent and
    run through the worker. Returns its update."""
    fast_feedback.DOCLOOP_FEEDBACK_LEARNING_RATE = 1e-3
    fast_feedback.DOCLOOP_FEEDBACK_STEPS = 30
    words = ("O réu João Silva mora em Recife desde 2003 . " * 6).split()
    tags = ["O", "O", "B-LOCAL", "I-LOCAL", "O", "O", "B-PESSOA", "O", "O", "O"] * 6
    wrong = _import(tmp_path, "trocado", " ".join(words), tags)
    assert _send(client, wrong, auth, capture).status_code == 202
    with capture(execute=True):
        run_worker()
    return FeedbackUpdate.objects.order_by("-id").first()


@pytest.mark.slow
def test_guardrail_publishes_a_no_op_update_and_rejects_shuffled_labels(
        client, admin_user, base_version, corpus, tmp_path, run_worker, fast_feedback, small_floor,
        django_capture_on_commit_callbacks):
    auth = _token(admin_user)
    fast_feedback.DOCLOOP_GATE_TOLERANCE = 0.0
    fast_feedback.DOCLOOP_FEEDBACK_LEARNING_RATE = 0.0  # an update that changes nothing
    fast_feedback.DOCLOOP_FEEDBACK_REPLAY_RATIO = 0.0
    sent = _import(tmp_path, "mesmo", "O réu Pedro Santos mora em Curitiba desde 2001 .",
                   ["O", "O", "B-PESSOA", "I-PESSOA", "O", "O", "B-LOCAL", "O", "O", "O"])
    assert _send(client, sent, auth, django_capture_on_commit_callbacks).status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    update = FeedbackUpdate.objects.get()
    assert update.status == "published", update.error
    evaluation_set = EvaluationSet.objects.get()  # sampled by the update: its first need
    assert update.metrics["after"]["f1"] == update.metrics["before"]["f1"]
    version = update.model_version
    assert version.is_active and version.gate_status == "passed" and version.evaluation_set == evaluation_set
    assert version.gate["low"] == version.gate["high"] == 0.0
    assert sorted(update.learnt_from["validation_documents"]) == sorted(
        Document.objects.filter(sha256__in=evaluation_set.documents).values_list("pk", flat=True))

    rejected = _send_shuffled_labels(client, auth, tmp_path, fast_feedback, run_worker,
                                     django_capture_on_commit_callbacks)
    assert rejected.status == "rejected", rejected.metrics.get("after")
    assert "Validation F1 fell" in rejected.error and "beyond noise" in rejected.error
    assert not rejected.model_version.is_active and rejected.model_version.gate_status == "rejected"
    assert ModelVersion.objects.get(is_active=True) == version
    assert TrainingRun.objects.filter(kind="feedback").count() == 2


@pytest.mark.slow
def test_without_an_evaluation_set_a_run_that_learnt_nothing_is_refused_even_where_both_learnt_the_documents(
        import_corpus, settings):
    """The second run validates on the documents the first one's refit learnt: the two are not compared
    closely there (each memorised them), but a run that learnt nothing still stays inactive."""
    import_corpus(8, sentences=4)  # no evaluation set: fewer than twice the floor's 10 documents
    first = _train("--epochs", "4", "--learning-rate", "3e-4", *FAST)
    assert "version\t1\tactive" in first
    out = _train("--epochs", "1", "--learning-rate", "1e-7", *FAST)
    v2 = ModelVersion.objects.get(number=2)
    assert v2.run.dataset_stats["eval_documents"] == ModelVersion.objects.get(number=1).run.dataset_stats["eval_documents"]
    assert "gate\trejected\tevaluation_set=none(run validation documents)" in out
    assert "not_compared=active_v1_learnt_them" in out and "it did not learn them. Version 1 stays active." in out
    assert v2.gate["rule"] == "learnt by both" and not v2.is_active


@pytest.mark.slow
def test_an_update_is_compared_with_the_runs_score_before_its_refit_learnt_the_validation_documents(
        import_corpus, client, admin_user, tmp_path, run_worker, fast_feedback,
        django_capture_on_commit_callbacks):
    """No evaluation set yet: the guardrail validates updates on the run's held-out documents, which its
    refit learnt. There the parent's own F1 measures memory; the reference is the run's score before the
    refit learnt them. An update that changes nothing is published; shuffled labels are still refused."""
    import_corpus(8, sentences=4)  # fewer than twice the floor's 10 documents: no evaluation set
    assert "version\t1\tactive" in _train("--epochs", "4", "--learning-rate", "3e-4", *FAST)
    v1 = ModelVersion.objects.get(number=1)
    held_out = v1.metrics["held_out"]  # the chosen epoch's counts, per validation document and passage
    assert set(held_out["documents"]) == set(v1.run.dataset_stats["eval_documents"])
    assert len(held_out["per_document"]) == len(held_out["per_block"]) == len(held_out["documents"])
    auth = _token(admin_user)
    fast_feedback.DOCLOOP_FEEDBACK_VALIDATION_EVERY = 0  # the run's held-out documents only
    fast_feedback.DOCLOOP_FEEDBACK_LEARNING_RATE = 0.0  # an update that changes nothing
    fast_feedback.DOCLOOP_FEEDBACK_REPLAY_RATIO = 0.0
    sent = _import(tmp_path, "mesmo", "O réu Pedro Santos mora em Curitiba desde 2001 .",
                   ["O", "O", "B-PESSOA", "I-PESSOA", "O", "O", "B-LOCAL", "O", "O", "O"])
    response = _send(client, sent, auth, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    update = FeedbackUpdate.objects.get()
    assert update.status == "published", update.error
    assert sorted(update.learnt_from["validation_documents"]) == sorted(held_out["documents"])
    status = client.get(response.json()["status_url"], **auth).json()
    assert status["validation_f1"]["reference"] == pytest.approx(v1.metrics["f1"])
    assert status["validation_f1"]["reference_held_out_documents"] == len(held_out["documents"])
    # Every validation document is scored as the run scored it before its refit: the run's own validation F1.
    assert update.metrics["reference"]["f1"] == pytest.approx(v1.metrics["f1"])
    assert sorted(update.metrics["reference"]["held_out_documents"]) == sorted(held_out["documents"])
    assert update.metrics["after"]["f1"] == update.metrics["before"]["f1"]
    version = update.model_version
    assert version.is_active and version.gate["reference"] == "held out before the refit"
    assert version.gate["held_out_documents"] == len(held_out["documents"])

    rejected = _send_shuffled_labels(client, auth, tmp_path, fast_feedback, run_worker,
                                     django_capture_on_commit_callbacks)
    assert rejected.status == "rejected", rejected.metrics.get("after")
    assert rejected.metrics["after"]["f1"] < rejected.metrics["reference"]["f1"] - 0.2
    assert "Validation F1 fell" in rejected.error
    assert "the reference is that run's score there before the refit learnt" in rejected.error
    assert ModelVersion.objects.get(is_active=True) == version
