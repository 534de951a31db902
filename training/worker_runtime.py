"""What runs inside an RQ worker process besides RQ itself:

- `WorkerCompanion`, the periodic reaper and, for a registered training worker, the heartbeat of its
  TrainingWorker row. A daemon thread, so `make run` needs no cron and no extra process: every worker
  reaps every kind of stale job (lib.jobs.jobs_reap) each DOCLOOP_REAP_SECONDS.
- `Worker` (settings.RQ["WORKER_CLASS"]), RQ's forking worker that keeps the active models loaded: before
  forking each job it loads the active version of every task into its own cache (only when that version
  changed), so the job's process inherits the loaded model instead of reading it again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from glob import glob

from django.conf import settings
from django.db import close_old_connections, connections
from rq.exceptions import StopRequested
from rq.worker import Worker as RQWorker

from lib.jobs import jobs_reap
from lib.processes import die_with_parent
from lib.tempfiles import temp_clean
from training.models import TrainingWorker
from training.services.workers import worker_heartbeat, worker_hostname, worker_lost_reason, worker_may_claim

logger = logging.getLogger(__name__)


class WorkerCompanion(threading.Thread):
    def __init__(self, *, rq_worker, registered: TrainingWorker | None, interval: float | None = None):
        super().__init__(name="docloop-reaper", daemon=True)
        self.rq_worker, self.registered = rq_worker, registered
        self.interval = settings.DOCLOOP_REAP_SECONDS if interval is None else interval
        self.pid, self.hostname = os.getpid(), worker_hostname()
        self.stopping = threading.Event()

    def tick(self) -> None:
        close_old_connections()
        if self.registered is not None:
            job_id = ""
            try:
                job_id = self.rq_worker.get_current_job_id() or ""
            except Exception:  # Redis away: the heartbeat still says we live
                pass
            if not worker_heartbeat(worker=self.registered, hostname=self.hostname, pid=self.pid,
                                    busy=bool(job_id), current_job=job_id):
                self.token_lost()
                return
        if settings.DOCLOOP_REAP_SECONDS > 0:
            for row in jobs_reap():
                logger.warning("reaper: %s", row)
        temp_clean()  # what a killed job or request left in docloop's temporary folder

    def token_lost(self) -> None:
        """Stop the worker: RQ's warm shutdown (SIGTERM) ends it at once when idle, or after the job in
        hand."""
        logger.warning("rqworker: %s; this process takes no further job and exits (after its current job, "
                       "if any)", worker_lost_reason(worker=self.registered))
        self.stopping.set()
        os.kill(self.pid, signal.SIGTERM)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("reaper round failed; trying again in %s s", self.interval)
            finally:
                connections.close_all()
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()


def preload_is_safe() -> bool:
    """Whether this process may load models before forking. Only on a CPU host: a process that touched
    CUDA (or Apple's MPS) cannot hand it to a forked child, so where a GPU may be present the models are
    loaded by each job instead. Decided without touching the GPU driver."""
    return not (glob("/dev/nvidia[0-9]*") or sys.platform == "darwin")


def device_description() -> str:
    """The device this host's jobs run on (GPU name and memory, or cpu), asked of a separate Python
    process: this one must not initialise CUDA, or the jobs it forks could not use the GPU."""
    code = ("from training.ml.device import describe_device, pick_device; "
            "print(describe_device(pick_device()))")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                              cwd=settings.BASE_DIR, check=True)
        return done.stdout.strip().splitlines()[-1]
    except (subprocess.SubprocessError, OSError, IndexError) as exc:
        logger.warning("could not describe the device: %s", exc)
        return "unknown"


class Worker(RQWorker):
    """RQ's forking worker, keeping the active model of every task loaded between jobs.

    Loading happens here, in the worker process, before the fork, and consists only of constructing the
    models (no forward pass: torch's OpenMP thread pool does not survive a fork once it has run), so each
    job inherits them copy-on-write; a model is reloaded only when its task's active version changes.
    DOCLOOP_WORKER_PRELOAD=false turns it off; on a GPU host it is off by itself (`preload_is_safe`).
    """

    preload = None  # decided at the first job
    forked_by: int | None = None  # this worker's pid, for the work horse to die with it
    registered: TrainingWorker | None = None  # set by `manage.py rqworker` for a token-holding worker

    def _may_claim(self) -> bool:
        try:
            return worker_may_claim(worker=self.registered, hostname=worker_hostname(), pid=os.getpid())
        finally:
            connections.close_all()  # a forked child must not share this process's database sockets

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """A registered worker checks that it still holds its token before each job, and again once a job is
        dequeued (the token may have been revoked while it waited); if not, the job goes back to the front of
        its queue for another worker, and this one exits."""
        if self.registered is not None and not self._may_claim():
            self._token_lost()
        result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        if result is not None and self.registered is not None and not self._may_claim():
            job, queue = result
            # back where it was (RQ moved it to its intermediate list)
            with queue.connection.pipeline() as pipe:
                queue.push_job_id(job.id, pipeline=pipe, at_front=True)
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                pipe.execute()
            self._token_lost()
        return result

    def unsubscribe(self):
        """RQ's, in the order that lets the worker exit at once. RQ sends UNSUBSCRIBE and then stops its
        pubsub thread (a blocking read of up to 60 s): when the thread consumes the reply before its stop
        flag is cleared, it blocks in its next read and the worker's exit waits up to a minute. Here the flag
        is cleared first (stop with no wait), so the reply wakes the thread and it ends."""
        if self.pubsub_thread:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub_thread.stop(timeout=0)
            self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=5)
            self.pubsub.close()

    def _token_lost(self):
        logger.warning("rqworker: %s; no further job taken, exiting",
                       worker_lost_reason(worker=self.registered))
        connections.close_all()
        raise StopRequested()

    def main_work_horse(self, job, queue):
        """The forked work horse dies with this worker (lib.processes): a SIGKILLed worker leaves no job
        running on unseen, and its extraction processes follow the work horse in turn."""
        die_with_parent(self.forked_by)
        super().main_work_horse(job, queue)

    def fork_work_horse(self, job, queue):
        if self.preload is None:
            self.preload = settings.DOCLOOP_WORKER_PRELOAD and preload_is_safe()
        if self.preload:
            try:
                from training.predictor_cache import predictors_preload

                predictors_preload()
            except Exception:  # the job loads what it needs itself
                logger.exception("could not preload the active models; the job will load them")
            finally:
                connections.close_all()  # a forked child must not share this process's database sockets
        self.forked_by = os.getpid()
        super().fork_work_horse(job, queue)
