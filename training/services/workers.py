"""Registered training workers (GPU hosts): tokens, and the state their processes report.

`manage.py register_worker NAME` prints a token once and keeps its SHA-256; `manage.py rqworker` on a
queue of DOCLOOP_TOKEN_QUEUES refuses to start unless DOCLOOP_WORKER_TOKEN is one of them, then reports
its host, device and a heartbeat (and reaps stale jobs) from a background thread (training.worker_runtime).
"""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

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
                raise ValidationError(_("Worker %(name)s is already registered; --rotate gives it a new token "
                                        "(the old one stops working).") % {"name": name})
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


def worker_started(*, worker: TrainingWorker, hostname: str, pid: int, queues: list[str], device: str) -> None:
    now = timezone.now()
    TrainingWorker.objects.filter(pk=worker.pk).update(
        state=TrainingWorker.State.IDLE, hostname=hostname[:255], pid=pid, queues=",".join(queues)[:255],
        device=device[:255], started_at=now, heartbeat_at=now, current_job="")


def worker_heartbeat(*, worker: TrainingWorker, pid: int, busy: bool, current_job: str = "") -> bool:
    """Refresh the worker's heartbeat; False when the token was revoked meanwhile."""
    return bool(TrainingWorker.objects.filter(pk=worker.pk, revoked_at__isnull=True, pid=pid).update(
        heartbeat_at=timezone.now(), current_job=(current_job or "")[:64],
        state=TrainingWorker.State.BUSY if busy else TrainingWorker.State.IDLE))


def worker_stopped(*, worker: TrainingWorker, pid: int) -> None:
    TrainingWorker.objects.filter(pk=worker.pk, pid=pid).update(state=TrainingWorker.State.STOPPED,
                                                                current_job="")
