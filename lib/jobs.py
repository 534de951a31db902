"""One lifecycle for every job row: document ingestion, training runs, and the jobs to come.

A job row (a model inheriting `JobRow`) moves queued → running → a final status:

- **enqueue**: once the transaction commits, the job named by a dotted path goes on its RQ queue with
  the row's primary key; an unreachable Redis fails the row with the reason instead of raising.
- **claim**: a conditional UPDATE from queued (or from running whose heartbeat is stale) to running, by
  this worker; exactly one caller wins, so a job that runs twice does its work once.
- **heartbeat**: the running worker refreshes `heartbeat_at` as it goes, every DOCLOOP_JOB_HEARTBEAT_SECONDS
  (a `BackgroundHeartbeat` thread around the whole job, and the job's own `Heartbeat` per step). When the
  claim is gone (reaped, reclaimed by another worker, cancelled) or the worker process that forked this job
  has died, the heartbeat raises `JobLost` and the job stops without writing its result. A dropped database
  connection is not a lost claim: the heartbeat reconnects and tries again (lib.db_retry), and `job_release`
  gives a job that a database blip stopped back to the queue without spending one of its attempts.
- **reap**: a running row whose heartbeat is older than `DOCLOOP_JOB_STALE_SECONDS` (two missed heartbeats
  and a margin; every worker reaps each DOCLOOP_REAP_SECONDS) is failed with the
  reason and requeued while it has attempts left (`max_attempts`), else left failed; a queued row whose
  RQ job has vanished is queued again.

Each app describes its rows with a `Lifecycle` and registers it in its AppConfig.ready(), so
`manage.py reap_stale_jobs` (and the workers) reap every kind of job without importing the apps.

Every call the apps make to RQ goes through this module too (`rq_enqueue`, `rq_job_status`,
`rq_job_cancel_queued`, `rq_current_job_id`, `rq_workers`); what extends RQ itself stays beside it: the
worker class (training.worker_runtime.Worker), the `rqworker` command that wraps django-rq's, and the
dashboard's views (lib.rq_admin).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from redis.exceptions import RedisError

from lib.db_retry import db_error_is_transient, db_reset, db_retry

logger = logging.getLogger(__name__)


class JobRow(models.Model):
    """The fields every job row shares; status and error are the model's own (their choices differ)."""

    job_id = models.CharField(gettext_lazy("RQ job id"), max_length=64, blank=True)
    worker = models.CharField(gettext_lazy("worker"), max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(gettext_lazy("attempts"), default=0)
    queued_at = models.DateTimeField(gettext_lazy("queued at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(gettext_lazy("last heartbeat"), null=True, blank=True)

    class Meta:
        abstract = True


class JobLost(Exception):
    """This process no longer owns the job: stop without writing a result."""


@dataclass(frozen=True)
class Lifecycle:
    name: str  # shown in reaper output and reasons
    model: type[models.Model]
    queue: str
    job: Callable[[], str]  # the dotted path of the RQ job function, read when enqueuing
    queued: str
    running: str
    failed: str
    max_attempts: int = 2
    # Extra fields written when the reaper gives up on a row (e.g. finished_at).
    on_fail: Callable[[datetime], dict] = field(default=lambda now: {})


_LIFECYCLES: dict[str, Callable[[], Lifecycle]] = {}


def lifecycle_register(name: str, factory: Callable[[], Lifecycle]) -> None:
    _LIFECYCLES[name] = factory


def lifecycles() -> list[Lifecycle]:
    return [factory() for factory in _LIFECYCLES.values()]


def worker_name() -> str:
    host = getattr(settings, "DOCLOOP_WORKER_HOST", "") or socket.gethostname()
    return f"{host}:{os.getpid()}"


def stale_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.DOCLOOP_JOB_STALE_SECONDS)


def _stale_running(lifecycle: Lifecycle, now: datetime | None = None) -> Q:
    cutoff = stale_cutoff(now)
    return Q(status=lifecycle.running) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))


# Enqueue --------------------------------------------------------------------------------------------------

def job_enqueue(lifecycle: Lifecycle, pk: int) -> None:
    """Queue the row's job once the transaction commits; the row must already be in the queued status."""
    lifecycle.model.objects.filter(pk=pk).update(queued_at=timezone.now(), job_id="")

    def enqueue() -> None:
        try:
            job_id = rq_enqueue(lifecycle.queue, lifecycle.job(), pk)
        except QUEUE_ERRORS as exc:
            # expected and handled (the row says why): one line, not a traceback
            logger.warning("could not enqueue %s %s: the job queue is unreachable (%s)",
                           lifecycle.name, pk, exc)
            lifecycle.model.objects.filter(pk=pk, status=lifecycle.queued).update(
                status=lifecycle.failed, **lifecycle.on_fail(timezone.now()),
                error=_("The job queue is unreachable (%(reason)s); try again later.") % {"reason": exc})
            return
        lifecycle.model.objects.filter(pk=pk, status=lifecycle.queued).update(job_id=job_id)

    transaction.on_commit(enqueue)


