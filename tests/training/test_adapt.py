"""Issue 21: adapted base models through real RQ workers on the real Redis and database. An adaptation reads
every ready page (reviewed or not), publishes a numbered adapted base with its corpus hash and held-out
perplexities; full runs start from the newest one and record it; cancel works queued and running; a worker
killed mid-adaptation is reaped and another resumes from the checkpoint; the command, the pages, and the
automatic re-run when the corpus grows."""

from __future__ import annotations

import io
import os
import signal

import django_rq
import pytest
import torch
from django.core.management import CommandError, call_command
from django.urls import reverse
from rq.job import Job
from transformers import AutoModel

from training.artefacts import artefact_local_dir
from training.models import AdaptedBase, FeedbackUpdate, ModelVersion, TrainingRun
from training.selectors import adaptation_due, adapted_base_newest
from training.services import training_run_create, training_run_enqueue
from training.services.adaptation import (
    adaptation_after_ingest,
    adaptation_corpus,
    adapted_base_cancel,
    adapted_base_create,
    adapted_base_enqueue,
)
from training.services.feedback import feedback_request_create
from training.services.runs import training_run_reproduce
from training.services.versions import model_version_activate
from training.services.workers import worker_register

from .workers import start_worker, stop_worker, wait_for

TINY = {"steps": 4, "head_steps": 2, "batch_size": 4, "max_length": 32, "learning_rate": 3e-4, "checkpoint_every": 2,
        "seed": 3}


@pytest.fixture
def corpus(import_corpus):
    """4 reviewed documents and 4 that nobody reviewed: all of them are in-domain text."""
    return import_corpus(4, sentences=4) + import_corpus(4, reviewed=False, start=10, sentences=4)


def _adapt(run_worker, capture, **overrides) -> AdaptedBase:
    adapted = adapted_base_create(user=None, **{**TINY, **overrides})
    with capture(execute=True):
        adapted_base_enqueue(adapted=adapted)
    run_worker()
    adapted.refresh_from_db()
    assert adapted.status == "published", adapted.error
    return adapted


@pytest.mark.slow
def test_an_adaptation_through_a_worker_publishes_an_adapted_base_with_its_figures(
        corpus, run_worker, media_root, django_capture_on_commit_callbacks):
    adapted = _adapt(run_worker, django_capture_on_commit_callbacks)

    assert adapted.number == 1 and adapted.attempts == 1 and adapted.base_model.endswith("model")
    assert sorted(adapted.corpus_documents) == sorted(d.pk for d in corpus)  # reviewed or not
    expected = adaptation_corpus(heldout_fraction=adapted.hyperparameters["heldout_fraction"])
    assert adapted.corpus_sha256 == expected.sha256 and len(adapted.corpus_sha256) == 64
    assert adapted.pages == expected.pages == sum(d.page_count for d in corpus)
    assert adapted.words == sum(d.word_count for d in corpus) and adapted.heldout_pages >= 1
    assert adapted.steps == 4 and adapted.metrics["head_initialised"] and adapted.metrics["head_steps"] == 2
    assert 1 < adapted.perplexity_after < adapted.perplexity_before
    assert adapted.progress["step"] == adapted.progress["total_steps"] == 6
    folder = artefact_local_dir(location=adapted.artefact)
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "docloop_adapt.json"} <= \
        {p.name for p in folder.iterdir()}
    # The checkpoints are gone once published.
    checkpoints = media_root / "checkpoints" / f"adapted{adapted.pk}"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
    assert adapted_base_newest() == adapted

    # Same corpus, same settings, same seed: the same hash and figures, published as A2.
    again = _adapt(run_worker, django_capture_on_commit_callbacks)
    assert again.number == 2 and again.corpus_sha256 == adapted.corpus_sha256
    assert again.perplexity_before == pytest.approx(adapted.perplexity_before, rel=1e-4)
    assert adapted_base_newest() == again


