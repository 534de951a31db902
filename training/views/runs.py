"""Runs, model versions and workers: pages and the JSON API (/training/api/...).

Thin views: the writes are services (training.services.runs / versions), the reads selectors.
"""

from __future__ import annotations

import tempfile
from functools import wraps

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from lib.decorators import admin_required, reviewer_required
from lib.roles import is_admin, is_reviewer
from training.api import api_error, api_view
from training.charts import line_chart
from training.models import GATED, ModelVersion, ModelVersionEvent, TrainingRun, TrainingWorker
from training.selectors import (
    rq_workers,
    run_epochs_json,
    run_logs,
    run_progress,
    version_comparison,
)
from training.services.gates import evaluation_set_current
from training.services.runs import training_run_cancel, training_run_enqueue, training_run_reproduce
from training.services.versions import GateConfirmationRequired, model_version_activate, model_version_zip

ACTIVE = {TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING}


def _charts(metrics: list) -> dict:
    return {
        "loss_chart": line_chart(title=_("Loss"), series={
            _("training"): [(m.epoch, m.train_loss) for m in metrics],
            _("validation"): [(m.epoch, m.eval_loss) for m in metrics]}, y_min=0),
        "f1_chart": line_chart(title="F1", series={
            _("micro F1"): [(m.epoch, m.f1) for m in metrics],
            _("macro F1"): [(m.epoch, m.macro_f1) for m in metrics],
            _("coverage"): [(m.epoch, m.coverage) for m in metrics]}, y_min=0, y_max=1),
    }


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def run_page(request, pk: int):
    run = get_object_or_404(TrainingRun.objects.select_related("created_by", "cancelled_by", "dataset",
                                                                "reproduces"), pk=pk)
    metrics = list(run.epoch_metrics.order_by("epoch"))
    last = metrics[-1] if metrics else None
    version = ModelVersion.objects.filter(run=run).first()
    template = "training/run.html"
    if request.htmx:
        template += "#run-status"
    return render(request, template, {
        "run": run, "metrics": metrics, "last": last, "version": version,
        "version_gated": version is not None and version.gate_status in GATED,
        "progress": run_progress(run=run), "logs": list(run_logs(run=run))[-200:], "can_train": is_admin(request.user),
        "active": run.status in ACTIVE, **_charts(metrics),
    })


@require_POST
@admin_required
def run_cancel(request, pk: int):
    run = get_object_or_404(TrainingRun, pk=pk)
    if training_run_cancel(run=run, user=request.user):
        messages.success(request, _("Run %(id)s was cancelled.") % {"id": run.pk})
    else:
        messages.error(request, _("Run %(id)s is not queued or running; nothing to cancel.") % {"id": run.pk})
    return redirect("training:run", pk=run.pk)