def job_enqueue_for(lifecycle: Lifecycle, rows, job: str, *args) -> str:
    """Queue one job (`job`, a dotted path, with `args`) that runs several queued rows of `lifecycle`, and
    name it on those rows (`rows`, a queryset of them), so the reaper leaves them to it. Call it after the
    rows' transaction has committed. Should Redis be unreachable the rows stay queued without a job, and the
    reaper queues each on its own job once they have waited DOCLOOP_JOB_STALE_SECONDS. Returns the job's id
    ("" when it could not be queued)."""
    try:
        job_id = rq_enqueue(lifecycle.queue, job, *args)
    except QUEUE_ERRORS as exc:
        logger.warning("could not queue %s for %s rows (the reaper queues them later): the job queue is "
                       "unreachable (%s)", job, lifecycle.name, exc)
        return ""
    rows.filter(status=lifecycle.queued, job_id="").update(job_id=job_id)
    return job_id


def _job_is_gone(job_id: str) -> bool:
    """True when RQ no longer has a live job for this id (deleted, failed, stopped or cancelled)."""
    from rq.job import JobStatus

    if not job_id:
        return True
    # A job that finished (or failed) while its row is still queued never ran it (a released claim, say).
    return rq_job_status(job_id) in {None, JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED,
                                     JobStatus.CANCELED}


# RQ itself: every call the apps make to RQ goes through these (lib.jobs is the one module that talks to
# the queues; the worker class, its command and the dashboard extend RQ and django-rq instead) ------------

QUEUE_ERRORS = (RedisError, OSError)  # what an unreachable Redis raises


def rq_enqueue(queue: str, job: str, *args) -> str:
    """Put `job` (a dotted path) with `args` on the RQ queue `queue` now; returns the RQ job's id. Raises
    what an unreachable Redis raises (QUEUE_ERRORS). Job rows go through job_enqueue instead."""
    import django_rq

    return django_rq.get_queue(queue).enqueue(job, *args).id


def rq_job_status(job_id: str, *, queue: str = "default") -> str | None:
    """The RQ status of a job ("queued", "started", "finished", ...), or None when Redis has no such job."""
    import django_rq
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        return Job.fetch(job_id, connection=django_rq.get_connection(queue)).get_status()
    except NoSuchJobError:
        return None


def rq_job_cancel_queued(job_id: str, *, queue: str = "default") -> bool:
    """Drop a job that is still waiting on its queue (one already started is left to notice its row's status
    itself); returns whether it was cancelled. Raises what an unreachable Redis raises."""
    import django_rq
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=django_rq.get_connection(queue))
    except NoSuchJobError:
        return False
    if job.get_status() != "queued":
        return False
    job.cancel()
    return True


def rq_current_job_id() -> str:
    """The id of the RQ job this code runs in ("" outside a worker)."""
    from rq import get_current_job

    job = get_current_job()
    return job.id if job is not None else ""


def rq_workers(*, queue: str = "default") -> list[dict]:
    """The RQ worker processes alive in Redis, with their queues, state and current job ([] when Redis is
    unreachable)."""
    import django_rq
    from rq import Worker

    try:
        workers = Worker.all(connection=django_rq.get_connection(queue))
    except Exception:
        return []
    return [{"name": w.name, "hostname": w.hostname, "pid": w.pid, "queues": ",".join(w.queue_names()),
             "state": w.get_state(), "current_job": w.get_current_job_id() or "",
             "heartbeat_at": w.last_heartbeat}
            for w in workers]


def job_retry(lifecycle: Lifecycle, pk: int, *, from_statuses: tuple[str, ...] = (), enqueue: bool = True,
              **fields) -> bool:
    """Queue a row again if it failed (or is in one of `from_statuses`), or if its worker stopped sending
    heartbeats. Exactly one of several concurrent callers wins; returns whether this one did."""
    retryable = Q(status__in=(lifecycle.failed, *from_statuses)) | _stale_running(lifecycle)
    changed = lifecycle.model.objects.filter(retryable, pk=pk).update(
        status=lifecycle.queued, error="", worker="", heartbeat_at=None, **fields)
    if changed and enqueue:
        job_enqueue(lifecycle, pk)
    return bool(changed)


# Claim and heartbeat --------------------------------------------------------------------------------------