@pytest.mark.slow
def test_a_full_run_starts_from_the_newest_adapted_base_and_records_it(
        corpus, run_worker, client, reviewer, settings, django_capture_on_commit_callbacks):
    adapted = _adapt(run_worker, django_capture_on_commit_callbacks)
    hp = {"epochs": 1, "batch_size": 4, "max_length": 32, "learning_rate": 3e-4, "patience": 0, "refit": False,
          "seed": 9}
    adapted_run = training_run_create(task="token_classification", user=None, **hp)
    raw_run = training_run_create(task="token_classification", user=None, use_adapted_base=False, **hp)
    assert adapted_run.adapted_base == adapted and raw_run.adapted_base is None
    with django_capture_on_commit_callbacks(execute=True):
        training_run_enqueue(run=adapted_run)
        training_run_enqueue(run=raw_run)
    run_worker()
    adapted_run.refresh_from_db()
    raw_run.refresh_from_db()
    assert adapted_run.status == raw_run.status == "succeeded", (adapted_run.error, raw_run.error)
    assert adapted_run.dataset_hash == raw_run.dataset_hash and adapted_run.seed == raw_run.seed
    version = ModelVersion.objects.get(run=adapted_run)
    assert version.run.adapted_base == adapted

    # Same documents, seed and hyperparameters: only the starting weights differ, and so do the results.
    query = "bert.encoder.layer.0.attention.self.query.weight"
    weights = {run.pk: AutoModel.from_pretrained(artefact_local_dir(location=ModelVersion.objects.get(run=run)
                                                                    .artefact)).state_dict()
               for run in (adapted_run, raw_run)}
    key = query.removeprefix("bert.")
    assert not torch.equal(weights[adapted_run.pk][key], weights[raw_run.pk][key])

    twin = training_run_reproduce(run=adapted_run, user=None)
    assert twin.adapted_base == adapted
    assert training_run_reproduce(run=raw_run, user=None).adapted_base is None
    TrainingRun.objects.filter(status="queued").delete()

    # Feedback starts from the active version, which descends from the adapted base; its run says so.
    settings.DOCLOOP_FEEDBACK_STEPS, settings.DOCLOOP_FEEDBACK_BATCH_SIZE = 4, 4
    settings.DOCLOOP_GATE_TOLERANCE = 1.0  # this test is about lineage, not about what 4 steps learn
    model_version_activate(version=version, confirm=True)
    with django_capture_on_commit_callbacks(execute=True):
        request = feedback_request_create(document=corpus[-1], user=None)
    run_worker()
    update = FeedbackUpdate.objects.get(pk=request.update_id)
    assert update.status == "published", update.error
    assert update.model_version.parent == version and update.model_version.run.adapted_base == adapted

    client.force_login(reviewer)
    assert 'id="run-adapted-base"' in client.get(reverse("training:run", args=[adapted_run.pk])).content.decode()
    assert 'id="version-adapted-base"' in client.get(reverse("training:version", args=[version.pk])).content.decode()
    page = client.get(reverse("training:adapted", args=[adapted.pk])).content.decode()
    assert f'href="{reverse("training:run", args=[adapted_run.pk])}"' in page


def test_a_queued_adaptation_cancelled_never_starts(corpus, run_worker, admin_user,
                                                    django_capture_on_commit_callbacks):
    adapted = adapted_base_create(user=admin_user, **TINY)
    with django_capture_on_commit_callbacks(execute=True):
        adapted_base_enqueue(adapted=adapted)
    assert adapted_base_cancel(adapted=adapted, user=admin_user)
    assert adapted.status == "cancelled" and adapted.cancelled_by == admin_user and "ana" in adapted.error
    run_worker()
    adapted.refresh_from_db()
    assert adapted.status == "cancelled" and adapted.attempts == 0 and adapted.number is None
    assert not adapted_base_cancel(adapted=adapted, user=admin_user)  # nothing left to cancel


def test_one_adaptation_of_a_base_model_at_a_time(corpus):
    first = adapted_base_create(user=None, **TINY)
    with pytest.raises(Exception, match=f"Adaptation #{first.pk} of this base model is already queued"):
        adapted_base_create(user=None, **TINY)
    with pytest.raises(Exception, match="steps must be between"):
        adapted_base_create(user=None, steps=0)


def test_it_refuses_to_adapt_without_pages_of_text(db):
    with pytest.raises(Exception, match="needs at least 2 pages"):
        adapted_base_create(user=None)
    with pytest.raises(CommandError, match="needs at least 2 pages"):
        call_command("adapt_base_model", "--sync", stdout=io.StringIO())
    assert not AdaptedBase.objects.exists()


@pytest.mark.slow
def test_the_command_adapts_in_the_foreground_with_sync(corpus):
    out = io.StringIO()
    call_command("adapt_base_model", "--sync", "--steps", "2", "--head-steps", "1", "--batch-size", "4",
                 "--max-length", "32", stdout=out)
    adapted = AdaptedBase.objects.get()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"adaptation\t{adapted.pk}\tpublished"
    assert lines[1] == f"adapted base\tA1\t{adapted.artefact}"
    assert f"sha256={adapted.corpus_sha256}" in lines[2] and f"pages={adapted.pages}" in lines[2]
    assert lines[3].startswith("final\tsteps=2\tperplexity_before=") and "perplexity_after=" in lines[3]
    # Without --sync it is queued for a worker; with --if-due, only once the corpus has grown.
    out = io.StringIO()
    call_command("adapt_base_model", "--if-due", stdout=out)
    assert out.getvalue().strip() == "not due" and AdaptedBase.objects.count() == 1
    call_command("adapt_base_model", "--steps", "3", stdout=out)
    queued = AdaptedBase.objects.get(status="queued")
    assert out.getvalue().splitlines()[-1] == f"{queued.pk}\tqueued" and queued.hyperparameters["steps"] == 3