@require_POST
@admin_required
def run_reproduce(request, pk: int):
    run = get_object_or_404(TrainingRun, pk=pk)
    try:
        new = training_run_reproduce(run=run, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("training:run", pk=run.pk)
    training_run_enqueue(run=new)
    messages.success(request, _("Run %(id)s reproduces run %(old)s.") % {"id": new.pk, "old": run.pk})
    return redirect("training:run", pk=new.pk)


def _version_context(request, version: ModelVersion, *, error: str = "") -> dict:
    current = evaluation_set_current(task=version.task)
    return {
        "version": version, "run": version.run, "events": version.events.select_related("user", "previous"),
        "per_label": sorted((version.metrics.get("per_label") or {}).items()),
        "others": ModelVersion.objects.filter(task=version.task).exclude(pk=version.pk),
        "can_activate": is_admin(request.user), "gated": version.gate_status in GATED, "error": error,
        "evaluation_set": current,
        "current_score": version.scores.filter(evaluation_set=current).first() if current else None,
    }


@require_GET
@reviewer_required
def version_page(request, pk: int):
    version = get_object_or_404(ModelVersion.objects.select_related("run", "run__dataset", "parent"), pk=pk)
    return render(request, "training/version.html", _version_context(request, version))


@require_GET
@reviewer_required
def version_compare(request):
    try:
        a = ModelVersion.objects.get(pk=int(request.GET.get("a", "")))
        b = ModelVersion.objects.get(pk=int(request.GET.get("b", "")))
    except (ValueError, ModelVersion.DoesNotExist):
        raise Http404(_("Choose two existing versions to compare.")) from None
    return render(request, "training/version_compare.html", {"a": a, "b": b,
                                                             "rows": version_comparison(a=a, b=b)})


@require_POST
@admin_required
def version_activate(request, pk: int):
    version = get_object_or_404(ModelVersion.objects.select_related("run", "run__dataset", "parent"), pk=pk)
    try:
        model_version_activate(version=version, user=request.user, confirm=request.POST.get("confirm") == "1")
    except GateConfirmationRequired as exc:
        return render(request, "training/version.html", _version_context(request, version, error=str(exc)),
                      status=400)
    messages.success(request, _("Version v%(n)s is now active.") % {"n": version.number})
    return redirect("training:version", pk=version.pk)


@require_GET
@reviewer_required
def version_download(request, pk: int):
    version = get_object_or_404(ModelVersion, pk=pk)
    handle = tempfile.TemporaryFile()
    try:
        model_version_zip(version=version, handle=handle)
    except FileNotFoundError:
        handle.close()
        raise Http404(_("The artefact of this version is missing from storage.")) from None
    handle.seek(0)
    return FileResponse(handle, as_attachment=True, content_type="application/zip",
                        filename=f"docloop-{version.task}-v{version.number}.zip")


@require_GET
@reviewer_required
def workers_page(request):
    return render(request, "training/workers.html", {"workers": TrainingWorker.objects.all(),
                                                     "processes": rq_workers()})


# JSON API ------------------------------------------------------------------------------------------------

def _run_json(run: TrainingRun) -> dict:
    return {"id": run.pk, "task": run.task, "kind": run.kind, "status": run.status, "error": run.error,
            "base_model": run.base_model, "seed": run.seed, "hyperparameters": run.hyperparameters,
            "dataset": run.dataset_id, "dataset_hash": run.dataset_hash, "worker": run.worker,
            "device": run.device, "attempts": run.attempts, "created_by": getattr(run.created_by, "username", None),
            "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
            "progress": run_progress(run=run), "checkpoint_epoch": run.checkpoint_epoch,
            "reproduces": run.reproduces_id,
            "version": getattr(getattr(run, "model_version", None), "number", None)}


def _version_json(v: ModelVersion) -> dict:
    return {"id": v.pk, "task": v.task, "number": v.number, "kind": v.kind, "run": v.run_id,
            "parent": v.parent_id, "is_active": v.is_active, "labels": v.labels, "metrics": v.metrics,
            "dataset_hash": v.run.dataset_hash, "seed": v.run.seed, "hyperparameters": v.run.hyperparameters,
            "created_at": v.created_at, "activated_at": v.activated_at,
            "gate": {"status": v.gate_status, "label": str(v.get_gate_status_display()), "reason": v.gate_reason,
                     "gated": v.gate_status in GATED, "evaluation_set": v.gate.get("evaluation_set"),
                     "figures": v.gate}}


def _api_object(queryset, missing: str):
    """Decorate a JSON view taking `pk`: call it with the object instead, or answer 404 with `missing`."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, pk: int):
            found = queryset.filter(pk=pk).first()
            if found is None:
                return api_error(str(missing), status=404)
            return view(request, found)

        return wrapper

    return decorate


with_run = _api_object(TrainingRun.objects.select_related("created_by"), _lazy("No such run."))
with_version = _api_object(ModelVersion.objects.select_related("run"), _lazy("No such version."))


@require_GET
@api_view(allowed=is_reviewer)
@with_run
def api_run(request, run: TrainingRun):
    return JsonResponse(_run_json(run))


@require_GET
@api_view(allowed=is_reviewer)
@with_run
def api_run_metrics(request, run: TrainingRun):
    return JsonResponse({"run": run.pk, "epochs": run_epochs_json(run=run)})


@require_GET
@api_view(allowed=is_reviewer)
@with_run
def api_run_logs(request, run: TrainingRun):
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        return api_error(_("'after' must be a log line id."), status=400)
    lines = [{"id": line.pk, "attempt": line.attempt, "time": line.created_at, "level": line.level,
              "message": line.message} for line in run_logs(run=run, after=after)]
    return JsonResponse({"run": run.pk, "lines": lines})


@require_POST
@api_view(allowed=is_admin)
@with_run
def api_run_cancel(request, run: TrainingRun):
    if not training_run_cancel(run=run, user=request.user):
        return api_error(_("Run %(id)s is not queued or running; nothing to cancel.") % {"id": run.pk},
                         status=409)
    return JsonResponse(_run_json(run))


@require_POST
@api_view(allowed=is_admin)
@with_run
def api_run_reproduce(request, run: TrainingRun):
    try:
        new = training_run_reproduce(run=run, user=request.user)
    except ValidationError as exc:
        return api_error(" ".join(exc.messages), status=400)
    training_run_enqueue(run=new)
    return JsonResponse(_run_json(new), status=201)


@require_GET
@api_view(allowed=is_reviewer)
def api_versions(request):
    versions = ModelVersion.objects.select_related("run")[:200]
    return JsonResponse({"versions": [_version_json(v) for v in versions]})


@require_GET
@api_view(allowed=is_reviewer)
@with_version
def api_version(request, version: ModelVersion):
    events = [{"action": e.action, "user": getattr(e.user, "username", None), "previous": e.previous_id,
               "at": e.created_at} for e in version.events.select_related("user")]
    return JsonResponse({**_version_json(version), "events": events})


@require_POST
@api_view(allowed=is_admin)
@with_version
def api_version_activate(request, version: ModelVersion):
    """Activate (or roll back to) the version; one the gate kept inactive needs {"confirm": true}: 409 says
    why it was gated otherwise."""
    from lib.inputs import InputError, request_data

    try:
        confirm = (request_data(request) or {}).get("confirm") in (True, "true", "1", 1)
    except InputError as exc:
        return api_error(str(exc), status=exc.status)
    try:
        version = model_version_activate(version=version, user=request.user, confirm=confirm)
    except GateConfirmationRequired as exc:
        return api_error(str(exc), status=409, gate=version.gate_status)
    event = ModelVersionEvent.objects.filter(version=version).first()
    return JsonResponse({**_version_json(version), "event": event.action})


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
