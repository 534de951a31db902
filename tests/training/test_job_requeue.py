"""Issue 18 (faults): a job whose worker was killed is requeued within two missed heartbeats (plus one reap
round) and finished by another worker, while a live job in one long step, beating from its background
thread, is never reaped; the killed worker's work horse and extraction process die with it. Real
`manage.py rqworker` processes, the real ingestion job and lifecycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import django_rq
import pytest
from django.utils import timezone

from documents.models import Document
from documents.services import document_upload
from tests.training.slow_jobs import alive, descendants, kill_all
from tests.training.workers import BASE, start_worker, stop_worker, wait_for

# Small settings keep the tests fast; the defaults are checked below.
FAST = {"DOCLOOP_JOB_HEARTBEAT_SECONDS": 1, "DOCLOOP_JOB_STALE_SECONDS": 3, "DOCLOOP_REAP_SECONDS": 1,
        "DOCLOOP_INGEST_SECONDS": 600, "DOCLOOP_INGEST_PAGE_SECONDS": 600}


def _queued_slow_ingest(pdf_bytes, seconds: float) -> Document:
    document = document_upload(data=pdf_bytes, name="slow.pdf", enqueue=False).document
    assert document.status == Document.Status.UPLOADED
    job = django_rq.get_queue("default").enqueue("tests.training.slow_jobs.slow_ingest", document.pk, seconds)
    Document.objects.filter(pk=document.pk).update(job_id=job.id, queued_at=timezone.now())  # as job_enqueue
    return document


def _settings_env(**extra) -> dict:
    """This environment without the job timing settings, for a process that only reads the settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))
           and k not in ("DOCLOOP_JOB_HEARTBEAT_SECONDS", "DOCLOOP_JOB_STALE_SECONDS", "DOCLOOP_REAP_SECONDS")}
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings", **{k: str(v) for k, v in extra.items()}}


def test_the_default_stale_threshold_requeues_within_60_seconds():
    env = _settings_env()
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.DOCLOOP_JOB_HEARTBEAT_SECONDS, s.DOCLOOP_JOB_STALE_SECONDS, s.DOCLOOP_REAP_SECONDS)")
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    heartbeat, stale, reap = map(int, done.stdout.split())
    assert stale > 2 * heartbeat  # two missed heartbeats before a job counts as dead...
    assert stale + reap <= 60  # ...and the next reap round requeues it within a minute


def test_a_stale_threshold_within_two_heartbeats_is_refused():
    env = _settings_env(DOCLOOP_JOB_HEARTBEAT_SECONDS=10, DOCLOOP_JOB_STALE_SECONDS=20)
    done = subprocess.run([sys.executable, str(BASE / "manage.py"), "check"], cwd=BASE, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "must exceed two heartbeats" in done.stderr


@pytest.mark.slow
def test_a_killed_workers_job_is_requeued_and_finished_by_another_worker_within_a_minute(
        transactional_db, queues, pdf_bytes, tmp_path, media_root):
    document = _queued_slow_ingest(pdf_bytes, 300)
    first = start_worker("default", log=tmp_path / "first.log", DOCLOOP_WORKER_HOST="host-a", **FAST)
    orphans: list[int] = []
    second = None
    try:
        wait_for(lambda: Document.objects.filter(pk=document.pk, status="extracting").exists(), timeout=120,
                 what="the first worker to claim the document")
        second = start_worker("default", log=tmp_path / "second.log", DOCLOOP_WORKER_HOST="host-b", **FAST)
        time.sleep(4)  # the second worker is up; the live claim has outlived the stale threshold meanwhile
        assert Document.objects.get(pk=document.pk).attempts == 1
        orphans = descendants(first.pid)  # the work horse and its extraction process
        assert orphans
        os.kill(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        first.wait()
        # Children die with their parent: nothing of the killed worker runs on (lib.processes).
        wait_for(lambda: not any(alive(pid) for pid in orphans), timeout=10,
                 what="the work horse and its extraction process to die with their worker")
        wait_for(lambda: Document.objects.filter(pk=document.pk, status__in=["ready", "failed"]).exists(),
                 timeout=60, what="the second worker to finish the document", interval=0.2)
        elapsed = time.monotonic() - killed
    finally:
        kill_all(orphans or descendants(first.pid))
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    document.refresh_from_db()
    log = (tmp_path / "second.log").read_text()
    assert document.status == "ready", (document.error, log[-3000:])
    assert document.worker.startswith("host-b:") and document.attempts == 2
    assert document.page_count >= 1 and document.word_count > 0
    print(f"the killed worker's document was finished by another worker {elapsed:.1f} s after the kill")
    assert elapsed < 60, elapsed
    # The reaper's reason, in the workers' default language (pt-BR) or in English.
    assert ("stopped sending heartbeats" in log and "Requeued (attempt 2 of 2)" in log) or \
        ("parou de enviar sinais de vida" in log and "tentativa 2 de 2" in log), log[-3000:]


@pytest.mark.slow
def test_a_live_job_in_one_long_step_is_never_reaped(transactional_db, queues, pdf_bytes, tmp_path, media_root):
    document = _queued_slow_ingest(pdf_bytes, 10)  # one step over three times the stale threshold
    worker = start_worker("default", log=tmp_path / "worker.log", DOCLOOP_WORKER_HOST="host-a", **FAST)
    reaper = None
    try:
        wait_for(lambda: Document.objects.filter(pk=document.pk, status="extracting").exists(), timeout=120,
                 what="the worker to claim the document")
        # A second worker reaps every second too, and would take the document if it were requeued.
        reaper = start_worker("default", log=tmp_path / "reaper.log", DOCLOOP_WORKER_HOST="host-b", **FAST)
        wait_for(lambda: Document.objects.filter(pk=document.pk, status__in=["ready", "failed"]).exists(),
                 timeout=120, what="the slow document to be ingested", interval=0.2)
    finally:
        stop_worker(worker)
        if reaper is not None:
            stop_worker(reaper)
    document.refresh_from_db()
    logs = (tmp_path / "worker.log").read_text() + (tmp_path / "reaper.log").read_text()
    assert document.status == "ready", (document.error, logs[-3000:])
    assert document.attempts == 1 and document.worker.startswith("host-a:") and document.error == ""
    assert "reaper:" not in logs
