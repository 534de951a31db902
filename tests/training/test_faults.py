"""Issue 18 (faults), with real `manage.py rqworker` processes in burst mode:

- the database drops every connection of a training run's worker mid-run (pg_terminate_backend): the run
  reconnects and finishes, on its first attempt, and its log handler does not recurse;
- the same blip while an ingestion job pre-annotates: the predictions are written all the same;
- a worker killed with SIGKILL: the job folder its work horse held is removed when the next worker starts,
  with an upload file a killed request left long ago (tests/training/test_job_requeue.py checks that its
  work horse and extraction process die with it, and that its job is requeued within a minute).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import django_rq
import pytest
import torch
from django.conf import settings
from django.db import connection
from django.utils import timezone
from transformers import AutoModelForTokenClassification, AutoTokenizer

from annotation.models import Annotation
from documents.models import Document
from documents.services import document_upload
from lib.tempfiles import job_tempdir, temp_clean
from tests.training.slow_jobs import alive, descendants
from tests.training.workers import start_worker, stop_worker, wait_for
from training.artefacts import artefact_upload
from training.models import ModelVersion, PredictionClaim, RunLog, TrainingRun
from training.services import training_run_create
from training.services.datasets import dataset_build
from training.services.versions import model_version_activate
from training.services.workers import worker_register

FAST = {"DOCLOOP_JOB_HEARTBEAT_SECONDS": 1, "DOCLOOP_JOB_STALE_SECONDS": 6, "DOCLOOP_REAP_SECONDS": 1}


def needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("dropping a worker's database connections needs PostgreSQL's pg_terminate_backend "
                    "(SQLite has no server connections to drop)")


def drop_other_connections() -> int:
    """What a database restart or failover does to every other client: their connections are closed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return sum(1 for (terminated,) in cursor.fetchall() if terminated)


def enqueue_as_job(queue: str, model, pk: int, function: str, *args):
    job = django_rq.get_queue(queue).enqueue(function, pk, *args)
    model.objects.filter(pk=pk).update(job_id=job.id, queued_at=timezone.now())  # as lib.jobs.job_enqueue


@pytest.mark.slow
def test_a_run_survives_its_database_connections_being_dropped_without_spending_an_attempt(
        transactional_db, import_corpus, queues, tmp_path, media_root):
    needs_postgresql()
    import_corpus(6, sentences=4)
    dataset, _created = dataset_build(task="token_classification", validation_fraction=0.34, test_fraction=0.0)
    run = training_run_create(user=None, dataset=dataset, epochs=2, batch_size=2, max_length=32,
                              learning_rate=3e-4, patience=0, seed=7)
    _gpu, token = worker_register(name="gpu-blip")
    enqueue_as_job("training", TrainingRun, run.pk, "tests.training.slow_jobs.slow_training_run", 1.0)
    log = tmp_path / "worker.log"
    worker = start_worker("training", "--burst", log=log, DOCLOOP_WORKER_TOKEN=token, DOCLOOP_TEMP_DIR=tmp_path / "tmp", **FAST)
    try:
        wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, progress__step__gte=1).exists(), timeout=240,
                 what="the run's first training step")
        dropped = drop_other_connections()  # the work horse's, its heartbeat thread's and the worker's
        worker.wait(timeout=300)
    finally:
        stop_worker(worker)
    run.refresh_from_db()
    output = log.read_text()
    lines = list(RunLog.objects.filter(run=run).values_list("message", flat=True))
    assert dropped >= 2, dropped
    assert run.status == "succeeded", (run.error, output[-3000:])
    assert run.attempts == 1 and run.error == ""
    assert "database connection lost" in output  # it did hit the dropped connection, and reconnected
    assert "RecursionError" not in output and "maximum recursion" not in output
    assert any(line.startswith("epoch 2") for line in lines), lines  # logged after the blip, and stored
    assert ModelVersion.objects.filter(run=run).count() == 1


@pytest.fixture
def active_tagger(tmp_path, transactional_db):
    """An active PESSOA tagger with an untrained (seeded) head: real predictions without training."""
    folder = tmp_path / "tagger"
    labels = ["O", "B-PESSOA", "I-PESSOA"]
    torch.manual_seed(17)
    model = AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=3, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL).save_pretrained(folder)
    location = artefact_upload(local_dir=folder, location="models/token_classification/blip")
    run = TrainingRun.objects.create(task="token_classification", base_model="minilm",
                                     status=TrainingRun.Status.SUCCEEDED)
    version = ModelVersion.objects.create(task="token_classification", number=1, run=run, artefact=location,
                                          labels=["PESSOA"], metrics={})
    return model_version_activate(version=version)


