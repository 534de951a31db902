"""Training workers as processes: the token gate of `manage.py rqworker`, and cancelling runs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.training.workers import BASE, start_worker, stop_worker, wait_for, worker_env
from training.models import ModelVersion, RunLog, TrainingRun, TrainingWorker
from training.services import training_run_create, training_run_enqueue
from training.services.datasets import dataset_build
from training.services.runs import training_run_cancel
from training.services.workers import worker_for_token, worker_register


def _rqworker(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BASE / "manage.py"), "rqworker", *args], cwd=BASE,
                          env=worker_env(**env), capture_output=True, text=True, timeout=120)


def test_register_worker_prints_a_token_once_and_keeps_only_its_hash(db, capsys):
    call_command("register_worker", "gpu-1")
    token = capsys.readouterr().out.strip()
    row = TrainingWorker.objects.get(name="gpu-1")
    assert re.fullmatch(r"[\w-]{40,}", token) and token not in (row.digest, row.prefix + "x")
    assert row.prefix == token[:8] and len(row.digest) == 64 and worker_for_token(token=token) == row
    with pytest.raises(Exception, match="already registered"):
        call_command("register_worker", "gpu-1")
    call_command("register_worker", "gpu-1", "--rotate")
    assert worker_for_token(token=token) is None  # the old token stops working


def test_a_training_worker_without_a_valid_token_exits_at_once_and_takes_no_job(transactional_db, queues,
                                                                                 import_corpus):
    import_corpus(3)
    run = training_run_create(task="token_classification", user=None, epochs=1)
    training_run_enqueue(run=run)
    assert queues["training"].count == 1
    missing = _rqworker("training", "--burst", DOCLOOP_WORKER_TOKEN="")
    assert missing.returncode == 2 and "DOCLOOP_WORKER_TOKEN is not set" in missing.stderr
    wrong = _rqworker("training", "--burst", DOCLOOP_WORKER_TOKEN="not-a-token")
    assert wrong.returncode == 2 and "not a registered worker token" in wrong.stderr
    _row, token = worker_register(name="revoked")
    TrainingWorker.objects.update(revoked_at="2026-01-01T00:00Z")
    revoked = _rqworker("training", "--burst", DOCLOOP_WORKER_TOKEN=token)
    assert revoked.returncode == 2
    assert queues["training"].count == 1  # no job was taken
    run.refresh_from_db()
    assert run.status == "queued" and run.attempts == 0
    # The default queue's workers need no token (make run's ingestion worker).
    assert _rqworker("default", "--burst", DOCLOOP_WORKER_TOKEN="").returncode == 0


def test_a_queued_run_cancelled_never_starts(db, import_corpus, run_worker):
    import_corpus(3)
    run = training_run_create(task="token_classification", user=None, epochs=1)
    training_run_enqueue(run=run)
    assert training_run_cancel(run=run, user=None)
    run_worker()
    run.refresh_from_db()
    assert run.status == "cancelled" and run.attempts == 0 and run.finished_at
    assert not training_run_cancel(run=run, user=None)  # already final


@pytest.mark.slow
def test_cancelling_a_running_run_stops_it_within_one_step(transactional_db, import_corpus, queues, tmp_path):
    import_corpus(8, sentences=8)
    dataset, _created = dataset_build(task="token_classification", validation_fraction=0.2, test_fraction=0.0)
    run = training_run_create(user=None, dataset=dataset, epochs=5, batch_size=2, max_length=32, patience=0)
    gpu, token = worker_register(name="gpu-cancel")
    training_run_enqueue(run=run)
    worker = start_worker("training", log=tmp_path / "worker.log", DOCLOOP_WORKER_TOKEN=token,
                          DOCLOOP_RUN_LOG_SECONDS=0)
    try:
        wait_for(lambda: (TrainingRun.objects.get(pk=run.pk).progress or {}).get("step", 0) >= 3, timeout=240,
                 what="three training steps")
        gpu.refresh_from_db()
        assert gpu.device == "cpu" and gpu.hostname and gpu.state in {"idle", "busy"}  # recorded at start
        step = TrainingRun.objects.get(pk=run.pk).progress["step"]
        assert training_run_cancel(run=run, user=None)
        stopped = wait_for(lambda: RunLog.objects.filter(run=run, message__startswith="stopped at step").first(),
                           timeout=60, what="the worker to stop")
    finally:
        stop_worker(worker)
    stopped_at = int(stopped.message.split()[3])
    assert stopped_at <= step + 1 + 1  # the step running when cancelled, at most one more
    run.refresh_from_db()
    assert run.status == "cancelled" and not ModelVersion.objects.filter(run=run).exists()
    assert RunLog.objects.filter(run=run, message__contains="cancelled; stopped").exists()
