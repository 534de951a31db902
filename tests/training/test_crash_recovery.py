"""Issue 7's crash safety with real `manage.py rqworker` processes on the real Redis and database: a
worker killed with SIGKILL mid-run → its run is reaped (failed with the reason), requeued once, resumed by
another worker from the last epoch's checkpoint in storage, and exactly one model version comes out."""

from __future__ import annotations

import os
import signal

import pytest

from tests.training.workers import start_worker, stop_worker, wait_for
from training.models import EpochMetric, ModelVersion, RunLog, TrainingRun
from training.services import training_run_create, training_run_enqueue
from training.services.datasets import dataset_build
from training.services.workers import worker_register


@pytest.mark.slow
def test_a_run_whose_worker_was_killed_resumes_from_its_checkpoint_on_another_worker(
        transactional_db, import_corpus, queues, tmp_path, media_root):
    import_corpus(10, sentences=6)
    dataset, _created = dataset_build(task="token_classification", validation_fraction=0.2, test_fraction=0.0)
    run = training_run_create(user=None, dataset=dataset, epochs=4, batch_size=2, max_length=32,
                              learning_rate=3e-4, patience=0, seed=7)
    _gpu, token = worker_register(name="gpu-a")
    training_run_enqueue(run=run)
    env = {"DOCLOOP_WORKER_TOKEN": token, "DOCLOOP_JOB_STALE_SECONDS": 6, "DOCLOOP_REAP_SECONDS": 1,
           "DOCLOOP_JOB_HEARTBEAT_SECONDS": 1}
    first = start_worker("training", log=tmp_path / "first.log", DOCLOOP_WORKER_HOST="host-a", **env)
    try:
        wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, checkpoint_epoch__gte=1).exists(), timeout=240,
                 what="the first epoch's checkpoint")
        os.kill(first.pid, signal.SIGKILL)  # the worker dies; its work horse notices at its next step
        first.wait()
    finally:
        stop_worker(first)
    killed_at = TrainingRun.objects.get(pk=run.pk)
    assert killed_at.status == "running" and killed_at.attempts == 1 and killed_at.checkpoint

    # Another host is another registered worker (one token serves one process).
    _gpu_b, token_b = worker_register(name="gpu-b")
    second = start_worker("training", log=tmp_path / "second.log", DOCLOOP_WORKER_HOST="host-b",
                          **{**env, "DOCLOOP_WORKER_TOKEN": token_b})
    try:
        wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).exists(),
                 timeout=300, what="the resumed run to finish", interval=0.5)
    finally:
        stop_worker(second)

    run.refresh_from_db()
    log = "\n".join(RunLog.objects.filter(run=run).values_list("message", flat=True))
    assert run.status == "succeeded", (run.error, log, (tmp_path / "second.log").read_text()[-3000:])
    assert run.attempts == 2 and run.worker.startswith("host-b:")
    # The reaper's reason, in the workers' default language (pt-BR) or in English.
    assert ("stopped sending heartbeats" in log and "Requeued (attempt 2 of 2)" in log) or \
        ("parou de enviar sinais de vida" in log and "tentativa 2 de 2" in log), log
    assert "resuming run" in log and run.progress["resumed_from"] >= 1
    assert ModelVersion.objects.filter(run=run).count() == 1 and ModelVersion.objects.count() == 1
    assert list(EpochMetric.objects.filter(run=run).values_list("epoch", flat=True)) == [1, 2, 3, 4]
    # The epochs before the checkpoint were not trained again: their metric rows are from the first attempt.
    first_attempt_epochs = RunLog.objects.filter(run=run, attempt=1, message__startswith="epoch ").count()
    second_attempt_epochs = RunLog.objects.filter(run=run, attempt=2, message__startswith="epoch ").count()
    assert first_attempt_epochs >= 1 and first_attempt_epochs + second_attempt_epochs >= 4
    assert second_attempt_epochs == 4 - run.progress["resumed_from"]
    assert not media_root.joinpath("checkpoints", f"run{run.pk}").exists() or \
        not any(media_root.joinpath("checkpoints", f"run{run.pk}").iterdir())
