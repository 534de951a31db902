"""What runs beside an RQ worker process: the periodic reaper and, for a registered training worker,
the heartbeat of its TrainingWorker row. A daemon thread, so `make run` needs no cron and no extra
process: every worker reaps every kind of stale job (lib.jobs.jobs_reap) each DOCLOOP_REAP_SECONDS."""

from __future__ import annotations

import logging
import os
import threading

from django.conf import settings
from django.db import close_old_connections, connections

from lib.jobs import jobs_reap
from training.models import TrainingWorker
from training.services.workers import worker_heartbeat

logger = logging.getLogger(__name__)


class WorkerCompanion(threading.Thread):
    def __init__(self, *, rq_worker, registered: TrainingWorker | None, interval: float | None = None):
        super().__init__(name="docloop-reaper", daemon=True)
        self.rq_worker, self.registered = rq_worker, registered
        self.interval = settings.DOCLOOP_REAP_SECONDS if interval is None else interval
        self.pid = os.getpid()
        self.stopping = threading.Event()

    def tick(self) -> None:
        close_old_connections()
        if self.registered is not None:
            job_id = ""
            try:
                job_id = self.rq_worker.get_current_job_id() or ""
            except Exception:  # Redis away: the heartbeat still says we live
                pass
            worker_heartbeat(worker=self.registered, pid=self.pid, busy=bool(job_id), current_job=job_id)
        for row in jobs_reap():
            logger.warning("reaper: %s", row)

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