@pytest.mark.slow
def test_an_ingestion_whose_connections_drop_while_predicting_still_writes_its_predictions(
        active_tagger, queues, pdf_bytes, tmp_path, media_root):
    needs_postgresql()
    document = document_upload(data=pdf_bytes, name="blip.pdf", enqueue=False).document
    enqueue_as_job("default", Document, document.pk, "tests.training.slow_jobs.slow_predict_ingest", 3)
    log = tmp_path / "worker.log"
    worker = start_worker("default", "--burst", log=log, DOCLOOP_TEMP_DIR=tmp_path / "tmp", **FAST)
    try:
        wait_for(lambda: PredictionClaim.objects.filter(document=document, status="running").exists(),
                 timeout=180, what="the document's prediction to start")
        time.sleep(0.5)
        dropped = drop_other_connections()
        worker.wait(timeout=180)
    finally:
        stop_worker(worker)
    document.refresh_from_db()
    claim = PredictionClaim.objects.get(document=document)
    output = log.read_text()
    assert dropped >= 1
    assert document.status == "ready" and document.error == "" and document.attempts == 1, \
        (document.error, output[-3000:])
    assert claim.status == "done" and claim.attempts == 1, (claim.error, output[-3000:])
    assert "database connection lost" in output
    assert Annotation.objects.filter(document=document, model_version=active_tagger).count() == claim.written


@pytest.mark.slow
def test_a_killed_workers_job_folder_and_a_killed_requests_upload_are_removed_at_the_next_start(
        transactional_db, queues, tmp_path, media_root):
    temp_dir = tmp_path / "tmp"
    named = tmp_path / "folder.txt"
    django_rq.get_queue("default").enqueue("tests.training.slow_jobs.hold_job_folder", str(named), 300)
    first = start_worker("default", log=tmp_path / "first.log", DOCLOOP_TEMP_DIR=temp_dir, **FAST)
    try:
        folder = Path(wait_for(lambda: named.exists() and named.read_text(), timeout=120,
                               what="the job to make its folder"))
        horse = descendants(first.pid)
        assert folder.parent == temp_dir / "jobs" and (folder / "weights.bin").exists() and horse
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        wait_for(lambda: not any(alive(pid) for pid in horse), timeout=10,
                 what="the work horse to die with its worker")
    finally:
        stop_worker(first)
    assert folder.exists()  # nothing ran to remove it

    uploads = temp_dir / "uploads"  # FILE_UPLOAD_TEMP_DIR, under the worker's DOCLOOP_TEMP_DIR
    uploads.mkdir(parents=True, exist_ok=True)
    left, fresh = uploads / "tmpab12cd.upload.xlsx", uploads / "tmpef34gh.upload.xlsx"
    left.write_bytes(b"PK" * 1000)
    fresh.write_bytes(b"PK" * 1000)
    an_hour_ago = time.time() - 3600
    os.utime(left, (an_hour_ago, an_hour_ago))  # a request killed an hour ago; `fresh` is one in progress

    second = start_worker("default", "--burst", log=tmp_path / "second.log", DOCLOOP_TEMP_DIR=temp_dir, **FAST)
    try:
        second.wait(timeout=120)
    finally:
        stop_worker(second)
    assert not folder.exists() and not left.exists()
    assert fresh.exists()
    assert "removed 2 temporary files and folders" in (tmp_path / "second.log").read_text()


def test_a_live_processs_job_folder_is_kept_and_the_uploads_go_to_docloops_folder(settings, tmp_path):
    settings.DOCLOOP_TEMP_DIR = tmp_path
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    with job_tempdir("run1-") as folder:
        assert Path(folder).parent == tmp_path / "jobs" and Path(folder).name.startswith(f"{os.getpid()}-")
        assert temp_clean() == [] and Path(folder).exists()
    gone = tmp_path / "jobs" / "999999999-1-run2-x"  # a pid that cannot exist
    gone.mkdir()
    assert temp_clean() == [gone] and not gone.exists()


def test_uploads_too_large_for_memory_are_written_under_docloops_temporary_folder():
    from django.conf import settings as live

    assert Path(live.FILE_UPLOAD_TEMP_DIR).parent == Path(live.DOCLOOP_TEMP_DIR)
    assert Path(live.FILE_UPLOAD_TEMP_DIR).is_dir()


def test_a_run_log_handler_whose_batch_the_database_refuses_keeps_it_and_does_not_recurse(
        transactional_db, settings):
    import logging

    from training.services.run_logs import run_log_capture

    settings.DOCLOOP_RUN_LOG_SECONDS = 0  # every line tries to store the batch
    with run_log_capture(run_id=987654, attempt=1) as handler:  # no such run: every INSERT is refused
        for step in range(50):
            logging.getLogger("training.services.runs").info("step %d", step)
        assert [row.message for row in handler.buffer] == [f"step {step}" for step in range(50)]
    assert RunLog.objects.count() == 0
