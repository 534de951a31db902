"""The job lifecycle shared by every job row (lib.jobs), shown on training runs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lib import jobs
from training.models import TrainingRun
from training.services import runs_lifecycle


@pytest.fixture
def run(db):
    return TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={})


def test_only_one_worker_claims_a_queued_row(run):
    lifecycle = runs_lifecycle()
    assert jobs.job_claim(lifecycle, run.pk, worker="a:1")
    assert not jobs.job_claim(lifecycle, run.pk, worker="b:2")
    run.refresh_from_db()
    assert (run.status, run.worker, run.attempts) == ("running", "a:1", 1) and run.heartbeat_at


def test_a_stale_claim_can_be_taken_over_and_the_old_worker_learns_it_lost(run, settings):
    settings.DOCLOOP_JOB_STALE_SECONDS = 60
    lifecycle = runs_lifecycle()
    jobs.job_claim(lifecycle, run.pk, worker="a:1")
    old = jobs.Heartbeat(lifecycle, run.pk, worker="a:1", interval=0)
    old()  # still ours
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    assert jobs.job_claim(lifecycle, run.pk, worker="b:2")
    with pytest.raises(jobs.JobLost):
        old()
    run.refresh_from_db()
    assert (run.worker, run.attempts) == ("b:2", 2)


def test_the_heartbeat_writes_at_most_once_per_interval(run):
    lifecycle = runs_lifecycle()
    jobs.job_claim(lifecycle, run.pk, worker="a:1")
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
    before = TrainingRun.objects.get(pk=run.pk).heartbeat_at
    beat = jobs.Heartbeat(lifecycle, run.pk, worker="a:1", interval=3600)
    beat()
    assert TrainingRun.objects.get(pk=run.pk).heartbeat_at == before
    beat(force=True)
    assert TrainingRun.objects.get(pk=run.pk).heartbeat_at > before


def test_an_orphaned_job_stops_at_its_next_heartbeat(run, monkeypatch):
    lifecycle = runs_lifecycle()
    jobs.job_claim(lifecycle, run.pk, worker="a:1")
    beat = jobs.Heartbeat(lifecycle, run.pk, worker="a:1")
    monkeypatch.setattr(jobs.os, "getppid", lambda: 1)  # the RQ worker that forked us is gone
    with pytest.raises(jobs.JobLost, match="is gone"):
        beat()


def test_the_reaper_fails_and_requeues_a_stale_run_once_then_gives_up(run, settings, queues,
                                                                       django_capture_on_commit_callbacks):
    settings.DOCLOOP_JOB_STALE_SECONDS = 60
    lifecycle = runs_lifecycle()
    for attempt in (1, 2):
        assert jobs.job_claim(lifecycle, run.pk, worker=f"w:{attempt}")
        TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
        with django_capture_on_commit_callbacks(execute=True):
            reaped = jobs.lifecycle_reap(lifecycle)
        run.refresh_from_db()
        assert [r.action for r in reaped] == (["requeued"] if attempt == 1 else ["failed"])
        assert f"w:{attempt}" in run.error
    assert run.status == "failed" and run.finished_at and "Failed after 2 attempts" in run.error
    assert queues["training"].count == 1  # requeued once


def test_a_queued_row_whose_job_vanished_from_redis_is_queued_again(run, settings, queues,
                                                                      django_capture_on_commit_callbacks):
    settings.DOCLOOP_JOB_STALE_SECONDS = 60
    TrainingRun.objects.filter(pk=run.pk).update(job_id="no-such-job",
                                                 queued_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        reaped = jobs.lifecycle_reap(runs_lifecycle())
    assert [r.action for r in reaped] == ["requeued"]
    run.refresh_from_db()
    assert run.status == "queued" and run.job_id == queues["training"].job_ids[0]


def test_a_queued_row_whose_job_is_waiting_in_redis_is_left_alone(run, settings, queues,
                                                                   django_capture_on_commit_callbacks):
    settings.DOCLOOP_JOB_STALE_SECONDS = 60
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_enqueue(runs_lifecycle(), run.pk)
    TrainingRun.objects.filter(pk=run.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    assert jobs.lifecycle_reap(runs_lifecycle()) == []
    assert queues["training"].count == 1
