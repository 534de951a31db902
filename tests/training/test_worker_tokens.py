"""Issue 18 (faults): a worker token serves one live process. A revoked token stops its worker before its
next job (checked before each job and at each heartbeat; the job in hand finishes), and a second process
with a token already live is refused at start, so the first one's record stays its own. Real
`manage.py rqworker` processes on the real database and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from django.db.models import F

from tests.training.workers import BASE, start_worker, stop_worker, wait_for, worker_env
from training.models import TrainingWorker
from training.services.workers import worker_register, worker_revoke

FAST = {"DOCLOOP_JOB_HEARTBEAT_SECONDS": 1, "DOCLOOP_JOB_STALE_SECONDS": 3, "DOCLOOP_REAP_SECONDS": 1}


def _note(queue, path, name: str, seconds: float = 0):
    return queue.enqueue("tests.training.slow_jobs.note", str(path), name, seconds)


def _ran(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _rqworker(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BASE / "manage.py"), "rqworker", *args], cwd=BASE,
                          env=worker_env(**env), capture_output=True, text=True, timeout=120)


def _live(row_pk: int, pid: int) -> bool:
    return TrainingWorker.objects.filter(pk=row_pk, pid=pid, state__in=["idle", "busy"]).exists()


@pytest.mark.slow
def test_a_worker_whose_token_is_revoked_mid_job_finishes_it_and_takes_no_further_job(
        transactional_db, queues, tmp_path):
    row, token = worker_register(name="gpu-a")
    ran = tmp_path / "ran.txt"
    first = _note(queues["training"], ran, "first", seconds=6)
    for name in ("second", "third"):
        _note(queues["training"], ran, name)
    log = tmp_path / "worker.log"
    worker = start_worker("training", log=log, DOCLOOP_WORKER_TOKEN=token, DOCLOOP_WORKER_HOST="host-a", **FAST)
    try:
        wait_for(lambda: TrainingWorker.objects.filter(pk=row.pk, state="busy").exists(), timeout=120,
                 what="the worker to start its first job")
        worker_revoke(worker=row)
        worker.wait(timeout=60)
    finally:
        stop_worker(worker)
    output = log.read_text()
    assert _ran(ran) == ["first"], output[-3000:]  # the job in hand finished; no other was claimed
    first.refresh()
    assert first.get_status() == "finished"
    assert queues["training"].count == 2  # the others wait for another worker
    assert "the token of worker gpu-a was revoked" in output
    assert "takes no further job" in output or "no further job taken" in output  # at a heartbeat, or at the next job
    row.refresh_from_db()
    assert row.state == "stopped" and row.revoked_at is not None


@pytest.mark.slow
def test_a_worker_revoked_while_waiting_puts_the_job_it_dequeued_back_and_exits(transactional_db, queues,
                                                                              tmp_path):
    row, token = worker_register(name="gpu-a")
    log = tmp_path / "worker.log"
    # A heartbeat (and token check) only at start: the check before taking the job is what stops it.
    worker = start_worker("training", log=log, DOCLOOP_WORKER_TOKEN=token, DOCLOOP_WORKER_HOST="host-a",
                          DOCLOOP_JOB_HEARTBEAT_SECONDS=1, DOCLOOP_JOB_STALE_SECONDS=3, DOCLOOP_REAP_SECONDS=600)
    ran = tmp_path / "ran.txt"
    try:
        # Its one heartbeat (after worker_started's record) is done: from now on only the job check can see it.
        wait_for(lambda: _live(row.pk, worker.pid) and TrainingWorker.objects.filter(
            pk=row.pk, heartbeat_at__gt=F("started_at")).exists(), timeout=120, what="the worker's heartbeat")
        worker_revoke(worker=row)
        job = _note(queues["training"], ran, "after-revocation")
        assert worker.wait(timeout=30) == 0  # at once: it does not wait out RQ's pubsub read (up to 60 s)
    finally:
        stop_worker(worker)
    output = log.read_text()
    assert _ran(ran) == [], output[-3000:]
    assert queues["training"].job_ids == [job.id] and job.get_status() == "queued"
    assert "the token of worker gpu-a was revoked; no further job taken, exiting" in output
    # Another worker with a valid token takes the job.
    _other, other_token = worker_register(name="gpu-b")
    done = _rqworker("training", "--burst", DOCLOOP_WORKER_TOKEN=other_token, **FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ran(ran) == ["after-revocation"]


@pytest.mark.slow
def test_a_second_process_with_a_live_token_is_refused_and_the_first_keeps_its_record(transactional_db, queues,
                                                                                    tmp_path):
    row, token = worker_register(name="gpu-a")
    first = start_worker("training", log=tmp_path / "first.log", DOCLOOP_WORKER_TOKEN=token,
                         DOCLOOP_WORKER_HOST="host-a", **FAST)
    try:
        wait_for(lambda: _live(row.pk, first.pid), timeout=120, what="the first worker to start")
        for host in ("host-b", "host-a"):  # another machine, or another process of the same one
            second = _rqworker("training", "--burst", DOCLOOP_WORKER_TOKEN=token, DOCLOOP_WORKER_HOST=host, **FAST)
            assert second.returncode == 2, second.stderr[-3000:]
            assert f"worker gpu-a is already running as host-a:{first.pid}" in second.stderr
            assert "one token serves one process" in second.stderr
        row.refresh_from_db()
        assert row.hostname == "host-a" and row.pid == first.pid and row.state in ("idle", "busy")
        os.kill(first.pid, signal.SIGKILL)  # a crashed process of this host frees the token at once
        first.wait()
    finally:
        stop_worker(first)
    restarted = _rqworker("training", "--burst", DOCLOOP_WORKER_TOKEN=token, DOCLOOP_WORKER_HOST="host-a", **FAST)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    row.refresh_from_db()
    assert row.state == "stopped" and row.pid != first.pid


def test_the_workers_page_shows_a_started_worker_without_recent_heartbeats_as_not_responding(client, reviewer,
                                                                                           settings):
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    settings.DOCLOOP_JOB_STALE_SECONDS = 30
    live, _token = worker_register(name="gpu-live")
    silent, _token = worker_register(name="gpu-silent")
    now = timezone.now()
    TrainingWorker.objects.filter(pk=live.pk).update(state="busy", hostname="host-a", pid=11, heartbeat_at=now)
    TrainingWorker.objects.filter(pk=silent.pk).update(state="idle", hostname="host-b", pid=12,
                                                       heartbeat_at=now - timedelta(seconds=31))
    client.force_login(reviewer)
    rows = {row.split("</td>")[0]: row for row in
            client.get(reverse("training:workers")).content.decode().split("<tr><td>")[1:]}
    assert "<td>busy</td>" in rows["gpu-live"] and "host-a:11" in rows["gpu-live"]
    assert "<td>not responding</td>" in rows["gpu-silent"]
    api = {w["name"]: w for w in client.get(reverse("training:api-workers")).json()["registered"]}
    assert api["gpu-live"]["responding"] is True and api["gpu-silent"]["responding"] is False
