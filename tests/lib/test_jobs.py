"""The job lifecycle shared by every job row (lib.jobs), shown on training runs."""

import time
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


def _beaten_since(pk, since, *, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if TrainingRun.objects.get(pk=pk).heartbeat_at > since:
            return True
        time.sleep(0.02)
    return False


def test_a_background_heartbeat_beats_for_rows_claimed_after_it_started(transactional_db):
    """As `ingest --sync` claims each document when extraction takes it: holding no row yet, or none any
    longer, does not stop the beating until no more rows will come."""
    lifecycle = runs_lifecycle()
    first, second = (TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={})
                     for _ in range(2))
    stale = timezone.now() - timedelta(minutes=5)
    with jobs.BackgroundHeartbeat(lifecycle, [], worker="a:1", interval=0.05, growing=True) as heartbeat:
        for run in (first, second):
            time.sleep(0.2)  # beats while holding nothing (before the first claim, after the first is done)
            jobs.job_claim(lifecycle, run.pk, worker="a:1")
            TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=stale)
            heartbeat.add(run.pk)
            assert _beaten_since(run.pk, stale)
            TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
        assert heartbeat.thread.is_alive()
        heartbeat.complete()
        heartbeat.thread.join(timeout=5)
        assert not heartbeat.thread.is_alive()  # nothing held and nothing more to come: it stopped


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


def test_one_job_for_several_queued_rows_is_named_on_those_without_a_job(db, queues):
    """lib.jobs.job_enqueue_for (re-scoring's one job for a version's claims): the rows still queued without a
    job name it, a row already on a job of its own keeps it, and a queued job can be cancelled by its id."""
    lifecycle = runs_lifecycle()
    a, b, c, done = (TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={})
                     for _ in range(4))
    TrainingRun.objects.filter(pk=c.pk).update(job_id="its-own")
    TrainingRun.objects.filter(pk=done.pk).update(status=TrainingRun.Status.SUCCEEDED)
    rows = TrainingRun.objects.filter(pk__in=[a.pk, b.pk, c.pk, done.pk])
    job_id = jobs.job_enqueue_for(lifecycle, rows, "tests.training.slow_jobs.hold_job_folder", "x", 1)
    assert job_id and queues["training"].job_ids == [job_id]
    assert jobs.rq_job_status(job_id, queue="training") == "queued"
    assert dict(rows.values_list("pk", "job_id")) == {a.pk: job_id, b.pk: job_id, c.pk: "its-own", done.pk: ""}
    assert jobs.rq_job_cancel_queued(job_id, queue="training")
    assert jobs.rq_job_status(job_id, queue="training") == "canceled"
    assert not jobs.rq_job_cancel_queued(job_id, queue="training")  # no longer waiting
    assert jobs.rq_job_status("no-such-job") is None


def test_one_job_for_several_rows_with_redis_away_leaves_them_queued_for_the_reaper(db, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    def unreachable(*args):
        raise RedisConnectionError("Redis is away")

    monkeypatch.setattr(jobs, "rq_enqueue", unreachable)
    run = TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={})
    assert jobs.job_enqueue_for(runs_lifecycle(), TrainingRun.objects.filter(pk=run.pk), "x.y", 1) == ""
    run.refresh_from_db()
    assert (run.status, run.job_id, run.error) == ("queued", "", "")
