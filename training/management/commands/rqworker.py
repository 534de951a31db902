"""django-rq's `rqworker`, with docloop's worker duties (this app is listed before django_rq, so this
command wins):

- on a queue of DOCLOOP_TOKEN_QUEUES (`training` by default) the worker must present a token registered
  with `manage.py register_worker NAME` in DOCLOOP_WORKER_TOKEN, else it exits with status 2 and a clear
  message before connecting to any queue, so it never takes a job; `default` queue workers need none;
- a registered worker records its host, process, queues and device (GPU name and memory, or cpu), and
  refreshes its heartbeat; every worker reaps stale jobs of every kind each DOCLOOP_REAP_SECONDS;
- one token serves one process: while another live process holds the token, the worker exits with status 2;
  once its token is revoked (or rotated) it takes no further job and exits (after the job in hand, if any).
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.db import connections
from django_rq.management.commands.rqworker import Command as RQWorkerCommand

TOKEN_VARIABLE = "DOCLOOP_WORKER_TOKEN"


class Command(RQWorkerCommand):
    help = ("Run an RQ worker on the given queues (default: default). Workers on the training queue need "
            f"{TOKEN_VARIABLE} (manage.py register_worker NAME).")

    def refuse(self, message: str) -> None:
        self.stderr.write(f"rqworker: {message}")
        sys.exit(2)

    def handle(self, *args, **options):
        from training.models import TrainingWorker
        from training.services.workers import (
            worker_for_token,
            worker_hostname,
            worker_started,
            worker_stopped,
        )
        from training.worker_runtime import WorkerCompanion, device_description

        queues = list(args) or ["default"]
        guarded = sorted(set(queues) & set(settings.DOCLOOP_TOKEN_QUEUES))
        registered = None
        if guarded:
            token = os.environ.get(TOKEN_VARIABLE, "").strip()
            if not token:
                self.refuse(f"{TOKEN_VARIABLE} is not set; a worker on the {', '.join(guarded)} queue needs "
                            "the token that `manage.py register_worker NAME` printed. No job was taken.")
            try:
                registered = worker_for_token(token=token)
            except Exception as exc:
                self.refuse(f"cannot check {TOKEN_VARIABLE} against the database: {exc}")
            if registered is None:
                self.refuse(f"{TOKEN_VARIABLE} is not a registered worker token (unknown or revoked); "
                            "register one with `manage.py register_worker NAME`. No job was taken.")
            if not worker_started(worker=registered, hostname=worker_hostname(), pid=os.getpid(),
                                  queues=queues, device=device_description()):
                holder = TrainingWorker.objects.get(pk=registered.pk)
                if holder.revoked_at is not None or holder.digest != registered.digest:
                    self.refuse(f"the token of worker {registered.name} was revoked. No job was taken.")
                seen = holder.heartbeat_at.isoformat(timespec="seconds") if holder.heartbeat_at else "-"
                self.refuse(f"worker {registered.name} is already running as {holder.hostname}:{holder.pid} "
                            f"(last heartbeat {seen}); one token serves one process. "
                            "Register another worker for a second process (`manage.py register_worker "
                            "NAME`), or stop that one (a process that died frees the token "
                            f"{settings.DOCLOOP_JOB_STALE_SECONDS} s after its last heartbeat). No job was "
                            "taken.")
            self.stdout.write(f"rqworker: registered worker {registered.name} on {', '.join(queues)}")

        from lib.tempfiles import temp_clean

        temp_clean()  # what a killed worker's jobs (or a killed upload request) left behind

        from django_rq.workers import get_worker

        original = get_worker
        companion: list[WorkerCompanion] = []

        def get_worker_with_companion(*queue_names, **kwargs):
            worker = original(*queue_names, **kwargs)
            worker.registered = registered  # training.worker_runtime.Worker checks its token before each job
            if settings.DOCLOOP_REAP_SECONDS > 0 or registered is not None:
                companion.append(WorkerCompanion(rq_worker=worker, registered=registered,
                                                 interval=settings.DOCLOOP_REAP_SECONDS
                                                 or settings.DOCLOOP_JOB_HEARTBEAT_SECONDS))
                companion[0].start()
            return worker

        import django_rq.management.commands.rqworker as base

        base.get_worker = get_worker_with_companion
        connections.close_all()
        try:
            super().handle(*queues, **options)
        finally:
            base.get_worker = original
            for thread in companion:
                thread.stop()
            if registered is not None:
                worker_stopped(worker=registered, hostname=worker_hostname(), pid=os.getpid())
