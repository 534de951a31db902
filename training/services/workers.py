"""Registered training workers (GPU hosts): tokens, and the state their processes report.

`manage.py register_worker NAME` prints a token once and keeps its SHA-256; `manage.py rqworker` on a
queue of DOCLOOP_TOKEN_QUEUES refuses to start unless DOCLOOP_WORKER_TOKEN is one of them, then reports
its host, device and a heartbeat (and reaps stale jobs) from a background thread (training.worker_runtime).

One token serves one process: a second `rqworker` with a token whose process is alive (its heartbeat younger
than DOCLOOP_JOB_STALE_SECONDS) is refused at start. A process whose token is revoked (or rotated, or taken
over) takes no further job: it checks before each job and at each heartbeat, finishes the job in hand, and
exits.
"""

from __future__ import annotations

import hashlib
import secrets
import socket

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lib import jobs
from lib.tempfiles import process_alive
from training.models import TrainingWorker


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def worker_register(*, name: str, rotate: bool = False) -> tuple[TrainingWorker, str]:
    """A new token for worker `name` (created, or with rotate=True replaced); returns it once."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError(_("A worker name has 1 to 100 characters."))
    token = secrets.token_urlsafe(32)
    fields = {"prefix": token[:8], "digest": _digest(token), "revoked_at": None}
    with transaction.atomic():
        existing = TrainingWorker.objects.select_for_update().filter(name=name).first()
        if existing is not None:
            if not rotate:
                raise ValidationError(_("Worker %(name)s is already registered; --rotate gives it a new "
                                        "token (the old one stops working).") % {"name": name})
            TrainingWorker.objects.filter(pk=existing.pk).update(**fields)
            existing.refresh_from_db()
            return existing, token
        try:
            return TrainingWorker.objects.create(name=name, **fields), token
        except IntegrityError:
            raise ValidationError(_("Worker %(name)s is already registered.") % {"name": name}) from None


def worker_for_token(*, token: str | None) -> TrainingWorker | None:
    if not token:
        return None
    return TrainingWorker.objects.filter(digest=_digest(token.strip()), revoked_at__isnull=True).first()


def worker_revoke(*, worker: TrainingWorker) -> None:
    TrainingWorker.objects.filter(pk=worker.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def worker_hostname() -> str:
    return settings.DOCLOOP_WORKER_HOST or socket.gethostname()


def _held_by(*, worker: TrainingWorker, hostname: str, pid: int):
    """The worker's row while this process holds its token: not revoked, not rotated, not taken over."""
    return TrainingWorker.objects.filter(pk=worker.pk, revoked_at__isnull=True, digest=worker.digest,
                                         hostname=hostname[:255], pid=pid)


def worker_started(*, worker: TrainingWorker, hostname: str, pid: int, queues: list[str],
                   device: str) -> bool:
    """Record this process (host and pid) as the one running the worker. One token serves one process: False,
    and nothing written, while another process holds it (its heartbeat is younger than
    DOCLOOP_JOB_STALE_SECONDS, unless it is a process of this host that no longer exists), or when the token
    was revoked meanwhile. The conditional UPDATE lets exactly one of two processes started together win."""
    now = timezone.now()
    free = (Q(state__in=[TrainingWorker.State.REGISTERED, TrainingWorker.State.STOPPED])
            | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=jobs.stale_cutoff(now))
            | Q(hostname=hostname[:255], pid=pid))
    holder = TrainingWorker.objects.filter(pk=worker.pk).values("hostname", "pid").first()
    if (holder and holder["hostname"] == hostname[:255] and holder["pid"]
            and not process_alive(holder["pid"], 0)):
        free |= Q(hostname=holder["hostname"], pid=holder["pid"])  # a crashed process of this host
    return bool(TrainingWorker.objects
                .filter(free, pk=worker.pk, revoked_at__isnull=True, digest=worker.digest)
                .update(state=TrainingWorker.State.IDLE, hostname=hostname[:255], pid=pid,
                        queues=",".join(queues)[:255], device=device[:255], started_at=now, heartbeat_at=now,
                        current_job=""))


def worker_heartbeat(*, worker: TrainingWorker, hostname: str, pid: int, busy: bool,
                     current_job: str = "") -> bool:
    """Refresh the worker's heartbeat; False when this process no longer holds the token (revoked, rotated,
    or taken by another process after this one went silent): the worker must take no further job."""
    return bool(_held_by(worker=worker, hostname=hostname, pid=pid).update(
        heartbeat_at=timezone.now(), current_job=(current_job or "")[:64],
        state=TrainingWorker.State.BUSY if busy else TrainingWorker.State.IDLE))


def worker_may_claim(*, worker: TrainingWorker, hostname: str, pid: int) -> bool:
    """Whether this process may take its next job: it still holds the worker's token."""
    return _held_by(worker=worker, hostname=hostname, pid=pid).exists()


def worker_lost_reason(*, worker: TrainingWorker) -> str:
    """Why a process no longer holds the worker's token (for its last log line)."""
    row = TrainingWorker.objects.filter(pk=worker.pk).first()
    if row is None:
        return f"worker {worker.name} was deleted"
    if row.revoked_at is not None:
        return f"the token of worker {worker.name} was revoked"
    if row.digest != worker.digest:
        return f"the token of worker {worker.name} was replaced (register_worker --rotate)"
    return f"worker {worker.name} is now run by the process {row.hostname}:{row.pid}"


def worker_stopped(*, worker: TrainingWorker, hostname: str, pid: int) -> None:
    TrainingWorker.objects.filter(pk=worker.pk, hostname=hostname[:255], pid=pid).update(
        state=TrainingWorker.State.STOPPED, current_job="")
