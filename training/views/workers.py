"""Training workers: the workers page (registered workers with their heartbeats, and the RQ processes) and
its JSON twin /training/api/workers/."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from lib.decorators import reviewer_required
from lib.jobs import rq_workers
from lib.roles import is_reviewer
from training.api import api_view
from training.models import TrainingWorker


@require_GET
@reviewer_required
def workers_page(request):
    return render(request, "training/workers.html", {"workers": TrainingWorker.objects.all(),
                                                     "processes": rq_workers()})


@require_GET
@api_view(allowed=is_reviewer)
def api_workers(request):
    return JsonResponse({
        "registered": [{"name": w.name, "state": w.state, "hostname": w.hostname, "pid": w.pid,
                        "queues": w.queues, "device": w.device, "heartbeat_at": w.heartbeat_at,
                        "current_job": w.current_job, "revoked": w.revoked_at is not None,
                        "responding": w.is_responding}
                       for w in TrainingWorker.objects.all()],
        "processes": rq_workers(),
    })