def test_the_pages_show_adaptations_and_admins_start_and_cancel_them(
        corpus, client, reviewer, admin_user, stranger, queues, django_capture_on_commit_callbacks):
    client.force_login(stranger)
    assert client.get(reverse("training:adapted-list")).status_code == 403
    client.force_login(reviewer)
    page = client.get(reverse("training:adapted-list"))
    assert page.status_code == 200 and "No adaptation yet." in page.content.decode()
    assert 'id="adapt-now"' not in page.content.decode()
    assert client.post(reverse("training:adapted-start")).status_code == 403

    client.force_login(admin_user)
    assert 'id="adapt-now"' in client.get(reverse("training:adapted-list")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:adapted-start"))
    adapted = AdaptedBase.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:adapted", args=[adapted.pk])
    assert adapted.status == "queued" and adapted.created_by == admin_user and queues["training"].count == 1
    adapted.refresh_from_db()
    assert adapted.job_id in queues["training"].job_ids
    response = client.post(reverse("training:adapted-start"), follow=True)
    assert "already queued or running" in response.content.decode() and AdaptedBase.objects.count() == 1

    page = client.get(reverse("training:adapted", args=[adapted.pk])).content.decode()
    assert 'id="cancel-adaptation"' in page and 'hx-trigger="every 2s"' in page
    fragment = client.get(reverse("training:adapted", args=[adapted.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<section id="adapted-status"') and "<h1>" not in fragment
    table = client.get(reverse("training:adapted-list"), HTTP_HX_REQUEST="true").content.decode()
    assert table.lstrip().startswith('<section id="adapted-table"') and f"#{adapted.pk}" in table

    client.force_login(reviewer)
    assert client.post(reverse("training:adapted-cancel", args=[adapted.pk])).status_code == 403
    client.force_login(admin_user)
    response = client.post(reverse("training:adapted-cancel", args=[adapted.pk]))
    adapted.refresh_from_db()
    assert response.status_code == 302 and adapted.status == "cancelled"
    assert Job.fetch(adapted.job_id, connection=django_rq.get_connection("training")).get_status() == "canceled"
    response = client.post(reverse("training:adapted-cancel", args=[adapted.pk]), follow=True)
    assert "nothing to cancel" in response.content.decode()
    assert client.get(reverse("training:adapted", args=[99999])).status_code == 404


@pytest.mark.slow
def test_ingestion_queues_an_adaptation_when_the_corpus_has_grown(
        db, make_pdf, queues, run_worker, settings, django_capture_on_commit_callbacks):
    from documents.services import document_upload

    settings.DOCLOOP_ADAPT_MIN_WORDS = 20
    settings.DOCLOOP_ADAPT_GROWTH = 0.5
    settings.DOCLOOP_ADAPT_STEPS, settings.DOCLOOP_ADAPT_HEAD_STEPS = 2, 1
    settings.DOCLOOP_ADAPT_BATCH_SIZE, settings.DOCLOOP_ADAPT_MAX_LENGTH = 4, 32
    with django_capture_on_commit_callbacks(execute=True):
        document_upload(data=make_pdf(repeat=2), name="a.pdf")
        document_upload(data=make_pdf(repeat=3), name="b.pdf")
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()  # ingests both; the adaptation is queued once the ingestion commits
    adapted = AdaptedBase.objects.get()
    assert adapted.trigger == "growth" and adapted.status == "queued"
    assert adaptation_after_ingest() is None  # one at a time
    run_worker()
    adapted.refresh_from_db()
    assert adapted.status == "published" and adapted.pages == 2, adapted.error
    assert not adaptation_due()  # the corpus has not grown since

    with django_capture_on_commit_callbacks(execute=True):
        document_upload(data=make_pdf(repeat=1), name="c.pdf")  # a third more words: not enough
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    assert AdaptedBase.objects.count() == 1
    settings.DOCLOOP_ADAPT_AUTO = False
    with django_capture_on_commit_callbacks(execute=True):
        document_upload(data=make_pdf(repeat=4), name="d.pdf")
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()
    assert AdaptedBase.objects.count() == 1 and adaptation_due()  # grown, but not automatic any more
    settings.DOCLOOP_ADAPT_AUTO = True
    with django_capture_on_commit_callbacks(execute=True):
        adaptation_after_ingest()
    assert AdaptedBase.objects.filter(status="queued", trigger="growth").count() == 1


def _worker_env(token: str) -> dict:
    return {"DOCLOOP_WORKER_TOKEN": token, "DOCLOOP_JOB_STALE_SECONDS": 6, "DOCLOOP_REAP_SECONDS": 1,
            "DOCLOOP_JOB_HEARTBEAT_SECONDS": 1}


@pytest.mark.slow
def test_a_running_adaptation_cancelled_stops_at_its_next_step(transactional_db, import_corpus, queues, tmp_path,
                                                               media_root):
    import_corpus(6, reviewed=False, sentences=6)
    adapted = adapted_base_create(user=None, **{**TINY, "steps": 2000, "checkpoint_every": 3})
    adapted_base_enqueue(adapted=adapted)
    _gpu, token = worker_register(name="gpu-a")
    worker = start_worker("training", log=tmp_path / "worker.log", **_worker_env(token))
    try:
        wait_for(lambda: AdaptedBase.objects.filter(pk=adapted.pk, checkpoint_step__gte=3).exists(), timeout=240,
                 what="the adaptation's first checkpoint")
        assert adapted_base_cancel(adapted=adapted, user=None)
        job = Job.fetch(adapted.job_id, connection=django_rq.get_connection("training"))
        wait_for(lambda: job.get_status(refresh=True) == "finished", timeout=60, what="the job to stop")
    finally:
        stop_worker(worker)
    adapted.refresh_from_db()
    assert adapted.status == "cancelled" and adapted.number is None and not adapted.artefact
    assert adapted.progress["step"] < adapted.progress["total_steps"]
    assert job.return_value() == "cancelled"
    checkpoints = media_root / "checkpoints" / f"adapted{adapted.pk}"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
    assert not (media_root / "adapted").exists()


@pytest.mark.slow
def test_a_killed_adaptation_resumes_from_its_checkpoint_on_another_worker(transactional_db, import_corpus, queues,
                                                                           tmp_path, media_root):
    import_corpus(6, reviewed=False, sentences=6)
    adapted = adapted_base_create(user=None, **{**TINY, "steps": 60, "checkpoint_every": 4})
    adapted_base_enqueue(adapted=adapted)
    _gpu, token = worker_register(name="gpu-a")
    first = start_worker("training", log=tmp_path / "first.log", DOCLOOP_WORKER_HOST="host-a", **_worker_env(token))
    try:
        wait_for(lambda: AdaptedBase.objects.filter(pk=adapted.pk, checkpoint_step__gte=4).exists(), timeout=240,
                 what="the adaptation's first checkpoint after a few steps")
        os.kill(first.pid, signal.SIGKILL)  # the worker dies; its work horse notices at its next step
        first.wait()
    finally:
        stop_worker(first)
    killed_at = AdaptedBase.objects.get(pk=adapted.pk)
    assert killed_at.status == "running" and killed_at.attempts == 1 and killed_at.checkpoint
    assert killed_at.progress["step"] < killed_at.progress["total_steps"]

    # Another host is another registered worker (one token serves one process).
    _gpu_b, token_b = worker_register(name="gpu-b")
    second = start_worker("training", log=tmp_path / "second.log", DOCLOOP_WORKER_HOST="host-b",
                          **_worker_env(token_b))
    try:
        wait_for(lambda: AdaptedBase.objects.filter(pk=adapted.pk, status__in=["published", "failed"]).exists(),
                 timeout=300, what="the resumed adaptation to finish", interval=0.5)
    finally:
        stop_worker(second)
    adapted.refresh_from_db()
    assert adapted.status == "published", (adapted.error, (tmp_path / "second.log").read_text()[-3000:])
    assert adapted.attempts == 2 and adapted.worker.startswith("host-b:") and adapted.number == 1
    assert adapted.progress["resumed_from"] >= killed_at.checkpoint_step
    assert adapted.metrics["resumed_from"] == adapted.progress["resumed_from"]
    assert adapted.corpus_sha256 == killed_at.corpus_sha256 and adapted.perplexity_after < adapted.perplexity_before
    checkpoints = media_root / "checkpoints" / f"adapted{adapted.pk}"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
    assert len(list((media_root / "adapted").iterdir())) == 1  # one artefact: the second attempt's
    assert TrainingRun.objects.count() == 0


def test_the_admin_lists_adaptations_read_only_and_cancels_them(corpus, client, django_user_model):
    adapted = adapted_base_create(user=None, **TINY)
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "secret-pass-123"))
    listing = client.get(reverse("admin:training_adaptedbase_changelist"))
    assert listing.status_code == 200 and f"#{adapted.pk}" in listing.content.decode()
    assert client.get(reverse("admin:training_adaptedbase_change", args=[adapted.pk])).status_code == 200
    assert client.get(reverse("admin:training_adaptedbase_add")).status_code == 403
    response = client.post(reverse("admin:training_adaptedbase_changelist"),
                           {"action": "cancel_adaptations", "_selected_action": [adapted.pk]}, follow=True)
    adapted.refresh_from_db()
    assert response.status_code == 200 and adapted.status == "cancelled"
    assert "1 adaptation was cancelled." in response.content.decode()