def _claim(lifecycle: Lifecycle, rows: Q, *, worker: str, now: datetime, **fields) -> int:
    """The conditional UPDATE every claim is: queued (or abandoned) rows among `rows` to running."""
    claimable = Q(status=lifecycle.queued) | _stale_running(lifecycle, now)
    return lifecycle.model.objects.filter(claimable, rows).update(
        status=lifecycle.running, worker=worker, heartbeat_at=now, attempts=F("attempts") + 1, **fields)


def job_claim(lifecycle: Lifecycle, pk: int, *, worker: str, **fields) -> bool:
    """Move a queued (or abandoned) row to running for `worker`; exactly one caller wins."""
    return _claim(lifecycle, Q(pk=pk), worker=worker, now=timezone.now(), **fields) == 1


def job_claim_many(lifecycle: Lifecycle, pks: list[int], *, worker: str, **fields) -> set[int]:
    """job_claim for many rows in one statement (a bulk import claims its documents a batch at a time);
    returns the primary keys this call claimed. The rows claimed are those this worker holds with this
    call's heartbeat, read back in the same transaction."""
    now = timezone.now()
    with transaction.atomic():
        if not _claim(lifecycle, Q(pk__in=pks), worker=worker, now=now, **fields):
            return set()
        return set(lifecycle.model.objects.filter(pk__in=pks, status=lifecycle.running, worker=worker,
                                                  heartbeat_at=now).values_list("pk", flat=True))


def job_owned(lifecycle: Lifecycle, pk: int, *, worker: str):
    """The row, as a queryset, while `worker` still holds its claim (for conditional final writes)."""
    return lifecycle.model.objects.filter(pk=pk, status=lifecycle.running, worker=worker)


class Heartbeat:
    """Call it often from the job's own loop; it writes at most once per interval.

    Raises JobLost when another worker holds the claim now, or when the process that forked this job
    (the RQ worker) has died: an orphaned work horse stops instead of working on unseen.
    """

    def __init__(self, lifecycle: Lifecycle, pk: int, *, worker: str, interval: float | None = None):
        self.lifecycle, self.pk, self.worker = lifecycle, pk, worker
        self.interval = settings.DOCLOOP_JOB_HEARTBEAT_SECONDS if interval is None else interval
        self.parent = os.getppid()
        self.last = time.monotonic()

    def __call__(self, *, force: bool = False, **fields) -> None:
        """Refresh the heartbeat (and write `fields`, such as progress, with it) when the interval has
        passed or `force` is given; with force on every call, a cancel is noticed at the next call."""
        if os.getppid() != self.parent:
            raise JobLost(f"the worker process that started {self.lifecycle.name} {self.pk} is gone")
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        owned = job_owned(self.lifecycle, self.pk, worker=self.worker)
        if not db_retry(lambda: owned.update(heartbeat_at=timezone.now(), **fields),
                        what=f"heartbeat of {self.lifecycle.name} {self.pk}"):
            raise JobLost(f"{self.lifecycle.name} {self.pk} is no longer claimed by {self.worker}")


class BackgroundHeartbeat:
    """Refresh a claimed row's heartbeat (or several rows': `pk` a list) from a thread for the whole job, so
    a single step longer than the stale timeout (loading a model, scoring a validation set, extracting a
    PDF) does not get live work reaped. Stops beating as soon as the worker process that forked the job is
    gone, or every claim is lost, so a dead worker's row still goes stale and gets reaped.

    Rows claimed while the job runs are added with `add(pk)`; until `complete()` says no more are coming,
    holding none yet (or none any longer) does not stop the beating."""

    def __init__(self, lifecycle: Lifecycle, pk: int | list[int], *, worker: str,
                 interval: float | None = None, growing: bool = False):
        import threading

        self.lifecycle, self.pk, self.worker = lifecycle, pk, worker
        self.pks = list(pk) if isinstance(pk, list | tuple) else [pk]
        self.growing = growing
        self.interval = settings.DOCLOOP_JOB_HEARTBEAT_SECONDS if interval is None else interval
        self.parent = os.getppid()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{pk}", daemon=True)

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self.stopping.wait(self.interval):
                if os.getppid() != self.parent:
                    return
                pks = list(self.pks)  # add() may append meanwhile
                try:
                    beaten = pks and self.lifecycle.model.objects.filter(
                        pk__in=pks, status=self.lifecycle.running, worker=self.worker).update(
                        heartbeat_at=timezone.now())
                    if not beaten and not self.growing:
                        return
                except Exception as exc:
                    if not db_error_is_transient(exc):
                        raise
                    # The connection dropped: reconnect at the next beat (a miss or two is within the
                    # stale threshold; a database away for longer gets the job reaped, as it should).
                    logger.warning("heartbeat of %s %s: database connection lost (%s); reconnecting",
                                   self.lifecycle.name, self.pk, exc)
                    db_reset()
        except Exception:
            logger.exception("background heartbeat of %s %s stopped", self.lifecycle.name, self.pk)
        finally:
            connection.close()

    def add(self, pk: int) -> None:
        """Beat for a row claimed since the job started, too."""
        self.pks.append(pk)

    def complete(self) -> None:
        """No more rows will be added: once none of them is held, the beating stops."""
        self.growing = False

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=self.interval + 5)
        return False


def job_release(lifecycle: Lifecycle, pk: int, *, worker: str, reason: str) -> bool:
    """Give a row that `worker` holds back to the queue after a transient database error stopped its job,
    with the attempt it spent given back: a database blip is not the job's failure. The next worker resumes
    it as after a requeue (a run from its last checkpoint). Returns whether the row went back (False when
    the claim is no longer this worker's, or the database stays away: then the reaper requeues it)."""

    def release() -> bool:
        with transaction.atomic():
            released = job_owned(lifecycle, pk, worker=worker).filter(attempts__gt=0).update(
                status=lifecycle.queued, worker="", heartbeat_at=None, error=reason,
                attempts=F("attempts") - 1)
            if released:
                job_enqueue(lifecycle, pk)
        return bool(released)

    try:
        released = db_retry(release, what=f"release of {lifecycle.name} {pk}")
    except Exception:
        logger.exception("could not give %s %s back to the queue; the reaper requeues it", lifecycle.name, pk)
        return False
    if released:
        logger.warning("%s %s: %s", lifecycle.name, pk, reason)
    return released


# Reaping --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reaped:
    lifecycle: str
    pk: int
    action: str  # "requeued" or "failed"
    reason: str

    def __str__(self) -> str:
        return f"{self.lifecycle}\t{self.pk}\t{self.action}\t{self.reason}"


def lifecycle_reap(lifecycle: Lifecycle, *, now: datetime | None = None) -> list[Reaped]:
    now = now or timezone.now()
    reaped: list[Reaped] = []
    model = lifecycle.model
    stale = model.objects.filter(_stale_running(lifecycle, now)).values_list("pk", "worker", "heartbeat_at",
                                                                             "attempts")
    for pk, worker, heartbeat_at, attempts in stale:
        since = timezone.localtime(heartbeat_at).strftime("%Y-%m-%d %H:%M:%S") if heartbeat_at else "-"
        reason = _("The worker %(worker)s stopped sending heartbeats (last at %(time)s).") % {
            "worker": worker or "?", "time": since}
        same = model.objects.filter(pk=pk, status=lifecycle.running, worker=worker, heartbeat_at=heartbeat_at)
        if attempts < lifecycle.max_attempts:
            reason += " " + _("Requeued (attempt %(next)d of %(max)d).") % {
                "next": attempts + 1, "max": lifecycle.max_attempts}
            with transaction.atomic():
                if same.update(status=lifecycle.queued, worker="", heartbeat_at=None, error=reason):
                    job_enqueue(lifecycle, pk)
                    reaped.append(Reaped(lifecycle.name, pk, "requeued", reason))
        else:
            reason += " " + _("Failed after %(count)d attempts.") % {"count": attempts}
            if same.update(status=lifecycle.failed, error=reason, **lifecycle.on_fail(now)):
                reaped.append(Reaped(lifecycle.name, pk, "failed", reason))

    # Queued rows whose RQ job vanished (Redis flushed, a job that died before claiming its row).
    cutoff = stale_cutoff(now)
    waiting = model.objects.filter(status=lifecycle.queued).filter(
        Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True)).values_list("pk", "job_id", "attempts")
    for pk, job_id, attempts in waiting:
        try:
            gone = _job_is_gone(job_id)
        except Exception as exc:  # Redis unreachable: nothing can be said about the queue
            logger.warning("cannot check the RQ job of %s %s: %s", lifecycle.name, pk, exc)
            return reaped
        if not gone:
            continue
        same = model.objects.filter(pk=pk, status=lifecycle.queued, job_id=job_id)
        if attempts < lifecycle.max_attempts:
            reason = _("Its queued job was lost; queued again.")
            with transaction.atomic():
                if same.update(attempts=F("attempts") + 1):
                    job_enqueue(lifecycle, pk)
                    reaped.append(Reaped(lifecycle.name, pk, "requeued", reason))
        else:
            reason = _("Its queued job was lost %(count)d times; gave up.") % {"count": attempts}
            if same.update(status=lifecycle.failed, error=reason, **lifecycle.on_fail(now)):
                reaped.append(Reaped(lifecycle.name, pk, "failed", reason))
    return reaped


def jobs_reap(*, now: datetime | None = None) -> list[Reaped]:
    """Reap every registered kind of job."""
    return [row for lifecycle in lifecycles() for row in lifecycle_reap(lifecycle, now=now)]
